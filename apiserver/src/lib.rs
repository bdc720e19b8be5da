//! rkube's Kubernetes-compatible API server and its storage.
//!
//! `storage` owns keys, values and revisions (an MVCC revision stream; resourceVersion = revision) and knows nothing
//! of Kubernetes objects. Everything above it speaks Kubernetes: discovery, OpenAPI, verbs, validation, defaulting.
#![forbid(unsafe_code)]

pub mod storage;
