//! rkube's built-in ingress controller, for the IngressClass `rkube` (the cluster's default class): an HTTP(S)
//! reverse proxy that runs on every node, on the node's address (ports 80 and 443 unless told otherwise), and
//! serves the Ingresses of its class by host and path, straight to the ready endpoints of each backend
//! Service's EndpointSlices (no hop through the ClusterIP).
//!
//! - [`routing`]: the decision (host and path to backend), pure and table-tested.
//! - [`compile`]: cluster objects to a routing table, TLS certificates and problems, pure.
//! - [`live`]: what is served now, swapped whole on every change.
//! - [`tls`]: Secrets to rustls certificates, chosen by SNI; the default self-signed certificate.
//! - [`proxy`]: the listeners and the forwarding (streaming, upgrades, keep-alive to endpoints); its own
//!   HTTP/1.x server for simple requests on the plain port (`http1`), its own HTTP/1.1 client for requests
//!   without a body (`upstream`), and the pools of idle connections (`pool`).
//! - [`controller`]: the watches, and the status and events written back.
//!
//! Must not: run pods, touch nftables or the node's network (it only binds two sockets), or need the
//! ClusterIP path to work.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod compile;
pub mod controller;
mod http1;
pub mod live;
mod pool;
pub mod proxy;
pub mod routing;
pub mod tls;
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};

/// The ingress of one node.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    /// This node's name (the Node the address annotation goes on).
    pub node_name: String,
    /// The node's address; both listeners bind to it.
    pub address: IpAddr,
    /// The plain HTTP port (80).
    pub http_port: u16,
    /// The HTTPS port (443).
    pub https_port: u16,
    /// The IngressClass made at start when missing (`rkube`).
    pub class_name: String,
    /// Threads serving requests, each with its own event loop ([`proxy::Workers`]); 0: one per core, as nginx's
    /// `worker_processes auto`.
    pub workers: usize,
}

impl IngressConfig {
    /// The defaults for a node: ports 80 and 443 on `address`, class `rkube`, one worker per core.
    pub fn new(node_name: &str, address: IpAddr) -> IngressConfig {
        IngressConfig {
            node_name: node_name.to_string(),
            address,
            http_port: 80,
            https_port: 443,
            class_name: "rkube".into(),
            workers: 0,
        }
    }
}

/// Why the ingress did not start.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// A listener could not be made (most often: something listens on the port already).
    #[error("ingress: listen on {addr} ({what}): {source}; pass --ingress-{what}-port for another port, or --no-ingress")]
    Bind {
        /// The address it was to listen on.
        addr: SocketAddr,
        /// `http` or `https`.
        what: &'static str,
        /// What the kernel (or the check for a listener already there) said.
        #[source]
        source: std::io::Error,
    },
    /// The self-signed default certificate could not be made.
    #[error(transparent)]
    DefaultCert(#[from] tls::DefaultCertError),
    /// rustls refused the server configuration.
    #[error("ingress: TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A worker thread or its runtime could not be started.
    #[error("ingress: start {workers} worker threads: {source}")]
    Workers {
        /// How many workers were asked for.
        workers: usize,
        /// Why the thread, runtime or listener failed.
        #[source]
        source: std::io::Error,
    },
}

/// The running ingress: its listeners and controller stop when this is stopped or dropped; connections that are
/// open then are served to their end.
pub struct IngressHandle {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The proxy's threads; stopped when the handle is stopped or dropped.
    workers: proxy::Workers,
    client: kube::Client,
    node_name: String,
    /// Where plain HTTP is served (the port the kernel chose when 0 was asked for).
    pub http_addr: SocketAddr,
    /// Where HTTPS is served.
    pub https_addr: SocketAddr,
}

impl IngressHandle {
    /// Stops listening and withdraws this node's address from the Ingresses' status (the Node annotation).
    pub async fn stop(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.workers.stop();
        let withdraw = controller::annotate_node(self.client.clone(), self.node_name.clone(), None);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), withdraw).await;
    }
}

impl Drop for IngressHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A listening socket on `addr` (`what`: http or https, for the error), non-blocking, with SO_REUSEPORT, for
/// [`proxy::Workers`]: each worker listens on a socket of its own on the same address ([`listen_again`]), and the
/// kernel hands each new connection to one of them (ingress-nginx's `reuse-port`, on by default) instead of waking
/// every worker for it. Fails when something else listens on the address already, also a socket that would let
/// us share it (SO_REUSEPORT of the same user: another rkube). Must be called on a tokio runtime.
pub fn listen(addr: SocketAddr, what: &'static str) -> Result<std::net::TcpListener, IngressError> {
    if addr.port() != 0 && listening_on(addr) {
        return Err(IngressError::Bind {
            addr,
            what,
            source: std::io::ErrorKind::AddrInUse.into(),
        });
    }
    listen_again(addr, what)
}

