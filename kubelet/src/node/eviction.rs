//! Node-pressure eviction, upstream's eviction manager with hard thresholds: when the node's available memory
//! or the data disk's free share falls under its threshold (`--eviction-hard`, default
//! `memory.available<100Mi,nodefs.available<10%`), the node reports MemoryPressure / DiskPressure and the
//! kubelet evicts one pod per check (every 10 s) while the threshold is still met: the pod goes Failed with
//! reason `Evicted` and upstream's message, and its controller replaces it elsewhere. The condition stays True
//! until the threshold has not been met for `--eviction-pressure-transition-period` (default 5m), so it does not
//! flap. Which pod: upstream's ranking, first pods using more than they requested, then lower priority, then
//! larger use above the request. Critical pods (priority ≥ 2,000,000,000) and static pods are never evicted.
//!
//! The message is upstream's `evictionMessage` word for word (pkg/kubelet/eviction/helpers.go): "The node was low
//! on resource: memory. Threshold quantity: 100Mi, available: 52Mi. Container c was using 1500Mi, request is 0,
//! has larger consumption of memory. ", one container sentence per container using more than it requested, the
//! quantities printed as Kubernetes prints them (`resource.Quantity`'s canonical form).
//!
//! Test hooks: `--eviction-memory-signal-file` (hidden) names a file whose quantity (`512Mi`, or bytes) is read in
//! place of /proc/meminfo's MemAvailable on every check, so a test sets the pressure exactly instead of depending
//! on the host's free memory ([`memory_signal`]); `--eviction-nodefs-signal-file` (hidden) does the same for the
//! data disk's free space (`50%` of its capacity, or bytes), so no test depends on the host's free disk
//! ([`nodefs_signal`]). The image store lives on the data disk, so this is upstream's imagefs signal too (one
//! filesystem: upstream then reads imagefs as nodefs). [`read_signals`] reads the machine with both applied.
//!
//! [`Thresholds`], [`PressureTracker`] and [`rank`] are pure; [`pod_disk_bytes`] reads disk usage, and memory
//! usage comes from the runtime client (`RuntimeClient::pod_memory_bytes`), the one reader of cgroup files.

use std::path::Path;
use std::time::{Duration, Instant};

use super::machine::{self, MachineFacts};

/// Pods at or above this priority (system-node-critical and system-cluster-critical) are not evicted.
pub const CRITICAL_PRIORITY: i32 = 2_000_000_000;
/// How long the eviction manager waits for an evicted pod's resources to be reclaimed before it may evict
/// another (upstream's podCleanupTimeout).
pub const POD_CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Upstream's default `--eviction-pressure-transition-period`.
pub const DEFAULT_TRANSITION: Duration = Duration::from_secs(300);

/// The hard eviction thresholds (`--eviction-hard`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// `memory.available<...`: bytes.
    pub memory_available_bytes: u64,
    /// The same threshold as upstream prints the quantity given (`100Mi`; `1024Mi` prints `1Gi`).
    pub memory_available_quantity: String,
    /// `nodefs.available<...%`: percent of the data disk.
    pub nodefs_available_percent: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { memory_available_bytes: 100 << 20, memory_available_quantity: "100Mi".into(), nodefs_available_percent: 10 }
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
                    t.memory_available_bytes = rkube_apimachinery::quantity::approximate_f64(value.trim())
                        .ok()
                        .filter(|b| *b >= 0.0)
                        .ok_or_else(|| format!("eviction threshold {part:?}: {:?} is not a quantity of memory (e.g. 100Mi)", value.trim()))?
                        .ceil() as u64;
                    t.memory_available_quantity = canonical_quantity(value.trim());
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
    /// `memory.available`: the node's available memory; pods are measured by their cgroups' working set.
    Memory,
    /// `nodefs.available`: the data disk's free space; pods are measured by their directories, writable layers
    /// and logs (upstream's ephemeral-storage).
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
    /// Available memory is under its threshold now.
    pub memory_met: bool,
    /// The data disk's free share is under its threshold now.
    pub disk_met: bool,
    /// The MemoryPressure condition: met now, or within the transition period.
    pub memory_pressure: bool,
    /// The DiskPressure condition: met now, or within the transition period.
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
    /// The thresholds checked.
    pub thresholds: Thresholds,
    /// How long a condition stays True after its threshold was last met (`--eviction-pressure-transition-period`).
    pub transition: Duration,
    memory_last: Option<Instant>,
    disk_last: Option<Instant>,
}

