//! rkube's scheduler and controllers. They talk to the apiserver only through kube-rs (watch, cache, reconcile),
//! never through the apiserver's internals, so they run against rkube's apiserver or a real Kubernetes one.
#![forbid(unsafe_code)]

pub mod deployment;
pub mod replicaset;
pub mod scheduler;
pub mod util;
