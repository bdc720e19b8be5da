//! `rkube kubelet`: the node agent alone, against any apiserver a kubeconfig points at (`rkube server` on
//! another machine, or a real Kubernetes control plane). It registers the Node, runs the pods bound to it,
//! answers cluster DNS and keeps the service proxy table. Stop it with SIGTERM (containers keep running and the
//! next kubelet adopts them); `rkube down --data-dir` removes everything it made.
//!
//! Its API (logs, exec, attach, port-forward) is HTTPS and admits only clients whose certificate the cluster
//! CA signed: the CA comes from `--client-ca-file` or else the kubeconfig (`rkube server --tls` writes it
//! there). The serving certificate is `--tls-cert-file`/`--tls-private-key-file`, or one it signs itself at
//! every start (`<data-dir>/pki/kubelet.crt`), as upstream's kubelet does. With `--rotate-server-certificates`
//! (on by default for a node running with its own certificate, as `rkube join` makes it) the kubelet asks the
//! cluster for its serving certificate, serves it once an administrator approves the request, and renews it
//! (`rkube_kubelet::node::certs::serving`). A kubeconfig without a CA (a plain HTTP server) leaves the API plain
//! HTTP and unauthenticated, and the kubelet says so.

use std::path::{Path, PathBuf};

use rkube_kubelet::server::tls::ApiTls;

use anyhow::Context;

