//! `rkube kubelet`: the node agent alone, against any apiserver a kubeconfig points at (`rkube server` on
//! another machine, or a real Kubernetes control plane). It registers the Node, runs the pods bound to it,
//! answers cluster DNS and keeps the service proxy table. Stop it with SIGTERM (containers keep running and the
//! next kubelet adopts them); `rkube down --data-dir` removes everything it made.

use std::path::PathBuf;

use anyhow::Context;

use crate::control_plane::client_from_kubeconfig;
use crate::node::{self, NodeArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Kubeconfig of the cluster to join (e.g. the one `rkube server` wrote)
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Directory for pods, logs, images and the network config
    #[arg(long, default_value = "/var/lib/rkube")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub node: NodeArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the tokio runtime")?;
    runtime.block_on(kubelet(args))
}

async fn kubelet(args: Args) -> anyhow::Result<()> {
    let data = &args.data_dir;
    let _pid = node::claim_data_dir(data)?;
    let cfg = node::node_config(&args.node, data, None)?;
    let client = client_from_kubeconfig(&args.kubeconfig).await?;
    node::record_ip_forward()?;
    eprintln!(
        "rkube kubelet: node {} ({}) joining {}; cluster DNS {}",
        cfg.node_name,
        cfg.node_ip,
        args.kubeconfig.display(),
        args.node.cluster_dns
    );
    node::run_kubelet(cfg, client).await
}
