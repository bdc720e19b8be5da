//! `rkube down`: stops a running `rkube up` (or `rkube kubelet`) of the data dir and removes every pod it ran and
//! what the node made on the host, through the kubelet's node teardown (`rkube_kubelet::node::teardown`, which
//! says what goes); this module parses the flags, enters the node's network namespace when given, and prints.

use std::path::PathBuf;

use anyhow::Context;
use rkube_kubelet::node::teardown::{teardown, TeardownOptions};
use rkube_kubelet::runtime_client::RuntimeCli;

#[derive(clap::Args)]
pub struct Args {
    /// The data dir given to `rkube up`
    #[arg(long, default_value = "/var/lib/rkube")]
    pub data_dir: PathBuf,
    /// Also remove the API store, images and everything else under the data dir
    #[arg(long)]
    pub purge: bool,
    /// The node ran in this network namespace (`rkube kubelet --netns`): clean up inside it; the host's
    /// ip_forward and other nodes' cgroups are left alone
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// The node's `rkube kubelet --cgroup-root`: its pods' cgroups, and the tree once empty
    #[arg(long)]
    pub cgroup_root: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(ns) = &args.netns {
        rkube_cluster::netns::enter(ns)?;
    }
    let data = &args.data_dir;
    let cfg = super::node::kubelet_config(data, "down", "127.0.0.1");
    let runtime = RuntimeCli { bin: cfg.runtime_bin.clone(), root: cfg.runtime_root.clone() };
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the tokio runtime")?;
    let opts = TeardownOptions { data_dir: data.clone(), purge: args.purge, in_netns: args.netns.is_some(), cgroup_root: args.cgroup_root.clone() };
    teardown(&cfg, &runtime, &opts, tokio.handle().clone(), &mut |note| eprintln!("{note}"))?;
    eprintln!("rkube is down (data dir {})", data.display());
    Ok(())
}
