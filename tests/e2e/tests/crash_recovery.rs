//! Crash recovery of the kubelet beyond the one `kill -9` of `rkube up` (up.rs): `rkube server` and `rkube
//! kubelet` run as separate processes so the kubelet alone can crash while the API goes on. On one cluster:
//!
//! - a container exits while the kubelet is down: the restarted kubelet reports the exit as it happened (exit
//!   code and finish time from the monitor's record, not the time it looked) and restarts it (restartCount 1);
//! - pods deleted while the kubelet is down, gracefully (still in the API, terminating) and by force (gone from
//!   the API): after the restart nothing of either is left: sandbox and container processes, monitors, pod
//!   cgroups, the pod's veth on the bridge, its IPAM reservation, the runtime's state, the pod directory;
//! - the sandbox (pause) process killed: as upstream, `SandboxChanged`, the containers killed and started again
//!   in a new sandbox (restartCount 1);
//! - a container's monitor killed: the container is not left running unwatched (no orphan); it is stopped,
//!   reported as terminated (exit 137) and restarted under a new monitor whose logs reach kubectl.
//!
//! Needs root and the binaries: `cargo build --release -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod node_cluster;
mod up_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use node_cluster::{process_alive, read_pid, Cluster, Options};
use rkube_testsupport::poll_until;

fn pod(name: &str, command: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n{extra}  containers:\n  - name: c\n    image: busybox:latest\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", {command:?}]\n"
    )
}

/// What a pod has on the node, recorded while it runs.
#[derive(Debug)]
struct Footprint {
    name: String,
    uid: String,
    dir: PathBuf,
    ip: String,
    sandbox_pid: i32,
    monitor_pid: i32,
    container_pid: i32,
    cgroups: Vec<PathBuf>,
    runtime_ids: Vec<String>,
}

/// The pod cgroup directories named `pod<uid>` under every hierarchy (v1 controllers, and a v2 root).
fn pod_cgroups(uid: &str) -> Vec<PathBuf> {
    let leaf = format!("pod{uid}");
    let mut found = Vec::new();
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    roots.extend(std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten().map(|e| e.path()));
    for r in roots {
        for qos in ["", "burstable", "besteffort"] {
            let p = r.join("kubepods").join(qos).join(&leaf);
            if p.is_dir() {
                found.push(p);
            }
        }
    }
    found
}

fn footprint(c: &Cluster, name: &str) -> Footprint {
    let uid = c.get(&format!("pod/{name}"), "{.metadata.uid}");
    let dir = c.pod_dir(&uid);
    let sandbox: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("sandbox.json")).expect("sandbox.json")).expect("json");
    let cdir = dir.join("containers/c");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(cdir.join("meta.json")).expect("meta.json")).expect("json");
    let f = Footprint {
        name: name.into(),
        ip: c.get(&format!("pod/{name}"), "{.status.podIP}"),
        sandbox_pid: sandbox["pid"].as_i64().expect("sandbox pid") as i32,
        monitor_pid: read_pid(&cdir.join("monitor/monitor.pid")).expect("monitor.pid"),
        container_pid: read_pid(&cdir.join("monitor/container.pid")).expect("container.pid"),
        cgroups: pod_cgroups(&uid),
        runtime_ids: vec![sandbox["id"].as_str().expect("sandbox id").into(), meta["id"].as_str().expect("container id").into()],
        uid,
        dir,
    };
    for (what, pid) in [("sandbox", f.sandbox_pid), ("monitor", f.monitor_pid), ("container", f.container_pid)] {
        assert!(process_alive(pid), "{name}: {what} process {pid} runs");
    }
    assert!(!f.cgroups.is_empty(), "{name}: pod cgroups exist");
    assert!(!f.ip.is_empty(), "{name}: an address");
    f
}

