//! `rkube trace pod NAME [-n NS] [-o json]`: a pod's timeline across components (issue 17, `docs/trace.md`).
//! Wiring only: the trace id comes from the pod's `rkube.io/traceparent` (or, for a pod that is gone, from the
//! apiserver's index), the records from the apiserver's and the node's kubelet's trace endpoints; merging and
//! printing are `rkube_trace::timeline`'s.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use rkube_trace::store::Record;
use rkube_trace::timeline::{self, PodTrace};
use rkube_trace::TraceParent;

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
}

const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

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

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// GET `path` on the apiserver as JSON; None on 404.
async fn get_json(client: &kube::Client, path: &str) -> Result<Option<serde_json::Value>, kube::Error> {
    let req = http::Request::get(path).body(Vec::new()).map_err(kube::Error::HttpError)?;
    let fut = client.request_text(req);
    match tokio::time::timeout(FETCH_TIMEOUT, fut).await {
        Err(_) => Err(kube::Error::Service(format!("no answer from {path} in {} s", FETCH_TIMEOUT.as_secs()).into())),
        Ok(Ok(text)) => serde_json::from_str(&text).map(Some).map_err(kube::Error::SerdeError),
        Ok(Err(e)) if is_not_found(&e) => Ok(None),
        Ok(Err(e)) => Err(e),
    }
}

fn records(doc: Option<serde_json::Value>) -> anyhow::Result<Vec<Record>> {
    match doc.and_then(|mut d| d.get_mut("records").map(serde_json::Value::take)) {
        Some(r) => serde_json::from_value(r).context("decode trace records"),
        None => Ok(Vec::new()),
    }
}

pub async fn fetch_pod(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<PodTrace> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let key = format!("{ns}/{name}");
    let pod = pods.get_opt(name).await.with_context(|| format!("read pod {key}"))?;
    let (trace_id, node, exists) = match &pod {
        Some(p) => {
            let tp = TraceParent::from_annotations(p.metadata.annotations.as_ref()).with_context(|| {
                format!("pod {key} has no trace context (annotation {}): it was created before tracing", rkube_trace::ANNOTATION)
            })?;
            (format!("{:032x}", tp.trace_id), p.spec.as_ref().and_then(|s| s.node_name.clone()), true)
        }
        None => {
            let kept = get_json(client, &format!("/debug/rkube/traces/pods/{ns}/{name}")).await.context("ask the apiserver for a kept trace")?;
            let Some(id) = kept.as_ref().and_then(|k| k.get("traceId")).and_then(|v| v.as_str()) else {
                anyhow::bail!("pod {key} not found (kubectl get pods -n {ns} lists the pods there), and no trace is kept for it");
            };
            (id.to_string(), None, false)
        }
    };
    let mut sets = vec![records(get_json(client, &format!("/debug/rkube/traces/{trace_id}")).await.context("read the apiserver's trace records")?)?];
    let node = node.or_else(|| timeline::node_of(&timeline::merge(sets.clone(), &key)));
    if let Some(n) = &node {
        match get_json(client, &format!("/api/v1/nodes/{n}/proxy/debug/rkube/traces/{trace_id}")).await {
            Ok(doc) => sets.push(records(doc)?),
            Err(e) => eprintln!("rkube: the kubelet of node {n} did not answer ({e}); showing the control plane's steps only"),
        }
    }
    let steps = timeline::merge(sets, &key);
    Ok(PodTrace {
        api_version: timeline::API_VERSION.into(),
        kind: "PodTrace".into(),
        namespace: ns.into(),
        name: name.into(),
        trace_id,
        node,
        exists,
        steps,
    })
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let Command::Pod(args) = cmd;
    let kubeconfig = kubeconfig_path(args.kubeconfig)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let trace = rt.block_on(async {
        let client = crate::control_plane::client_from_kubeconfig(&kubeconfig).await?;
        fetch_pod(&client, &args.namespace, &args.name).await
    })?;
    // formatted whole before printing: nothing partial reaches stdout
    let out = match args.output.as_deref() {
        Some("json") => serde_json::to_string_pretty(&trace)? + "\n",
        _ => timeline::render(&trace, std::io::stdout().is_terminal()),
    };
    print!("{out}");
    Ok(())
}
