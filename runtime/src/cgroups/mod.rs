//! Cgroups behind one interface for the three layouts a node can have: v1 (a hierarchy per controller), v2
//! (unified), and the hybrid layout (v1 controllers plus a cgroup2 mount at `unified/`, as on this machine).
//!
//! Owns: detecting the layout under a cgroup root (a parameter, so a tempdir can stand in for tests), creating a
//! container's cgroup, writing `linux.resources`, moving a process in, listing and signalling its processes,
//! reading OOM kills, and removing it; and ([`tree`]) measuring and removing cgroups that are no container's (a
//! pod's parent cgroup, a node's `kubepods` tree). It does not talk to systemd: a `slice:prefix:name` cgroupsPath is mapped to
//! the path systemd would use.
//!
//! Why not cgroups-rs: it probes and parses every hierarchy on each load, which costs more than a whole container
//! start here, and it does not model the hybrid layout. The files written are few and documented by the kernel.

pub mod devices;
pub mod stats;
pub mod tree;
pub mod v1;
pub mod v2;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

/// Errors from cgroup operations, each naming the file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup directory could not be made.
    #[error("create cgroup {path}: {source}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A control file refused a value.
    #[error("write {value:?} to {path}: {source}")]
    Write {
        /// The control file.
        path: PathBuf,
        /// The value written.
        value: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A control file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The control file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A cgroup directory could not be removed.
    #[error("remove cgroup {path}: {source} (processes still inside?)")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A resource value out of range or inconsistent.
    #[error("linux.resources.{field}: {reason}")]
    Invalid {
        /// The resources field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A `cgroupsPath` that is not a cgroup below the root.
    #[error("linux.cgroupsPath {path:?}: {reason}")]
    BadPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The host lacks the controller or file a resource needs.
    #[error("linux.resources.{field}: cannot set {controller} limit: {reason}")]
    Unsupported {
        /// The resources field.
        field: String,
        /// The controller it needs.
        controller: &'static str,
        /// What is missing.
        reason: String,
    },
}

/// The cgroup layout found under a root (normally `/sys/fs/cgroup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One hierarchy per controller: `(name, mountpoint)`; `unified` is the hybrid cgroup2 mount when present.
    V1 {
        /// Each controller's hierarchy: its name and mountpoint.
        hierarchies: Vec<(String, PathBuf)>,
        /// The hybrid layout's cgroup2 mount.
        unified: Option<PathBuf>,
    },
    /// A single cgroup2 hierarchy.
    V2 {
        /// Its mountpoint.
        root: PathBuf,
    },
}

impl Layout {
    /// Detects the layout under `root`: cgroup2 if `root/cgroup.controllers` exists, otherwise v1 with each
    /// directory a hierarchy (a `unified` directory holding `cgroup.controllers` is the hybrid cgroup2 part).
    pub fn detect(root: &Path) -> Layout {
        if root.join("cgroup.controllers").exists() {
            return Layout::V2 { root: root.to_path_buf() };
        }
        let mut hierarchies = Vec::new();
        let mut unified = None;
        if let Ok(rd) = fs::read_dir(root) {
            for e in rd.flatten() {
                let Ok(ft) = e.file_type() else { continue };
                if !ft.is_dir() {
                    continue; // symlinks like cpu,cpuacct -> cpu are aliases of a real hierarchy
                }
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                if name == "unified" && path.join("cgroup.controllers").exists() {
                    unified = Some(path);
                } else if path.join("cgroup.procs").exists() {
                    hierarchies.push((name, path));
                }
            }
        }
        hierarchies.sort();
        Layout::V1 { hierarchies, unified }
    }

    /// True when the host has controller `name` where this layout writes it: a v1 hierarchy (alone or
    /// co-mounted, `cpu,cpuacct`), or the cgroup2 root's `cgroup.controllers` (the hybrid `unified` mount counts
    /// for hugetlb only, the one controller written there).
    pub fn has_controller(&self, name: &str) -> bool {
        let in_file = |f: &Path| fs::read_to_string(f).map(|c| c.split_whitespace().any(|x| x == name)).unwrap_or(false);
        match self {
            Layout::V2 { root } => in_file(&root.join("cgroup.controllers")),
            Layout::V1 { hierarchies, unified } => {
                hierarchies.iter().any(|(h, _)| h.split(',').any(|x| x == name))
                    || (name == "hugetlb" && unified.as_ref().is_some_and(|u| in_file(&u.join("cgroup.controllers"))))
            }
        }
    }

