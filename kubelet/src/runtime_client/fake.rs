//! An in-memory [`RuntimeClient`] for unit tests: it keeps the containers it was told about, records every call
//! in order, and fails the verbs a test tells it to. Nothing runs and nothing touches the host.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::{CgroupCpu, CgroupMemory, ContainerStats, CpuSample, RuntimeClient, RuntimeError, SandboxInfo};

/// One call the fake received, with its container id (or cgroup path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `sandbox` of this id.
    Sandbox(String),
    /// `create_argv` for this id (the argv the monitor would run).
    CreateArgv(String),
    /// `start`.
    Start(String),
    /// `kill`: the id and the signal name.
    Kill(String, String),
    /// `delete`.
    Delete(String),
    /// `state`.
    State(String),
    /// `exec` in this container (the argv is not recorded).
    Exec(String),
    /// `oom_killed`.
    OomKilled(String),
    /// `remove_pod_cgroup` (the fake answers it itself rather than through `remove_cgroup_tree`).
    RemovePodCgroup(String),
    /// `remove_cgroup_tree` of this cgroups path.
    RemoveCgroupTree(String),
    /// `cgroup_memory` of this cgroups path.
    CgroupMemory(String),
    /// `cgroup_cpu` of these cgroups paths.
    CgroupCpu(Vec<String>),
    /// `container_stats`.
    Stats(String),
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    /// Containers the runtime holds (sandboxes, and ids a test adds as created by the monitor), with their state.
    containers: HashMap<String, String>,
    /// Verbs (`"sandbox"`, `"start"`, ...) that fail.
    failing: HashSet<&'static str>,
    oom: HashSet<String>,
    stats: HashMap<String, ContainerStats>,
    memory: HashMap<String, CgroupMemory>,
}

/// The fake. `create_argv` returns `create_command` (default `/bin/false`) followed by the id, so a test decides
/// what the monitor runs as "create".
#[derive(Default)]
pub struct FakeRuntime {
    inner: Mutex<Inner>,
    /// What `create_argv` puts before the id: the "create" the monitor runs (`/bin/false` when empty).
    pub create_command: Vec<OsString>,
}

impl FakeRuntime {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, c: Call) {
        self.lock().calls.push(c);
    }

    fn check(&self, verb: &'static str, id: &str) -> Result<(), RuntimeError> {
        if self.lock().failing.contains(verb) {
            return Err(RuntimeError::Failed { bin: PathBuf::from("fake-runtime"), what: format!("{verb} {id}"), message: "injected failure".into() });
        }
        Ok(())
    }

    /// Makes `verb` fail from now on.
    pub fn fail(&self, verb: &'static str) {
        self.lock().failing.insert(verb);
    }

    /// The container is known to the runtime in `state` (as if the monitor's create had run).
    pub fn add_container(&self, id: &str, state: &str) {
        self.lock().containers.insert(id.into(), state.into());
    }

    /// Container `id` reports an OOM kill.
    pub fn set_oom(&self, id: &str) {
        self.lock().oom.insert(id.into());
    }

    /// Container `id` reports `stats`.
    pub fn set_stats(&self, id: &str, stats: ContainerStats) {
        self.lock().stats.insert(id.into(), stats);
    }

    /// Cgroup `path` reports `memory`.
    pub fn set_cgroup_memory(&self, path: &str, memory: CgroupMemory) {
        self.lock().memory.insert(path.into(), memory);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Ids the runtime still holds.
    pub fn containers(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().containers.keys().cloned().collect();
        v.sort();
        v
    }
}

impl RuntimeClient for FakeRuntime {
    fn sandbox(&self, id: &str, _hostname: &str, _cgroups_path: &str) -> Result<SandboxInfo, RuntimeError> {
        self.record(Call::Sandbox(id.into()));
        self.check("sandbox", id)?;
        self.lock().containers.insert(id.into(), "running".into());
        Ok(SandboxInfo { pid: std::process::id() as i32, namespaces: HashMap::new() })
    }

    fn create_argv(&self, id: &str, _bundle: &Path, _pid_file: &Path) -> Vec<OsString> {
        self.record(Call::CreateArgv(id.into()));
        let mut v = if self.create_command.is_empty() { vec![OsString::from("/bin/false")] } else { self.create_command.clone() };
        v.push(id.into());
        v
    }

    fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.record(Call::Start(id.into()));
        self.check("start", id)?;
        self.lock().containers.insert(id.into(), "running".into());
        Ok(())
    }

    fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError> {
        self.record(Call::Kill(id.into(), signal.into()));
        self.check("kill", id)
    }

    fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        self.record(Call::Delete(id.into()));
        self.check("delete", id)?;
        self.lock().containers.remove(id);
        Ok(())
    }

    fn state(&self, id: &str) -> Option<String> {
        self.record(Call::State(id.into()));
        self.lock().containers.get(id).cloned()
    }

    fn exec(&self, id: &str, _argv: &[String], _timeout: Duration) -> Result<(i32, String), RuntimeError> {
        self.record(Call::Exec(id.into()));
        self.check("exec", id)?;
        Ok((0, String::new()))
    }

    fn oom_killed(&self, id: &str) -> bool {
        self.record(Call::OomKilled(id.into()));
        self.lock().oom.contains(id)
    }

    fn remove_cgroup_tree(&self, cgroups_path: &str) -> Result<Vec<(PathBuf, String)>, RuntimeError> {
        self.record(Call::RemoveCgroupTree(cgroups_path.into()));
        self.check("remove_cgroup_tree", cgroups_path)?;
        Ok(Vec::new())
    }

    fn remove_pod_cgroup(&self, cgroups_path: &str) {
        self.record(Call::RemovePodCgroup(cgroups_path.into()));
    }

    fn cgroup_memory(&self, cgroups_path: &str) -> Result<Option<CgroupMemory>, RuntimeError> {
        self.record(Call::CgroupMemory(cgroups_path.into()));
        self.check("cgroup_memory", cgroups_path)?;
        Ok(self.lock().memory.get(cgroups_path).cloned())
    }

    /// Nothing to read: every cgroup's CPU is unknown.
    fn cgroup_cpu(&self, cgroups_paths: &[String], _sample: Duration) -> Result<CpuSample, RuntimeError> {
        self.record(Call::CgroupCpu(cgroups_paths.to_vec()));
        self.check("cgroup_cpu", "")?;
        Ok(CpuSample { sample_millis: 0, cgroups: cgroups_paths.iter().map(|p| CgroupCpu { path: p.clone(), ..Default::default() }).collect() })
    }

    fn container_stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        self.record(Call::Stats(id.into()));
        self.check("stats", id)?;
        if !self.lock().containers.contains_key(id) {
            return Err(RuntimeError::Failed { bin: PathBuf::from("fake-runtime"), what: format!("events --stats {id}"), message: format!("container {id} does not exist") });
        }
        Ok(self.lock().stats.get(id).cloned().unwrap_or_default())
    }
}
