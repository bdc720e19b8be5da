//! Node-pressure eviction, upstream's eviction manager with hard thresholds: when the node's available memory
//! or the data disk's free share falls under its threshold (`--eviction-hard`, default
//! `memory.available<100Mi,nodefs.available<10%`), the node reports MemoryPressure / DiskPressure and the
//! kubelet evicts one pod per check (every 10 s) while the threshold is still met: the pod goes Failed with
//! reason `Evicted` and upstream's message, and its controller replaces it elsewhere. The condition stays True
//! until the threshold has not been met for `--eviction-pressure-transition-period` (default 5m), so it does not
//! flap. Which pod: upstream's ranking, first pods using more than they requested, then lower priority, then
//! larger use above the request. Critical pods (priority ≥ 2,000,000,000) and static pods are never evicted.
//!
//! [`Thresholds`], [`PressureTracker`] and [`rank`] are pure; [`pod_memory_bytes`] and [`pod_disk_bytes`] read
//! the usage.

use std::path::Path;
use std::time::{Duration, Instant};

use super::machine::MachineFacts;

/// Pods at or above this priority (system-node-critical and system-cluster-critical) are not evicted.
pub const CRITICAL_PRIORITY: i32 = 2_000_000_000;
/// Upstream's default `--eviction-pressure-transition-period`.
pub const DEFAULT_TRANSITION: Duration = Duration::from_secs(300);

/// The hard eviction thresholds (`--eviction-hard`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// `memory.available<...`: bytes.
    pub memory_available_bytes: u64,
    /// `nodefs.available<...%`: percent of the data disk.
    pub nodefs_available_percent: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { memory_available_bytes: 100 << 20, nodefs_available_percent: 10 }
    }
}

impl Thresholds {
    /// Parses upstream's form, e.g. `memory.available<100Mi,nodefs.available<10%`; signals not given keep
    /// their defaults.
    pub fn parse(s: &str) -> Result<Thresholds, String> {
        let mut t = Thresholds::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (signal, value) = part
                .split_once('<')
                .ok_or_else(|| format!("eviction threshold {part:?}: expected <signal><<quantity>, e.g. memory.available<100Mi"))?;
            match signal.trim() {
                "memory.available" => {
                    t.memory_available_bytes = crate::container::quantity::parse(value.trim())
                        .ok()
                        .filter(|b| *b >= 0.0)
                        .ok_or_else(|| format!("eviction threshold {part:?}: {:?} is not a quantity of memory (e.g. 100Mi)", value.trim()))?
                        .ceil() as u64
                }
                "nodefs.available" => {
                    t.nodefs_available_percent = value
                        .trim()
                        .strip_suffix('%')
                        .and_then(|p| p.parse::<u64>().ok())
                        .filter(|p| *p <= 100)
                        .ok_or_else(|| format!("eviction threshold {part:?}: nodefs.available takes a percentage (e.g. 10%)"))?
                }
                other => {
                    return Err(format!("eviction threshold {part:?}: signal {other:?} is not supported (memory.available, nodefs.available)"))
                }
            }
        }
        Ok(t)
    }
}

/// The resource a threshold guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Memory,
    Disk,
}

impl Signal {
    /// The resource name upstream's eviction message uses.
    pub fn resource(self) -> &'static str {
        match self {
            Signal::Memory => "memory",
            Signal::Disk => "ephemeral-storage",
        }
    }
}

/// What one check saw: which thresholds are met now, which conditions the node reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    pub memory_met: bool,
    pub disk_met: bool,
    pub memory_pressure: bool,
    pub disk_pressure: bool,
}

impl Observation {
    /// The signal to evict for now (memory first, as upstream reclaims it first).
    pub fn signal(&self) -> Option<Signal> {
        if self.memory_met {
            Some(Signal::Memory)
        } else if self.disk_met {
            Some(Signal::Disk)
        } else {
            None
        }
    }
}

/// Remembers when each threshold was last met, for the pressure transition period.
#[derive(Clone, Debug)]
pub struct PressureTracker {
    pub thresholds: Thresholds,
    pub transition: Duration,
    memory_last: Option<Instant>,
    disk_last: Option<Instant>,
}

