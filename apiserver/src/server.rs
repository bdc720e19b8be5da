//! The server as a whole: binds, creates the built-in objects (`bootstrap`), serves the router (`routes`)
//! through the listener (`connections`), and gives a handle to run and stop it in-process; and opens the store
//! a server runs on.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn rkube_apiserver::storage::Store>) -> Result<(), rkube_apiserver::ServerError> {
//! let config = rkube_apiserver::ServerConfig::new("127.0.0.1:6443".parse().expect("addr"));
//! let server = rkube_apiserver::ApiServer::start(store, config).await?;
//! println!("serving at {}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::bootstrap::BUILTIN_NAMESPACES;
pub use crate::config::ServerConfig;
use crate::bootstrap::endpoints::EndpointReconciler;
use crate::metrics::Metrics;
pub use crate::routes::router;
pub use crate::state::ApiState;
use crate::storage::Store;


/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The bind error (address in use, permission denied...).
        #[source]
        source: std::io::Error,
    },
    /// The cluster PKI could not be made or loaded.
    #[error("set up TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The service account signing key could not be made or loaded.
    #[error("{0}")]
    Keys(#[from] crate::auth::keys::KeyError),
    /// The built-in objects could not be written to the store.
    #[error("{0}")]
    Bootstrap(#[from] crate::bootstrap::BootstrapError),
}

/// A running server; stopped by `shutdown` (or aborted when dropped).
pub struct ApiServer {
    addr: SocketAddr,
    /// The plain-HTTP listener's address (`ServerConfig::insecure_listen`), when there is one.
    insecure_addr: Option<SocketAddr>,
    pki: Option<crate::tls::Pki>,
    state: Arc<ApiState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// With an advertised address: this server's part in the `kubernetes` endpoints, and the task renewing it.
    endpoints: Option<(Arc<EndpointReconciler>, JoinHandle<()>)>,
}

impl ApiServer {
    /// Binds, creates the built-in namespaces and starts serving in a background task.
    ///
    /// Boxed here, so the server's code (the router and every handler) is compiled once, in this crate, and not
    /// again in each binary and test that awaits it.
    pub fn start(store: Arc<dyn Store>, config: ServerConfig) -> futures::future::BoxFuture<'static, Result<ApiServer, ServerError>> {
        Box::pin(Self::bind_and_serve(store, config))
    }

    async fn bind_and_serve(store: Arc<dyn Store>, config: ServerConfig) -> Result<ApiServer, ServerError> {
        let listener = TcpListener::bind(config.listen).await.map_err(|source| ServerError::Listen { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Listen { addr: config.listen, source })?;
        let insecure = match config.insecure_listen {
            None => None,
            Some(at) => {
                let l = TcpListener::bind(at).await.map_err(|source| ServerError::Listen { addr: at, source })?;
                let bound = l.local_addr().map_err(|source| ServerError::Listen { addr: at, source })?;
                Some((l, bound))
            }
        };
        let tokens = crate::auth::keys::TokenKeys::load_or_create(config.tls_dir.as_deref())?;
        let state = Arc::new(ApiState {
            tokens,
            store,
            config,
            metrics: Metrics::default(),
            advertise: addr.to_string(),
            local_addr: addr,
            finalizing: Default::default(),
            stopping: tokio::sync::watch::channel(false).0,
            on_namespace_terminating: crate::namespace_lifecycle::spawn_finalize,
        });
        crate::bootstrap::create_builtin_objects(&state).await?;
        crate::namespace_lifecycle::resume(state.clone()).await;
        let endpoints = match state.config.advertise_address {
            None => None,
            Some(ip) => {
                let reconciler = Arc::new(EndpointReconciler::new(state.clone(), ip, addr.port()));
                // listed before the first request is served; the task renews from here on
                if let Err(e) = reconciler.reconcile().await {
                    tracing::warn!(error = %e, "the kubernetes endpoints: first write failed, will retry");
                }
                let task = reconciler.clone().spawn();
                Some((reconciler, task))
            }
        };
        let app = crate::routes::router(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let pki = match &state.config.tls_dir {
            Some(dir) => Some(crate::tls::ensure_pki(dir, &state.config.pki_hosts())?),
            None => None,
        };
        let tls = match &pki {
            Some(pki) => Some(crate::tls::server_config(pki)?),
            None => None,
        };
        let listener = crate::connections::Listener { tcp: listener, tls, limits: state.config.limits.clone() };
        let insecure_addr = insecure.as_ref().map(|(_, a)| *a);
        let task = match insecure {
            None => tokio::spawn(crate::connections::serve(listener, app, rx, state.stopping.subscribe())),
            Some((tcp, plain_addr)) => {
                // upstream's removed insecure port: no authentication, every request system:unsecured
                tracing::warn!(addr = %plain_addr, "serving plain HTTP with no authentication: every caller is system:masters");
                let plain = crate::connections::Listener { tcp, tls: None, limits: state.config.limits.clone() };
                let (tx_a, rx_a) = oneshot::channel::<()>();
                let (tx_b, rx_b) = oneshot::channel::<()>();
                let (stop_a, stop_b) = (state.stopping.subscribe(), state.stopping.subscribe());
                tokio::spawn(async move {
                    let fan_out = async move {
                        let _ = rx.await;
                        let _ = tx_a.send(());
                        let _ = tx_b.send(());
                    };
                    tokio::join!(
                        fan_out,
                        crate::connections::serve(listener, app.clone(), rx_a, stop_a),
                        crate::connections::serve(plain, app, rx_b, stop_b)
                    );
                })
            }
        };
        tracing::info!(%addr, "apiserver listening");
        Ok(ApiServer { addr, insecure_addr, pki, state, stop: Some(tx), task: Some(task), endpoints })
    }

    /// The address the server listens on, port 0 resolved.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where plain HTTP is served besides `addr` (`ServerConfig::insecure_listen`), port 0 resolved.
    pub fn insecure_addr(&self) -> Option<SocketAddr> {
        self.insecure_addr
    }

    /// `http://<addr>`, or `https://<addr>` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The cluster PKI when serving HTTPS.
    pub fn pki(&self) -> Option<&crate::tls::Pki> {
        self.pki.as_ref()
    }

    /// What every request shares (the store, the configuration); in-process callers and tests read it.
    pub fn state(&self) -> &Arc<ApiState> {
        &self.state
    }

    /// Writes an admin kubeconfig for this server.
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.write_kubeconfig_for(path, &self.url())
    }

    /// Writes an admin kubeconfig that reaches this server at `url` (e.g. its advertised address).
    pub fn write_kubeconfig_for(&self, path: &std::path::Path, url: &str) -> std::io::Result<()> {
        match &self.pki {
            None => crate::kubeconfig::write(path, url, "rkube"),
            Some(p) => crate::kubeconfig::write_content(
                path,
                &crate::kubeconfig::render_tls(url, "rkube", &p.ca_cert, &p.admin_cert, &p.admin_key),
            ),
        }
    }

    /// Stops accepting requests, ends open watches and waits (briefly) for open requests to finish.
    /// A server with an advertised address first removes itself from the `kubernetes` endpoints.
    pub fn shutdown(self) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(self.stop_serving())
    }

    async fn stop_serving(mut self) {
        if let Some((reconciler, task)) = self.endpoints.take() {
            task.abort();
            if let Err(e) = reconciler.remove().await {
                tracing::warn!(error = %e, "remove this server from the kubernetes endpoints");
            }
        }
        let _ = self.state.stopping.send(true);
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(5), task).await.is_err() {
                tracing::warn!("apiserver requests still open after 5s; aborting");
                abort.abort();
            }
        }
    }

    /// Resolves when the server task ends.
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some((_, task)) = self.endpoints.take() {
            task.abort();
        }
    }
}

