//! rkube's scheduler and controllers. They talk to the apiserver only through kube-rs (watch, cache, reconcile),
//! never through the apiserver's internals, so they run against rkube's apiserver or a real Kubernetes one.
#![forbid(unsafe_code)]

pub mod context;
pub mod cronjob;
pub mod deployment;
pub mod endpoints;
pub mod garbage_collector;
pub mod job;
pub mod node_lifecycle;
pub mod replicaset;
pub mod scheduler;
pub mod service_alloc;
pub mod statefulset;
pub mod util;