impl PressureTracker {
    pub fn new(thresholds: Thresholds, transition: Duration) -> Self {
        PressureTracker { thresholds, transition, memory_last: None, disk_last: None }
    }

    pub fn observe(&mut self, m: &MachineFacts, now: Instant) -> Observation {
        let memory_met = m.memory_total_bytes > 0 && m.memory_available_bytes < self.thresholds.memory_available_bytes;
        let disk_met = m.disk_total_bytes > 0 && m.disk_free_bytes * 100 < self.thresholds.nodefs_available_percent * m.disk_total_bytes;
        if memory_met {
            self.memory_last = Some(now);
        }
        if disk_met {
            self.disk_last = Some(now);
        }
        let recent = |t: Option<Instant>| t.is_some_and(|t| now.duration_since(t) < self.transition);
        Observation { memory_met, disk_met, memory_pressure: memory_met || recent(self.memory_last), disk_pressure: disk_met || recent(self.disk_last) }
    }
}

/// A pod that may be evicted, with its use and request of the resource under pressure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub uid: String,
    /// `namespace/name`, for logs.
    pub name: String,
    pub priority: i32,
    pub usage: u64,
    pub request: u64,
}

/// Upstream's order: pods using more than they requested first, then lower priority, then more use above the
/// request. Returns the index of the pod to evict; critical pods are never chosen.
pub fn rank(cands: &[Candidate]) -> Option<usize> {
    cands
        .iter()
        .enumerate()
        .filter(|(_, c)| c.priority < CRITICAL_PRIORITY)
        .max_by(|(_, a), (_, b)| {
            let exceeds = |c: &Candidate| c.usage > c.request;
            exceeds(a)
                .cmp(&exceeds(b))
                .then(b.priority.cmp(&a.priority))
                .then((a.usage as i128 - a.request as i128).cmp(&(b.usage as i128 - b.request as i128)))
        })
        .map(|(i, _)| i)
}

fn mi(b: u64) -> String {
    format!("{}Mi", b >> 20)
}

/// Upstream's eviction message (status.message and the event).
pub fn message(signal: Signal, t: &Thresholds, m: &MachineFacts, victim: &Candidate) -> String {
    let (threshold, available) = match signal {
        Signal::Memory => (mi(t.memory_available_bytes), mi(m.memory_available_bytes)),
        Signal::Disk => (format!("{}%", t.nodefs_available_percent), mi(m.disk_free_bytes)),
    };
    format!(
        "The node was low on resource: {res}. Threshold quantity: {threshold}, available: {available}. Pod was using {used}, request is {req}, has larger consumption of {res}. ",
        res = signal.resource(),
        used = mi(victim.usage),
        req = mi(victim.request),
    )
}

/// A pod cgroup's working set (usage less inactive page cache), from cgroup v1's memory hierarchy or v2.
pub fn pod_memory_bytes(cgroup_root: &Path, rel: &str) -> u64 {
    let rel = rel.trim_start_matches('/');
    let stat_value = |stat: &str, key: &str| {
        stat.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse::<u64>().ok())).unwrap_or(0)
    };
    let v1 = cgroup_root.join("memory").join(rel);
    if let Ok(u) = std::fs::read_to_string(v1.join("memory.usage_in_bytes")) {
        let usage = u.trim().parse::<u64>().unwrap_or(0);
        let stat = std::fs::read_to_string(v1.join("memory.stat")).unwrap_or_default();
        return usage.saturating_sub(stat_value(&stat, "total_inactive_file"));
    }
    let v2 = cgroup_root.join(rel);
    if let Ok(u) = std::fs::read_to_string(v2.join("memory.current")) {
        let usage = u.trim().parse::<u64>().unwrap_or(0);
        let stat = std::fs::read_to_string(v2.join("memory.stat")).unwrap_or_default();
        return usage.saturating_sub(stat_value(&stat, "inactive_file"));
    }
    0
}

