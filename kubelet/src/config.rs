//! The kubelet's configuration: node identity, directories, runtime and CNI locations, cluster DNS.

use std::path::PathBuf;

/// Everything the kubelet is told at startup.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// The Node's name, and the `spec.nodeName` of the pods this kubelet runs.
    pub node_name: String,
    /// InternalIP of the node (also the hostIP of its pods).
    pub node_ip: String,
    /// Pod state (sandbox/container records, volumes, bundles): `<root>/pods/<uid>`.
    pub root_dir: PathBuf,
    /// Container logs: `<log_dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log`.
    pub log_dir: PathBuf,
    /// The OCI runtime CLI (`rkube-runtime`, runc-compatible, with a `sandbox` command).
    pub runtime_bin: PathBuf,
    /// State root given to the runtime with `--root`.
    pub runtime_root: PathBuf,
    /// The `rkube-monitor` binary.
    pub monitor_bin: PathBuf,
    /// CNI network configs (`/etc/cni/net.d`); the first config in name order is the pods' network.
    pub cni_conf_dir: PathBuf,
    /// Where CNI plugin binaries are looked for, in order (this binary's directory first).
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Where CNI ADD results are cached for DEL.
    pub cni_cache_dir: PathBuf,
    /// Image store root.
    pub image_root: PathBuf,
    /// Registries spoken to over plain HTTP (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// What one image may unpack to (`--image-max-layer-size`, `--image-max-size`, `--image-max-layer-entries`).
    pub image_limits: crate::image::Limits,
    /// The cluster DNS server's address, the pods' `nameserver`; None leaves pods with the node's resolv.conf.
    pub cluster_dns: Option<String>,
    /// The cluster domain (`cluster.local`); pods get `search <ns>.svc.<domain> svc.<domain> <domain>`.
    pub cluster_domain: String,
    /// Serve cluster DNS on `cluster_dns` from this node (the address goes on `dns_link`, a bridge of its own);
    /// false when another server (e.g. CoreDNS) answers at that address.
    pub serve_cluster_dns: bool,
    /// The bridge that holds the cluster DNS address when this node serves it (`rkube-dns0`).
    pub dns_link: String,
    /// Where names outside the cluster domain go (None: refused).
    pub dns_upstream: Option<std::net::SocketAddr>,
    /// The service proxy's nftables table (`ip <table>`); None runs no proxy.
    pub proxy_table: Option<String>,
    /// The service CIDR the proxy guards.
    pub service_cidr: (std::net::Ipv4Addr, u8),
    /// rkube's own bridge network, written as `10-rkube.conflist` into `cni_conf_dir` once the pod CIDR is
    /// known (given, or the Node's spec.podCIDR from the controllers). None: use `cni_conf_dir` as it is.
    pub default_network: Option<DefaultNetwork>,
    /// Static pod manifests.
    pub static_pod_dir: Option<PathBuf>,
    /// The cgroup every pod's cgroup goes under, in each hierarchy (upstream's --cgroup-root): `kubepods`.
    /// Tests that run pods without `rkube down` give their own, so they can remove it.
    pub cgroup_root: String,
    /// A container's log is rotated when it reaches this many bytes.
    pub log_max_bytes: u64,
    /// Log files kept per container, the current one included.
    pub log_max_files: u32,
    /// Serve the kubelet API over HTTPS, requiring a client certificate from this CA; plain HTTP when None.
    pub api_tls: Option<crate::server::tls::ApiTls>,
    /// Node-pressure eviction thresholds (`--eviction-hard`).
    pub eviction_hard: crate::node::eviction::Thresholds,
    /// How long a pressure condition stays true after the signal falls back under its threshold
    /// (`--eviction-pressure-transition-period`), so the node does not flap.
    pub eviction_pressure_transition: std::time::Duration,
    /// Test hook: a file whose quantity the eviction manager reads in place of /proc/meminfo's MemAvailable
    /// (`--eviction-memory-signal-file`, hidden), so tests set memory pressure exactly.
    pub eviction_memory_signal_file: Option<PathBuf>,
    /// Test hook: a file whose percentage (`50%`) or quantity of bytes the eviction manager reads in place of the
    /// data disk's free space (`--eviction-nodefs-signal-file`, hidden), so tests do not depend on the host's.
    pub eviction_nodefs_signal_file: Option<PathBuf>,
    /// Upstream's `--sync-frequency`: how often a running pod's configMap, secret, downwardAPI and projected
    /// volumes are written again (ConfigMap and Secret changes, renewed service account tokens).
    pub sync_frequency: std::time::Duration,
}

impl KubeletConfig {
    /// Defaults for a node called `node_name` with `node_ip`, keeping all state under `data_dir`.
    pub fn new(node_name: &str, node_ip: &str, data_dir: &std::path::Path) -> Self {
        let exe_dir = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.to_path_buf())).unwrap_or_default();
        Self {
            node_name: node_name.into(),
            node_ip: node_ip.into(),
            root_dir: data_dir.join("kubelet"),
            log_dir: data_dir.join("pod-logs"),
            runtime_bin: exe_dir.join("rkube-runtime"),
            runtime_root: data_dir.join("runtime"),
            monitor_bin: exe_dir.join("rkube-monitor"),
            cni_conf_dir: "/etc/cni/net.d".into(),
            cni_bin_dirs: vec![exe_dir, "/opt/cni/bin".into(), "/usr/lib/cni".into()],
            cni_cache_dir: data_dir.join("cni-results"),
            image_root: data_dir.join("images"),
            insecure_registries: Vec::new(),
            image_limits: Default::default(),
            cluster_dns: None,
            cluster_domain: "cluster.local".into(),
            serve_cluster_dns: false,
            dns_link: "rkube-dns0".into(),
            dns_upstream: None,
            proxy_table: None,
            service_cidr: (std::net::Ipv4Addr::new(10, 96, 0, 0), 12),
            default_network: None,
            static_pod_dir: None,
            cgroup_root: crate::container::qos::KUBEPODS.into(),
            log_max_bytes: 10 << 20,
            log_max_files: 5,
            api_tls: None,
            eviction_hard: Default::default(),
            eviction_pressure_transition: crate::node::eviction::DEFAULT_TRANSITION,
            eviction_memory_signal_file: None,
            eviction_nodefs_signal_file: None,
            sync_frequency: std::time::Duration::from_secs(60),
        }
    }
}

/// rkube's default CNI network: one bridge, host-local addresses from the node's pod CIDR, masquerade.
#[derive(Clone, Debug)]
pub struct DefaultNetwork {
    /// The bridge the pods' veths join (its name is also the network's).
    pub bridge: String,
    /// None: wait for the Node's spec.podCIDR (assigned by the node controller).
    pub pod_cidr: Option<String>,
    /// The MTU of the bridge and the pods' veths (None: the kernel's default); set under the vxlan pod network
    /// to the VXLAN device's, so pods do not send packets the tunnel would have to fragment.
    pub mtu: Option<u32>,
}
