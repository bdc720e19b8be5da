//! rkube's Kubernetes-compatible API server and its storage.
//!
//! `storage` owns keys, values and revisions (an MVCC revision stream; resourceVersion = revision) and knows nothing
//! of Kubernetes objects. Everything above it speaks Kubernetes: discovery, OpenAPI, verbs, validation, defaulting.
//!
//! Layers, bottom first; a module imports its own layer or those below, never one above, and no modules
//! import each other in a circle (`cargo test -p rkube-layering` checks both, from the sources):
//!
//! 1. foundation, knowing no request: `storage/` and `memory_store`, `registry` (the resource table that drives
//!    routing, discovery, OpenAPI and storage keys), `status` (errors as Kubernetes Status objects), `object`
//!    (metadata accessors, reading a stored object), `openapi/` (the schema and patch strategies), `discovery`,
//!    `protobuf`, `conversion`, `selectors`, `metrics`, `tls`, `kubeconfig`, `private_files`;
//! 2. state and config: `config` (listen address, service range, TLS, connection limits), `auth::keys` (the
//!    service account key), `auth::user` (who a request is) and `state` (`ApiState`, what every request shares);
//! 3. request context: `request/` (the query parsed once, origin checks) and the rest of `auth/` (certificates,
//!    tokens, impersonation, RBAC);
//! 4. object helpers, the write pipeline: `admission`, `strategy/` (per-kind behaviour, one place per kind),
//!    `defaulting/`, `validation/`, `patch/`, `table`;
//! 5. handlers: `handlers/context` (the per-request `Ctx`, guarded writes) under one module per verb and the
//!    dispatcher in `handlers/mod.rs`; the review APIs (`auth::review`), the kubelet proxy (`proxy`) and the
//!    OpenAPI documents (`openapi::v2`, `openapi::v3`);
//! 6. background work: `namespace_lifecycle` (emptying Terminating namespaces; the delete handler reaches it
//!    through `ApiState::on_namespace_terminating`, not by import);
//! 7. serving: `connections` (the listener: TLS, timeouts, a per-client cap), `routes` (the router),
//!    `bootstrap` (the built-in objects, and the lease reconciler keeping the `kubernetes` endpoints) and `server` (opening the store, and the in-process handle).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod auth;
pub mod bootstrap;
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
pub mod node_proxy;
pub mod registry;
pub mod request;
pub mod routes;
pub mod selectors;
pub mod server;
pub mod state;
pub mod status;
pub mod strategy;
pub mod storage;
pub mod table;
pub mod tls;
pub mod validation;

pub use config::ServerConfig;
pub use server::{ApiServer, ServerError};
pub use state::ApiState;
