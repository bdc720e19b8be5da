//! The pause sandbox: a pod's containers join its namespaces by path and see the same network, hostname and
//! (with --share-pid) processes; the pause process reaps orphans and goes away with delete --force.

mod common;

use std::fs;
use std::time::Duration;

use common::Bundle;
use rkube_testsupport::{poll_until, unique_name};
use serde_json::{json, Value};

fn sandbox(b: &mut Bundle, extra: &[&str]) -> Value {
    let id = unique_name("rks");
    b.ids.push(id.clone());
    let mut args = vec!["sandbox", id.as_str(), "--hostname", "podhost"];
    args.extend_from_slice(extra);
    let out = b.rt(&args);
    assert!(out.status.success(), "sandbox: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn join(b: &mut Bundle, sb: &Value, types: &[&str]) {
    let mut ns = vec![json!({"type": "mount"}), json!({"type": "cgroup"})];
    for t in ["network", "ipc", "uts", "pid"] {
        let key = if t == "network" { "net" } else { t };
        match sb["namespaces"].get(key) {
            Some(p) if types.contains(&t) => ns.push(json!({"type": t, "path": p})),
            _ => ns.push(json!({"type": t})),
        }
    }
    b.config["linux"]["namespaces"] = json!(ns);
}

#[test]
fn two_containers_share_the_sandbox_netns_ipc_and_uts() {
    let mut b = Bundle::new(&["true"]);
    let sb = sandbox(&mut b, &[]);
    let pause = sb["pid"].as_i64().unwrap();
    assert_eq!(sb["status"], "running");
    let rss_kib: u64 = fs::read_to_string(format!("/proc/{pause}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").parse().unwrap()))
        .unwrap();
    println!("pause process VmRSS: {rss_kib} KiB");
    assert!(rss_kib < 8192, "pause process too big: {rss_kib} KiB");
    let sandbox_net = fs::read_link(format!("/proc/{pause}/ns/net")).unwrap();

    // Container A brings lo up in the shared netns.
    join(&mut b, &sb, &["network", "ipc", "uts"]);
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_NET_ADMIN"]);
    b.config["process"]["capabilities"]["effective"] = json!(["CAP_NET_ADMIN"]);
    b.config["process"]["capabilities"]["permitted"] = json!(["CAP_NET_ADMIN"]);
    b.config["process"]["args"] = json!(["sh", "-c", "ip link set lo up && readlink /proc/self/ns/net && readlink /proc/self/ns/ipc && hostname"]);
    let a = b.run_ok();
    // Container B sees it up, in the same namespaces, with the sandbox's hostname.
    b.config["process"]["args"] = json!(["sh", "-c", "ip -o link show lo; readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; hostname; cat /proc/net/dev | wc -l"]);
    let out = b.run_ok();
    let l: Vec<&str> = out.lines().collect();
    assert!(l[0].contains("LOOPBACK,UP"), "lo not up in B: {out}");
    let al: Vec<&str> = a.lines().collect();
    assert_eq!(al[0], l[1], "net namespaces differ");
    assert_eq!(al[1], l[2], "ipc namespaces differ");
    assert_eq!(al[0], sandbox_net.to_string_lossy(), "not the sandbox's netns");
    assert_eq!(l[3], "podhost");
    assert_eq!(al[2], "podhost");
    // The host's own lo is a different device set: containers do not see the host's interfaces.
    let host_net = fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(host_net, sandbox_net);

    let sid = sb["id"].as_str().unwrap().to_string();
    let out = b.rt(&["delete", "--force", &sid]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    poll_until("pause process to be gone", Duration::from_secs(5), || (!std::path::Path::new(&format!("/proc/{pause}")).exists()).then_some(()));
    assert!(!b.root.path().join(&sid).exists());
}

#[test]
fn shared_pid_namespace_pause_is_pid1_and_reaps_orphans() {
    let mut b = Bundle::new(&["true"]);
    let sb = sandbox(&mut b, &["--share-pid"]);
    let pause = sb["pid"].as_i64().unwrap();
    join(&mut b, &sb, &["network", "ipc", "uts", "pid"]);
    // The shell leaves an orphan behind; pid 1 (pause) must reap it.
    b.config["process"]["args"] = json!(["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; sleep 0.2 & echo orphan=$!"]);
    let out = b.run_ok();
    assert!(out.starts_with("rkube-pause"), "pid 1 is not the pause process: {out}");
    let children = format!("/proc/{pause}/task/{pause}/children");
    poll_until("pause to reap the orphan", Duration::from_secs(10), || {
        fs::read_to_string(&children).ok().filter(|c| c.trim().is_empty()).map(|_| ())
    });
    // No zombie left in the pod's pid namespace.
    let zombies = fs::read_dir("/proc").unwrap().flatten().filter(|e| {
        let p = e.path();
        fs::read_to_string(p.join("stat")).map(|s| {
            let ppid_is_pause = s.rsplit_once(')').map(|(_, r)| r.split_whitespace().nth(1) == Some(&pause.to_string())).unwrap_or(false);
            ppid_is_pause && s.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')).unwrap_or(false)
        }).unwrap_or(false)
    }).count();
    assert_eq!(zombies, 0);
    let sid = sb["id"].as_str().unwrap().to_string();
    assert!(b.rt(&["delete", "--force", &sid]).status.success());
}
