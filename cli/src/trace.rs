//! `rkube trace pod NAME [-n NS] [-o json] [--follow]`: a pod's timeline across components (issue 17,
//! `docs/trace.md`); with `--follow`, its new steps as they are recorded, until it is Ready, finished or failed.
//! Wiring only: the trace id comes from the pod's `rkube.io/traceparent` (or, for a pod that is gone, from the
//! apiserver's index), the records from the apiserver's and the node's kubelet's trace endpoints; merging and
//! printing are `rkube_trace::timeline`'s, the follow loop `rkube_trace::live`'s (shared with the dashboard).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use rkube_trace::fetch;
use rkube_trace::live::{self, Followed};
use rkube_trace::store::Record;
use rkube_trace::timeline::{self, PodTrace};

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

/// Writes steps as lines (the timeline's, or one JSON record each) and flushes them; `first` is the first printed
/// step's start, which offsets count from.
fn emit(out: &mut impl std::io::Write, steps: &[Record], json: bool, color: bool, first: &mut Option<u64>) -> std::io::Result<()> {
    for s in steps {
        let line = if json {
            serde_json::to_string(s).map_err(std::io::Error::other)? + "\n"
        } else {
            let f = *first.get_or_insert(s.start_unix_nanos);
            timeline::step_line(s, f, color)
        };
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}

/// `rkube trace pod NAME --follow`: waits for the pod, then prints each new step once, in order, until the pod
/// is Ready, has finished or failed (`rkube_trace::live::follow_pod`, the loop the dashboard's live timeline
/// runs too). Ctrl-C ends it (each step is a whole line, flushed as printed); what is not a step goes to stderr.
async fn follow(client: &kube::Client, args: &PodArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let (ns, name) = (args.namespace.as_str(), args.name.as_str());
    let json = args.output.as_deref() == Some("json");
    let color = !json && std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    let mut first: Option<u64> = None;
    live::follow_pod(client, ns, name, Duration::from_secs(args.timeout), |f| match f {
        Followed::Waiting { pod, timeout } => {
            eprintln!("rkube: pod {pod} does not exist yet; waiting up to {} s for it to be created", timeout.as_secs());
            Ok(())
        }
        Followed::Started { trace_id } if !json => {
            let head = PodTrace {
                api_version: timeline::API_VERSION.into(),
                kind: "PodTrace".into(),
                namespace: ns.into(),
                name: name.into(),
                trace_id,
                node: None,
                exists: true,
                steps: vec![],
            };
            write!(out, "{}", timeline::header(&head, color))?;
            out.flush()
        }
        Followed::Started { .. } => Ok(()),
        Followed::Steps(steps) => emit(&mut out, &steps, json, color, &mut first),
        Followed::Note(n) => {
            eprintln!("rkube: {n}");
            Ok(())
        }
        Followed::Done { pod, what } => {
            eprintln!("rkube: pod {pod} is {what}");
            Ok(())
        }
    })
    .await?;
    Ok(())
}
