//! `rkube join`: a node joins a cluster the kubeadm way, with a bootstrap token and the CA's pin instead of
//! an admin credential. The TLS bootstrap (discovery, CSR, waiting, `<data-dir>/kubelet.conf`) is
//! `rkube_kubelet::bootstrap`; then the kubelet runs exactly as `rkube kubelet --kubeconfig <data-dir>/kubelet.conf`
//! with the same node flags (`--netns`, `--cgroup-root`, `--pod-network`, `--node-ip`, ... : [`AgentArgs`]), which
//! is also how it is restarted. `rkube cluster` joins its nodes this way, as a Vagrant worker does.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::kubelet::AgentArgs;

#[derive(clap::Args)]
pub struct Args {
    /// The apiserver (https://host:port)
    #[arg(long)]
    pub server: String,
    /// The bootstrap token (`rkube token create`)
    #[arg(long)]
    pub token: String,
    /// Pin of the cluster CA: sha256:<hex of its SubjectPublicKeyInfo> (repeatable)
    #[arg(long = "discovery-token-ca-cert-hash")]
    pub ca_cert_hashes: Vec<String>,
    /// Trust the CA cluster-info names without a pin
    #[arg(long = "discovery-token-unsafe-skip-ca-verification")]
    pub unsafe_skip_ca_verification: bool,
    /// Seconds to wait for discovery and for the node's certificate
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Directory for pods, logs, images, the network config and kubelet.conf
    #[arg(long, default_value = "/var/lib/rkube")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub agent: AgentArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // before the tokio runtime starts any thread (setns acts on this thread only): the node's namespace is the
    // one it reaches the server from, as its kubelet does
    if let Some(ns) = &args.agent.netns {
        rkube_cluster::netns::enter(ns)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the tokio runtime")?;
    runtime.block_on(join(args))
}

async fn join(args: Args) -> anyhow::Result<()> {
    let node_name = args.agent.node.node_name.clone().unwrap_or_else(crate::node::hostname);
    let opts = rkube_kubelet::bootstrap::JoinOptions {
        server: args.server.clone(),
        token: args.token.clone(),
        ca_cert_hashes: args.ca_cert_hashes.clone(),
        unsafe_skip_ca_verification: args.unsafe_skip_ca_verification,
        node_name: node_name.clone(),
        data_dir: args.data_dir.clone(),
        timeout: Duration::from_secs(args.timeout),
    };
    let conf = rkube_kubelet::bootstrap::join(&opts).await.with_context(|| format!("join {} as node {node_name}", args.server))?;
    eprintln!("rkube join: node {node_name} has its certificate ({}); starting the kubelet", conf.display());
    let mut agent = args.agent;
    agent.node.node_name = Some(node_name);
    crate::kubelet::kubelet(crate::kubelet::Args { kubeconfig: conf, data_dir: args.data_dir, agent }).await
}
