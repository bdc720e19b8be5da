//! The service proxy (kube-proxy's job): turns Services and their EndpointSlices into one nftables table that
//! sends traffic for a ClusterIP:port or a NodePort to one of the Service's ready endpoints.
//!
//! - `model`: pure translation from API objects to [`ServicePort`]s (no I/O, unit-tested).
//! - `tracker`: every Service's ports kept between syncs; an update recomputes only the Services whose object or
//!   EndpointSlices changed (pure).
//! - `plan`: what a sync writes: among those Services' ports, the ones whose objects differ from the table's; one
//!   shard's every port (the periodic resync); or every table (pure).
//! - `shard`: which of the proxy's tables holds a Service (a large cluster's Services are spread over several, so
//!   the kernel's check of the changed table at each commit stays small) (pure).
//! - `nft`: the nftables objects of each service port and the transaction of a sync: the whole table on the first
//!   sync (one `nft -f`), only the changed service ports after.
//! - `nfnl`: a partial sync's transaction sent as one nftables netlink batch (nft's cache dump is the cost at
//!   thousands of Services).
//! - `sync`: the consumer of the shared service watch (`crate::service_watch`) that keeps the table current.
//! - `announce`: the load balancer pool addresses this node answers ARP for (added to its LAN link).
//! - `health`: the healthCheckNodePort servers of LoadBalancer Services with externalTrafficPolicy Local.
//! - `metrics`: kube-proxy's sync metrics for the kubelet's `/metrics`.
//!
//! On a node, `nft list table ip rkube-proxy` shows everything this module does (with more than
//! [`shard::SERVICES_PER_SHARD`] Services, also `rkube-proxy-1`, `rkube-proxy-2`, ...: `nft list tables`);
//! docs/services.md walks through it.

pub mod announce;
pub mod health;
pub mod metrics;
pub mod model;
pub mod nfnl;
pub mod nft;
pub mod plan;
pub mod shard;
pub mod sync;
pub mod tracker;

pub use model::{service_ports, Endpoint, Protocol, ServicePort, TrafficPolicy};
pub use nft::{ProxyConfig, ProxyError};
