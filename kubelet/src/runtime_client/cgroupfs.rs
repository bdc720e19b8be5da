//! The one place in the kubelet that reads or removes cgroup files, for what the runtime's command line has no
//! verb for: a pod's parent cgroup (`kubepods/burstable/pod<uid>`, which holds the sandbox's and containers'
//! cgroups the runtime removes with them) and the memory working sets eviction ranks pods by. Everything else
//! about cgroups (limits, OOM counts, a container's own cgroup) is the runtime's. Paths are relative to
//! `cgroup_root` so tests pass a tempdir.

use std::fs;
use std::path::Path;

/// Where the cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Removes `rel` (empty cgroups, deepest first) from every v1 hierarchy under `cgroup_root` and from a v2 mount
/// at the root itself. Nothing there is not an error; a cgroup still holding processes stays.
pub fn remove_tree_everywhere(cgroup_root: &Path, rel: &str) {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    remove_tree(&cgroup_root.join(rel));
    let Ok(rd) = fs::read_dir(cgroup_root) else { return };
    for h in rd.flatten() {
        remove_tree(&h.path().join(rel));
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// A pod cgroup's working set (usage less inactive page cache), from cgroup v1's memory hierarchy or v2.
pub fn pod_memory_bytes(cgroup_root: &Path, rel: &str) -> u64 {
    working_set(cgroup_root, rel.trim_start_matches('/')).map(|(w, _)| w).unwrap_or(0)
}

/// The working set of the memory cgroup at `rel` and the directory it was read from.
fn working_set(cgroup_root: &Path, rel: &str) -> Option<(u64, std::path::PathBuf)> {
    let stat_value = |stat: &str, key: &str| {
        stat.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse::<u64>().ok())).unwrap_or(0)
    };
    let v1 = cgroup_root.join("memory").join(rel);
    if let Ok(u) = std::fs::read_to_string(v1.join("memory.usage_in_bytes")) {
        let usage = u.trim().parse::<u64>().unwrap_or(0);
        let stat = std::fs::read_to_string(v1.join("memory.stat")).unwrap_or_default();
        return Some((usage.saturating_sub(stat_value(&stat, "total_inactive_file")), v1));
    }
    let v2 = cgroup_root.join(rel);
    if let Ok(u) = std::fs::read_to_string(v2.join("memory.current")) {
        let usage = u.trim().parse::<u64>().unwrap_or(0);
        let stat = std::fs::read_to_string(v2.join("memory.stat")).unwrap_or_default();
        return Some((usage.saturating_sub(stat_value(&stat, "inactive_file")), v2));
    }
    None
}

/// The working set of each container's cgroup under the pod's (`<short uid>-<name>-<restart>`, the newest
/// restart of each name), by container name.
pub fn container_memory_bytes(cgroup_root: &Path, pod_rel: &str, short_uid: &str) -> std::collections::BTreeMap<String, u64> {
    let pod_rel = pod_rel.trim_start_matches('/');
    let mut out = std::collections::BTreeMap::new();
    let Some((_, dir)) = working_set(cgroup_root, pod_rel) else { return out };
    for (name, id) in crate::node::eviction::newest_container_ids(&dir, short_uid) {
        if let Some((w, _)) = working_set(cgroup_root, &format!("{pod_rel}/{id}")) {
            out.insert(name, w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_cgroups_are_found_by_name_newest_restart_first() {
        let root = tempfile::tempdir().expect("tempdir");
        let pod = root.path().join("memory/kubepods/besteffort/podu1");
        for (id, usage) in [("u1-app-0", 100), ("u1-app-1", 300), ("u1-side-car-0", 50), ("sb-u1", 7), ("other-app-0", 9)] {
            std::fs::create_dir_all(pod.join(id)).expect("mkdir");
            std::fs::write(pod.join(id).join("memory.usage_in_bytes"), usage.to_string()).expect("write");
            std::fs::write(pod.join(id).join("memory.stat"), "total_inactive_file 0\n").expect("write");
        }
        std::fs::write(pod.join("memory.usage_in_bytes"), "400").expect("write");
        let got = container_memory_bytes(root.path(), "/kubepods/besteffort/podu1", "u1");
        assert_eq!(got.into_iter().collect::<Vec<_>>(), vec![("app".to_string(), 300), ("side-car".to_string(), 50)]);
    }

    #[test]
    fn a_pod_cgroup_goes_from_every_hierarchy_children_first() {
        let root = tempfile::tempdir().expect("tempdir");
        for h in ["memory", "cpu,cpuacct", "pids"] {
            std::fs::create_dir_all(root.path().join(h).join("kubepods/burstable/podu1/sb-u1")).expect("mkdir");
        }
        std::fs::create_dir_all(root.path().join("memory/kubepods/burstable/podu2")).expect("mkdir");
        remove_tree_everywhere(root.path(), "/kubepods/burstable/podu1");
        for h in ["memory", "cpu,cpuacct", "pids"] {
            assert!(!root.path().join(h).join("kubepods/burstable/podu1").exists(), "{h}");
            assert!(root.path().join(h).join("kubepods/burstable").exists(), "{h}: the parent stays");
        }
        assert!(root.path().join("memory/kubepods/burstable/podu2").exists(), "another pod's cgroup stays");
        remove_tree_everywhere(root.path(), "/");
        assert!(root.path().join("memory/kubepods").exists(), "an empty path removes nothing");
    }
}
