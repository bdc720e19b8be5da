//! `rkube dashboard` (issue 17): a web UI of the cluster the caller's kubeconfig reaches: nodes, pods,
//! services and events, kept live by kube-rs watchers streamed to the page as server-sent events, and a pod's
//! page drawing its kernel objects (namespaces, veth to bridge, cgroups, volumes, the Service rules that lead to
//! it) from the node's inspect endpoint, the same document as `rkube inspect pod`, and its trace as a timeline
//! (`rkube trace pod`'s records and words); a node's page (`rkube inspect node`: conditions, addresses, bridge,
//! routes, proxy table, QoS cgroups with usage, pods with sandbox PIDs) and a Service's (`rkube inspect service`:
//! VIPs, ports, the chains and the endpoints each picks).
//!
//! It listens on 127.0.0.1 only and answers nothing without the random token of the URL it prints: the server
//! acts with the caller's credentials. The page is plain HTML, JS and CSS embedded in the binary. This crate
//! owns the server and the page; the CLI only parses flags and builds the client.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod assets;
pub mod rows;
pub mod server;
pub mod stream;
pub mod token;
pub mod trace;

pub use server::{bind, serve, url, ServerError};
pub use token::{Token, TokenError};