impl PressureTracker {
    /// A tracker that has seen no threshold met yet.
    pub fn new(thresholds: Thresholds, transition: Duration) -> Self {
        PressureTracker { thresholds, transition, memory_last: None, disk_last: None }
    }

    /// One check of the machine's figures at `now`: which thresholds are met, and which conditions hold given
    /// when they were last met. A figure of 0 total (unreadable) never meets its threshold.
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

/// One container of the pod chosen, for the message: its use of the resource and its request as the spec
/// wrote it (None: no request, which upstream prints as `0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerUse {
    /// The container's name.
    pub name: String,
    /// Its use of the resource, in bytes.
    pub usage: u64,
    /// Its request of the resource, as the spec wrote the quantity.
    pub request: Option<String>,
}

/// A pod that may be evicted, with its use and request of the resource under pressure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The pod's UID, which the eviction is sent by.
    pub uid: String,
    /// `namespace/name`, for logs.
    pub name: String,
    /// `spec.priority` (0 when unset); at or above [`CRITICAL_PRIORITY`] never evicted.
    pub priority: i32,
    /// The pod's use of the resource under pressure, in bytes.
    pub usage: u64,
    /// The sum of its containers' requests of that resource, in bytes (0: none).
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

/// Bytes as upstream prints a BinarySI `resource.Quantity`: with the largest suffix of 1024 that divides them
/// exactly (`1536Mi`, `4Gi`), else (or under 1024) plain digits.
pub fn binary_si(bytes: u64) -> String {
    if bytes < 1024 {
        return bytes.to_string();
    }
    let (mut v, mut i) = (bytes, 0);
    while i < 6 && v % 1024 == 0 {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][i])
}

/// Whole units as upstream prints a DecimalSI `resource.Quantity`: the largest suffix of 1000 that divides them
/// exactly (`500M`, `1500k`).
fn decimal_si(units: u64) -> String {
    if units == 0 {
        return "0".into();
    }
    let (mut v, mut i) = (units, 0);
    while i < 6 && v % 1000 == 0 {
        v /= 1000;
        i += 1;
    }
    format!("{v}{}", ["", "k", "M", "G", "T", "P", "E"][i])
}

/// A quantity as written (`64Mi`, `0.5Gi`, `500M`) printed as upstream's `Quantity.String()` does: canonical in
/// the format it was written in (`0.5Gi` → `512Mi`, `1024Mi` → `1Gi`). A form this does not know (fractions of
/// a byte, exponents) is printed as written.
pub fn canonical_quantity(q: &str) -> String {
    let q = q.trim();
    let Ok(v) = rkube_apimachinery::quantity::approximate_f64(q) else { return q.to_string() };
    if v < 0.0 || v.fract() != 0.0 || q.contains(['e', 'E']) {
        return q.to_string();
    }
    let v = v as u64;
    if q.ends_with('i') && v >= 1024 {
        binary_si(v)
    } else {
        decimal_si(v)
    }
}

/// The threshold quantity upstream prints for a signal: the quantity given, or a percentage of the capacity in
/// bytes (computed as upstream does, in float32 percent).
fn threshold_quantity(signal: Signal, t: &Thresholds, m: &MachineFacts) -> String {
    match signal {
        Signal::Memory => t.memory_available_quantity.clone(),
        Signal::Disk => {
            let fraction = t.nodefs_available_percent as f32 / 100.0;
            binary_si((m.disk_total_bytes as f64 * f64::from(fraction)) as u64)
        }
    }
}

