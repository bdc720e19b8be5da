//! The official Python `kubernetes` client against a whole `rkube up` node: it lists the node Ready, creates a
//! busybox Pod, follows it over a watch to Running with an address from the node's pod network, reads its logs
//! through the apiserver's proxy to the kubelet, deletes it and sees the DELETED event. tests/e2e/tests/clients.rs
//! drives the same client against the apiserver alone; this one needs the scheduler and the kubelet too.
//!
//! The client lives in the venv scripts/deps.sh makes (`RKUBE_TEST_VENV`, default /var/cache/rkube-test/venv);
//! the test fails naming that script when it is missing. Needs root and the binaries (see up.rs).

mod up_support;

use std::process::Command;
use std::time::Duration;

use rkube_testsupport::output_within;
use up_support::Up;

/// The venv's python with `kubernetes` importable, or a failure naming the command that installs it.
fn python_with_kubernetes() -> std::path::PathBuf {
    let venv: std::path::PathBuf =
        std::env::var_os("RKUBE_TEST_VENV").map(Into::into).unwrap_or_else(|| "/var/cache/rkube-test/venv".into());
    let python = venv.join("bin/python");
    let ok = Command::new(&python).args(["-c", "import kubernetes"]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "the Python kubernetes client is not installed in {}: run scripts/deps.sh", venv.display());
    python
}

const SCRIPT: &str = r#"
import sys
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
subnet_prefix = sys.argv[2]
v1 = client.CoreV1Api()

nodes = v1.list_node().items
assert len(nodes) == 1, [n.metadata.name for n in nodes]
ready = [c.status for c in nodes[0].status.conditions if c.type == "Ready"]
assert ready == ["True"], nodes[0].status.conditions

pods = v1.list_namespaced_pod("default", label_selector="from=python")
assert pods.items == [], pods.items
rv = pods.metadata.resource_version
v1.create_namespaced_pod("default", {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "py-pod", "labels": {"from": "python"}},
    "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
        "name": "c", "image": "busybox:latest", "imagePullPolicy": "Never",
        "command": ["sh", "-c", "echo hello-from-python-pod; while true; do sleep 1; done"]}]}})

# Every change of the pod, in order, from the list's resourceVersion until it runs: ADDED first, then MODIFIED
# ones (scheduled, then running); the watch ends by its own timeout if the pod never runs.
seen = []
running = None
w = watch.Watch()
for ev in w.stream(v1.list_namespaced_pod, "default", label_selector="from=python", resource_version=rv, timeout_seconds=90):
    p = ev["object"]
    seen.append((ev["type"], p.status.phase))
    if p.status.phase == "Running":
        running = p
        w.stop()
assert running is not None, "pod never Running over the watch: %s" % seen
assert seen[0][0] == "ADDED", seen
assert all(t == "MODIFIED" for t, _ in seen[1:]), seen
assert running.spec.node_name == nodes[0].metadata.name, running.spec.node_name
assert running.status.pod_ip.startswith(subnet_prefix), (running.status.pod_ip, subnet_prefix)

log = ""
for _ in range(100):
    try:
        log = v1.read_namespaced_pod_log("py-pod", "default")
    except client.exceptions.ApiException:
        log = ""
    if "hello-from-python-pod" in log:
        break
    import time; time.sleep(0.2)
assert log.startswith("hello-from-python-pod"), log

rv = running.metadata.resource_version
v1.delete_namespaced_pod("py-pod", "default")
deleted = False
for ev in w.stream(v1.list_namespaced_pod, "default", label_selector="from=python", resource_version=rv, timeout_seconds=90):
    if ev["type"] == "DELETED":
        assert ev["object"].metadata.name == "py-pod", ev["object"].metadata
        deleted = True
        w.stop()
assert deleted, "no DELETED event for py-pod"
assert v1.list_namespaced_pod("default", label_selector="from=python").items == []
print("ok")
"#;

#[test]
fn python_client_runs_a_pod_on_up() {
    let python = python_with_kubernetes();
    let up = Up::start();
    let script = up.data.path().join("client.py");
    std::fs::write(&script, SCRIPT).expect("write client.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script).arg(up.kubeconfig()).arg(&up.subnet_prefix);
    // the script's own watches end after 90 s each: anything longer is a hang
    let out = output_within(&mut cmd, None, Duration::from_secs(240), "python client");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "python client: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
