//! The control plane that `rkube server` and `rkube up` both run: the apiserver (embedded store or etcd) on
//! HTTPS only, with the cluster CA in `<data-dir>/pki` (plain HTTP only behind `--insecure-http-listen`), an
//! admin kubeconfig (0600, in the 0700 data dir), and the scheduler and controllers, which talk to the
//! apiserver through that kubeconfig like any other client. The built-in objects (the `kube-dns` Service, the
//! `kubernetes` Service's endpoints when an address is advertised) are the apiserver's (`bootstrap`); this
//! only passes it the addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use rkube_apiserver::server::{open_backend, Backend, OpenedStore};
use rkube_apiserver::{ApiServer, ServerConfig};

/// The kube-dns Service's ClusterIP unless told otherwise (kubeadm's choice: the 10th address of 10.96.0.0/12).
pub const DEFAULT_CLUSTER_DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// How to start the control plane.
pub struct Options {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub etcd: Vec<String>,
    pub etcd_prefix: String,
    /// `--insecure-http-listen`: also serve plain HTTP here, every caller `system:masters` (loopback only).
    pub insecure_http_listen: Option<SocketAddr>,
    /// The address other machines reach the apiserver at: the kubeconfig's server URL and the `kubernetes`
    /// Service's endpoint. None: the listen address (for one machine).
    pub advertise_address: Option<IpAddr>,
    /// ClusterIP of the `kube-dns` Service in kube-system (None: no such Service).
    pub cluster_dns: Option<Ipv4Addr>,
    /// How the apiserver reaches kubelets over HTTPS (None: plain HTTP).
    pub kubelet_client: Option<rkube_apiserver::node_proxy::KubeletClientTls>,
    /// Open connections one client address may hold (`--max-connections-per-client`).
    pub max_connections_per_client: usize,
    /// `--lb-pool`: the built-in load balancer's addresses (None: the nodes' InternalIPs).
    pub lb_pool: Option<rkube_controllers::service_lb::Pool>,
    /// `--node-monitor-grace-period`, `--node-monitor-period` (kube-controller-manager's; node lifecycle).
    pub node_monitor_grace_period: std::time::Duration,
    pub node_monitor_period: std::time::Duration,
    /// `--cluster-cidr` and `--node-cidr-mask-size` (kube-controller-manager's): where node IPAM takes each
    /// Node's `spec.podCIDR` from.
    pub pod_network: PodNetwork,
    /// `--cluster-signing-duration` (kube-controller-manager's): the longest certificate the CSR signer issues.
    pub cluster_signing_duration: std::time::Duration,
    /// `--default-not-ready-toleration-seconds`, `--default-unreachable-toleration-seconds` (kube-apiserver's).
    pub default_not_ready_toleration_seconds: i64,
    pub default_unreachable_toleration_seconds: i64,
}

/// Node IPAM's range: each Node gets a `/mask` of `cluster_cidr` as its podCIDR.
#[derive(Clone, Copy, Debug)]
pub struct PodNetwork {
    pub cluster_cidr: ipnet::Ipv4Net,
    pub node_mask: u8,
}

impl PodNetwork {
    /// A range whose one subnet is `cidr` itself: `rkube up`'s single node gets the pod CIDR its kubelet uses.
    pub fn single(cidr: ipnet::Ipv4Net) -> PodNetwork {
        PodNetwork { cluster_cidr: cidr.trunc(), node_mask: cidr.prefix_len() }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let (c, m) = (self.cluster_cidr, self.node_mask);
        if m < c.prefix_len() || m > 30 {
            anyhow::bail!("--node-cidr-mask-size {m}: must be between the --cluster-cidr {c} prefix length ({}) and 30", c.prefix_len());
        }
        if c.trunc() != c {
            anyhow::bail!("--cluster-cidr {c}: host bits are set; give the network address ({})", c.trunc());
        }
        Ok(())
    }
}