/// Upstream's eviction message (status.message and the event): the resource, the threshold and what was
/// available, then each container of the pod that used more than it requested.
pub fn message(signal: Signal, t: &Thresholds, m: &MachineFacts, containers: &[ContainerUse]) -> String {
    let res = signal.resource();
    let available = match signal {
        Signal::Memory => m.memory_available_bytes,
        Signal::Disk => m.disk_free_bytes,
    };
    let mut msg = format!("The node was low on resource: {res}. Threshold quantity: {}, available: {}. ", threshold_quantity(signal, t, m), binary_si(available));
    for c in containers {
        let request_bytes = c.request.as_deref().and_then(|r| rkube_apimachinery::quantity::approximate_f64(r).ok()).unwrap_or(0.0);
        if c.usage as f64 > request_bytes {
            let request = c.request.as_deref().map(canonical_quantity).unwrap_or_else(|| "0".into());
            msg.push_str(&format!("Container {} was using {}, request is {request}, has larger consumption of {res}. ", c.name, binary_si(c.usage)));
        }
    }
    msg
}

/// The available memory a test sets through `--eviction-memory-signal-file`: the file's quantity (`512Mi`, or
/// bytes), read in place of /proc/meminfo's MemAvailable.
pub fn memory_signal(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("eviction memory signal file {}: {e}", path.display()))?;
    rkube_apimachinery::quantity::approximate_f64(text.trim())
        .ok()
        .filter(|b| *b >= 0.0)
        .map(|b| b.ceil() as u64)
        .ok_or_else(|| format!("eviction memory signal file {}: {:?} is not a quantity of memory (e.g. 512Mi)", path.display(), text.trim()))
}

/// The data disk's free bytes a test sets through `--eviction-nodefs-signal-file`: the file holds a percentage of
/// the disk's capacity (`50%`) or a quantity of bytes (`20Gi`), read in place of statvfs's free blocks.
/// `capacity_bytes` is the disk's real size (the percentage's base; the threshold stays a share of it).
pub fn nodefs_signal(path: &Path, capacity_bytes: u64) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("eviction nodefs signal file {}: {e}", path.display()))?;
    let v = text.trim();
    let bytes = match v.strip_suffix('%') {
        Some(pct) => pct
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=100.0).contains(p))
            .map(|p| (capacity_bytes as f64 * p / 100.0) as u64),
        None => rkube_apimachinery::quantity::approximate_f64(v).ok().filter(|b| *b >= 0.0).map(|b| b.ceil() as u64),
    };
    bytes.ok_or_else(|| {
        format!("eviction nodefs signal file {}: {v:?} is neither a percentage of the disk (e.g. 50%) nor a quantity of bytes (e.g. 20Gi)", path.display())
    })
}

/// This machine's facts as the eviction manager sees them: read from `/` and the data disk, with the test hooks'
/// files (when given) in place of MemAvailable and the data disk's free space. An unreadable file leaves the
/// host's reading, with a warning.
pub fn read_signals(data_dir: &Path, memory_file: Option<&Path>, nodefs_file: Option<&Path>) -> MachineFacts {
    apply_signal_files(machine::read(Path::new("/"), data_dir), memory_file, nodefs_file)
}

/// `facts` with the test hooks' files applied (see [`read_signals`]).
pub fn apply_signal_files(mut facts: MachineFacts, memory_file: Option<&Path>, nodefs_file: Option<&Path>) -> MachineFacts {
    if let Some(path) = memory_file {
        match memory_signal(path) {
            Ok(bytes) => facts.memory_available_bytes = bytes,
            Err(e) => tracing::warn!(error = %e, "eviction memory signal file unreadable; using MemAvailable"),
        }
    }
    if let Some(path) = nodefs_file {
        match nodefs_signal(path, facts.disk_total_bytes) {
            Ok(bytes) => facts.disk_free_bytes = bytes,
            Err(e) => tracing::warn!(error = %e, "eviction nodefs signal file unreadable; using the data disk's free space"),
        }
    }
    facts
}

