//! How the server is set up: the listen address, the service range, TLS material and the connection limits.
//! The bottom of the apiserver's layers, under `state`: plain data, importing nothing of the crate
//! above `storage`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The service cluster IP range (network address and prefix length).
    pub service_network: Ipv4Addr,
    /// The service range's prefix length (12 for the default 10.96.0.0/12).
    pub service_prefix: u8,
    /// Serve HTTPS with the cluster PKI kept in this directory (created on first start); plain HTTP when None.
    pub tls_dir: Option<std::path::PathBuf>,
    /// Also serve plain HTTP here, with no authentication or authorization: every request is the privileged
    /// `system:unsecured` (upstream's removed `--insecure-port`/`--insecure-bind-address`). None by default; the
    /// CLI offers it only as `--insecure-http-listen` on a loopback address.
    pub insecure_listen: Option<SocketAddr>,
    /// Talk HTTPS to kubelets, presenting this client certificate; plain HTTP when None.
    pub kubelet_client: Option<KubeletClientTls>,
    /// More names and addresses for the serving certificate (with `tls_dir`), e.g. the advertised address. On
    /// plain HTTP, the host names (besides `localhost` and IP addresses) requests may address.
    pub tls_hosts: Vec<String>,
    /// Timeouts and the per-client connection cap (`connections`).
    pub limits: ConnectionLimits,
    /// ClusterIP of the `kube-dns` Service in kube-system, made at start (`bootstrap`); None: no such Service.
    pub cluster_dns: Option<Ipv4Addr>,
    /// The address other machines reach this server at (`--advertise-address`): with it, the server holds an
    /// identity Lease in kube-system and keeps the `kubernetes` EndpointSlice listing every live server
    /// (`bootstrap::endpoints`). None: no endpoints are published.
    pub advertise_address: Option<IpAddr>,
    /// How long an apiserver's Lease lasts and how often it is renewed (upstream's endpoint reconciler: 15 s, 10 s).
    pub endpoint_leases: EndpointLeases,
    /// DefaultTolerationSeconds admission: how long pods tolerate `node.kubernetes.io/not-ready` (NoExecute)
    /// when they do not say; `--default-not-ready-toleration-seconds` and
    /// `--default-unreachable-toleration-seconds` (upstream's 300 each).
    pub default_not_ready_toleration_seconds: i64,
    /// How long pods tolerate `node.kubernetes.io/unreachable` (NoExecute) before eviction, when they do not say.
    pub default_unreachable_toleration_seconds: i64,
}

/// The lease-based endpoint reconciler's periods (upstream's `--endpoint-reconciler-type=lease`).
#[derive(Debug, Clone, Copy)]
pub struct EndpointLeases {
    /// An apiserver whose Lease is not renewed for this long drops out of the `kubernetes` endpoints.
    pub ttl: Duration,
    /// How often each apiserver renews its Lease and rewrites the endpoints.
    pub interval: Duration,
}

impl Default for EndpointLeases {
    fn default() -> EndpointLeases {
        EndpointLeases { ttl: Duration::from_secs(15), interval: Duration::from_secs(10) }
    }
}

impl ServerConfig {
    /// A server on `listen` with upstream's defaults: services in 10.96.0.0/12, plain HTTP, no cluster DNS, no advertised address.
    pub fn new(listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            listen,
            service_network: Ipv4Addr::new(10, 96, 0, 0),
            service_prefix: 12,
            tls_dir: None,
            insecure_listen: None,
            kubelet_client: None,
            tls_hosts: Vec::new(),
            limits: Default::default(),
            cluster_dns: None,
            advertise_address: None,
            endpoint_leases: EndpointLeases::default(),
            default_not_ready_toleration_seconds: 300,
            default_unreachable_toleration_seconds: 300,
        }
    }

    /// Names and addresses the serving certificate is issued for: the listen address and `tls_hosts`.
    pub fn pki_hosts(&self) -> Vec<String> {
        let mut hosts = vec![self.listen.ip().to_string()];
        hosts.extend(self.tls_hosts.iter().cloned());
        hosts
    }

    /// The service range as `<network>/<prefix>` (what `--service-cluster-ip-range` takes).
    pub fn service_cidr(&self) -> String {
        format!("{}/{}", self.service_network, self.service_prefix)
    }

    fn host_bits(&self) -> u32 {
        32 - u32::from(self.service_prefix.min(30))
    }

    /// Whether `ip` is inside the service range.
    pub fn service_range_contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << self.host_bits();
        (u32::from(ip) & mask) == (u32::from(self.service_network) & mask)
    }

    /// The first usable address (the `kubernetes` service).
    pub fn first_service_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.service_network) + 1)
    }

    /// A random address in the range, never the network, broadcast or first address.
    pub fn random_service_ip(&self) -> Ipv4Addr {
        let size = 1u64 << self.host_bits();
        let offset = 2 + (uuid::Uuid::new_v4().as_u128() as u64 % (size - 3));
        Ipv4Addr::from(u32::from(self.service_network) + offset as u32)
    }
}

/// How long connections may take and how many one client may hold. The defaults are upstream's where it has
/// one (request header 32 s, idle 90 s).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// How long a client may take to finish the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// How long a client may take to send a request's headers (upstream's 32 s).
    pub request_header_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests (upstream's 90 s).
    pub idle_timeout: Duration,
    /// How long a request body may take to arrive (upstream bounds it with its 60 s request timeout); read by
    /// the handlers, which are the ones reading bodies.
    pub request_body_timeout: Duration,
    /// The most connections one client address may hold open at once; more are refused until one closes.
    pub max_connections_per_client: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            tls_handshake_timeout: Duration::from_secs(10),
            request_header_timeout: Duration::from_secs(32),
            idle_timeout: Duration::from_secs(90),
            request_body_timeout: Duration::from_secs(60),
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
        }
    }
}

/// Enough for a node's kubelet, the controllers' watches and people's kubectls from one address, far below the
/// descriptor limit (20,000 here).
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 1024;

/// How the apiserver reaches kubelets over HTTPS: the CA their serving certificates chain to, and the client
/// certificate it presents (PEM).
///
/// `ca_pem: None` accepts whatever serving certificate a kubelet shows, as upstream's apiserver does without
/// `--kubelet-certificate-authority`: kubelets that join with `rkube kubelet` sign their own, like upstream's
/// kubelet without a serving certificate given. The kubelet still admits only this client certificate.
#[derive(Clone, Debug)]
pub struct KubeletClientTls {
    /// The CA the kubelets' serving certificates chain to (None: any serving certificate, see above).
    pub ca_pem: Option<String>,
    /// The client certificate presented to kubelets (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
}