/// A kubelet client certificate must outlive the kubelet's rotation margin; below a few seconds rotation would
/// only race the expiry (upstream takes any duration; rkube refuses what cannot work).
pub fn parse_signing_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = rkube_controllers::leader::parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_secs(10) {
        return Err(format!("{s}: at least 10s, or certificates expire before a node can renew them (upstream's default is 8760h0m0s)"));
    }
    Ok(d)
}

/// A running control plane; [`ControlPlane::stop`] ends it.
pub struct ControlPlane {
    server: ApiServer,
    opened: OpenedStore,
    loops: rkube_controllers::manager::Elected,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    pub url: String,
    /// `http://<addr>` of the `--insecure-http-listen` listener, when there is one.
    pub insecure_url: Option<String>,
}

/// A client for the cluster a kubeconfig points at (its current context).
pub async fn client_from_kubeconfig(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let config = config_from_kubeconfig(path).await?;
    kube::Client::try_from(config).with_context(|| format!("build an API client from {}", path.display()))
}

async fn config_from_kubeconfig(path: &std::path::Path) -> anyhow::Result<kube::Config> {
    let kc = kube::config::Kubeconfig::read_from(path).with_context(|| format!("read kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .with_context(|| format!("use kubeconfig {}", path.display()))?;
    Ok(config)
}

/// `--leader-elect=false` and the `--leader-elect-*` periods of `rkube server` (`rkube up`: the defaults).
#[derive(Clone, Debug, Default)]
pub struct LeaderElection {
    pub disabled: bool,
    pub timing: rkube_controllers::leader::Timing,
}

/// [`start_elected`] with leader election at upstream's defaults.
pub async fn start(o: &Options) -> anyhow::Result<ControlPlane> {
    start_elected(o, &LeaderElection::default()).await
}

pub async fn start_elected(o: &Options, le: &LeaderElection) -> anyhow::Result<ControlPlane> {
    le.timing.validate().context("leader election")?;
    o.pod_network.validate()?;
    check_insecure_listen(o.insecure_http_listen)?;
    // the store, the cluster's keys and the admin kubeconfig live here: 0700, looser modes tightened (with a
    // warning), another owner refused
    rkube_apiserver::private_files::ensure_dir(&o.data_dir).with_context(|| format!("data dir {}", o.data_dir.display()))?;
    let backend = if o.etcd.is_empty() {
        Backend::Embedded(o.data_dir.join("state.redb"))
    } else {
        Backend::Etcd { endpoints: o.etcd.clone(), prefix: o.etcd_prefix.clone() }
    };
    let opened = open_backend(&backend).await.with_context(|| format!("open storage {backend:?}"))?;
    let mut config = ServerConfig::new(o.listen);
    config.kubelet_client = o.kubelet_client.clone();
    config.limits.max_connections_per_client = o.max_connections_per_client;
    // the apiserver makes the kube-dns Service and keeps the `kubernetes` endpoints (its lease reconciler)
    config.cluster_dns = o.cluster_dns;
    config.advertise_address = o.advertise_address;
    // HTTPS always: clients need a certificate of the cluster CA or a token (or are system:anonymous on the
    // health and version paths only)
    let dir = o.data_dir.join("pki");
    config.tls_hosts = o.advertise_address.iter().map(|ip| ip.to_string()).collect();
    if config.kubelet_client.is_none() {
        // Joined kubelets admit only this certificate (they know the CA from the kubeconfig); their own
        // serving certificates are self-signed, so they are not checked against a CA (upstream's default).
        let pki = rkube_apiserver::tls::ensure_pki(&dir, &config.pki_hosts())?;
        let client = rkube_apiserver::tls::issue_kubelet_client(&pki)?;
        config.kubelet_client =
            Some(rkube_apiserver::node_proxy::KubeletClientTls { ca_pem: None, cert_pem: client.cert, key_pem: client.key });
    }
    config.tls_dir = Some(dir);
    config.insecure_listen = o.insecure_http_listen;
    config.default_not_ready_toleration_seconds = o.default_not_ready_toleration_seconds;
    config.default_unreachable_toleration_seconds = o.default_unreachable_toleration_seconds;
    let server = ApiServer::start(opened.store.clone(), config).await.with_context(|| format!("start the apiserver on {}", o.listen))?;
    let kubeconfig = o.data_dir.join("kubeconfig");
    let mut url = server.url();
    if let Some(ip) = o.advertise_address {
        // the serving certificate names the advertised address too (a PKI made before it was
        // advertised does not: remove <data-dir>/pki to issue it again)
        url = format!("https://{}", SocketAddr::new(ip, server.addr().port()));
    }
    server.write_kubeconfig_for(&kubeconfig, &url)
    .with_context(|| format!("write {}", kubeconfig.display()))?;
    let client = client_from_kubeconfig(&kubeconfig).await?;
    // the scheduler and controllers act only while holding their Leases in kube-system (docs/controllers.md);
    // on the embedded store this is the only control plane, so a Lease another identity holds is a dead one's
    let election = (!le.disabled).then(|| rkube_controllers::manager::Election {
        timing: le.timing,
        identity: rkube_controllers::leader::identity(),
        sole_candidate: o.etcd.is_empty(),
    });
    let mut loops = rkube_controllers::manager::Loops { lb_pool: o.lb_pool, ..Default::default() };
    loops.controllers.lifecycle.grace = rkube_controllers::node_lifecycle::duration_from_std(o.node_monitor_grace_period);
    loops.controllers.node_monitor_period = o.node_monitor_period;
    loops.controllers.lifecycle.cluster_cidr = o.pod_network.cluster_cidr;
    loops.controllers.lifecycle.node_mask = o.pod_network.node_mask;
    // the CSR signer issues joining nodes' certificates with the cluster CA (`rkube join`)
    loops.controllers.csr_signing = Some(signing_ca(&o.data_dir.join("pki"), o.cluster_signing_duration)?);
    let loops = rkube_controllers::manager::run_elected(config_from_kubeconfig(&kubeconfig).await?, loops, election)?;
    tracing::info!(url = %url, kubeconfig = %kubeconfig.display(), "control plane up: apiserver, scheduler, controllers");
    let insecure_url = server.insecure_addr().map(|a| format!("http://{a}"));
    Ok(ControlPlane { server, opened, loops, client, kubeconfig, url, insecure_url })
}

/// `--insecure-http-listen` serves every caller as `system:masters`: only on a loopback address, so at most the
/// accounts of this machine reach it (upstream's insecure port defaulted to 127.0.0.1 for the same reason).
pub fn check_insecure_listen(at: Option<SocketAddr>) -> anyhow::Result<()> {
    let Some(at) = at else { return Ok(()) };
    if !at.ip().is_loopback() {
        anyhow::bail!(
            "--insecure-http-listen {at}: plain HTTP serves every caller as system:masters with no authentication; give a loopback address (127.0.0.1:PORT), or use HTTPS with a kubeconfig from `rkube kubeconfig`"
        );
    }
    Ok(())
}

/// The cluster CA's certificate and key, as the CSR signer takes them.
pub(crate) fn signing_ca(pki: &std::path::Path, max_duration: std::time::Duration) -> anyhow::Result<rkube_controllers::certificates::SigningCa> {
    let read = |f: &str| std::fs::read_to_string(pki.join(f)).with_context(|| format!("read the cluster CA {}", pki.join(f).display()));
    Ok(rkube_controllers::certificates::SigningCa {
        cert_pem: read("ca.crt")?,
        key_pem: read("ca.key")?,
        max_duration,
    })
}

impl ControlPlane {
    /// Stops the scheduler and controllers, then the apiserver, then closes the store.
    pub async fn stop(self) {
        self.loops.stop().await;
        self.server.shutdown().await;
        drop(self.opened);
    }
}