/// One more socket on the address of a [`listen`]ed one, for another worker.
pub fn listen_again(
    addr: SocketAddr,
    what: &'static str,
) -> Result<std::net::TcpListener, IngressError> {
    let err = |source| IngressError::Bind { addr, what, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    // a restarted node gets its ports back while old connections linger in TIME_WAIT
    socket.set_reuseaddr(true).map_err(err)?;
    socket.set_reuseport(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    // accepted connections inherit TCP_NODELAY from the listener (Linux copies it to the child)
    socket.set_nodelay(true).map_err(err)?;
    // a non-blocking std listener, which a worker registers with its own event loop
    socket
        .listen(1024)
        .and_then(TcpListener::into_std)
        .map_err(err)
}

/// Whether a socket of this network namespace listens on `addr`'s port at its address or at the unspecified
/// one (/proc/net/tcp, tcp6).
fn listening_on(addr: SocketAddr) -> bool {
    let files: &[&str] = if addr.is_ipv4() {
        &["/proc/net/tcp", "/proc/net/tcp6"]
    } else {
        &["/proc/net/tcp6"]
    };
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|table| {
            table.lines().skip(1).any(|line| {
                let mut cols = line.split_whitespace();
                let (Some(local), Some(state)) = (cols.nth(1), cols.nth(1)) else {
                    return false;
                };
                state == "0A" && local_matches(local, addr)
            })
        })
    })
}

/// `local` as /proc/net/tcp{,6} prints it (hex address words as in memory, `:` hex port) against `addr`: the
/// same port, and the same address or an unspecified one on either side.
fn local_matches(local: &str, addr: SocketAddr) -> bool {
    let Some((ip_hex, port_hex)) = local.split_once(':') else {
        return false;
    };
    if u16::from_str_radix(port_hex, 16) != Ok(addr.port()) {
        return false;
    }
    let words: Option<Vec<u32>> = (0..ip_hex.len() / 8)
        .map(|i| u32::from_str_radix(&ip_hex[i * 8..i * 8 + 8], 16).ok())
        .collect();
    let Some(words) = words else {
        return false;
    };
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let theirs: IpAddr = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes.as_slice()).unwrap_or_default()),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes.as_slice()).unwrap_or_default()),
        _ => return false,
    };
    let ours = addr.ip();
    theirs.is_unspecified() || ours.is_unspecified() || theirs.to_canonical() == ours.to_canonical()
}

/// Binds both listeners (so a port in use fails here, before anything runs) and starts the proxy and the
/// controller. Boxed here, so the proxy and the controller are compiled once, in this crate, and not again in the
/// binary that awaits it.
pub fn start(cfg: IngressConfig, client: kube::Client) -> futures::future::BoxFuture<'static, Result<IngressHandle, IngressError>> {
    Box::pin(bind_and_start(cfg, client))
}

async fn bind_and_start(cfg: IngressConfig, client: kube::Client) -> Result<IngressHandle, IngressError> {
    let http = listen(SocketAddr::new(cfg.address, cfg.http_port), "http")?;
    let https = listen(SocketAddr::new(cfg.address, cfg.https_port), "https")?;
    let http_addr = http.local_addr().map_err(|source| IngressError::Bind {
        addr: SocketAddr::new(cfg.address, cfg.http_port),
        what: "http",
        source,
    })?;
    let https_addr = https.local_addr().map_err(|source| IngressError::Bind {
        addr: SocketAddr::new(cfg.address, cfg.https_port),
        what: "https",
        source,
    })?;
    let live = Arc::new(live::Live::new(tls::default_certificate()?));
    let tls = tls::server_config(live.clone())?;
    let worker_count = match cfg.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let workers =
        proxy::Workers::start(worker_count, live.clone(), http, https, tls).map_err(|source| {
            IngressError::Workers {
                workers: worker_count,
                source,
            }
        })?;
    let ctl = controller::ControllerConfig {
        node_name: cfg.node_name.clone(),
        address: cfg.address,
        class_name: cfg.class_name.clone(),
    };
    let ctl_client = client.clone();
    let tasks = vec![tokio::spawn(async move {
        if let Err(e) = controller::run(ctl_client, ctl, live).await {
            tracing::error!(error = %e, "ingress controller stopped");
        }
    })];
    tracing::info!(%http_addr, %https_addr, class = %cfg.class_name, workers = worker_count, "ingress listening");
    Ok(IngressHandle {
        tasks,
        workers,
        client,
        node_name: cfg.node_name,
        http_addr,
        https_addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_refused_even_when_the_kernel_would_share_it() {
        let first = listen("127.0.0.1:0".parse().expect("addr"), "http").expect("listen");
        let addr = first.local_addr().expect("local addr");
        // both sockets would have SO_REUSEPORT, so bind alone would let a second listener share the port
        let err = listen(addr, "http").expect_err("a second listen on a taken port");
        assert!(
            matches!(&err, IngressError::Bind { addr: a, what: "http", .. } if *a == addr),
            "{err}"
        );
        // another worker's socket on the same address is what SO_REUSEPORT is for
        let again = listen_again(addr, "http").expect("a worker's own socket");
        assert_eq!(again.local_addr().expect("local addr"), addr);
    }

    #[test]
    fn proc_net_tcp_addresses() {
        let addr: SocketAddr = "10.244.248.1:80".parse().expect("addr");
        assert!(local_matches("01F8F40A:0050", addr), "the same address and port");
        assert!(local_matches("00000000:0050", addr), "any address, same port");
        assert!(!local_matches("01F8F40A:0051", addr), "another port");
        assert!(!local_matches("0100007F:0050", addr), "another address");
        assert!(
            local_matches("00000000000000000000000000000000:0050", addr),
            "[::]:80 (tcp6)"
        );
        assert!(
            local_matches("0000000000000000FFFF00000101F40A:0050", "10.244.1.1:80".parse().expect("addr")),
            "::ffff:10.244.1.1 is 10.244.1.1"
        );
    }
}
