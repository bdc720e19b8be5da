//! rkube's Kubernetes-compatible API server and its storage.
//!
//! `storage` owns keys, values and revisions (an MVCC revision stream; resourceVersion = revision) and knows nothing
//! of Kubernetes objects. Everything above it speaks Kubernetes: discovery, OpenAPI, verbs, validation, defaulting.
//!
//! Layout: `connections` accepts connections (TLS, timeouts, a per-client cap); `auth/` decides who is asking
//! and whether they may (client certificates, impersonation, RBAC);
//! `registry` is the resource table that drives routing, discovery, OpenAPI and storage keys; `server`
//! is the router and in-process handle; `handlers/` holds one module per verb; `admission`, `defaulting/` and
//! `validation/` form the write pipeline; `patch/` the patch formats; `selectors` the label/field selector
//! matching the controllers reuse; `table` server-side printing; `status` errors as Kubernetes Status objects.
#![forbid(unsafe_code)]

pub mod admission;
pub mod auth;
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
pub mod status;
pub mod storage;
pub mod table;
pub mod tls;
pub mod validation;

pub use server::{ApiServer, ApiState, ServerConfig, ServerError};
