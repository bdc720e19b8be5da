//! What `rkube up` and `rkube kubelet` share: the node's flags, the kubelet configuration for a data dir, and
//! running the kubelet until a signal. What the host's nodes share (process scans, host name and address,
//! ip_forward) is the kubelet's `node::host`; the claim on the data dir (`rkube.pid`) is its `node::data_dir`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::control_plane::DEFAULT_CLUSTER_DNS;

/// The node's flags, the same for `rkube up` and `rkube kubelet`.
#[derive(clap::Args, Clone)]
pub struct NodeArgs {
    /// Name of this node (default: the host name)
    #[arg(long)]
    pub node_name: Option<String>,
    /// InternalIP of this node; the kubelet API listens there (default: the host's primary address)
    #[arg(long)]
    pub node_ip: Option<String>,
    /// CNI network config dir to use instead of rkube's own bridge network (e.g. /etc/cni/net.d)
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
    /// Pod subnet of rkube's bridge network (`rkube kubelet` default: the Node's podCIDR from the controllers)
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// Bridge (and network name) of rkube's bridge network
    #[arg(long, default_value = "cni0")]
    pub bridge: String,
    /// Cluster DNS address for pods' resolv.conf; the kubelet answers DNS there (see --external-cluster-dns)
    #[arg(long, default_value_t = DEFAULT_CLUSTER_DNS)]
    pub cluster_dns: Ipv4Addr,
    /// Another server answers at --cluster-dns: only point pods at it, do not serve it from this node
    #[arg(long)]
    pub external_cluster_dns: bool,
    /// Bridge of its own that holds the cluster DNS address on this node
    #[arg(long, default_value = "rkube-dns0")]
    pub dns_link: String,
    /// Where cluster DNS sends names outside cluster.local: host:port, or `none` to refuse them
    /// (default: the first nameserver of /etc/resolv.conf)
    #[arg(long)]
    pub dns_upstream: Option<String>,
    /// nftables table (family ip) of the service proxy
    #[arg(long, default_value = "rkube-proxy")]
    pub proxy_table: String,
    /// Static pod manifests (default: <data-dir>/manifests)
    #[arg(long)]
    pub static_pod_dir: Option<PathBuf>,
    /// Registries reached over plain HTTP (host:port; loopback registries always are)
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    #[command(flatten)]
    pub image_limits: crate::image::LimitArgs,
    /// Hard eviction thresholds: under them the node reports pressure and evicts pods
    #[arg(long, default_value = "memory.available<100Mi,nodefs.available<10%")]
    pub eviction_hard: String,
    /// How long a pressure condition stays True after its threshold was last met
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub eviction_pressure_transition_period: std::time::Duration,
    /// Test hook: read the available memory from this file (a quantity, e.g. 512Mi) instead of /proc/meminfo
    #[arg(long, hide = true)]
    pub eviction_memory_signal_file: Option<PathBuf>,
    /// Test hook: read the data disk's free space from this file (a share of the disk, e.g. 50%, or bytes, e.g.
    /// 20Gi) instead of the filesystem, for nodefs.available
    #[arg(long, hide = true)]
    pub eviction_nodefs_signal_file: Option<PathBuf>,
    /// How often running pods' configMap, secret, downwardAPI and projected volumes are refreshed (ConfigMap
    /// and Secret updates reach the files; service account tokens are renewed)
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub sync_frequency: std::time::Duration,
}

/// A Go-style duration as kubelet flags take it: `300ms`, `30s`, `5m`, `1h`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 5m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?} is not a duration: the unit must be ms, s, m or h (e.g. 30s, 5m)")),
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}

pub use rkube_kubelet::node::host::{hostname, primary_address};

/// The kubelet configuration for a data dir (also what `rkube down` tears down with).
pub fn kubelet_config(data_dir: &Path, node_name: &str, node_ip: &str) -> rkube_kubelet::config::KubeletConfig {
    let mut cfg = rkube_kubelet::config::KubeletConfig::new(node_name, node_ip, data_dir);
    cfg.cni_cache_dir = data_dir.join("cni");
    cfg.cni_conf_dir = data_dir.join("net.d");
    cfg
}

