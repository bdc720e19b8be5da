//! `rkube-runtime cgroup memory|remove`: the verbs the kubelet asks for a pod's parent cgroup and a node's tree (so
//! that it never reads cgroupfs itself), on this host's real hierarchies, with a container inside the tree.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::Bundle;
use rkube_testsupport::{poll_until, unique_name};
use serde_json::{json, Value};

fn json_of(out: &std::process::Output, what: &str) -> Value {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn a_pods_cgroup_tree_is_measured_and_removed_by_the_runtime() {
    let mut b = Bundle::new(&["sh", "-c", "head -c 4194304 /dev/zero > /dev/shm/fill && echo ready && exec sleep 300"]);
    let pod = format!("/rkube-test/{}", unique_name("rkpod"));
    b.cgroup = format!("{pod}/c1");
    b.config["linux"]["cgroupsPath"] = json!(b.cgroup);
    let (id, log) = b.create();
    let out = b.rt(&["start", &id]);
    assert!(out.status.success(), "start: {}", String::from_utf8_lossy(&out.stderr));
    poll_until("the container to fill 4 MiB of shm", Duration::from_secs(20), || {
        std::fs::read_to_string(&log).ok().filter(|l| l.contains("ready")).map(|_| ())
    });

    // the pod cgroup's working set holds the container's shm pages, and the child is listed by name
    let m = json_of(&b.rt(&["cgroup", "memory", &pod]), "cgroup memory");
    let child = m["children"]["c1"].as_u64().unwrap_or_else(|| panic!("no child c1: {m}"));
    assert!(child >= 4 << 20, "the container's 4 MiB of shm counts: {m}");
    assert!(m["workingSet"].as_u64().unwrap_or(0) >= child, "the pod's working set includes its child's: {m}");
    assert!(m["dir"].as_str().is_some_and(|d| d.starts_with("/sys/fs/cgroup/") && d.ends_with(pod.trim_start_matches('/'))), "{m}");

    // a cgroup holding a process stays, with its parent, and is reported
    let r = json_of(&b.rt(&["cgroup", "remove", &pod]), "cgroup remove (busy)");
    let left: Vec<String> = r["left"].as_array().into_iter().flatten().filter_map(|l| l[0].as_str().map(str::to_string)).collect();
    assert!(left.iter().any(|d| d.ends_with("/c1")), "the busy container cgroup is reported left: {r}");
    assert!(b.cgroup_exists(), "the busy container cgroup is still there");

    // once the container is deleted, the whole tree goes from every hierarchy
    let out = b.rt(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete: {}", String::from_utf8_lossy(&out.stderr));
    let r = json_of(&b.rt(&["cgroup", "remove", &pod]), "cgroup remove");
    assert_eq!(r["left"], json!([]), "{r}");
    let rel = pod.trim_start_matches('/');
    let still: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroupfs")
        .flatten()
        .map(|h| h.path().join(rel))
        .filter(|d| d.exists())
        .collect();
    assert!(still.is_empty(), "the pod tree is gone everywhere: {still:?}");
    // nothing there is not an error
    let r = json_of(&b.rt(&["cgroup", "remove", &pod]), "cgroup remove (gone)");
    assert_eq!((r["removed"].clone(), r["left"].clone()), (json!([]), json!([])), "{r}");

    // bad input says what is wrong and touches nothing
    for (args, want) in [
        (vec!["cgroup", "remove", "/"], "not the root itself"),
        (vec!["cgroup", "remove", "kubepods/../x"], "'..'"),
        (vec!["cgroup", "memory", pod.as_str()], "no memory cgroup"),
    ] {
        let out = b.rt(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
    }
}
