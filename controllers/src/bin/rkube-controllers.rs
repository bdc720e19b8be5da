//! `rkube-controllers`: the scheduler and the controller manager as a separate process, against any
//! apiserver a kubeconfig points at (rkube's or a real Kubernetes one).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use rkube_controllers::{run_all, run_scheduler, Config, SchedulerConfig};

#[derive(Parser, Debug)]
#[command(name = "rkube-controllers", about = "rkube scheduler and controller manager")]
struct Args {
    /// Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Run only the scheduler
    #[arg(long, conflicts_with = "no_scheduler")]
    scheduler_only: bool,
    /// Run the controllers without the scheduler
    #[arg(long)]
    no_scheduler: bool,
    /// Seconds without a Lease renewal before a node is marked Unknown (upstream's default since 1.32)
    #[arg(long, default_value_t = 50)]
    node_monitor_grace_period: i64,
    /// tolerationSeconds for pods without a not-ready/unreachable toleration
    #[arg(long, default_value_t = 300)]
    default_toleration_seconds: i64,
    /// Cluster pod CIDR nodes get their podCIDR from
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    /// Prefix length of each node's podCIDR
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// percentageOfNodesToScore (0 = adaptive)
    #[arg(long, default_value_t = 0)]
    percentage_of_nodes_to_score: u32,
    /// Don't record a "Scheduled" event per bound pod
    #[arg(long)]
    no_scheduled_events: bool,
}

async fn client(path: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match path {
        Some(p) => {
            let kc = Kubeconfig::read_from(p).with_context(|| format!("read kubeconfig {}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("load kubeconfig {}", p.display()))?
        }
        None => kube::Config::infer().await.context("no kubeconfig given and none found (use --kubeconfig)")?,
    };
    kube::Client::try_from(config).context("build kubernetes client")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into()))
        .init();
    let args = Args::parse();
    let client = client(args.kubeconfig.as_ref()).await?;
    let mut config = Config::default();
    config.lifecycle.grace = chrono::Duration::seconds(args.node_monitor_grace_period);
    config.lifecycle.default_toleration_seconds = args.default_toleration_seconds;
    config.lifecycle.cluster_cidr = args.cluster_cidr;
    config.lifecycle.node_mask = args.node_cidr_mask_size;
    config.node_monitor_period = Duration::from_secs((args.node_monitor_grace_period as u64 / 8).clamp(1, 5));
    let sched = SchedulerConfig {
        percentage_of_nodes_to_score: (args.percentage_of_nodes_to_score > 0).then_some(args.percentage_of_nodes_to_score),
        record_scheduled_events: !args.no_scheduled_events,
        ..Default::default()
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    tokio::select! {
        r = run_scheduler(client.clone(), sched), if !args.no_scheduler => r.context("scheduler stopped")?,
        r = run_all(client.clone(), config), if !args.scheduler_only => r.context("controller manager stopped")?,
        _ = shutdown => tracing::info!("interrupted, exiting"),
    }
    Ok(())
}