/// Where objects are stored.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded single-file store (`<data-dir>/state.redb`).
    Embedded(std::path::PathBuf),
    /// etcd v3 at these endpoints, every key under `prefix`.
    Etcd {
        /// The etcd client URLs.
        endpoints: Vec<String>,
        /// The key prefix the cluster's objects live under (several clusters can share one etcd).
        prefix: String,
    },
    /// In memory only (tests).
    Memory,
}

/// An opened store: the watch cache over the backend, and the compactor running against it.
pub struct OpenedStore {
    /// The store requests read and write: the watch cache over the backend.
    pub store: Arc<dyn Store>,
    /// The task compacting old revisions; aborted when the store is dropped.
    pub compactor: JoinHandle<()>,
}

impl Drop for OpenedStore {
    fn drop(&mut self) {
        self.compactor.abort();
    }
}

/// Opens a backend, puts the watch cache in front of it and starts compaction (default policy). Boxed for the
/// reason [`ApiServer::start`] is.
pub fn open_backend(backend: &Backend) -> futures::future::BoxFuture<'_, Result<OpenedStore, crate::storage::StorageError>> {
    Box::pin(open_backend_store(backend))
}

async fn open_backend_store(backend: &Backend) -> Result<OpenedStore, crate::storage::StorageError> {
    use crate::storage::{self, CompactionPolicy, WatchCache};
    let raw: Arc<dyn Store> = match backend {
        Backend::Embedded(path) => storage::open_embedded(path)?,
        Backend::Etcd { endpoints, prefix } => Arc::new(storage::EtcdStore::connect(endpoints, prefix).await?),
        Backend::Memory => Arc::new(crate::memory_store::MemoryStore::new()),
    };
    let store: Arc<dyn Store> = WatchCache::new(raw).await?;
    let compactor = storage::compaction::spawn(store.clone(), CompactionPolicy::default());
    Ok(OpenedStore { store, compactor })
}
