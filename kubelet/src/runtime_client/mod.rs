//! The kubelet's one boundary to a container runtime: [`RuntimeClient`] is everything the kubelet asks of one
//! (sandbox, create, start, kill, delete, state, exec, OOM kills, a container's cgroup limits and usage, the
//! memory working sets and CPU time of pod and QoS cgroups, and the removal of a pod's or a node's cgroup tree).
//!
//! - [`cli`]: the implementation the kubelet runs, over the runc-compatible command line of `rkube-runtime`
//!   (one process per call, so the kubelet never forks inside its own threaded process, and a crashed runtime
//!   call cannot take the node agent with it), plus the runtime's own `cgroup memory|remove` verbs for the cgroups
//!   that are no container's;
//! - `fake` (tests only): an in-memory runtime that records every call, for the pod worker's unit tests.
//!
//! Must not: know about pods, volumes or images, or read cgroup files (that is the runtime's; the layering check
//! holds it). Callers pass container ids and cgroup paths.

pub mod cli;
#[cfg(test)]
pub mod fake;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cli::RuntimeCli;

/// Why a runtime call failed; every variant names the runtime binary and the call.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime binary could not be run.
    #[error("run {bin} {what}: {source}")]
    Spawn {
        /// The runtime binary.
        bin: PathBuf,
        /// The call (`start <id>`, `kill <id> TERM`...).
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime ran and exited non-zero, or an exec ran past its timeout (and was killed).
    #[error("{bin} {what} failed: {message}")]
    Failed {
        /// The runtime binary.
        bin: PathBuf,
        /// The call.
        what: String,
        /// Its stderr (its exit status when that was empty), or `timed out after ...`.
        message: String,
    },
    /// The runtime succeeded but printed something that is not the expected answer.
    #[error("{bin} {what}: unexpected output: {output}")]
    Output {
        /// The runtime binary.
        bin: PathBuf,
        /// The call.
        what: String,
        /// What it printed.
        output: String,
    },
}

/// A running sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxInfo {
    /// The sandbox's pause process, which holds its namespaces open.
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
    /// Removes the cgroup tree `cgroups_path` (`/kubepods/burstable/pod<uid>`, or a node's `kubepods`) from every
    /// hierarchy, children first. A cgroup still holding processes stays: returns those, each with the reason.
    /// Nothing there is not an error; the root itself or a path with `..` is.
    fn remove_cgroup_tree(&self, cgroups_path: &str) -> Result<Vec<(PathBuf, String)>, RuntimeError>;
    /// The memory working set (usage less inactive page cache) of cgroup `cgroups_path` and of each child cgroup
    /// by directory name; None when it has no memory cgroup.
    fn cgroup_memory(&self, cgroups_path: &str) -> Result<Option<CgroupMemory>, RuntimeError>;
    /// Container `id`'s cgroup limits and current usage (for `rkube inspect`), as the runtime reads them.
    fn container_stats(&self, id: &str) -> Result<ContainerStats, RuntimeError>;
    /// The CPU time used by each cgroup of `cgroups_paths` (relative, as above), read twice `sample` apart for
    /// a rate (no rate when `sample` is zero): one runtime call for them all. A cgroup with nothing to read has
    /// nulls, in the order asked.
    fn cgroup_cpu(&self, cgroups_paths: &[String], sample: Duration) -> Result<CpuSample, RuntimeError>;

    /// Removes a pod's cgroup once every container in it is deleted; what cannot go is logged, not returned (the
    /// pod is gone either way, and `rkube down` removes the node's tree).
    fn remove_pod_cgroup(&self, cgroups_path: &str) {
        match self.remove_cgroup_tree(cgroups_path) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => tracing::warn!(cgroup = cgroups_path, left = ?left, "pod cgroup left in place"),
            Err(e) => tracing::warn!(cgroup = cgroups_path, error = %e, "remove pod cgroup"),
        }
    }
    /// The memory working set of a pod's cgroup, 0 if unknown.
    fn pod_memory_bytes(&self, pod_cgroup: &str) -> u64 {
        self.cgroup_memory(pod_cgroup).ok().flatten().map(|m| m.working_set).unwrap_or(0)
    }
    /// The working set of each container's cgroup under the pod's, by container name (ids are
    /// `<short uid>-<name>-<restart>`; the newest restart of each name counts).
    fn container_memory_bytes(&self, pod_cgroup: &str, short_uid: &str) -> BTreeMap<String, u64> {
        let Some(m) = self.cgroup_memory(pod_cgroup).ok().flatten() else { return BTreeMap::new() };
        newest_by_name(m.children.keys().cloned(), short_uid)
            .into_iter()
            .filter_map(|(name, id)| m.children.get(&id).map(|w| (name, *w)))
            .collect()
    }
}

/// Of container ids `<short uid>-<name>-<restart>` (others are skipped), the newest id of each container name.
pub fn newest_by_name(ids: impl IntoIterator<Item = String>, short_uid: &str) -> BTreeMap<String, String> {
    let mut newest: BTreeMap<String, (u32, String)> = BTreeMap::new();
    let prefix = format!("{short_uid}-");
    for id in ids {
        let Some((name, restart)) = id.strip_prefix(&prefix).and_then(|r| r.rsplit_once('-')) else { continue };
        let Ok(restart) = restart.parse::<u32>() else { continue };
        if newest.get(name).is_none_or(|(r, _)| restart > *r) {
            newest.insert(name.to_string(), (restart, id.clone()));
        }
    }
    newest.into_iter().map(|(name, (_, id))| (name, id)).collect()
}

