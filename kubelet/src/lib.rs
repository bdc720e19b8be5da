//! The rkube node agent: registers the node, runs pods bound to it on rkube-runtime, reports their status.
#![forbid(unsafe_code)]
pub mod bootstrap;
pub mod config;
pub mod container;
pub mod image;
pub mod inspect;
pub mod kubelet;
pub mod logs;
pub mod monitor;
pub mod netlink;
pub mod node;
pub mod node_services;
pub mod pod;
pub mod probe;
pub mod runtime_client;
pub mod server;
pub mod static_pods;
pub mod time;
pub mod volume;
pub mod proxy;
pub mod dns;
pub mod service_watch;
