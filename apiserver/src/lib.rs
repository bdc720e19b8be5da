//! rkube's Kubernetes-compatible API server, its storage, the scheduler and the controllers.
#![forbid(unsafe_code)]
