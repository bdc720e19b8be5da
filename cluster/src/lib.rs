//! A local multi-node cluster on one machine (`rkube cluster up|down|status|node`): a "LAN" bridge in a network
//! namespace of its own, a veth from the host to it with a private address (never the uplink), the control plane
//! (`rkube server`) listening on that address, and N node agents (`rkube kubelet --netns`) each in its own network
//! namespace with its own LAN address, data dir, runtime root, cgroup subtree, CNI bridge, proxy table and DNS
//! address. Everything made is recorded in a state file, so `down` removes exactly that, even after a partial
//! `up`.
//!
//! This crate runs the `rkube` binary's subcommands as processes; it must not link the kubelet or apiserver
//! crates. The decisions (names and addresses in [`plan`], what to undo in [`state`]) are pure and unit-tested;
//! [`lan`], [`process`] and [`ops`] carry them out with `ip` and signals; [`netns`] is what a node agent calls
//! to enter its node's namespace.

#![forbid(unsafe_code)]

pub mod lan;
pub mod netns;
pub mod ops;
pub mod plan;
pub mod process;
pub mod ready;
pub mod state;

pub use ops::{down, node_action, status, up, NodeAction, UpOptions};
pub use plan::Plan;
pub use state::State;

/// Everything that can go wrong making, inspecting or removing a local cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid {what} {value:?}: {why}")]
    Invalid { what: &'static str, value: String, why: String },
    #[error("{cmd}: {message}")]
    Command { cmd: String, message: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path}: {message}")]
    State { path: std::path::PathBuf, message: String },
    #[error("cluster {name:?} already exists (state {path}); run `rkube cluster down --name {name}` first")]
    Exists { name: String, path: std::path::PathBuf },
    #[error("no cluster {name:?} (no state file {path}); `rkube cluster up --name {name}` makes one")]
    NotFound { name: String, path: std::path::PathBuf },
    #[error("no node {node:?} in cluster {name:?} (nodes: {known})")]
    NoSuchNode { name: String, node: String, known: String },
    #[error("{what} did not happen within {secs} s: {last}")]
    Timeout { what: String, secs: u64, last: String },
    #[error("enter network namespace {name}: {op}: {source}")]
    Netns {
        name: String,
        op: &'static str,
        #[source]
        source: nix::Error,
    },
}

pub type Result<T> = std::result::Result<T, ClusterError>;

pub(crate) fn io_err(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ClusterError {
    let path = path.to_path_buf();
    move |source| ClusterError::Io { op, path, source }
}