/// A pod's local disk use: its disk-backed emptyDirs and its container logs.
pub fn pod_disk_bytes(pod_dir: &Path, log_dir: &Path) -> u64 {
    crate::volume::empty_dir::usage_bytes(&pod_dir.join("volumes")) + crate::volume::empty_dir::usage_bytes(log_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(avail_mi: u64, disk_free_pct: u64) -> MachineFacts {
        MachineFacts {
            memory_total_bytes: 8 << 30,
            memory_available_bytes: avail_mi << 20,
            disk_total_bytes: 100 << 30,
            disk_free_bytes: disk_free_pct * (1 << 30),
            ..Default::default()
        }
    }

    #[test]
    fn thresholds_parse_upstream_syntax_and_say_what_is_wrong() {
        assert_eq!(Thresholds::parse("").expect("empty"), Thresholds::default());
        let t = Thresholds::parse("memory.available<1Gi, nodefs.available<15%").expect("parse");
        assert_eq!(t, Thresholds { memory_available_bytes: 1 << 30, nodefs_available_percent: 15 });
        let e = Thresholds::parse("memory.available>1Gi").expect_err("wrong operator");
        assert!(e.contains("expected <signal><<quantity>"), "{e}");
        let e = Thresholds::parse("imagefs.available<15%").expect_err("unsupported");
        assert!(e.contains("not supported") && e.contains("imagefs.available"), "{e}");
        let e = Thresholds::parse("nodefs.available<10Gi").expect_err("not a percentage");
        assert!(e.contains("percentage"), "{e}");
        let e = Thresholds::parse("memory.available<lots").expect_err("not a quantity");
        assert!(e.contains("not a quantity"), "{e}");
    }

    #[test]
    fn pressure_holds_for_the_transition_period_and_eviction_only_while_met() {
        let mut p = PressureTracker::new(Thresholds::default(), Duration::from_secs(30));
        let t0 = Instant::now();
        let o = p.observe(&facts(4000, 50), t0);
        assert_eq!(o, Observation::default());
        let o = p.observe(&facts(50, 50), t0 + Duration::from_secs(10));
        assert!(o.memory_met && o.memory_pressure && !o.disk_pressure);
        assert_eq!(o.signal(), Some(Signal::Memory));
        // recovered: still reported under pressure, but nothing more is evicted
        let o = p.observe(&facts(4000, 50), t0 + Duration::from_secs(20));
        assert!(!o.memory_met && o.memory_pressure);
        assert_eq!(o.signal(), None);
        let o = p.observe(&facts(4000, 50), t0 + Duration::from_secs(41));
        assert!(!o.memory_pressure, "clear once the transition period has passed");
        let o = p.observe(&facts(4000, 5), t0 + Duration::from_secs(50));
        assert!(o.disk_met && o.disk_pressure);
        assert_eq!(o.signal(), Some(Signal::Disk));
    }

    fn cand(uid: &str, priority: i32, usage: u64, request: u64) -> Candidate {
        Candidate { uid: uid.into(), name: format!("ns/{uid}"), priority, usage, request }
    }

    #[test]
    fn ranking_follows_upstream() {
        // over its request beats within it, even with a smaller use
        let c = [cand("within", 0, 900, 1000), cand("over", 0, 200, 100)];
        assert_eq!(rank(&c), Some(1));
        // both over: lower priority first
        let c = [cand("low", -10, 200, 100), cand("high", 10, 900, 100)];
        assert_eq!(rank(&c), Some(0));
        // same priority: larger use above the request
        let c = [cand("a", 0, 300, 100), cand("b", 0, 900, 100), cand("c", 0, 500, 0)];
        assert_eq!(rank(&c), Some(1));
        // critical pods never
        let c = [cand("crit", CRITICAL_PRIORITY, 900, 0)];
        assert_eq!(rank(&c), None);
        assert_eq!(rank(&[]), None);
    }

    #[test]
    fn message_names_the_resource_threshold_and_use() {
        let m = message(Signal::Memory, &Thresholds::default(), &facts(52, 50), &cand("hog", 0, 1500 << 20, 0));
        assert_eq!(
            m,
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi. Pod was using 1500Mi, request is 0Mi, has larger consumption of memory. "
        );
    }
}
