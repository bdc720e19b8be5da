//! The kubelet's one boundary to a container runtime: [`RuntimeClient`] is everything the kubelet asks of one
//! (sandbox, create, start, kill, delete, state, exec, OOM kills and memory use, a container's cgroup
//! limits and usage, the pod cgroup's removal).
//!
//! - [`cli`]: the implementation the kubelet runs, over the runc-compatible command line of `rkube-runtime`
//!   (one process per call, so the kubelet never forks inside its own threaded process, and a crashed runtime
//!   call cannot take the node agent with it);
//! - [`cgroupfs`]: the one place in the kubelet that reads or removes cgroup files, for what the runtime's
//!   command line has no verb for (a pod's parent cgroup, memory working sets for eviction);
//! - `fake` (tests only): an in-memory runtime that records every call, for the pod worker's unit tests.
//!
//! Must not: know about pods, volumes or images. Callers pass container ids and cgroup paths.

pub mod cgroupfs;
pub mod cli;
#[cfg(test)]
pub mod fake;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cli::RuntimeCli;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("run {bin} {what}: {source}")]
    Spawn {
        bin: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{bin} {what} failed: {message}")]
    Failed { bin: PathBuf, what: String, message: String },
    #[error("{bin} {what}: unexpected output: {output}")]
    Output { bin: PathBuf, what: String, output: String },
}

/// A running sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxInfo {
    pub pid: i32,
    /// Namespace kind (`net`, `ipc`, `uts`) → path to join.
    pub namespaces: HashMap<String, String>,
}

/// What the kubelet asks of a container runtime. Ids are the runtime's container ids; cgroup paths are relative
/// to each controller's root (`/kubepods/burstable/pod<uid>`).
pub trait RuntimeClient: Send + Sync {
    /// Creates a pause sandbox with new net/ipc/uts namespaces in `cgroups_path`.
    fn sandbox(&self, id: &str, hostname: &str, cgroups_path: &str) -> Result<SandboxInfo, RuntimeError>;
    /// The argv that creates container `id` from `bundle`. The container monitor runs it (it holds the
    /// container's stdio and outlives the kubelet), so create is a command line, not a call.
    fn create_argv(&self, id: &str, bundle: &Path, pid_file: &Path) -> Vec<OsString>;
    /// Starts a created container.
    fn start(&self, id: &str) -> Result<(), RuntimeError>;
    /// Sends `signal` (`TERM`, `KILL`) to the container's process.
    fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError>;
    /// Removes the container (killing it first if needed). An unknown id is not an error.
    fn delete(&self, id: &str) -> Result<(), RuntimeError>;
    /// `created`, `running` or `stopped`; None when the runtime does not know the container.
    fn state(&self, id: &str) -> Option<String>;
    /// Runs `argv` in the container and waits up to `timeout`; returns (exit code, stdout+stderr).
    fn exec(&self, id: &str, argv: &[String], timeout: Duration) -> Result<(i32, String), RuntimeError>;
    /// Whether the kernel's OOM killer killed a process of container `id` (ask before [`Self::delete`]).
    fn oom_killed(&self, id: &str) -> bool;
    /// Removes a pod's cgroup (`cgroups_path`, its children first) once every container in it is deleted.
    fn remove_pod_cgroup(&self, cgroups_path: &str);
    /// The memory working set (usage less inactive page cache) of a pod's cgroup, 0 if unknown.
    fn pod_memory_bytes(&self, pod_cgroup: &str) -> u64;
    /// The working set of each container's cgroup under the pod's, by container name (ids are
    /// `<short uid>-<name>-<restart>`; the newest restart of each name counts).
    fn container_memory_bytes(&self, pod_cgroup: &str, short_uid: &str) -> BTreeMap<String, u64>;
    /// Container `id`'s cgroup limits and current usage (for `rkube inspect`), as the runtime reads them.
    fn container_stats(&self, id: &str) -> Result<ContainerStats, RuntimeError>;
}

/// A container cgroup's limits and usage: the `data` of the runtime's `events --stats` line (runc's
/// `types.Stats` names, plus `cpu.limits` and `cgroupDirs`, which runc's has no field for). Absent values are
/// None: a file the runtime could not read, or no limit (`max`, a quota of -1).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct ContainerStats {
    #[serde(default)]
    pub cpu: CpuStats,
    #[serde(default)]
    pub memory: MemoryStats,
    #[serde(default)]
    pub pids: PidsStats,
    /// Controller (`memory`, `cpu`, `cpuacct`, `pids`; `unified` on cgroup v2) → the directory read.
    #[serde(default, rename = "cgroupDirs")]
    pub cgroup_dirs: BTreeMap<String, PathBuf>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct CpuStats {
    #[serde(default)]
    pub usage: CpuUsage,
    #[serde(default)]
    pub limits: CpuLimits,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct CpuUsage {
    /// Nanoseconds of CPU time.
    pub total: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct CpuLimits {
    pub quota: Option<i64>,
    pub period: Option<u64>,
    pub shares: Option<u64>,
    pub weight: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct MemoryStats {
    #[serde(default)]
    pub usage: MemoryUsage,
    #[serde(default)]
    pub oom_kill: u64,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct MemoryUsage {
    pub usage: Option<u64>,
    pub limit: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct PidsStats {
    pub current: Option<u64>,
    pub limit: Option<u64>,
}
