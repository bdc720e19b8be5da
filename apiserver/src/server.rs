//! The HTTP server: shared state, the router (discovery, OpenAPI, health, metrics, resources), bootstrap of the
//! built-in namespaces, and a handle to run and stop the server in-process.
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

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{header, Method, Request, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::admission::FieldValidation;
use crate::auth::attributes::Attributes;
use crate::discovery;
use crate::handlers::context::json_response;
use crate::handlers::{self, create::create_object};
use crate::metrics::Metrics;
pub use crate::config::ServerConfig;
pub use crate::state::ApiState;
use crate::openapi;
use crate::registry;
use crate::request::Query;
use crate::status::ApiError;
use crate::storage::Store;

/// Namespaces that exist from the first start.
pub const BUILTIN_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("set up TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Keys(#[from] crate::auth::keys::KeyError),
    #[error("create built-in object {what}: {message}")]
    Bootstrap { what: String, message: String },
}

/// A running server; stopped by `shutdown` (or aborted when dropped).
pub struct ApiServer {
    addr: SocketAddr,
    pki: Option<crate::tls::Pki>,
    state: Arc<ApiState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Binds, creates the built-in namespaces and starts serving in a background task.
    pub async fn start(store: Arc<dyn Store>, config: ServerConfig) -> Result<ApiServer, ServerError> {
        let listener = TcpListener::bind(config.listen).await.map_err(|source| ServerError::Listen { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Listen { addr: config.listen, source })?;
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
        bootstrap(&state).await?;
        crate::namespace_lifecycle::resume(state.clone()).await;
        let app = router(state.clone());
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
        let task = tokio::spawn(crate::connections::serve(listener, app, rx, state.stopping.subscribe()));
        tracing::info!(%addr, "apiserver listening");
        Ok(ApiServer { addr, pki, state, stop: Some(tx), task: Some(task) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
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
    pub async fn shutdown(mut self) {
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
    }
}

async fn bootstrap(state: &ApiState) -> Result<(), ServerError> {
    let ns_info = registry::find("", "v1", "namespaces").expect("namespaces are in the table");
    for ns in BUILTIN_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        if create_if_missing(state, ns_info, None, obj).await? {
            tracing::info!(namespace = ns, "created built-in namespace");
        }
    }
    for (resource, objects) in
        [("clusterroles", crate::auth::bootstrap::cluster_roles()), ("clusterrolebindings", crate::auth::bootstrap::cluster_role_bindings())]
    {
        let info = registry::find(crate::auth::rbac::GROUP, "v1", resource).expect("rbac resources are in the table");
        for obj in objects {
            create_if_missing(state, info, None, obj).await?;
        }
    }
    let svc_info = registry::find("", "v1", "services").expect("services are in the table");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default",
        "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": state.config.first_service_ip().to_string(),
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": state.config.listen.port().max(1)}]}});
    create_if_missing(state, svc_info, Some("default"), svc).await?;
    Ok(())
}

/// Creates a built-in object unless it exists (an existing one is left as it is); true when it was created.
async fn create_if_missing(state: &ApiState, info: &'static registry::ResourceInfo, ns: Option<&str>, obj: serde_json::Value) -> Result<bool, ServerError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    match create_object(state, info, ns, obj, FieldValidation::Strict, false).await {
        Ok(_) => Ok(true),
        Err(ApiError { code: 409, .. }) => Ok(false),
        Err(e) => {
            let what = match ns {
                Some(ns) => format!("{} {ns}/{name}", info.singular),
                None => format!("{} {name}", info.singular),
            };
            Err(ServerError::Bootstrap { what, message: e.message })
        }
    }
}

/// The router: everything goes through one dispatcher so paths are parsed once against the resource table.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

async fn dispatch(State(state): State<Arc<ApiState>>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let headers = parts.headers.clone();
    let tls = parts.extensions.get::<crate::auth::TlsIdentity>();
    if tls.is_none() {
        // plain HTTP: no authentication, so no browser page from another site (or a rebound name) may use it
        if let Err(e) = crate::request::origin::check_plain_http(&headers, parts.uri.host(), &state.config.tls_hosts) {
            tracing::debug!(path, message = %e.message, "plain-HTTP request refused");
            return e.into_response();
        }
    }
    let user = match crate::auth::authenticate(&state, tls, &headers).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    // The query is parsed once, here: authorization and the handler read this one value.
    let query = match Query::parse(parts.uri.query()) {
        Ok(q) => q,
        Err(e) if Attributes::is_resource_path(&path) => return e.into_response(),
        Err(_) => Query::default(),
    };
    let attrs = Attributes::from_request(&method, &path, &query);
    if let Err(e) = crate::auth::authorize(&state, &user, &attrs).await {
        return e.into_response();
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let accept = crate::request::accept(&headers).to_string();
    if method == Method::GET {
        match segs.as_slice() {
            ["version"] => return json_response(StatusCode::OK, &discovery::version()),
            ["healthz" | "livez" | "readyz", ..] => return health(&state, &segs).await,
            ["metrics"] => {
                return ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
            }
            ["api"] => {
                return match discovery::wants_aggregated(&accept) {
                    Some(v) => aggregated_response(discovery::aggregated(true, v), v),
                    None => json_response(StatusCode::OK, &discovery::api_versions(&state.advertise)),
                }
            }
            ["apis"] => {
                return match discovery::wants_aggregated(&accept) {
                    Some(v) => aggregated_response(discovery::aggregated(false, v), v),
                    None => json_response(StatusCode::OK, &discovery::api_group_list()),
                }
            }
            ["api", "v1"] => return json_or_404(discovery::api_resource_list("", "v1"), &path),
            ["apis", g] => return json_or_404(discovery::api_group(g), &path),
            ["apis", g, v] => return json_or_404(discovery::api_resource_list(g, v), &path),
            ["openapi", "v2"] | ["swagger-2.0.0.pb-v1"] | ["swagger.json"] => return openapi::v2::respond(&headers),
            ["openapi", "v3"] => return openapi::v3::index(),
            ["openapi", "v3", rest @ ..] => return openapi::v3::document(&rest.join("/")),
            // Custom resources are not served, so there are none; kubectl lists them to learn whether a kind
            // it cannot validate client-side (a TokenReview, say) is a custom one, and fails on a 404.
            ["apis", "apiextensions.k8s.io", "v1", "customresourcedefinitions"] => {
                let rv = state.store.current_revision().await.map(|r| r.to_string()).unwrap_or_default();
                return json_response(
                    StatusCode::OK,
                    &json!({"kind": "CustomResourceDefinitionList", "apiVersion": "apiextensions.k8s.io/v1", "metadata": {"resourceVersion": rv}, "items": []}),
                );
            }
            _ => {}
        }
    }
    // Streaming subresources are proxied to the kubelet as raw upgraded connections, before any body is read.
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, sub @ ("exec" | "attach" | "portforward")]
            if matches!(method, Method::GET | Method::POST) =>
        {
            let (ns, name, sub) = (ns.to_string(), name.to_string(), sub.to_string());
            return crate::proxy::pod_stream(state, &ns, &name, &sub, &query, Request::from_parts(parts, body)).await;
        }
        ["api", "v1", "nodes", name, "proxy", rest @ ..] => {
            let (name, rest) = (name.to_string(), rest.join("/"));
            return crate::proxy::node_proxy(state, &name, &rest, Request::from_parts(parts, body)).await;
        }
        _ => {}
    }
    match segs.first() {
        Some(&"api") | Some(&"apis") => {
            let asked = handlers::Asked { query, verb: attrs.verb };
            handlers::resource_request(state, user, method, parts.uri, asked, headers, body).await
        }
        _ => ApiError::path_not_found(&path).into_response(),
    }
}

fn aggregated_response(doc: serde_json::Value, version: &str) -> Response {
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    (StatusCode::OK, [(header::CONTENT_TYPE, ct)], body).into_response()
}

fn json_or_404(doc: Option<serde_json::Value>, path: &str) -> Response {
    match doc {
        Some(d) => json_response(StatusCode::OK, &d),
        None => ApiError::path_not_found(path).into_response(),
    }
}

async fn health(state: &ApiState, segs: &[&str]) -> Response {
    let store_ok = state.store.current_revision().await.is_ok();
    if segs.len() > 1 && segs[1] == "ping" {
        return (StatusCode::OK, "ok").into_response();
    }
    if store_ok {
        (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "[-]etcd failed: storage unreachable\nhealthz check failed").into_response()
    }
}

/// Where objects are stored.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded single-file store (`<data-dir>/state.redb`).
    Embedded(std::path::PathBuf),
    /// etcd v3 at these endpoints, every key under `prefix`.
    Etcd { endpoints: Vec<String>, prefix: String },
    /// In memory only (tests).
    Memory,
}

/// An opened store: the watch cache over the backend, and the compactor running against it.
pub struct OpenedStore {
    pub store: Arc<dyn Store>,
    pub compactor: JoinHandle<()>,
}

impl Drop for OpenedStore {
    fn drop(&mut self) {
        self.compactor.abort();
    }
}

/// Opens a backend, puts the watch cache in front of it and starts compaction (default policy).
pub async fn open_backend(backend: &Backend) -> Result<OpenedStore, crate::storage::StorageError> {
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
