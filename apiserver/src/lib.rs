//! rkube's Kubernetes-compatible API server and its storage.
//!
//! `storage` owns keys, values and revisions (an MVCC revision stream; resourceVersion = revision) and knows nothing
//! of Kubernetes objects. Everything above it speaks Kubernetes: discovery, OpenAPI, verbs, validation, defaulting.
//!
//! Layers, each importing only the ones below it (tests/layering checks this):
//!
//! 1. foundation, knowing no request: `storage/` and `memory_store`, `registry` (the resource table that drives
//!    routing, discovery, OpenAPI and storage keys), `status` (errors as Kubernetes Status objects), `object`
//!    (metadata accessors, reading a stored object), `openapi/`, `discovery`, `protobuf`, `conversion`,
//!    `selectors`, `metrics`, `tls`, `kubeconfig`, `private_files`;
//! 2. state and config: `config` (listen address, service range, TLS, connection limits), `auth::keys` (the
//!    service account key) and `state` (`ApiState`, what every request shares);
//! 3. request context: `request/` (the query parsed once, origin checks) and `auth/` (who is asking and may
//!    they: certificates, tokens, impersonation, RBAC);
//! 4. object helpers, the write pipeline: `admission`, `defaulting/`, `validation/`, `patch/`, `table`;
//! 5. `handlers/`: `context` (the per-request `Ctx`, guarded writes), one module per verb above it, and the
//!    dispatcher in `handlers/mod.rs`;
//! 6. `proxy` (to kubelets) and `namespace_lifecycle` (emptying Terminating namespaces; the delete handler
//!    reaches it through `ApiState::on_namespace_terminating`, not by import);
//! 7. `connections` (the listener: TLS, timeouts, a per-client cap) and `server` (the router, the built-in
//!    objects, opening the store, and the in-process handle).
#![forbid(unsafe_code)]

pub mod admission;
pub mod auth;
pub mod config;
pub mod connections;
pub mod conversion;
pub mod defaulting;
pub mod discovery;
pub mod handlers;
pub mod kubeconfig;
pub mod memory_store;
pub mod metrics;
pub mod namespace_lifecycle;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod private_files;
pub mod protobuf;
pub mod proxy;
pub mod registry;
pub mod request;
pub mod selectors;
pub mod server;
pub mod state;
pub mod status;
pub mod storage;
pub mod table;
pub mod tls;
pub mod validation;

pub use config::ServerConfig;
pub use server::{ApiServer, ServerError};
pub use state::ApiState;
