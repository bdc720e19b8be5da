//! A container cgroup's limits and current usage, read once for `events --stats`: memory, CPU and pids, from
//! the v1 hierarchies (memory, cpu, cpuacct, pids) or a cgroup2 directory. The JSON keeps runc's `types.Stats`
//! shape (`cpu.usage.total`, `memory.usage.{usage,limit}`, `pids.{current,limit}`) and adds what runc's has no
//! field for: the CPU limit (`cpu.limits.{quota,period,shares}`) and the directories read (`cgroupDirs`).
//!
//! Reads only; a file that is missing leaves its field out (null), never an error.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{read_key, Cgroup, Layout};

/// What `events --stats` prints under `data`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// CPU time used and the CPU limit.
    pub cpu: CpuStats,
    /// Memory usage, limit and OOM kills.
    pub memory: MemoryStats,
    /// Processes and their limit.
    pub pids: PidsStats,
    /// Controller (`memory`, `cpu`, `cpuacct`, `pids`; `unified` on v2) → the directory read.
    #[serde(rename = "cgroupDirs")]
    pub cgroup_dirs: std::collections::BTreeMap<String, PathBuf>,
}

/// The `cpu` part of [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuStats {
    /// CPU time used.
    pub usage: CpuUsage,
    /// The CFS quota and the shares or weight.
    pub limits: CpuLimits,
}

/// CPU time a cgroup used.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuUsage {
    /// Nanoseconds of CPU time (v1 `cpuacct.usage`, v2 `cpu.stat` usage_usec × 1000).
    pub total: Option<u64>,
}

/// A cgroup's CPU limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuLimits {
    /// CFS quota in µs per period; None when unlimited (v1 -1, v2 `max`).
    pub quota: Option<i64>,
    /// CFS period in µs.
    pub period: Option<u64>,
    /// v1 `cpu.shares`; on v2 the shares that give `cpu.weight` (the inverse of the OCI conversion is not
    /// exact, so v2 reports the weight in `weight` instead).
    pub shares: Option<u64>,
    /// v2 `cpu.weight`; None on v1.
    pub weight: Option<u64>,
}

/// The `memory` part of [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryStats {
    /// Bytes in use and the limit.
    pub usage: MemoryUsage,
    /// OOM kills in the cgroup (`memory.oom_control` on v1, `memory.events` on v2).
    pub oom_kill: u64,
}

/// A cgroup's memory use against its limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryUsage {
    /// Bytes charged to the cgroup (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub usage: Option<u64>,
    /// As the kernel reports it (v1's unlimited is 9223372036854771712); None for v2 `max`.
    pub limit: Option<u64>,
}

/// The `pids` part of [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PidsStats {
    /// Processes in the cgroup (`pids.current`).
    pub current: Option<u64>,
    /// None for `max`.
    pub limit: Option<u64>,
}

