//! Cgroups that belong to no one container: a pod's parent cgroup (`kubepods/burstable/pod<uid>`, holding the
//! sandbox's and the containers' cgroups) and a node's whole subtree (`kubepods`). The kubelet asks the runtime to
//! measure them (eviction ranks pods by memory working set) and to remove them once their containers are gone
//! (pod teardown, `rkube down`), so that nothing outside the runtime touches cgroupfs.
//!
//! Works on the three layouts [`Layout`] knows: a path is looked up in every v1 hierarchy and the hybrid
//! `unified` mount, or in the one cgroup2 hierarchy. Reads and removals only: it never creates a cgroup and never
//! moves or signals a process.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{resolve_path, CgroupError, Cgroup, Layout};

/// A cgroup path as a caller names it (`/kubepods/burstable/pod1`, `kubepods`), checked: relative to each
/// hierarchy's root, not the root itself, no `.` or `..`.
pub fn checked_path(path: &str) -> Result<PathBuf, CgroupError> {
    // an empty path would be taken as the runtime's default parent: say what is wrong instead
    if path.trim_matches('/').is_empty() {
        return Err(CgroupError::BadPath { path: path.to_string(), reason: "must name a cgroup below the root, not the root itself".into() });
    }
    resolve_path(Some(path), "", false)
}

/// What [`remove_tree`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TreeRemoval {
    /// Directories removed, deepest first.
    pub removed: Vec<PathBuf>,
    /// Directories that stayed, with the reason (`Device or resource busy`: processes still inside).
    pub left: Vec<(PathBuf, String)>,
}

/// Removes the cgroup tree `rel` from every hierarchy of `layout`, children first. A cgroup that still holds
/// processes stays (with its parents), and is reported in [`TreeRemoval::left`]; a path that exists nowhere is
/// not an error. One try per directory: a caller that just killed processes waits for them first.
pub fn remove_tree(layout: &Layout, rel: &Path) -> TreeRemoval {
    let mut out = TreeRemoval::default();
    for top in Cgroup::new(layout.clone(), rel.to_path_buf()).dirs() {
        remove_dir_tree(&top, &mut out);
    }
    out
}

fn remove_dir_tree(dir: &Path, out: &mut TreeRemoval) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_dir_tree(&e.path(), out);
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => out.removed.push(dir.to_path_buf()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => out.left.push((dir.to_path_buf(), e.to_string())),
    }
}

/// A cgroup's memory working set and its children's, as eviction ranks pods (upstream's
/// `container_memory_working_set_bytes`: usage less inactive file-backed pages).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryUse {
    /// The directory read (the v1 memory hierarchy's, or the cgroup2 one).
    pub dir: PathBuf,
    /// Its working set in bytes.
    #[serde(rename = "workingSet")]
    pub working_set: u64,
    /// Each direct child cgroup's working set, by directory name (container ids under a pod's cgroup).
    pub children: BTreeMap<String, u64>,
}

/// The working set of cgroup `rel` and of each of its direct children; None when it has no memory cgroup (it
/// does not exist, or the host has no memory controller).
pub fn memory_use(layout: &Layout, rel: &Path) -> Option<MemoryUse> {
    let (dir, v2) = match layout {
        Layout::V2 { root } => (root.join(rel), true),
        Layout::V1 { .. } => (layout.v1_root("memory")?.join(rel), false),
    };
    let own = working_set(&dir, v2)?;
    let mut children = BTreeMap::new();
    for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        if let Some(w) = working_set(&e.path(), v2) {
            children.insert(e.file_name().to_string_lossy().into_owned(), w);
        }
    }
    Some(MemoryUse { dir, working_set: own, children })
}

/// v1 `memory.usage_in_bytes` less `total_inactive_file`, v2 `memory.current` less `inactive_file`.
fn working_set(dir: &Path, v2: bool) -> Option<u64> {
    let (usage_file, inactive_key) = if v2 { ("memory.current", "inactive_file") } else { ("memory.usage_in_bytes", "total_inactive_file") };
    let usage = fs::read_to_string(dir.join(usage_file)).ok()?.trim().parse::<u64>().ok()?;
    let inactive = super::read_key(&dir.join("memory.stat"), inactive_key).unwrap_or(0);
    Some(usage.saturating_sub(inactive))
}

