//! rkube's scheduler and controllers. They talk to the apiserver only through kube-rs (watch, cache, reconcile),
//! never through the apiserver's internals, so they run against rkube's apiserver or a real Kubernetes one.
//!
//! Entry points: [`run_all`] (controller manager) and [`scheduler::run`]. Each controller module holds a pure
//! decision function (`step`, `plan`, ...) tested table-driven, and a kube-rs reconcile that applies it.
#![forbid(unsafe_code)]

pub mod certificates;
pub mod clusterrole_aggregation;
pub mod context;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod garbage_collector;
pub mod job;
pub mod leader;
pub mod manager;
pub mod node_lifecycle;
pub mod replicaset;
pub mod scheduler;
pub mod service_alloc;
pub mod service_lb;
pub mod serviceaccount;
pub mod statefulset;
pub mod util;

pub use context::Config;
pub use manager::{run_all, ManagerError};
pub use scheduler::{run as run_scheduler, SchedulerConfig};
