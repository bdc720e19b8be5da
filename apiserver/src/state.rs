//! The state every request shares: the store, the configuration, metrics, the service account keys and the
//! shutdown signal. Above `config` and `storage`, below everything that serves requests: request context
//! (`request`, `auth`), object helpers, `handlers`, `proxy`, the routes and the server.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::keys::TokenKeys;
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::storage::Store;

/// State shared by every request.
pub struct ApiState {
    /// The store (the watch cache over the backend) every read and write goes to.
    pub store: Arc<dyn Store>,
    /// How the server was set up.
    pub config: ServerConfig,
    /// Request counts, latencies and open watches, served at `/metrics`.
    pub metrics: Metrics,
    /// The address clients reach the server at (`127.0.0.1:6443`).
    pub advertise: String,
    /// The address the server listens on (the port resolved when 0 was asked for).
    pub local_addr: SocketAddr,
    /// Namespaces whose finalization task is running.
    pub finalizing: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Flips to true when the server shuts down; long-running requests (watches) end on it.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Starts emptying a namespace that has just become Terminating. The server sets it to
    /// `namespace_lifecycle::spawn_finalize`; the delete handler calls it through here, so the handlers do not
    /// import the lifecycle task that itself deletes through them.
    pub on_namespace_terminating: fn(Arc<ApiState>, String),
    /// Signs and verifies service account tokens.
    pub tokens: TokenKeys,
}
