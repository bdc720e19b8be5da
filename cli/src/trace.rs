//! `rkube trace pod NAME [-n NS] [-o json] [--follow]`: a pod's timeline across components (issue 17,
//! `docs/trace.md`); with `--follow`, its new steps as they are recorded, until it is Ready, finished or failed.
//! Wiring only: the trace id comes from the pod's `rkube.io/traceparent` (or, for a pod that is gone, from the
//! apiserver's index), the records from the apiserver's and the node's kubelet's trace endpoints; merging and
//! printing are `rkube_trace::timeline`'s, what to print next while following `rkube_trace::follow`'s.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, watcher};
use kube::Api;
use rkube_trace::store::Record;
use rkube_trace::timeline::{self, PodTrace};
use rkube_trace::fetch::{self, pod_state, seen, PodState, Seen};

#[derive(clap::Subcommand)]
pub enum Command {
    /// A pod: its steps from the API request to Ready (apiserver, controller, scheduler, kubelet), with times
    Pod(PodArgs),
}

#[derive(clap::Args)]
pub struct PodArgs {
    /// The pod's name
    pub name: String,
    /// The pod's namespace
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Output format: a timeline (default), or the trace.rkube.io/v1alpha1 PodTrace document as json
    #[arg(short, long, value_parser = ["json"])]
    pub output: Option<String>,
    /// Kubeconfig of the cluster (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Print the pod's steps as they are recorded, each once, in order, until it is Ready, has finished or
    /// failed (or Ctrl-C); waits for a pod that does not exist yet. With -o json, one step a line
    #[arg(short, long)]
    pub follow: bool,
    /// With --follow: how long to wait for the pod to be created, in seconds
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Starts OTLP export of this process's spans when configured (docs/trace.md, "Export"): `--tracing-config-file`
/// (a TracingConfiguration, or a KubeletConfiguration's `tracing:`), else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
/// `OTEL_EXPORTER_OTLP_ENDPOINT`; nothing when neither is given. A bad file fails the command before it starts.
pub fn start_export(config_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    use rkube_trace::export::Config;
    let config = match config_file {
        Some(path) => Some(Config::from_file(path)?),
        None => Config::from_env(|k| std::env::var(k).ok())?,
    };
    let Some(config) = config else { return Ok(()) };
    if !rkube_trace::enabled() {
        tracing::warn!(
            "{}=off: no spans are recorded in this process, so none are exported to http://{}{}",
            rkube_trace::ENV_SWITCH,
            config.authority,
            config.path
        );
        return Ok(());
    }
    tracing::info!(
        endpoint = %format!("http://{}{}", config.authority, config.path),
        sampling_rate_per_million = config.sampling_rate_per_million,
        "exporting trace spans over OTLP/HTTP"
    );
    rkube_trace::export::install(config)?;
    Ok(())
}

/// How often --follow reads the records while the pod changes or a step waits for its parent span.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// How long after a change of the pod (or a new Event) --follow keeps reading the records every [`FOLLOW_POLL`]:
/// a step's parent span can take [`rkube_trace::follow::HOLD`] to come.
const FOLLOW_AFTER_CHANGE: Duration = Duration::from_millis(2500);
/// How often --follow reads the records when nothing changes (a step no change announces: an image pull's
/// progress, a span ending).
const FOLLOW_IDLE: Duration = Duration::from_secs(2);
/// After the pod is done, how long --follow waits for the kubelet's last steps (the status that says Ready).
const FOLLOW_SETTLE: Duration = Duration::from_secs(5);


/// The kubeconfig to use: the flag, $KUBECONFIG, ~/.kube/config, as kubectl looks.
fn kubeconfig_path(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag.or_else(|| std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()).map(PathBuf::from)) {
        return Ok(p);
    }
    let p = PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".kube/config");
    if p.exists() {
        return Ok(p);
    }
    anyhow::bail!("no kubeconfig: pass --kubeconfig or set KUBECONFIG (rkube up writes <data-dir>/kubeconfig)")
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let Command::Pod(args) = cmd;
    let kubeconfig = kubeconfig_path(args.kubeconfig.clone())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if args.follow {
        return rt.block_on(async {
            let client = crate::control_plane::client_from_kubeconfig(&kubeconfig).await?;
            follow(&client, &args).await
        });
    }
    let (trace, warning) = rt.block_on(async {
        let client = crate::control_plane::client_from_kubeconfig(&kubeconfig).await?;
        anyhow::Ok(fetch::pod_trace(&client, &args.namespace, &args.name).await?)
    })?;
    if let Some(w) = warning {
        eprintln!("rkube: {w}");
    }
    // formatted whole before printing: nothing partial reaches stdout
    let out = match args.output.as_deref() {
        Some("json") => serde_json::to_string_pretty(&trace)? + "\n",
        _ => timeline::render(&trace, std::io::stdout().is_terminal()),
    };
    print!("{out}");
    Ok(())
}