    /// The root directory of the v1 hierarchy holding `controller`.
    pub fn v1_root(&self, controller: &str) -> Option<&Path> {
        match self {
            Layout::V1 { hierarchies, .. } => {
                hierarchies.iter().find(|(h, _)| h.split(',').any(|x| x == controller)).map(|(_, p)| p.as_path())
            }
            Layout::V2 { .. } => None,
        }
    }

    /// "v1", "v2" or "hybrid", for messages and `features`.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::V2 { .. } => "v2",
            Layout::V1 { unified: Some(_), .. } => "hybrid",
            Layout::V1 { .. } => "v1",
        }
    }
}

/// Refuses, before anything is made, every limit in `res` that this host cannot apply: a controller it lacks
/// (blkio without the blkio hierarchy, net_cls, rdma, ...), a knob its kernel lacks (blkio weights without a
/// weighting I/O scheduler), or a field the layout has no place for (`unified` on v1, realtime and net_cls on
/// v2). runc and crun refuse these too; dropping them would run the container without the limits it asked for.
pub fn check(layout: &Layout, res: &LinuxResources) -> Result<(), CgroupError> {
    let v2 = matches!(layout, Layout::V2 { .. });
    let lname = layout.name();
    let need = |field: &str, controller: &'static str| -> Result<(), CgroupError> {
        if layout.has_controller(controller) {
            return Ok(());
        }
        Err(CgroupError::Unsupported {
            field: field.to_string(),
            controller,
            reason: format!("this host has no {controller} cgroup controller (cgroup {lname}); remove the limit or enable the controller"),
        })
    };
    let refuse = |field: &str, controller: &'static str, reason: String| {
        Err(CgroupError::Unsupported { field: field.to_string(), controller, reason })
    };
    if let Some(m) = res.memory() {
        if m.limit().is_some() || m.reservation().is_some() || m.swap().is_some() || m.swappiness().is_some() || m.disable_oom_killer().is_some() {
            need("memory", "memory")?;
        }
    }
    if let Some(c) = res.cpu() {
        if c.shares().is_some() || c.quota().is_some() || c.period().is_some() || c.burst().is_some() || c.idle().is_some() {
            need("cpu", "cpu")?;
        }
        if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
            if v2 {
                return refuse("cpu.realtimeRuntime", "cpu", "cgroup v2 has no realtime cpu knobs".into());
            }
            need("cpu.realtimeRuntime", "cpu")?;
        }
        if c.idle().is_some() && !v2 {
            return refuse("cpu.idle", "cpu", format!("cpu.idle needs cgroup v2 (this host is cgroup {lname})"));
        }
        if c.cpus().is_some() || c.mems().is_some() {
            need("cpu.cpus", "cpuset")?;
        }
    }
    if res.pids().is_some() {
        need("pids", "pids")?;
    }
    if let Some(b) = res.block_io() {
        let weights = b.weight().is_some() || b.leaf_weight().is_some() || b.weight_device().as_ref().is_some_and(|v| !v.is_empty());
        let throttles = [b.throttle_read_bps_device(), b.throttle_write_bps_device(), b.throttle_read_iops_device(), b.throttle_write_iops_device()]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()));
        if weights || throttles {
            need("blockIO", if v2 { "io" } else { "blkio" })?;
        }
        if weights && !v2 {
            let root = layout.v1_root("blkio").unwrap_or(Path::new("/"));
            if !root.join("blkio.weight").exists() && !root.join("blkio.bfq.weight").exists() {
                return refuse(
                    "blockIO.weight",
                    "blkio",
                    format!("{} has neither blkio.weight nor blkio.bfq.weight: the block devices' I/O scheduler does not do weights (use BFQ, or only throttle limits)", root.display()),
                );
            }
        }
    }
    if res.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) {
        need("hugepageLimits", "hugetlb")?;
    }
    if let Some(n) = res.network() {
        if n.class_id().is_some() {
            if v2 {
                return refuse("network.classID", "net_cls", "cgroup v2 has no net_cls controller".into());
            }
            need("network.classID", "net_cls")?;
        }
        if n.priorities().as_ref().is_some_and(|v| !v.is_empty()) {
            if v2 {
                return refuse("network.priorities", "net_prio", "cgroup v2 has no net_prio controller".into());
            }
            need("network.priorities", "net_prio")?;
        }
    }
    if res.rdma().as_ref().is_some_and(|v| !v.is_empty()) {
        need("rdma", "rdma")?;
    }
    if res.devices().as_ref().is_some_and(|v| !v.is_empty()) && !v2 {
        // Never run without the device allowlist asked for: it is what keeps the host's disks out.
        need("devices", "devices")?;
    }
    if let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) {
        if !v2 {
            return refuse("unified", "cgroup2", format!("invalid configuration: cannot use unified on cgroup v1 (this host is cgroup {lname})"));
        }
        for k in u.keys() {
            let Some((controller, _)) = k.split_once('.') else {
                return Err(CgroupError::Invalid { field: "unified", reason: format!("{k:?} is not a cgroup file name") });
            };
            if controller != "cgroup" && !layout.has_controller(controller) {
                return refuse(&format!("unified.{k}"), "cgroup2", format!("this host's cgroup2 root has no {controller:?} controller"));
            }
        }
    }
    Ok(())
}

