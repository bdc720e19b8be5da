//! A local multi-node cluster on one machine (`rkube cluster up|down|status|node`): a "LAN" bridge in a network
//! namespace of its own, a veth from the host to it with a private address (never the uplink), the control plane
//! (`rkube server`) listening on that address, and N node agents (`rkube kubelet --netns`) each in its own network
//! namespace with its own LAN address, data dir, runtime root, cgroup subtree, CNI bridge, proxy table and DNS
//! address. Everything made is recorded in a state file, so `down` removes exactly that, even after a partial
//! `up`.
//!
//! This crate runs the `rkube` binary's subcommands as processes; it must not link the kubelet or apiserver
//! crates. The decisions (names and addresses in [`plan`], what to undo in [`state`]) are pure and unit-tested;
//! [`lan`], [`process`] and [`ops`] carry them out with `ip` and signals, [`ready`] waits for the nodes through
//! the API; [`netns`] is what a node agent calls to enter its node's namespace.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

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
    /// A value the user gave (name, subnet, node count, LAN kind) or chose implicitly (a name already taken on
    /// the host) cannot be used; `why` says what would.
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        /// What the value is, e.g. `LAN subnet`.
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why not, and what to use instead.
        why: String,
    },
    /// A command or system call failed (`ip`, `rkube down`, a mount), or a process the cluster started exited.
    #[error("{cmd}: {message}")]
    Command {
        /// The command line or operation.
        cmd: String,
        /// Its stderr, or the process's last log lines.
        message: String,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done, e.g. `create the data dir`.
        op: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The state file cannot be read as a cluster state, or written; or it lacks what an action needs.
    #[error("state file {path}: {message}")]
    State {
        /// The state file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `up` found a state file for this cluster: one was made and not removed.
    #[error("cluster {name:?} already exists (state {path}); run `rkube cluster down --name {name}` first")]
    Exists {
        /// The cluster's name.
        name: String,
        /// Its state file.
        path: std::path::PathBuf,
    },
    /// No state file for this cluster: nothing was made (or `down` removed it).
    #[error("no cluster {name:?} (no state file {path}); `rkube cluster up --name {name}` makes one")]
    NotFound {
        /// The cluster's name.
        name: String,
        /// The state file looked for.
        path: std::path::PathBuf,
    },
    /// A node drill named a node the cluster does not have.
    #[error("no node {node:?} in cluster {name:?} (nodes: {known})")]
    NoSuchNode {
        /// The cluster's name.
        name: String,
        /// The node as given.
        node: String,
        /// The cluster's node names, comma-separated.
        known: String,
    },
    /// Something `up` waits for (the kubeconfig, the join token, every node Ready) did not come in time.
    #[error("{what} did not happen within {secs} s: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long, in seconds.
        secs: u64,
        /// The last thing seen: an error, log lines, or which nodes were not Ready.
        last: String,
    },
    /// A node agent could not enter its node's network namespace ([`netns::enter`]).
    #[error("enter network namespace {name}: {op}: {source}")]
    Netns {
        /// The namespace's name, under `/run/netns`.
        name: String,
        /// The step that failed (setns, unshare, one of the sysfs mounts).
        op: &'static str,
        /// The cause.
        #[source]
        source: nix::Error,
    },
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, ClusterError>;

pub(crate) fn io_err(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ClusterError {
    let path = path.to_path_buf();
    move |source| ClusterError::Io { op, path, source }
}