/// Entries of `dir` named `<short uid>-<name>-<restart>`: the newest id of each container name.
pub fn newest_container_ids(dir: &Path, short_uid: &str) -> std::collections::BTreeMap<String, String> {
    let ids = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned());
    crate::runtime_client::newest_by_name(ids, short_uid)
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
        assert_eq!(t, Thresholds { memory_available_bytes: 1 << 30, memory_available_quantity: "1Gi".into(), nodefs_available_percent: 15 });
        assert_eq!(Thresholds::parse("memory.available<1024Mi").expect("parse").memory_available_quantity, "1Gi");
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

    fn used(name: &str, usage: u64, request: Option<&str>) -> ContainerUse {
        ContainerUse { name: name.into(), usage, request: request.map(str::to_string) }
    }

    #[test]
    fn message_is_upstreams_word_for_word() {
        // one container over its (absent) request: upstream prints a zero request as "0"
        let m = message(Signal::Memory, &Thresholds::default(), &facts(52, 50), &[used("hog", 1500 << 20, None)]);
        assert_eq!(
            m,
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi. Container hog was using 1500Mi, request is 0, has larger consumption of memory. "
        );
        // only the containers over their requests are named, each with its request as upstream prints it
        let t = Thresholds::parse("memory.available<1024Mi").expect("parse");
        let m = message(
            Signal::Memory,
            &t,
            &facts(700, 50),
            &[used("within", 10 << 20, Some("64Mi")), used("over", (1 << 30) + 4096, Some("0.5Gi")), used("odd", 1_000_001, Some("500k"))],
        );
        assert_eq!(
            m,
            "The node was low on resource: memory. Threshold quantity: 1Gi, available: 700Mi. \
             Container over was using 1048580Ki, request is 512Mi, has larger consumption of memory. \
             Container odd was using 1000001, request is 500k, has larger consumption of memory. "
        );
        // nodefs: the percentage becomes bytes of the capacity, computed in float32 percent as upstream
        let m = message(Signal::Disk, &Thresholds::default(), &facts(4000, 5), &[used("w", 3 << 30, None)]);
        assert_eq!(
            m,
            "The node was low on resource: ephemeral-storage. Threshold quantity: 10737418400, available: 5Gi. \
             Container w was using 3Gi, request is 0, has larger consumption of ephemeral-storage. "
        );
    }

    #[test]
    fn quantities_print_as_kubernetes_prints_them() {
        for (bytes, want) in [(0, "0"), (512, "512"), (1024, "1Ki"), (1536, "1536"), (3 << 20, "3Mi"), ((1 << 30) + (1 << 20), "1025Mi"), (5 << 40, "5Ti")] {
            assert_eq!(binary_si(bytes), want, "{bytes}");
        }
        for (q, want) in [("64Mi", "64Mi"), ("0.5Gi", "512Mi"), ("1024Ki", "1Mi"), ("500M", "500M"), ("1500000", "1500k"), ("0.5Ki", "512"), ("0", "0")] {
            assert_eq!(canonical_quantity(q), want, "{q}");
        }
    }

    #[test]
    fn the_test_hook_reads_a_quantity_and_says_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("avail");
        std::fs::write(&f, "512Mi\n").expect("write");
        assert_eq!(memory_signal(&f), Ok(512 << 20));
        std::fs::write(&f, "lots").expect("write");
        assert!(memory_signal(&f).expect_err("not a quantity").contains("\"lots\" is not a quantity"));
        assert!(memory_signal(&dir.path().join("missing")).expect_err("missing").contains("missing"));
    }

    #[test]
    fn the_nodefs_hook_reads_a_share_or_a_quantity_and_says_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("nodefs");
        std::fs::write(&f, "50%\n").expect("write");
        assert_eq!(nodefs_signal(&f, 100 << 30), Ok(50 << 30));
        std::fs::write(&f, "20Gi").expect("write");
        assert_eq!(nodefs_signal(&f, 100 << 30), Ok(20 << 30));
        for bad in ["150%", "lots", "-1Gi"] {
            std::fs::write(&f, bad).expect("write");
            let e = nodefs_signal(&f, 100 << 30).expect_err(bad);
            assert!(e.contains(&format!("{bad:?} is neither a percentage")) && e.contains("e.g. 50%"), "{e}");
        }
        assert!(nodefs_signal(&dir.path().join("missing"), 1).expect_err("missing").contains("missing"));
    }

    /// The injected disk signal drives DiskPressure end to end inside the kubelet: read through
    /// [`read_signals`] on a real data dir, observed against the default `nodefs.available<10%`, reported in the
    /// Node's conditions (which the node lifecycle controller turns into the disk-pressure taint), and chosen as
    /// the signal to evict for; above the threshold, none of it, whatever the host's real free disk is.
    #[test]
    fn the_injected_nodefs_signal_drives_disk_pressure() {
        use crate::node::status::{node_status, NodeInputs};
        let dir = tempfile::tempdir().expect("tempdir");
        let signal = dir.path().join("nodefs.available");
        let disk_pressure = |facts: &MachineFacts, o: Observation| {
            let i = NodeInputs { ready: true, pressure: Some((o.memory_pressure, o.disk_pressure)), ..Default::default() };
            let s = node_status(facts, &i, None, chrono::Utc::now());
            let c = s.conditions.expect("conditions").into_iter().find(|c| c.type_ == "DiskPressure").expect("DiskPressure");
            (c.status, c.reason.unwrap_or_default())
        };
        let mut p = PressureTracker::new(Thresholds::default(), Duration::from_secs(30));
        let t0 = Instant::now();
        // plenty free by the signal
        std::fs::write(&signal, "60%").expect("write");
        let facts = read_signals(dir.path(), None, Some(&signal));
        assert!(facts.disk_total_bytes > 0, "the data dir's disk is read");
        assert_eq!(facts.disk_free_bytes, (facts.disk_total_bytes as f64 * 0.6) as u64);
        let o = p.observe(&facts, t0);
        assert!(!o.disk_met && !o.disk_pressure && o.signal().is_none(), "{o:?}");
        assert_eq!(disk_pressure(&facts, o), ("False".into(), "KubeletHasNoDiskPressure".into()));
        // under the 10% threshold by the signal
        std::fs::write(&signal, "5%").expect("write");
        let facts = read_signals(dir.path(), None, Some(&signal));
        let o = p.observe(&facts, t0 + Duration::from_secs(10));
        assert!(o.disk_met && o.disk_pressure, "{o:?}");
        assert_eq!(o.signal(), Some(Signal::Disk), "evicts for the disk");
        assert_eq!(disk_pressure(&facts, o), ("True".into(), "KubeletHasDiskPressure".into()));
        assert!(message(Signal::Disk, &p.thresholds, &facts, &[]).starts_with("The node was low on resource: ephemeral-storage."));
        // back above it: nothing more evicted, and the condition clears after the transition period
        std::fs::write(&signal, "60%").expect("write");
        let facts = read_signals(dir.path(), None, Some(&signal));
        let o = p.observe(&facts, t0 + Duration::from_secs(20));
        assert!(!o.disk_met && o.disk_pressure && o.signal().is_none(), "{o:?}");
        let o = p.observe(&facts, t0 + Duration::from_secs(41));
        assert_eq!(disk_pressure(&facts, o), ("False".into(), "KubeletHasNoDiskPressure".into()));
    }
}