/// One line of `rdma.max` (the same on v1 and v2): `mlx4_0 hca_handle=2 hca_object=2000`.
pub(crate) fn rdma_line(dev: &str, l: &oci_spec::runtime::LinuxRdma) -> String {
    let v = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_else(|| "max".into());
    format!("{dev} hca_handle={} hca_object={}", v(l.hca_handles()), v(l.hca_objects()))
}

/// The parent of containers created without a `cgroupsPath` (`rkube/<id>`); removed with its last container.
pub const DEFAULT_PARENT: &str = "rkube";

/// Turns an OCI `cgroupsPath` into a path relative to each hierarchy's root: taken as it is (a leading `/` or
/// not), [`DEFAULT_PARENT`]`/<id>` when empty; the systemd form `slice:prefix:name` maps to
/// `slice/prefix-name.scope`.
pub fn resolve_path(cgroups_path: Option<&str>, id: &str, systemd: bool) -> Result<PathBuf, CgroupError> {
    let raw = cgroups_path.unwrap_or("");
    let bad = |reason: &str| CgroupError::BadPath { path: raw.to_string(), reason: reason.to_string() };
    let rel = if systemd || (raw.matches(':').count() == 2 && !raw.starts_with('/')) {
        let parts: Vec<&str> = raw.split(':').collect();
        if raw.is_empty() {
            PathBuf::from(format!("system.slice/rkube-{id}.scope"))
        } else if parts.len() != 3 {
            return Err(bad("systemd cgroup paths have the form slice:prefix:name"));
        } else {
            let slice = if parts[0].is_empty() { "system.slice" } else { parts[0] };
            let name = if parts[2].ends_with(".slice") {
                parts[2].to_string()
            } else {
                format!("{}-{}.scope", parts[1], parts[2])
            };
            // A nested slice like a-b.slice lives in a.slice/a-b.slice.
            let mut dir = PathBuf::new();
            let base = slice.trim_end_matches(".slice");
            let mut acc = String::new();
            for (i, part) in base.split('-').enumerate() {
                if i > 0 {
                    acc.push('-');
                }
                acc.push_str(part);
                dir.push(format!("{acc}.slice"));
            }
            dir.join(name)
        }
    } else if raw.is_empty() {
        Path::new(DEFAULT_PARENT).join(id)
    } else {
        PathBuf::from(raw.trim_start_matches('/'))
    };
    for c in rel.components() {
        if !matches!(c, std::path::Component::Normal(_)) {
            return Err(bad("must not contain '..' or '.' components"));
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(bad("must name a cgroup below the root, not the root itself"));
    }
    Ok(rel)
}

/// A container's cgroup in every hierarchy of a layout.
#[derive(Debug, Clone)]
pub struct Cgroup {
    /// The hierarchies it lives in.
    pub layout: Layout,
    /// Path relative to each hierarchy's root.
    pub rel: PathBuf,
}

impl Cgroup {
    /// The cgroup at `rel` below each hierarchy of `layout` (nothing is created).
    pub fn new(layout: Layout, rel: PathBuf) -> Self {
        Cgroup { layout, rel }
    }

    /// Every directory this cgroup occupies (one per v1 hierarchy, plus the hybrid unified one; one on v2).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V2 { root } => vec![root.join(&self.rel)],
            Layout::V1 { hierarchies, unified } => {
                let mut v: Vec<PathBuf> = hierarchies.iter().map(|(_, p)| p.join(&self.rel)).collect();
                if let Some(u) = unified {
                    v.push(u.join(&self.rel));
                }
                v
            }
        }
    }

    /// The directory used to list and signal processes.
    pub fn primary_dir(&self) -> PathBuf {
        match &self.layout {
            Layout::V2 { root } => root.join(&self.rel),
            Layout::V1 { hierarchies, unified } => hierarchies
                .iter()
                .find(|(n, _)| n == "pids" || n == "memory")
                .or(hierarchies.first())
                .map(|(_, p)| p.join(&self.rel))
                .or_else(|| unified.as_ref().map(|u| u.join(&self.rel)))
                .unwrap_or_default(),
        }
    }

    /// Creates the cgroup and writes `resources`. An empty parent removed by someone else while this runs (its
    /// owner cleaning up) is made again.
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let mut tries = 0;
        loop {
            match self.create_once(resources) {
                // NotFound: the parent went before mkdir or open; ENODEV: it went between our mkdir and a write
                // into it (a removed cgroup's files answer ENODEV), as runtime/tests' shared parent once did.
                Err(CgroupError::Create { source, .. } | CgroupError::Write { source, .. })
                    if (source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(libc::ENODEV)) && tries < 3 =>
                {
                    tries += 1;
                }
                r => return r,
            }
        }
    }

    fn create_once(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V2 { root } => v2::create(root, &self.rel, resources, v2::Knobs::All),
            Layout::V1 { hierarchies, unified } => {
                v1::create(hierarchies, &self.rel, resources)?;
                if let Some(u) = unified {
                    let hugetlb_in_v1 = hierarchies.iter().any(|(n, _)| n == "hugetlb");
                    v2::create(u, &self.rel, resources, if hugetlb_in_v1 { v2::Knobs::None } else { v2::Knobs::HugetlbOnly })?;
                }
                Ok(())
            }
        }
    }

    /// Moves the calling process into the cgroup (writes "0" to every cgroup.procs).
    pub fn join_self(&self) -> Result<(), CgroupError> {
        for d in self.dirs() {
            write(&d.join("cgroup.procs"), "0")?;
        }
        Ok(())
    }

    /// Moves `pid` into the cgroup.
    pub fn join_pid(&self, pid: i32) -> Result<(), CgroupError> {
        let s = pid.to_string();
        for d in self.dirs() {
            write(&d.join("cgroup.procs"), &s)?;
        }
        Ok(())
    }

    /// Pids in the cgroup (empty when it does not exist).
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.primary_dir().join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// OOM kills the kernel counted in this cgroup (v2/hybrid `memory.events`, v1 `memory.oom_control`).
    pub fn oom_kills(&self) -> u64 {
        let file = match &self.layout {
            Layout::V2 { root } => root.join(&self.rel).join("memory.events"),
            Layout::V1 { hierarchies, .. } => match hierarchies.iter().find(|(n, _)| n == "memory") {
                Some((_, p)) => p.join(&self.rel).join("memory.oom_control"),
                None => return 0,
            },
        };
        read_key(&file, "oom_kill").unwrap_or(0)
    }

    /// Removes every directory of the cgroup, retrying briefly while killed processes finish exiting, and the
    /// runtime's own [`DEFAULT_PARENT`] once its last container is gone (nobody else would remove it). A create
    /// racing with that removal makes the parent again.
    pub fn remove(&self) -> Result<(), CgroupError> {
        let mut last = Ok(());
        let in_default_parent = self.rel.parent() == Some(Path::new(DEFAULT_PARENT));
        for d in self.dirs() {
            last = last.and(remove_dir_retry(&d));
            if in_default_parent {
                // EBUSY while another container is in it: it stays, and goes with that one
                if let Some(parent) = d.parent() {
                    let _ = fs::remove_dir(parent);
                }
            }
        }
        last
    }

    /// True while any directory of the cgroup exists.
    pub fn exists(&self) -> bool {
        self.dirs().iter().any(|d| d.exists())
    }

    /// Where the freezer is: the v1 `freezer` hierarchy's directory (`freezer.state`), or the cgroup2 directory
    /// (`cgroup.freeze`) on v2 or, without a v1 freezer, on the hybrid unified mount.
    fn freezer(&self) -> Option<(PathBuf, bool)> {
        match &self.layout {
            Layout::V2 { root } => Some((root.join(&self.rel), true)),
            Layout::V1 { hierarchies, unified } => hierarchies
                .iter()
                .find(|(n, _)| n.split(',').any(|c| c == "freezer"))
                .map(|(_, p)| (p.join(&self.rel), false))
                .or_else(|| unified.as_ref().map(|u| (u.join(&self.rel), true)).filter(|(d, _)| d.join("cgroup.freeze").exists())),
        }
    }

    /// Freezes (`pause`) or thaws (`resume`) every process in the cgroup and waits until the kernel says it is
    /// done: v1 `freezer.state` FROZEN/THAWED (FREEZING in between, retried as runc does), v2 `cgroup.freeze` and
    /// the `frozen` key of `cgroup.events`.
    pub fn freeze(&self, on: bool) -> Result<(), CgroupError> {
        let (dir, v2) = self.freezer().ok_or_else(|| CgroupError::Unsupported {
            field: "freezer".into(),
            controller: "freezer",
            reason: "this host has no freezer cgroup (v1 freezer hierarchy or cgroup2 cgroup.freeze)".into(),
        })?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let (file, value) = if v2 { ("cgroup.freeze", if on { "1" } else { "0" }) } else { ("freezer.state", if on { "FROZEN" } else { "THAWED" }) };
        loop {
            write(&dir.join(file), value)?;
            let done = if v2 {
                read_key(&dir.join("cgroup.events"), "frozen") == Some(u64::from(on))
            } else {
                fs::read_to_string(dir.join("freezer.state")).map(|s| s.trim() == value).unwrap_or(false)
            };
            if done {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(CgroupError::Write {
                    path: dir.join(file),
                    value: value.to_string(),
                    source: io::Error::new(io::ErrorKind::TimedOut, "the kernel did not finish within 10s"),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// True when the cgroup is frozen (or freezing).
    pub fn frozen(&self) -> bool {
        match self.freezer() {
            Some((dir, true)) => fs::read_to_string(dir.join("cgroup.freeze")).map(|s| s.trim() == "1").unwrap_or(false),
            Some((dir, false)) => fs::read_to_string(dir.join("freezer.state")).map(|s| s.trim() != "THAWED").unwrap_or(false),
            None => false,
        }
    }

    /// `update`: writes `resources` into the existing cgroup (only the fields given). Check them first with
    /// [`check`].
    pub fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        if !self.exists() {
            return Err(CgroupError::Read {
                path: self.primary_dir(),
                source: io::Error::new(io::ErrorKind::NotFound, "the container's cgroup is gone"),
            });
        }
        self.create_once(Some(resources))
    }
}

fn remove_dir_retry(d: &Path) -> Result<(), CgroupError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(CgroupError::Remove { path: d.to_path_buf(), source: e }),
        }
    }
}

pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write { path: path.to_path_buf(), value: value.to_string(), source })
}

/// Writes only when the file exists (an optional controller knob); missing files are skipped.
pub(crate) fn write_if_present(path: &Path, value: &str) -> Result<(), CgroupError> {
    if path.exists() {
        write(path, value)
    } else {
        Ok(())
    }
}

pub(crate) fn mkdir_all(path: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(path).map_err(|source| CgroupError::Create { path: path.to_path_buf(), source })
}

/// Reads `key value` lines (memory.events, memory.oom_control) and returns the value of `key`.
pub fn read_key(file: &Path, key: &str) -> Option<u64> {
    let s = fs::read_to_string(file).ok()?;
    s.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_paths_map_to_scopes() {
        assert_eq!(
            resolve_path(Some("machine.slice:libpod:abc"), "x", true).unwrap(),
            PathBuf::from("machine.slice/libpod-abc.scope")
        );
        assert_eq!(
            resolve_path(Some("kubepods-burstable.slice:cri:abc"), "x", true).unwrap(),
            PathBuf::from("kubepods.slice/kubepods-burstable.slice/cri-abc.scope")
        );
        assert_eq!(resolve_path(Some("/a/b"), "x", false).unwrap(), PathBuf::from("a/b"));
        assert_eq!(resolve_path(None, "c1", false).unwrap(), PathBuf::from("rkube/c1"));
        assert!(resolve_path(Some("/a/../b"), "x", false).is_err());
        assert!(resolve_path(Some("/"), "x", false).is_err());
    }

    #[test]
    fn check_refuses_what_the_layout_cannot_apply() {
        let res = |v: serde_json::Value| -> LinuxResources { serde_json::from_value(v).unwrap() };
        let t = tempfile::tempdir().unwrap();
        for h in ["memory", "pids", "cpu,cpuacct", "blkio"] {
            fs::create_dir_all(t.path().join(h)).unwrap();
            fs::write(t.path().join(h).join("cgroup.procs"), "").unwrap();
        }
        let v1 = Layout::detect(t.path());
        assert!(v1.has_controller("cpuacct") && v1.has_controller("cpu") && !v1.has_controller("net_cls"));
        check(&v1, &res(serde_json::json!({"memory": {"limit": 1}, "cpu": {"shares": 2}, "pids": {"limit": 3}}))).unwrap();
        let e = check(&v1, &res(serde_json::json!({"network": {"classID": 1}}))).unwrap_err().to_string();
        assert!(e.starts_with("linux.resources.network.classID: cannot set net_cls limit"), "{e}");
        let e = check(&v1, &res(serde_json::json!({"cpu": {"cpus": "0"}}))).unwrap_err().to_string();
        assert!(e.contains("cpuset"), "{e}");
        let e = check(&v1, &res(serde_json::json!({"blockIO": {"weight": 10}}))).unwrap_err().to_string();
        assert!(e.contains("blkio.bfq.weight"), "{e}");
        fs::write(t.path().join("blkio/blkio.bfq.weight"), "").unwrap();
        check(&v1, &res(serde_json::json!({"blockIO": {"weight": 10}}))).unwrap();
        let e = check(&v1, &res(serde_json::json!({"unified": {"memory.high": "1"}}))).unwrap_err().to_string();
        assert!(e.contains("cannot use unified on cgroup v1"), "{e}");
        let t2 = tempfile::tempdir().unwrap();
        fs::write(t2.path().join("cgroup.controllers"), "memory pids io").unwrap();
        let v2 = Layout::detect(t2.path());
        check(&v2, &res(serde_json::json!({"unified": {"memory.high": "1", "cgroup.max.depth": "2"}, "blockIO": {"weight": 10}}))).unwrap();
        for (v, want) in [
            (serde_json::json!({"unified": {"cpu.weight": "1"}}), "\"cpu\" controller"),
            (serde_json::json!({"network": {"classID": 1}}), "no net_cls controller"),
            (serde_json::json!({"cpu": {"realtimeRuntime": 1}}), "realtime"),
            (serde_json::json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}), "hugetlb"),
        ] {
            let e = check(&v2, &res(v)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn detects_v1_hybrid_and_v2() {
        let t = tempfile::tempdir().unwrap();
        for h in ["memory", "pids", "cpu"] {
            fs::create_dir_all(t.path().join(h)).unwrap();
            fs::write(t.path().join(h).join("cgroup.procs"), "").unwrap();
        }
        assert_eq!(Layout::detect(t.path()).name(), "v1");
        fs::create_dir_all(t.path().join("unified")).unwrap();
        fs::write(t.path().join("unified/cgroup.controllers"), "hugetlb").unwrap();
        let l = Layout::detect(t.path());
        assert_eq!(l.name(), "hybrid");
        let Layout::V1 { hierarchies, .. } = &l else { panic!() };
        assert_eq!(hierarchies.len(), 3);
        let t2 = tempfile::tempdir().unwrap();
        fs::write(t2.path().join("cgroup.controllers"), "memory pids").unwrap();
        assert_eq!(Layout::detect(t2.path()).name(), "v2");
    }
}

#[cfg(test)]
mod freezer_tests {
    use super::*;

    #[test]
    fn v2_freeze_writes_cgroup_freeze_and_waits_for_frozen() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("c1");
        fs::create_dir(&dir).unwrap();
        // The kernel's part, played by the test: cgroup.events says frozen once asked.
        fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        let cg = Cgroup::new(Layout::V2 { root: t.path().to_path_buf() }, PathBuf::from("c1"));
        cg.freeze(true).unwrap();
        assert_eq!(fs::read_to_string(dir.join("cgroup.freeze")).unwrap(), "1");
        assert!(cg.frozen());
        fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        cg.freeze(false).unwrap();
        assert_eq!(fs::read_to_string(dir.join("cgroup.freeze")).unwrap(), "0");
        assert!(!cg.frozen());
        // No freezer at all: refused naming it.
        let none = Cgroup::new(Layout::V1 { hierarchies: vec![], unified: None }, PathBuf::from("c1"));
        let e = none.freeze(true).unwrap_err().to_string();
        assert!(e.contains("freezer"), "{e}");
    }
}
