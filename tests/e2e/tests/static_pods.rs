//! Static pods do not need the apiserver: with `rkube server` killed, the kubelet (a separate `rkube kubelet`
//! process) keeps a static pod running, keeps restarting a crashing one under its backoff, and starts one whose
//! manifest appears during the outage. When the server returns, the mirror pods come back to life in the API:
//! the one for the pod started during the outage is created, and the crashing pod's mirror reports the restarts
//! that happened while nobody could see them.
//!
//! Needs root and the binaries: `cargo build --release -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod node_cluster;
mod up_support;

use std::path::PathBuf;
use std::time::Duration;

use node_cluster::{process_alive, read_pid, Cluster, Options};
use rkube_testsupport::poll_until;

fn manifest(name: &str, command: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox:latest\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", {command:?}]\n"
    )
}

/// The kubelet's directory of the static pod `name` (found by the name in its recorded pod.json).
fn static_pod_dir(c: &Cluster, name: &str) -> Option<PathBuf> {
    let pods = c.node_dir.path().join("kubelet/pods");
    std::fs::read_dir(pods).ok()?.flatten().map(|e| e.path()).find(|p| {
        let pod: serde_json::Value = std::fs::read(p.join("pod.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        pod["metadata"]["name"].as_str().is_some_and(|n| n == name || n.starts_with(&format!("{name}-")))
    })
}

/// The restart count the kubelet recorded on disk for the pod's container.
fn disk_restarts(dir: &std::path::Path) -> i64 {
    let meta: serde_json::Value = std::fs::read(dir.join("containers/c/meta.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    meta["restart_count"].as_i64().unwrap_or(-1)
}

#[test]
fn static_pods_run_while_the_apiserver_is_down_and_mirrors_return_with_it() {
    let mut c = Cluster::start(Options::default());
    let dir = c.node_dir.path().join("manifests");
    std::fs::write(dir.join("steady.yaml"), manifest("steady", "echo steady; exec sleep 3600")).expect("write manifest");
    std::fs::write(dir.join("crasher.yaml"), manifest("crasher", "echo crashing; exit 1")).expect("write manifest");
    let (steady, crasher, late) = (format!("steady-{}", c.node_name), format!("crasher-{}", c.node_name), format!("late-{}", c.node_name));
    poll_until("steady's mirror pod Running", Duration::from_secs(60), || (c.get(&format!("pod/{steady}"), "{.status.phase}") == "Running").then_some(()));
    poll_until("crasher's mirror reports a restart", Duration::from_secs(60), || {
        let n: i64 = c.get(&format!("pod/{crasher}"), "{.status.containerStatuses[0].restartCount}").parse().unwrap_or(0);
        (n >= 1).then_some(())
    });
    let steady_dir = static_pod_dir(&c, "steady").expect("steady's pod directory");
    let crasher_dir = static_pod_dir(&c, "crasher").expect("crasher's pod directory");
    let steady_pid = read_pid(&steady_dir.join("containers/c/monitor/container.pid")).expect("steady's container pid");

    // the apiserver goes away
    c.kill_server();
    let out = c.kubectl_output(None, &["get", "pods", "--request-timeout=5s"], None);
    assert!(!out.status.success(), "the API is down");
    let at_outage = disk_restarts(&crasher_dir);
    // a manifest that appears while the API is down is run all the same
    std::fs::write(dir.join("late.yaml"), manifest("late", "echo late-started; exec sleep 3600")).expect("write manifest");
    let late_dir = poll_until("late's pod started without an apiserver", Duration::from_secs(60), || {
        let d = static_pod_dir(&c, "late")?;
        let pid = read_pid(&d.join("containers/c/monitor/container.pid"))?;
        process_alive(pid).then_some(d)
    });
    // the crash loop goes on (backoff 10 s, then 20 s): at least one restart while the API is down
    poll_until("crasher restarted while the API is down", Duration::from_secs(90), || (disk_restarts(&crasher_dir) > at_outage).then_some(()));
    let during = disk_restarts(&crasher_dir);
    assert!(process_alive(steady_pid), "steady's container {steady_pid} kept running through the outage");
    assert!(c.kubelet_running(), "the kubelet does not give up without its apiserver");
    let logs = c.node_dir.path().join("pod-logs");
    let late_log = std::fs::read_dir(&logs).expect("pod logs").flatten().find(|e| e.file_name().to_string_lossy().contains("_late-"));
    let late_log = late_log.expect("a log directory for late").path().join("c/0.log");
    let text = std::fs::read_to_string(&late_log).unwrap_or_default();
    assert!(text.contains("late-started"), "late's container wrote its log while the API was down: {text:?}");

    // the apiserver returns: the mirrors catch up
    c.start_server();
    poll_until("late's mirror pod created and Running", Duration::from_secs(60), || {
        (c.get(&format!("pod/{late}"), "{.status.phase}") == "Running").then_some(())
    });
    let mirror = c.get(&format!("pod/{late}"), "{.metadata.annotations.kubernetes\\.io/config\\.mirror}");
    assert!(!mirror.is_empty(), "late's pod in the API is a mirror pod");
    assert!(late_dir.exists(), "the pod started during the outage is the one mirrored");
    poll_until("crasher's mirror reports the restarts made during the outage", Duration::from_secs(60), || {
        let n: i64 = c.get(&format!("pod/{crasher}"), "{.status.containerStatuses[0].restartCount}").parse().unwrap_or(0);
        (n >= during).then_some(())
    });
    assert_eq!(c.get(&format!("pod/{steady}"), "{.status.phase} {.status.containerStatuses[0].restartCount}"), "Running 0");
    assert_eq!(read_pid(&steady_dir.join("containers/c/monitor/container.pid")), Some(steady_pid), "the same steady container");
    assert_eq!(c.kubectl_ok(&["logs", &late], None), "late-started\n", "logs of the pod started during the outage");
}

/// `kubectl delete pod <mirror>` (the default 30 s grace) returns at once, as on upstream: the kubelet sees the
/// mirror marked for deletion while the manifest is still there, deletes it outright (grace 0) and creates a
/// fresh mirror (a new uid) for the static pod, whose container keeps running untouched.
#[test]
fn deleting_a_mirror_pod_replaces_it_and_leaves_the_static_pod_running() {
    let c = Cluster::start(Options::default());
    let dir = c.node_dir.path().join("manifests");
    // no terminationGracePeriodSeconds: the default 30 s, which the deletion must not wait out
    let held = manifest("held", "echo held; exec sleep 3600").replace("  terminationGracePeriodSeconds: 1\n", "");
    std::fs::write(dir.join("held.yaml"), held).expect("write manifest");
    let name = format!("held-{}", c.node_name);
    let pod = format!("pod/{name}");
    let first = poll_until("held's mirror pod Running with its container", Duration::from_secs(60), || {
        let got = c.get(&pod, "{.metadata.uid} {.status.phase} {.status.containerStatuses[0].containerID}");
        let f: Vec<&str> = got.split(' ').collect();
        (f.len() == 3 && f[1] == "Running" && !f[2].is_empty()).then(|| (f[0].to_string(), f[2].to_string()))
    });
    let (old_uid, container_id) = first;
    let held_dir = static_pod_dir(&c, "held").expect("held's pod directory");
    let pid = read_pid(&held_dir.join("containers/c/monitor/container.pid")).expect("held's container pid");

    // kubectl waits for the object to be gone; 20 s is less than the 30 s grace period
    let out = c.kubectl_output(None, &["delete", "pod", &name, "--timeout=20s"], None);
    assert!(
        out.status.success(),
        "kubectl delete of the mirror pod returned within 20 s: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let new_uid = poll_until("a fresh mirror pod with a new uid, Running", Duration::from_secs(30), || {
        let got = c.get(&pod, "{.metadata.uid} {.status.phase} {.metadata.deletionTimestamp}");
        let f: Vec<&str> = got.split(' ').collect();
        (f.len() == 2 && !f[0].is_empty() && f[0] != old_uid && f[1] == "Running").then(|| f[0].to_string())
    });
    assert_ne!(new_uid, old_uid);
    assert!(!c.get(&pod, "{.metadata.annotations.kubernetes\\.io/config\\.mirror}").is_empty(), "the new pod is a mirror pod");
    poll_until("the new mirror reports the same container", Duration::from_secs(30), || {
        (c.get(&pod, "{.status.containerStatuses[0].containerID}") == container_id).then_some(())
    });
    assert_eq!(c.get(&pod, "{.status.containerStatuses[0].restartCount}"), "0", "the static pod's container was not restarted");
    assert_eq!(read_pid(&held_dir.join("containers/c/monitor/container.pid")), Some(pid), "the same container process");
    assert!(process_alive(pid), "held's container {pid} still runs");
}
