//! rkube's scheduler and controllers. They talk to the apiserver only through kube-rs (watch, cache, reconcile),
//! never through the apiserver's internals, so they run against rkube's apiserver or a real Kubernetes one.
//!
//! Entry points: [`run_all`] (controller manager) and [`scheduler::run`]. Each controller module holds a pure
//! decision function (`step`, `plan`, ...) tested table-driven, and a kube-rs reconcile that applies it.
//!
//! What lives where:
//!
//! - shared plumbing: `manager` (one watch per shared kind fanned out to the controllers, one kube-rs
//!   `Controller` per reconciled kind), `context` (the client, configuration, the shared pod cache, the error
//!   type, create/patch/delete helpers naming the object), `leader` (Lease-based leader election, as
//!   client-go's), `util/` (owner references, pods from templates, cron schedules: pure, no API calls);
//! - the scheduler: `scheduler/` — the select loop in `mod.rs`, the pure decision in `algorithm.rs` over
//!   `cache.rs` (per-node requests and ports), `filters.rs` and `scores.rs`, the backoff queue in `queue.rs`,
//!   binding and events in `bind.rs`;
//! - workloads: `replicaset` (ReplicaSets and ReplicationControllers), `deployment/` (reconcile in
//!   `controller.rs`, rollout math in `rollout.rs`, revisions in `history.rs`), `daemonset`, `statefulset`,
//!   `job`, `cronjob`;
//! - services: `endpoints` (Endpoints and EndpointSlices), `service_alloc` (ClusterIPs and NodePorts),
//!   `service_lb` (the built-in LoadBalancer);
//! - nodes and lifecycle: `node_lifecycle` (podCIDRs, not-ready, unreachable and pressure taints, NoExecute
//!   evictions), `garbage_collector` (owner references, background and foreground deletion), `certificates`
//!   (joining nodes: CSR approval and signing, expired bootstrap token cleanup, the signed cluster-info);
//! - access: `serviceaccount` (a `default` ServiceAccount per namespace), `clusterrole_aggregation`.
//!
//! Must not: import `rkube_apiserver` in production code (tests start one in-process), or reach a node except
//! through the API. `cargo test -p rkube-layering` checks the first.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

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
