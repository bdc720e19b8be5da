//! The service proxy (kube-proxy's job): turns Services and their EndpointSlices into one nftables table that
//! sends traffic for a ClusterIP:port or a NodePort to one of the Service's ready endpoints.
//!
//! - `model`: pure translation from API objects to [`ServicePort`]s (no I/O, unit-tested).
//! - `tracker`: every Service's ports kept between syncs; an update recomputes only the Services whose object or
//!   EndpointSlices changed (pure).
//! - `plan`: what a sync writes: among those Services' ports, the ones whose objects differ from the table's; or
//!   the whole table (pure).
//! - `nft`: the nftables objects of each service port and the transaction of a sync: the whole table on the first
//!   sync (one `nft -f`), only the changed service ports after.
//! - `nfnl`: a partial sync's transaction sent as one nftables netlink batch (nft's cache dump is the cost at
//!   thousands of Services).
//! - `sync`: the consumer of the shared service watch (`crate::service_watch`) that keeps the table current.
//! - `announce`: the load balancer pool addresses this node answers ARP for (added to its LAN link).
//! - `health`: the healthCheckNodePort servers of LoadBalancer Services with externalTrafficPolicy Local.
//! - `metrics`: kube-proxy's sync metrics for the kubelet's `/metrics`.
//!
//! On a node, `nft list table ip rkube-proxy` shows everything this module does; docs/services.md walks through it.

pub mod announce;
pub mod health;
pub mod metrics;
pub mod model;
pub mod nfnl;
pub mod nft;
pub mod plan;
pub mod sync;
pub mod tracker;

pub use model::{service_ports, Endpoint, Protocol, ServicePort, TrafficPolicy};
pub use nft::{ProxyConfig, ProxyError};
