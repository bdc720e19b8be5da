//! rkube's built-in ingress controller, for the IngressClass `rkube` (the cluster's default class): an HTTP(S)
//! reverse proxy that runs on every node, on the node's address (ports 80 and 443 unless told otherwise), and
//! serves the Ingresses of its class by host and path, straight to the ready endpoints of each backend
//! Service's EndpointSlices (no hop through the ClusterIP).
//!
//! - [`routing`]: the decision (host and path to backend), pure and table-tested.
//! - [`compile`]: cluster objects to a routing table, TLS certificates and problems, pure.
//! - [`live`]: what is served now, swapped whole on every change.
//! - [`tls`]: Secrets to rustls certificates, chosen by SNI; the default self-signed certificate.
//! - [`proxy`]: the listeners and the forwarding (streaming, upgrades, keep-alive to endpoints).
//! - [`controller`]: the watches, and the status and events written back.
//!
//! Must not: run pods, touch nftables or the node's network (it only binds two sockets), or need the
//! ClusterIP path to work.

#![forbid(unsafe_code)]

pub mod compile;
pub mod controller;
pub mod live;
pub mod proxy;
pub mod routing;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};

/// The ingress of one node.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    pub node_name: String,
    /// The node's address; both listeners bind to it.
    pub address: IpAddr,
    pub http_port: u16,
    pub https_port: u16,
    /// The IngressClass made at start when missing (`rkube`).
    pub class_name: String,
    /// Threads serving requests, each with its own event loop ([`proxy::Workers`]); 0: one per core, as nginx's
    /// `worker_processes auto`.
    pub workers: usize,
}

impl IngressConfig {
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

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("ingress: listen on {addr} ({what}): {source}; pass --ingress-{what}-port for another port, or --no-ingress")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    DefaultCert(#[from] tls::DefaultCertError),
    #[error("ingress: TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("ingress: start {workers} worker threads: {source}")]
    Workers {
        workers: usize,
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
    pub http_addr: SocketAddr,
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

/// A listening socket on `addr` (`what`: http or https, for the error), non-blocking, for [`proxy::Workers`].
/// Must be called on a tokio runtime.
pub fn listen(addr: SocketAddr, what: &'static str) -> Result<std::net::TcpListener, IngressError> {
    let err = |source| IngressError::Bind { addr, what, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    // a restarted node gets its ports back while old connections linger in TIME_WAIT
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    // the workers' accepted connections inherit TCP_NODELAY from the listener (Linux copies it to the child)
    socket.set_nodelay(true).map_err(err)?;
    // a non-blocking std listener, which each worker registers with its own event loop
    socket
        .listen(1024)
        .and_then(TcpListener::into_std)
        .map_err(err)
}

/// Binds both listeners (so a port in use fails here, before anything runs) and starts the proxy and the
/// controller.
pub async fn start(
    cfg: IngressConfig,
    client: kube::Client,
) -> Result<IngressHandle, IngressError> {
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