fn read_trim(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

fn read_u64(p: &Path) -> Option<u64> {
    read_trim(p)?.parse().ok()
}

/// `max` → None, a number → Some.
fn read_max(p: &Path) -> Option<u64> {
    let s = read_trim(p)?;
    if s == "max" {
        return None;
    }
    s.parse().ok()
}

impl Cgroup {
    /// The cgroup's limits and usage now.
    pub fn stats(&self) -> Stats {
        let mut st = Stats { memory: MemoryStats { oom_kill: self.oom_kills(), ..Default::default() }, ..Default::default() };
        match &self.layout {
            Layout::V2 { root } => {
                let d = root.join(&self.rel);
                st.cpu.usage.total = read_key(&d.join("cpu.stat"), "usage_usec").map(|u| u * 1000);
                if let Some(max) = read_trim(&d.join("cpu.max")) {
                    let mut it = max.split_whitespace();
                    st.cpu.limits.quota = it.next().and_then(|q| q.parse().ok());
                    st.cpu.limits.period = it.next().and_then(|p| p.parse().ok());
                }
                st.cpu.limits.weight = read_u64(&d.join("cpu.weight"));
                st.memory.usage.usage = read_u64(&d.join("memory.current"));
                st.memory.usage.limit = read_max(&d.join("memory.max"));
                st.pids.current = read_u64(&d.join("pids.current"));
                st.pids.limit = read_max(&d.join("pids.max"));
                st.cgroup_dirs.insert("unified".into(), d);
            }
            Layout::V1 { .. } => {
                let dir = |c: &str| self.layout.v1_root(c).map(|r| r.join(&self.rel));
                if let Some(d) = dir("cpu") {
                    st.cpu.limits.quota = read_trim(&d.join("cpu.cfs_quota_us")).and_then(|q| q.parse().ok()).filter(|q: &i64| *q >= 0);
                    st.cpu.limits.period = read_u64(&d.join("cpu.cfs_period_us"));
                    st.cpu.limits.shares = read_u64(&d.join("cpu.shares"));
                    st.cgroup_dirs.insert("cpu".into(), d);
                }
                if let Some(d) = dir("cpuacct") {
                    st.cpu.usage.total = read_u64(&d.join("cpuacct.usage"));
                    st.cgroup_dirs.insert("cpuacct".into(), d);
                }
                if let Some(d) = dir("memory") {
                    st.memory.usage.usage = read_u64(&d.join("memory.usage_in_bytes"));
                    st.memory.usage.limit = read_u64(&d.join("memory.limit_in_bytes"));
                    st.cgroup_dirs.insert("memory".into(), d);
                }
                if let Some(d) = dir("pids") {
                    st.pids.current = read_u64(&d.join("pids.current"));
                    st.pids.limit = read_max(&d.join("pids.max"));
                    st.cgroup_dirs.insert("pids".into(), d);
                }
            }
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, s: &str) {
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, s).expect("write");
    }

    #[test]
    fn v1_limits_and_usage_are_read_per_hierarchy() {
        let root = tempfile::tempdir().expect("tempdir");
        for h in ["cpu", "cpuacct", "memory", "pids"] {
            write(&root.path().join(h).join("cgroup.procs"), "");
        }
        let c = root.path().join("cpu/kubepods/pod1/c1");
        write(&c.join("cpu.cfs_quota_us"), "50000\n");
        write(&c.join("cpu.cfs_period_us"), "100000\n");
        write(&c.join("cpu.shares"), "512\n");
        write(&root.path().join("cpuacct/kubepods/pod1/c1/cpuacct.usage"), "123456\n");
        let m = root.path().join("memory/kubepods/pod1/c1");
        write(&m.join("memory.usage_in_bytes"), "4096\n");
        write(&m.join("memory.limit_in_bytes"), "67108864\n");
        write(&m.join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
        let p = root.path().join("pids/kubepods/pod1/c1");
        write(&p.join("pids.current"), "2\n");
        write(&p.join("pids.max"), "max\n");
        let cg = Cgroup::new(Layout::detect(root.path()), "kubepods/pod1/c1".into());
        let st = cg.stats();
        assert_eq!(st.cpu.limits, CpuLimits { quota: Some(50000), period: Some(100000), shares: Some(512), weight: None });
        assert_eq!(st.cpu.usage.total, Some(123456));
        assert_eq!(st.memory.usage, MemoryUsage { usage: Some(4096), limit: Some(67108864) });
        assert_eq!(st.memory.oom_kill, 1);
        assert_eq!(st.pids, PidsStats { current: Some(2), limit: None });
        assert_eq!(st.cgroup_dirs["memory"], m);
        // an unlimited quota is None, and the JSON keeps runc's field names
        write(&c.join("cpu.cfs_quota_us"), "-1\n");
        let v = serde_json::to_value(cg.stats()).expect("json");
        assert_eq!(v["cpu"]["limits"]["quota"], serde_json::Value::Null);
        assert_eq!(v["memory"]["usage"]["limit"], 67108864);
        assert_eq!(v["pids"]["current"], 2);
    }

    #[test]
    fn v2_limits_and_usage_come_from_one_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        write(&root.path().join("cgroup.controllers"), "cpu memory pids\n");
        let d = root.path().join("k/c");
        write(&d.join("cpu.stat"), "usage_usec 7\nuser_usec 5\n");
        write(&d.join("cpu.max"), "max 100000\n");
        write(&d.join("cpu.weight"), "79\n");
        write(&d.join("memory.current"), "8192\n");
        write(&d.join("memory.max"), "max\n");
        write(&d.join("pids.current"), "1\n");
        write(&d.join("pids.max"), "64\n");
        let st = Cgroup::new(Layout::detect(root.path()), "k/c".into()).stats();
        assert_eq!(st.cpu.usage.total, Some(7000));
        assert_eq!(st.cpu.limits, CpuLimits { quota: None, period: Some(100000), shares: None, weight: Some(79) });
        assert_eq!(st.memory.usage, MemoryUsage { usage: Some(8192), limit: None });
        assert_eq!(st.pids, PidsStats { current: Some(1), limit: Some(64) });
    }
}