/// The records of trace `trace_id` from the apiserver and the pod's node, merged to the pod's steps. A kubelet
/// that does not answer is said once (`warned`) and its steps are missing until it does.
async fn follow_records(client: &kube::Client, trace_id: &str, key: &str, node: Option<String>, warned: &mut bool) -> anyhow::Result<Vec<Record>> {
    let (steps, _, warning) = fetch::steps(client, trace_id, key, node).await?;
    if let Some(w) = warning.filter(|_| !*warned) {
        *warned = true;
        eprintln!("rkube: {w} until it answers");
    }
    Ok(steps)
}

/// Writes steps as lines (the timeline's, or one JSON record each) and flushes them; `first` is the first printed
/// step's start, which offsets count from.
fn emit(out: &mut impl std::io::Write, steps: &[Record], json: bool, color: bool, first: &mut Option<u64>) -> anyhow::Result<()> {
    for s in steps {
        let line = if json {
            serde_json::to_string(s)? + "\n"
        } else {
            let f = *first.get_or_insert(s.start_unix_nanos);
            timeline::step_line(s, f, color)
        };
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// Says a watch failure once (the watcher retries with backoff, and relists after 410 Gone by itself).
fn watch_failed(what: &str, e: &watcher::Error, said: &mut bool) {
    if !*said {
        *said = true;
        eprintln!("rkube: the watch of {what} failed ({e}); retrying");
    }
}

/// `rkube trace pod NAME --follow`: waits for the pod, then prints each new step once, in order, until the pod
/// is Ready, has finished or failed. Ctrl-C ends it (each step is a whole line, flushed as printed).
///
/// The pod (by name) and its Events (`involvedObject.name`) are watched, as `kubectl get -w` watches: list,
/// then watch from the list's resourceVersion, resumed from the last one seen when the watch ends, and listed
/// again when that version has expired (410 Gone; kube-runtime's watcher). The trace records are not objects
/// and cannot be watched: each change of the pod or a new Event reads them, and so does every
/// [`FOLLOW_POLL`] for [`FOLLOW_AFTER_CHANGE`] after it (a span is recorded when it ends, with no change of
/// its own) or while a step waits for its parent span; with nothing happening, every [`FOLLOW_IDLE`].
async fn follow(client: &kube::Client, args: &PodArgs) -> anyhow::Result<()> {
    use std::io::Write;
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    let (ns, name) = (args.namespace.as_str(), args.name.as_str());
    let key = format!("{ns}/{name}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let json = args.output.as_deref() == Some("json");
    let color = !json && std::io::stdout().is_terminal();
    let wait = Duration::from_secs(args.timeout);
    let deadline = tokio::time::Instant::now() + wait;
    let mut pod_watch = watcher(pods, watcher::Config::default().fields(&format!("metadata.name={name}"))).default_backoff().boxed();
    let (mut listed, mut said_pod_watch) = (false, false);
    let mut said_waiting = false;
    // wait for the pod and its trace context
    let (trace_id, mut pod) = loop {
        let ev = match tokio::time::timeout_at(deadline, pod_watch.next()).await {
            Err(_) => anyhow::bail!(
                "pod {key} was not created within {} s (kubectl get pods -n {ns} lists the pods there; --timeout waits longer)",
                wait.as_secs()
            ),
            Ok(None) => anyhow::bail!("the watch of pod {key} ended"),
            Ok(Some(Err(e))) => {
                watch_failed(&format!("pod {key}"), &e, &mut said_pod_watch);
                continue;
            }
            Ok(Some(Ok(ev))) => ev,
        };
        match seen(ev, &mut listed) {
            Seen::Pod(p) => break (fetch::trace_id_of(&p, &key)?, *p),
            Seen::Gone if !said_waiting => {
                said_waiting = true;
                eprintln!("rkube: pod {key} does not exist yet; waiting up to {} s for it to be created", wait.as_secs());
            }
            Seen::Gone | Seen::Nothing => {}
        }
    };
    let mut event_watch =
        watcher(events, watcher::Config::default().fields(&format!("involvedObject.name={name}"))).default_backoff().boxed();
    let mut said_event_watch = false;
    let mut out = std::io::stdout().lock();
    if !json {
        let head = PodTrace {
            api_version: timeline::API_VERSION.into(),
            kind: "PodTrace".into(),
            namespace: ns.into(),
            name: name.into(),
            trace_id: trace_id.clone(),
            node: None,
            exists: true,
            steps: vec![],
        };
        write!(out, "{}", timeline::header(&head, color))?;
        out.flush()?;
    }
    let mut follower = rkube_trace::follow::Follower::new();
    let mut first: Option<u64> = None;
    let mut warned = false;
    let mut done: Option<(String, tokio::time::Instant)> = None;
    let mut changed_at = tokio::time::Instant::now();
    loop {
        let state = pod_state(Some(&pod));
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let steps = follow_records(client, &trace_id, &key, node.clone(), &mut warned).await?;
        if let (PodState::Done(what), None) = (&state, &done) {
            done = Some((what.clone(), tokio::time::Instant::now()));
        }
        // once done, the last steps (the kubelet's status saying so) may still be on their way: wait for them a
        // little, then print everything left
        let settled = done.as_ref().is_some_and(|(what, since)| {
            since.elapsed() >= FOLLOW_SETTLE || what != "Ready" || steps.iter().any(|s| s.name == "status" && s.attr("ready") == Some("True"))
        });
        emit(&mut out, &follower.next(&steps, std::time::Instant::now(), settled), json, color, &mut first)?;
        if settled {
            if let Some((what, _)) = &done {
                eprintln!("rkube: pod {key} is {what}");
            }
            return Ok(());
        }
        let busy = changed_at.elapsed() < FOLLOW_AFTER_CHANGE || follower.holding() || done.is_some();
        let next_read = tokio::time::Instant::now() + if busy { FOLLOW_POLL } else { FOLLOW_IDLE };
        // wait for a change of the pod, a new Event of it, or the next read
        loop {
            tokio::select! {
                ev = pod_watch.next() => match ev {
                    None => anyhow::bail!("the watch of pod {key} ended"),
                    Some(Err(e)) => watch_failed(&format!("pod {key}"), &e, &mut said_pod_watch),
                    Some(Ok(ev)) => match seen(ev, &mut listed) {
                        Seen::Pod(p) => {
                            pod = *p;
                            changed_at = tokio::time::Instant::now();
                            break;
                        }
                        Seen::Gone => {
                            // gone before it was done: print what was recorded, and say so
                            let steps = follow_records(client, &trace_id, &key, node.clone(), &mut warned).await?;
                            emit(&mut out, &follower.next(&steps, std::time::Instant::now(), true), json, color, &mut first)?;
                            anyhow::bail!("pod {key} was deleted before it was Ready");
                        }
                        Seen::Nothing => {}
                    },
                },
                ev = event_watch.next() => match ev {
                    None => anyhow::bail!("the watch of pod {key}'s events ended"),
                    Some(Err(e)) => watch_failed(&format!("pod {key}'s events"), &e, &mut said_event_watch),
                    Some(Ok(watcher::Event::Apply(_) | watcher::Event::InitApply(_))) => {
                        changed_at = tokio::time::Instant::now();
                        break;
                    }
                    Some(Ok(_)) => {}
                },
                _ = tokio::time::sleep_until(next_read) => break,
            }
        }
    }
}