fn veths_on(bridge: &str) -> usize {
    let out = Command::new("ip").args(["-o", "link", "show", "master", bridge]).output().expect("ip link");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Everything of `f` is gone from the node.
fn assert_cleaned(c: &Cluster, f: &Footprint) {
    let n = &f.name;
    for (what, pid) in [("sandbox", f.sandbox_pid), ("monitor", f.monitor_pid), ("container", f.container_pid)] {
        assert!(!process_alive(pid), "{n}: {what} process {pid} is gone");
    }
    let left = pod_cgroups(&f.uid);
    assert!(left.is_empty(), "{n}: pod cgroups removed: {left:?}");
    assert!(!f.dir.exists(), "{n}: pod directory {} removed", f.dir.display());
    let ipam = Path::new("/var/lib/cni/networks").join(&c.net.bridge).join(&f.ip);
    assert!(!ipam.exists(), "{n}: IPAM reservation {} released", ipam.display());
    for id in &f.runtime_ids {
        let state = c.node_dir.path().join("runtime").join(id);
        assert!(!state.exists(), "{n}: runtime state {} removed", state.display());
    }
}

fn restart_count(c: &Cluster, pod: &str) -> i32 {
    c.get(&format!("pod/{pod}"), "{.status.containerStatuses[0].restartCount}").parse().unwrap_or(-1)
}

fn ready(c: &Cluster, pod: &str) -> bool {
    c.get(&format!("pod/{pod}"), "{.status.conditions[?(@.type==\"Ready\")].status}") == "True"
}

#[test]
fn kubelet_crashes_and_killed_pod_processes_are_reconciled() {
    let mut c = Cluster::start(Options::default());
    let trigger = c.node_dir.path().join("trigger");
    std::fs::create_dir_all(&trigger).expect("trigger dir");
    let exits = format!("  volumes:\n  - name: t\n    hostPath: {{path: {}}}\n", trigger.display());
    let manifest = [
        // exits with 3 once the test drops a file in its hostPath (the file is consumed, so the next instance waits)
        pod("exits", "echo started; until [ -f /t/go ]; do sleep 0.1; done; rm /t/go; echo exiting; exit 3", &exits)
            .replace("    command:", "    volumeMounts: [{name: t, mountPath: /t}]\n    command:"),
        pod("deleted-graceful", "sleep 3600", ""),
        pod("deleted-forced", "sleep 3600", ""),
        pod("pause-killed", "echo up; sleep 3600", ""),
        pod("monitor-killed", "echo instance-$(date +%s%N); exec sleep 3600", ""),
    ]
    .concat();
    c.kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    let names = ["exits", "deleted-graceful", "deleted-forced", "pause-killed", "monitor-killed"];
    let mut wait = vec!["wait", "--for=condition=Ready", "--timeout=90s"];
    let pods: Vec<String> = names.iter().map(|n| format!("pod/{n}")).collect();
    wait.extend(pods.iter().map(String::as_str));
    c.kubectl_ok(&wait, None);
    let graceful = footprint(&c, "deleted-graceful");
    let forced = footprint(&c, "deleted-forced");
    let exits_uid = c.get("pod/exits", "{.metadata.uid}");
    assert_eq!(veths_on(&c.net.bridge), 5, "one veth per pod on the bridge");

    // the kubelet crashes; meanwhile a container exits and two pods are deleted
    c.kill_kubelet();
    let t0 = std::time::Instant::now();
    std::fs::write(trigger.join("go"), "").expect("trigger the exit");
    let exit_file = c.pod_dir(&exits_uid).join("containers/c/monitor/exit");
    let exit: serde_json::Value = poll_until("the monitor records the exit", Duration::from_secs(30), || {
        std::fs::read(&exit_file).ok().and_then(|b| serde_json::from_slice(&b).ok())
    });
    assert_eq!(exit["exitCode"], 3, "{exit}");
    c.kubectl_ok(&["delete", "pod", "deleted-graceful", "--wait=false"], None);
    c.kubectl_ok(&["delete", "pod", "deleted-forced", "--force", "--grace-period=0"], None);
    assert!(!c.get("pod/deleted-graceful", "{.metadata.deletionTimestamp}").is_empty(), "terminating while no kubelet finishes it");
    assert!(!c.get("pod/exits", "{.status.containerStatuses[0].state.running.startedAt}").is_empty(), "the API still says running");
    // a gap of seconds between the exit and the kubelet's return, so a finish time taken when the kubelet looked
    // (not the monitor's record) cannot pass for the real one
    std::thread::sleep(Duration::from_secs(2).saturating_sub(t0.elapsed()));
    let restarted_at = chrono_now();
    c.start_kubelet();

    // the exit is reported as it happened, and the container restarted under restartPolicy Always
    poll_until("exits restarted once", Duration::from_secs(60), || (restart_count(&c, "exits") == 1 && ready(&c, "exits")).then_some(()));
    let last = c.get("pod/exits", "{.status.containerStatuses[0].lastState.terminated.exitCode} {.status.containerStatuses[0].lastState.terminated.reason} {.status.containerStatuses[0].lastState.terminated.finishedAt}");
    let parts: Vec<&str> = last.split(' ').collect();
    assert_eq!(parts[..2], ["3", "Error"], "lastState: {last}");
    let recorded = exit["finishedAt"].as_str().expect("finishedAt in the exit record");
    assert_eq!(parts[2].get(..19), recorded.get(..19), "finishedAt is the monitor's record of the exit ({recorded})");
    assert!(parts[2] < restarted_at.as_str(), "finishedAt {} is before the kubelet came back at {restarted_at}", parts[2]);
    let logs = c.kubectl_ok(&["logs", "exits", "--previous"], None);
    assert_eq!(logs, "started\nexiting\n", "the previous instance's logs");

    // the deleted pods: gone from the API and from the node
    poll_until("deleted-graceful finalized", Duration::from_secs(60), || {
        let out = c.kubectl_output(None, &["get", "pod", "deleted-graceful"], None);
        String::from_utf8_lossy(&out.stderr).contains("NotFound").then_some(())
    });
    poll_until("both deleted pods cleaned up", Duration::from_secs(60), || {
        (!graceful.dir.exists() && !forced.dir.exists() && pod_cgroups(&graceful.uid).is_empty() && pod_cgroups(&forced.uid).is_empty()).then_some(())
    });
    assert_cleaned(&c, &graceful);
    assert_cleaned(&c, &forced);
    poll_until("the deleted pods' veths gone from the bridge", Duration::from_secs(20), || (veths_on(&c.net.bridge) == 3).then_some(()));

    // the pause process killed: a new sandbox, the container restarted in it, SandboxChanged
    let before = footprint(&c, "pause-killed");
    assert!(Command::new("kill").args(["-KILL", &before.sandbox_pid.to_string()]).status().expect("kill").success());
    poll_until("pause-killed restarted in a new sandbox", Duration::from_secs(60), || {
        (restart_count(&c, "pause-killed") == 1 && ready(&c, "pause-killed")).then_some(())
    });
    let after = footprint(&c, "pause-killed");
    assert_ne!(after.sandbox_pid, before.sandbox_pid, "a new sandbox process");
    assert!(!process_alive(before.container_pid) && !process_alive(before.monitor_pid), "the old container and its monitor are gone");
    let events = c.get("events", "{.items[?(@.involvedObject.name==\"pause-killed\")].reason}");
    assert!(events.split(' ').any(|r| r == "SandboxChanged"), "a SandboxChanged event: {events}");
    let msg = c.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=pause-killed,reason=SandboxChanged", "-o", "jsonpath={.items[0].message}"], None);
    assert_eq!(msg, "Pod sandbox changed, it will be killed and re-created.");
    assert_eq!(c.kubectl_ok(&["logs", "pause-killed"], None), "up\n", "the new instance logs");

    // a monitor killed: the container it watched is stopped, reported, and started again under a new monitor
    let before = footprint(&c, "monitor-killed");
    let first_logs = c.kubectl_ok(&["logs", "monitor-killed"], None);
    assert!(Command::new("kill").args(["-KILL", &before.monitor_pid.to_string()]).status().expect("kill").success());
    poll_until("monitor-killed restarted", Duration::from_secs(60), || {
        (restart_count(&c, "monitor-killed") == 1 && ready(&c, "monitor-killed")).then_some(())
    });
    assert!(!process_alive(before.container_pid), "no orphan: the unwatched container {} was stopped", before.container_pid);
    let last = c.get("pod/monitor-killed", "{.status.containerStatuses[0].lastState.terminated.exitCode}");
    assert_eq!(last, "137", "reported as killed");
    let after = footprint(&c, "monitor-killed");
    assert_ne!(after.monitor_pid, before.monitor_pid);
    assert_eq!(after.sandbox_pid, before.sandbox_pid, "the sandbox was fine and stays");
    let old_state = c.node_dir.path().join("runtime").join(&before.runtime_ids[1]);
    assert!(!old_state.exists(), "the old container's runtime state {} removed", old_state.display());
    let logs = poll_until("the new instance's logs", Duration::from_secs(20), || {
        let l = c.kubectl_ok(&["logs", "monitor-killed"], None);
        (!l.is_empty()).then_some(l)
    });
    assert!(logs.starts_with("instance-") && logs != first_logs, "a new instance logs through its new monitor: {logs:?} (was {first_logs:?})");
    assert!(c.kubelet_running(), "the kubelet stayed up through all of it");
}

/// Now in the API's RFC 3339 form (second precision, UTC), for comparing with the timestamps kubectl prints.
fn chrono_now() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output().expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