/// A cgroup's cumulative CPU time: v1 `cpuacct.usage` of the cpuacct hierarchy, v2 `cpu.stat` `usage_usec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuUse {
    /// The directory read.
    pub dir: PathBuf,
    /// Nanoseconds of CPU time used by the cgroup and everything under it since it was made.
    #[serde(rename = "usageNanos")]
    pub usage_nanos: u64,
}

/// The CPU time cgroup `rel` has used; None when it has no cpuacct (v1) or cpu.stat (v2) to read (it does not
/// exist, or the host has no such controller).
pub fn cpu_use(layout: &Layout, rel: &Path) -> Option<CpuUse> {
    match layout {
        Layout::V2 { root } => {
            let dir = root.join(rel);
            let usec = super::read_key(&dir.join("cpu.stat"), "usage_usec")?;
            Some(CpuUse { dir, usage_nanos: usec.saturating_mul(1000) })
        }
        Layout::V1 { .. } => {
            let dir = layout.v1_root("cpuacct")?.join(rel);
            let nanos = fs::read_to_string(dir.join("cpuacct.usage")).ok()?.trim().parse().ok()?;
            Some(CpuUse { dir, usage_nanos: nanos })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        for h in ["memory", "cpu,cpuacct", "pids"] {
            fs::create_dir_all(root.path().join(h)).expect("mkdir");
            fs::write(root.path().join(h).join("cgroup.procs"), "").expect("write");
        }
        root
    }

    #[test]
    fn a_tree_goes_from_every_hierarchy_children_first_and_a_busy_cgroup_stays() {
        let root = v1_root();
        fs::create_dir_all(root.path().join("unified")).expect("mkdir");
        fs::write(root.path().join("unified/cgroup.controllers"), "hugetlb").expect("write");
        for h in ["memory", "cpu,cpuacct", "pids", "unified"] {
            fs::create_dir_all(root.path().join(h).join("kubepods/burstable/podu1/sb-u1")).expect("mkdir");
        }
        fs::create_dir_all(root.path().join("memory/kubepods/burstable/podu2")).expect("mkdir");
        // a file stands for a cgroup the kernel refuses to remove (processes inside)
        fs::create_dir_all(root.path().join("pids/kubepods/burstable/podu1/c1")).expect("mkdir");
        fs::write(root.path().join("pids/kubepods/burstable/podu1/c1/busy"), "").expect("write");
        let layout = Layout::detect(root.path());
        let rel = checked_path("/kubepods/burstable/podu1").expect("path");
        let out = remove_tree(&layout, &rel);
        for h in ["memory", "cpu,cpuacct", "unified"] {
            assert!(!root.path().join(h).join("kubepods/burstable/podu1").exists(), "{h}");
            assert!(root.path().join(h).join("kubepods/burstable").exists(), "{h}: the parent stays");
        }
        assert!(root.path().join("memory/kubepods/burstable/podu2").exists(), "another pod's cgroup stays");
        assert!(root.path().join("pids/kubepods/burstable/podu1/c1").exists(), "a busy cgroup stays");
        let left: Vec<&PathBuf> = out.left.iter().map(|(p, _)| p).collect();
        assert_eq!(left, [&root.path().join("pids/kubepods/burstable/podu1/c1"), &root.path().join("pids/kubepods/burstable/podu1")]);
        assert!(out.removed.first().is_some_and(|p| p.ends_with("sb-u1")), "children first: {:?}", out.removed);
        // nothing there is not an error
        assert_eq!(remove_tree(&layout, Path::new("kubepods/none")), TreeRemoval::default());
    }

    #[test]
    fn a_v2_tree_is_one_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::write(root.path().join("cgroup.controllers"), "memory pids").expect("write");
        fs::create_dir_all(root.path().join("kubepods/besteffort/podx/c")).expect("mkdir");
        let out = remove_tree(&Layout::detect(root.path()), Path::new("kubepods"));
        assert_eq!(out.removed.len(), 4, "{out:?}");
        assert!(!root.path().join("kubepods").exists());
    }

    #[test]
    fn the_root_and_escapes_are_refused() {
        for bad in ["", "/", "//", "a/../b", "./a"] {
            let e = checked_path(bad).expect_err(bad).to_string();
            assert!(e.contains("linux.cgroupsPath"), "{bad}: {e}");
        }
        assert_eq!(checked_path("/kubepods/pod1").expect("ok"), PathBuf::from("kubepods/pod1"));
    }

    #[test]
    fn working_sets_of_a_cgroup_and_its_children_v1() {
        let root = v1_root();
        let pod = root.path().join("memory/kubepods/besteffort/podu1");
        for (id, usage) in [("u1-app-0", 100), ("u1-app-1", 300), ("sb-u1", 7)] {
            fs::create_dir_all(pod.join(id)).expect("mkdir");
            fs::write(pod.join(id).join("memory.usage_in_bytes"), format!("{usage}\n")).expect("write");
            fs::write(pod.join(id).join("memory.stat"), "cache 5\ntotal_inactive_file 2\n").expect("write");
        }
        fs::write(pod.join("memory.usage_in_bytes"), "400").expect("write");
        fs::write(pod.join("memory.stat"), "total_inactive_file 50\n").expect("write");
        let m = memory_use(&Layout::detect(root.path()), Path::new("kubepods/besteffort/podu1")).expect("memory");
        assert_eq!(m.working_set, 350);
        assert_eq!(m.dir, pod);
        assert_eq!(m.children.into_iter().collect::<Vec<_>>(), [("sb-u1".into(), 5), ("u1-app-0".into(), 98), ("u1-app-1".into(), 298)]);
        assert_eq!(memory_use(&Layout::detect(root.path()), Path::new("kubepods/none")), None);
    }

    #[test]
    fn working_sets_v2() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::write(root.path().join("cgroup.controllers"), "memory").expect("write");
        let pod = root.path().join("kubepods/podu1");
        fs::create_dir_all(pod.join("c1")).expect("mkdir");
        fs::write(pod.join("memory.current"), "1000").expect("write");
        fs::write(pod.join("memory.stat"), "anon 10\ninactive_file 100\n").expect("write");
        fs::write(pod.join("c1/memory.current"), "600").expect("write");
        let m = memory_use(&Layout::detect(root.path()), Path::new("kubepods/podu1")).expect("memory");
        assert_eq!((m.working_set, m.children["c1"]), (900, 600));
        // serialised with the name the kubelet reads
        let v = serde_json::to_value(&m).expect("json");
        assert_eq!(v["workingSet"], 900);
        assert_eq!(v["children"]["c1"], 600);
    }

    #[test]
    fn cpu_time_v1_and_v2() {
        let root = v1_root();
        let pod = root.path().join("cpu,cpuacct/kubepods/podu1");
        fs::create_dir_all(&pod).expect("mkdir");
        fs::write(pod.join("cpuacct.usage"), "123456789\n").expect("write");
        let c = cpu_use(&Layout::detect(root.path()), Path::new("kubepods/podu1")).expect("cpu");
        assert_eq!((c.dir, c.usage_nanos), (pod, 123456789));
        assert_eq!(cpu_use(&Layout::detect(root.path()), Path::new("kubepods/none")), None);

        let root = tempfile::tempdir().expect("tempdir");
        fs::write(root.path().join("cgroup.controllers"), "cpu memory").expect("write");
        fs::create_dir_all(root.path().join("kubepods")).expect("mkdir");
        fs::write(root.path().join("kubepods/cpu.stat"), "usage_usec 7\nuser_usec 5\n").expect("write");
        let c = cpu_use(&Layout::detect(root.path()), Path::new("kubepods")).expect("cpu");
        assert_eq!(c.usage_nanos, 7000);
        assert_eq!(serde_json::to_value(&c).expect("json")["usageNanos"], 7000);
    }
}
