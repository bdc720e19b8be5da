//! `rkube up`: the whole node in one foreground process: apiserver on the embedded store, scheduler,
//! controllers and the kubelet, with an admin kubeconfig written to `<data-dir>/kubeconfig`. Works offline once
//! an image is in the node's store (`rkube image import`). Stop it with Ctrl-C or `rkube down`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rkube_apiserver::server::{open_backend, Backend};
use rkube_apiserver::{ApiServer, ServerConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Directory for the store, kubeconfig, pods, logs and images
    #[arg(long, default_value = "/var/lib/rkube")]
    pub data_dir: PathBuf,
    /// Address to serve the Kubernetes API on (plain HTTP, keep it on loopback)
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Name of this node (default: the host name)
    #[arg(long)]
    pub node_name: Option<String>,
    /// InternalIP of this node; the kubelet API listens there (default: the host's primary address)
    #[arg(long)]
    pub node_ip: Option<String>,
    /// CNI network config dir to use instead of rkube's default network (e.g. /etc/cni/net.d)
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
    /// Pod subnet of the default network rkube writes under the data dir
    #[arg(long, default_value = "10.244.0.0/24")]
    pub pod_cidr: String,
    /// Bridge (and network name) of the default network
    #[arg(long, default_value = "cni0")]
    pub bridge: String,
    /// Cluster DNS server address for pods' resolv.conf (none: pods use the host's resolvers)
    #[arg(long)]
    pub cluster_dns: Option<String>,
    /// Static pod manifests (default: <data-dir>/manifests)
    #[arg(long)]
    pub static_pod_dir: Option<PathBuf>,
    /// Registries reached over plain HTTP (host:port; loopback registries always are)
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
}

/// The host's primary IPv4 address: the source address of the default route's interface.
pub fn primary_address() -> Option<String> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    let iface = routes
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[1] == "00000000")
        .map(|f| f[0].to_string())?;
    let out = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "dev", &iface]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .map(str::to_string)
}

/// True when `pid` is a live (not zombie) rkube process; a just-killed one gets two seconds to go away.
fn is_rkube_alive(pid: i32) -> bool {
    let check = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        matches!(state, Some(c) if c != 'Z' && c != 'X') && String::from_utf8_lossy(&cmd).contains("rkube")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while check() {
        if std::time::Instant::now() > deadline {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_lowercase()).unwrap_or_else(|_| "rkube-node".into())
}

/// The CNI config dir to use: the one given, else our own holding the default rkube-bridge network (so a
/// host's unrelated /etc/cni/net.d, e.g. podman's, is not picked up by accident).
fn cni_conf_dir(data_dir: &Path, given: Option<&Path>, bridge: &str, pod_cidr: &str) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        rkube_cni::runtime::load_network(dir).map_err(|e| anyhow::anyhow!("CNI config dir {}: {}", dir.display(), e.msg))?;
        return Ok(dir.to_path_buf());
    }
    let own = data_dir.join("net.d");
    std::fs::create_dir_all(&own).with_context(|| format!("create {}", own.display()))?;
    let file = own.join("10-rkube.conflist");
    std::fs::write(&file, rkube_kubelet::pod::network::default_conflist(bridge, bridge, pod_cidr))
        .with_context(|| format!("write {}", file.display()))?;
    Ok(own)
}

/// The kubelet configuration `rkube up` (and `rkube down`) use for a data dir.
pub fn kubelet_config(data_dir: &Path, node_name: &str, node_ip: &str) -> rkube_kubelet::config::KubeletConfig {
    let mut cfg = rkube_kubelet::config::KubeletConfig::new(node_name, node_ip, data_dir);
    cfg.cni_cache_dir = data_dir.join("cni");
    cfg.cni_conf_dir = data_dir.join("net.d");
    cfg
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the tokio runtime")?;
    runtime.block_on(up(args))
}

async fn up(args: Args) -> anyhow::Result<()> {
    let data = &args.data_dir;
    std::fs::create_dir_all(data).with_context(|| format!("create data dir {}", data.display()))?;
    let pid_file = data.join("rkube.pid");
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            if is_rkube_alive(pid) && pid != std::process::id() as i32 {
                anyhow::bail!("rkube is already up with data dir {} (pid {pid}); run `rkube down --data-dir {}` first", data.display(), data.display());
            }
        }
    }
    std::fs::write(&pid_file, std::process::id().to_string()).with_context(|| format!("write {}", pid_file.display()))?;
    let node_ip = match args.node_ip.clone() {
        Some(ip) => ip,
        None => primary_address().context("cannot find this host's primary address; pass --node-ip")?,
    };
    let node_name = args.node_name.clone().unwrap_or_else(hostname);

    let opened = open_backend(&Backend::Embedded(data.join("state.redb"))).await.context("open the embedded store")?;
    let server = ApiServer::start(opened.store.clone(), ServerConfig::new(args.listen)).await.context("start the apiserver")?;
    let kubeconfig = data.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).with_context(|| format!("write {}", kubeconfig.display()))?;
    let url: http::Uri = server.url().parse().context("apiserver url")?;
    let client = kube::Client::try_from(kube::Config::new(url)).context("build the API client")?;

    let controllers = tokio::spawn(rkube_controllers::manager::run_all(client.clone(), Default::default()));
    let scheduler = tokio::spawn(rkube_controllers::scheduler::run(client.clone(), Default::default()));

    let mut cfg = kubelet_config(data, &node_name, &node_ip);
    cfg.cni_conf_dir = cni_conf_dir(data, args.cni_conf_dir.as_deref(), &args.bridge, &args.pod_cidr)?;
    cfg.cluster_dns = args.cluster_dns.clone();
    cfg.insecure_registries = args.insecure_registries.clone();
    let manifests = args.static_pod_dir.clone().unwrap_or_else(|| data.join("manifests"));
    std::fs::create_dir_all(&manifests).with_context(|| format!("create {}", manifests.display()))?;
    cfg.static_pod_dir = Some(manifests);
    for (what, p) in [("rkube-runtime", &cfg.runtime_bin), ("rkube-monitor", &cfg.monitor_bin)] {
        if !p.exists() {
            anyhow::bail!("{what} not found at {}: build it next to rkube (cargo build --release --bins)", p.display());
        }
    }
    eprintln!(
        "rkube is up: node {node_name} ({node_ip}), API {url}\n\n    export KUBECONFIG={kc}\n    kubectl get nodes\n\nStop with Ctrl-C or `rkube down --data-dir {dd}`.",
        url = server.url(),
        kc = kubeconfig.display(),
        dd = data.display()
    );
    let result = rkube_kubelet::kubelet::run(cfg, client, wait_for_signal()).await;
    tracing::info!("shutting down (containers keep running; `rkube down` removes them)");
    controllers.abort();
    scheduler.abort();
    server.shutdown().await;
    drop(opened);
    let _ = std::fs::remove_file(&pid_file);
    result.context("kubelet")
}

async fn wait_for_signal() {
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
