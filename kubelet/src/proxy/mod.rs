//! The service proxy (kube-proxy's job): turns Services and their EndpointSlices into one nftables table that
//! sends traffic for a ClusterIP:port or a NodePort to one of the Service's ready endpoints.
//!
//! - `model`: pure translation from API objects to [`ServicePort`]s (no I/O, unit-tested).
//! - `nft`: the nftables ruleset for a set of service ports, applied atomically in one `nft` transaction.
//! - `sync`: the consumer of the shared service watch (`crate::service_watch`) that keeps the table current.
//!
//! On a node, `nft list table ip rkube-proxy` shows everything this module does; docs/services.md walks through it.

pub mod model;
pub mod nft;
pub mod sync;

pub use model::{service_ports, Endpoint, Protocol, ServicePort};
pub use nft::{ProxyConfig, ProxyError};