/// A cgroup's memory working set and its children's: the runtime's `cgroup memory` answer.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct CgroupMemory {
    /// The directory the runtime read.
    #[serde(default)]
    pub dir: PathBuf,
    /// Its working set in bytes: usage less inactive file pages (cAdvisor's `container_memory_working_set_bytes`).
    #[serde(rename = "workingSet")]
    pub working_set: u64,
    /// Child cgroup (directory name) → its working set.
    #[serde(default)]
    pub children: BTreeMap<String, u64>,
}

/// The runtime's `cgroup cpu` answer: each cgroup's CPU time and its rate over the sample.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuSample {
    /// The interval between the two reads, in ms (0: one read, no rates).
    #[serde(default)]
    pub sample_millis: u64,
    /// One entry per cgroup asked for, in the order asked.
    pub cgroups: Vec<CgroupCpu>,
}

/// One cgroup of a [`CpuSample`].
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CgroupCpu {
    /// The cgroups path, as asked.
    pub path: String,
    /// Nanoseconds of CPU time used (at the second read); None when the cgroup has nothing to read.
    pub usage_nanos: Option<u64>,
    /// CPU time used between the two reads per wall time, in thousandths of a CPU.
    pub millicores: Option<u64>,
}

/// A container cgroup's limits and usage: the `data` of the runtime's `events --stats` line (runc's
/// `types.Stats` names, plus `cpu.limits` and `cgroupDirs`, which runc's has no field for). Absent values are
/// None: a file the runtime could not read, or no limit (`max`, a quota of -1).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct ContainerStats {
    /// CPU time used and the CPU limits.
    #[serde(default)]
    pub cpu: CpuStats,
    /// Memory in use, its limit and OOM kills.
    #[serde(default)]
    pub memory: MemoryStats,
    /// Processes against the pids limit.
    #[serde(default)]
    pub pids: PidsStats,
    /// Controller (`memory`, `cpu`, `cpuacct`, `pids`; `unified` on cgroup v2) → the directory read.
    #[serde(default, rename = "cgroupDirs")]
    pub cgroup_dirs: BTreeMap<String, PathBuf>,
}

/// The `cpu` part of [`ContainerStats`].
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct CpuStats {
    /// CPU time used.
    #[serde(default)]
    pub usage: CpuUsage,
    /// The cgroup's CPU settings.
    #[serde(default)]
    pub limits: CpuLimits,
}

/// CPU time a cgroup has used.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct CpuUsage {
    /// Nanoseconds of CPU time.
    pub total: Option<u64>,
}

/// A cgroup's CPU settings, as the runtime reads them.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct CpuLimits {
    /// CFS quota in µs per period; None when unlimited.
    pub quota: Option<i64>,
    /// CFS period in µs.
    pub period: Option<u64>,
    /// v1 `cpu.shares` (on v2, the shares that give `cpu.weight`).
    pub shares: Option<u64>,
    /// v2 `cpu.weight`; None on v1.
    pub weight: Option<u64>,
}

/// The `memory` part of [`ContainerStats`].
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct MemoryStats {
    /// Bytes in use and the limit.
    #[serde(default)]
    pub usage: MemoryUsage,
    /// OOM kills in the cgroup so far.
    #[serde(default)]
    pub oom_kill: u64,
}

/// A cgroup's memory use against its limit.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct MemoryUsage {
    /// Bytes charged to the cgroup (page cache included).
    pub usage: Option<u64>,
    /// The limit in bytes as the kernel reports it (v1's unlimited is a huge number); None for v2 `max`.
    pub limit: Option<u64>,
}

/// The `pids` part of [`ContainerStats`].
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct PidsStats {
    /// Processes (tasks) in the cgroup.
    pub current: Option<u64>,
    /// The pids limit; None for `max`.
    pub limit: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_working_sets_are_the_newest_restart_of_each_name() {
        let rt = fake::FakeRuntime::default();
        let children: BTreeMap<String, u64> =
            [("u1-app-0", 100), ("u1-app-1", 300), ("u1-side-car-0", 50), ("sb-u1", 7), ("other-app-0", 9)].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        rt.set_cgroup_memory("/kubepods/besteffort/podu1", CgroupMemory { working_set: 400, children, ..Default::default() });
        let got = rt.container_memory_bytes("/kubepods/besteffort/podu1", "u1");
        assert_eq!(got.into_iter().collect::<Vec<_>>(), vec![("app".to_string(), 300), ("side-car".to_string(), 50)]);
        assert_eq!(rt.pod_memory_bytes("/kubepods/besteffort/podu1"), 400);
        assert_eq!(rt.pod_memory_bytes("/kubepods/besteffort/none"), 0, "unknown is 0");
        assert!(rt.container_memory_bytes("/kubepods/besteffort/none", "u1").is_empty());
    }
}