/// The full kubelet configuration from the flags. `default_pod_cidr` is used when `--pod-cidr` is not given
/// (None: wait for the Node's podCIDR).
pub fn node_config(args: &NodeArgs, data: &Path, default_pod_cidr: Option<&str>) -> anyhow::Result<rkube_kubelet::config::KubeletConfig> {
    let node_ip = match args.node_ip.clone() {
        Some(ip) => ip,
        None => primary_address().context("cannot find this host's primary address; pass --node-ip")?,
    };
    let node_name = args.node_name.clone().unwrap_or_else(hostname);
    let mut cfg = kubelet_config(data, &node_name, &node_ip);
    match &args.cni_conf_dir {
        Some(dir) => {
            rkube_kubelet::pod::cni_client::load_network(dir).map_err(|e| anyhow::anyhow!("CNI config dir {}: {}", dir.display(), e.msg))?;
            cfg.cni_conf_dir = dir.clone();
        }
        None => {
            // a stale network from an earlier run would pin an old pod CIDR: rewritten once it is known
            let _ = std::fs::remove_file(cfg.cni_conf_dir.join("10-rkube.conflist"));
            cfg.default_network = Some(rkube_kubelet::config::DefaultNetwork {
                bridge: args.bridge.clone(),
                pod_cidr: args.pod_cidr.clone().or(default_pod_cidr.map(str::to_string)),
                mtu: None,
            });
        }
    }
    cfg.cluster_dns = Some(args.cluster_dns.to_string());
    cfg.serve_cluster_dns = !args.external_cluster_dns;
    cfg.dns_link = args.dns_link.clone();
    cfg.dns_upstream = match args.dns_upstream.as_deref() {
        Some("none") => None,
        Some(a) => Some(
            a.parse::<SocketAddr>()
                .or_else(|_| a.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .with_context(|| format!("--dns-upstream {a:?}: expected host:port, an address, or none"))?,
        ),
        None => rkube_kubelet::dns::server::upstream_from_resolv_conf(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            Some(args.cluster_dns.into()),
        ),
    };
    cfg.proxy_table = Some(args.proxy_table.clone());
    cfg.insecure_registries = args.insecure_registries.clone();
    cfg.image_limits = args.image_limits.limits();
    cfg.eviction_hard = rkube_kubelet::node::eviction::Thresholds::parse(&args.eviction_hard).map_err(|e| anyhow::anyhow!("--eviction-hard: {e}"))?;
    cfg.eviction_pressure_transition = args.eviction_pressure_transition_period;
    cfg.eviction_memory_signal_file = args.eviction_memory_signal_file.clone();
    cfg.eviction_nodefs_signal_file = args.eviction_nodefs_signal_file.clone();
    cfg.sync_frequency = args.sync_frequency;
    let manifests = args.static_pod_dir.clone().unwrap_or_else(|| data.join("manifests"));
    std::fs::create_dir_all(&manifests).with_context(|| format!("create {}", manifests.display()))?;
    cfg.static_pod_dir = Some(manifests);
    for (what, p) in [("rkube-runtime", &cfg.runtime_bin), ("rkube-monitor", &cfg.monitor_bin)] {
        if !p.exists() {
            anyhow::bail!("{what} not found at {}: build it next to rkube (cargo build --release --bins)", p.display());
        }
    }
    Ok(cfg)
}

/// Runs the kubelet with `cfg` until SIGTERM or Ctrl-C. Containers keep running after it returns.
pub async fn run_kubelet(cfg: rkube_kubelet::config::KubeletConfig, client: kube::Client) -> anyhow::Result<()> {
    rkube_kubelet::kubelet::run(cfg, client, wait_for_signal()).await.context("kubelet")
}

pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