use crate::node::{self, NodeArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Kubeconfig of the cluster to join (e.g. the one `rkube server` wrote, or the node's own from
    /// `rkube join` or `rkube kubeconfig --node`)
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Directory for pods, logs, images and the network config
    #[arg(long, default_value = "/var/lib/rkube")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub agent: AgentArgs,
}

/// The node agent's flags other than its credential and data dir: the same for `rkube kubelet` and
/// `rkube join`, so a node that joins runs exactly as one started with a kubeconfig.
#[derive(clap::Args)]
pub struct AgentArgs {
    /// CA that signs the certificates of clients allowed into the kubelet API (default: the kubeconfig's CA)
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Serving certificate of the kubelet API (default: a self-signed one made at start)
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Key of --tls-cert-file
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Request the kubelet API's serving certificate from the cluster (a kubernetes.io/kubelet-serving CSR an
    /// administrator approves) and renew it before it expires (upstream's serverTLSBootstrap). Default: on when
    /// the kubeconfig holds the node's own certificate (`rkube join`) and no --tls-cert-file is given
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub rotate_server_certificates: Option<bool>,
    /// Run the node in this network namespace (/run/netns/NAME), as `rkube cluster` does: the kubelet joins it
    /// before anything else, sees that namespace's sysfs network view, and leaves the host's ip_forward alone
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// The cgroup every pod's cgroup goes under, in each hierarchy (upstream's --cgroup-root)
    #[arg(long, default_value = "kubepods")]
    pub cgroup_root: String,
    /// How pods reach pods on other nodes: `host-gw` keeps a route to every other node's podCIDR via that
    /// node's InternalIP (nodes on one L2 segment); `vxlan` carries pods' packets in VXLAN (UDP 8472) between
    /// the nodes' InternalIPs (nodes on any routed network; MTU 50 less); `none` leaves routing to someone else
    #[arg(long, default_value = "host-gw", value_parser = ["host-gw", "vxlan", "none"])]
    pub pod_network: String,
    /// OpenTelemetry trace export: a TracingConfiguration file (endpoint host:port of an OTLP/HTTP collector,
    /// samplingRatePerMillion), or a KubeletConfiguration whose `tracing:` says the same, as upstream's kubelet
    /// reads it. Without it: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or $OTEL_EXPORTER_OTLP_ENDPOINT, else no export
    #[arg(long, value_name = "FILE")]
    pub tracing_config_file: Option<PathBuf>,
    #[command(flatten)]
    pub node: NodeArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // before the tokio runtime starts any thread: setns and unshare act on this thread only
    if let Some(ns) = &args.agent.netns {
        rkube_cluster::netns::enter(ns)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the tokio runtime")?;
    runtime.block_on(kubelet(args))
}

pub(crate) async fn kubelet(args: Args) -> anyhow::Result<()> {
    crate::trace::start_export(args.agent.tracing_config_file.as_deref())?;
    let data = &args.data_dir;
    let _claim = rkube_kubelet::node::data_dir::claim(data)?;
    let mut cfg = node::node_config(&args.agent.node, data, None)?;
    cfg.cgroup_root = args.agent.cgroup_root.trim_matches('/').to_string();
    cfg.api_tls = api_tls(&args, data, &cfg.node_name, &cfg.node_ip)?;
    if cfg.api_tls.is_none() {
        tracing::warn!(
            kubeconfig = %args.kubeconfig.display(),
            "the kubelet API is plain HTTP with no authentication: the kubeconfig names no CA; pass --client-ca-file"
        );
    }
    // the node's own certificate (kubelet.conf of `rkube join`) is renewed before it expires, without a restart
    let (client, rotation) = rkube_kubelet::node::certs::client(&args.kubeconfig, &cfg.node_name).await?;
    let own_credential = rotation.is_some();
    if let Some(r) = rotation {
        tokio::spawn(r.run());
    }
    let rotate_serving = args.agent.rotate_server_certificates.unwrap_or(own_credential && args.agent.tls_cert_file.is_none());
    match (&cfg.api_tls, rotate_serving) {
        (Some(tls), true) => {
            let serving = rkube_kubelet::node::certs::serving::ServingRotation::new(
                client.clone(),
                &cfg.node_name,
                &data.join("pki"),
                tls.serving.clone(),
                &tls.client_ca_pem,
            )?;
            tokio::spawn(serving.run());
        }
        (None, true) if args.agent.rotate_server_certificates == Some(true) => {
            anyhow::bail!("--rotate-server-certificates: the kubelet API is plain HTTP (no cluster CA known); pass --client-ca-file")
        }
        _ => {}
    }
    // in a namespace of its own the node's forwarding is that namespace's, not the host's
    if args.agent.netns.is_none() {
        rkube_kubelet::node::host::record_ip_forward()?;
    }
    match args.agent.pod_network.as_str() {
        "host-gw" => drop(tokio::spawn(rkube_kubelet::node::routes::run(client.clone(), cfg.node_name.clone()))),
        "vxlan" => {
            // the pods' bridge and veths get the tunnel's MTU, so their packets fit in it unfragmented
            let mtu = rkube_kubelet::node::vxlan::pod_mtu(&cfg.node_ip)?;
            if let Some(net) = cfg.default_network.as_mut() {
                net.mtu = Some(mtu);
            }
            tokio::spawn(rkube_kubelet::node::vxlan::run(client.clone(), cfg.node_name.clone(), cfg.node_ip.clone(), cfg.root_dir.clone()));
        }
        _ => {}
    }
    eprintln!(
        "rkube kubelet: node {} ({}) joining {}; cluster DNS {}",
        cfg.node_name,
        cfg.node_ip,
        args.kubeconfig.display(),
        args.agent.node.cluster_dns
    );
    node::run_kubelet(cfg, client).await
}

/// The kubelet API's TLS from the flags and the kubeconfig (None: no client CA known, plain HTTP).
fn api_tls(args: &Args, data: &Path, node_name: &str, node_ip: &str) -> anyhow::Result<Option<ApiTls>> {
    let client_ca_pem = match &args.agent.client_ca_file {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("--client-ca-file {}", f.display()))?,
        None => match kubeconfig_ca(&args.kubeconfig)? {
            Some(pem) => pem,
            None => return Ok(None),
        },
    };
    let (cert_pem, key_pem) = match (&args.agent.tls_cert_file, &args.agent.tls_private_key_file) {
        (Some(c), Some(k)) => (
            std::fs::read_to_string(c).with_context(|| format!("--tls-cert-file {}", c.display()))?,
            std::fs::read_to_string(k).with_context(|| format!("--tls-private-key-file {}", k.display()))?,
        ),
        _ => {
            let pair = rkube_apiserver::tls::self_signed_kubelet_serving(node_name, &[node_ip.to_string()])?;
            pair.write(&data.join("pki"), "kubelet")?;
            (pair.cert, pair.key)
        }
    };
    // bad PEM fails here, with the flag's name, not later in the server task
    let tls = ApiTls::new(&cert_pem, &key_pem, &client_ca_pem).context("--tls-cert-file, --tls-private-key-file")?;
    rkube_kubelet::server::tls::server_config(&tls).context("--client-ca-file")?;
    Ok(Some(tls))
}

/// The CA (PEM) of the kubeconfig's current cluster: `certificate-authority-data` or the `certificate-authority`
/// file; None when it names neither.
pub(crate) fn kubeconfig_ca(path: &Path) -> anyhow::Result<Option<String>> {
    use base64::Engine;
    let kc = kube::config::Kubeconfig::read_from(path).with_context(|| format!("read kubeconfig {}", path.display()))?;
    let context = kc.current_context.as_deref().and_then(|name| kc.contexts.iter().find(|c| c.name == name));
    let cluster_name = context.and_then(|c| c.context.as_ref()).map(|c| c.cluster.clone());
    let cluster = match cluster_name {
        Some(n) => kc.clusters.iter().find(|c| c.name == n),
        None => kc.clusters.first(),
    };
    let Some(cluster) = cluster.and_then(|c| c.cluster.as_ref()) else { return Ok(None) };
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .with_context(|| format!("{}: certificate-authority-data is not base64", path.display()))?;
        return Ok(Some(String::from_utf8(pem).with_context(|| format!("{}: certificate-authority-data is not PEM", path.display()))?));
    }
    match &cluster.certificate_authority {
        Some(f) => Ok(Some(std::fs::read_to_string(f).with_context(|| format!("{}: certificate-authority {f}", path.display()))?)),
        None => Ok(None),
    }
}
