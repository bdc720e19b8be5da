//! Node-pressure eviction on `rkube up`, with real memory: the memory threshold (`--eviction-hard
//! memory.available<...`) is set a little under what this machine has free now, and a BestEffort pod fills a
//! memory-backed emptyDir past it. The kubelet must report MemoryPressure, evict that pod (Failed, Evicted,
//! upstream's message and event) and not the Guaranteed pod beside it; the node controller must taint the node
//! `node.kubernetes.io/memory-pressure:NoSchedule` while the condition holds, and both clear once the memory is
//! back and the transition period (15 s here) has passed.
//!
//! A test binary of its own, so no other test's memory moves the numbers while it runs. Needs root and about
//! 2 GiB of available memory.

mod up_support;

use std::time::Duration;

use rkube_testsupport::poll_until;
use up_support::Up;

/// What the hog writes into its memory emptyDir, and how far under today's available memory the threshold is.
const FILL_MIB: u64 = 1024;
const MARGIN_MIB: u64 = 512;

fn mem_available_mib() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("MemAvailable in /proc/meminfo")
        / 1024
}

fn jsonpath(up: &Up, args: &[&str]) -> String {
    up.kubectl(args).trim().to_string()
}

#[test]
fn memory_pressure_evicts_the_pod_over_its_request_and_taints_the_node() {
    let avail = mem_available_mib();
    assert!(avail > FILL_MIB + MARGIN_MIB + 512, "this test needs about 2 GiB of available memory; MemAvailable is {avail} MiB");
    let threshold = format!("memory.available<{}Mi", avail - MARGIN_MIB);
    let up = Up::start_with(&["--eviction-hard", &threshold, "--eviction-pressure-transition-period", "15s"]);
    let node = jsonpath(&up, &["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let pressure = || jsonpath(&up, &["get", "node", &node, "-o", "jsonpath={.status.conditions[?(@.type==\"MemoryPressure\")].status}"]);
    let taints = || jsonpath(&up, &["get", "node", &node, "-o", "jsonpath={.spec.taints[*].key}"]);
    assert_eq!(pressure(), "False", "no pressure before the hog ({threshold})");

    let manifest = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: steady
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "sleep 3600"]
    resources:
      requests: {{cpu: 50m, memory: 64Mi}}
      limits: {{cpu: 50m, memory: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: ram
    emptyDir: {{medium: Memory}}
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "dd if=/dev/zero of=/ram/fill bs=1M count={FILL_MIB} && echo filled && sleep 3600"]
    volumeMounts:
    - {{name: ram, mountPath: /ram}}
"#
    );
    up.kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/steady", "--timeout=60s"], None);

    // the kubelet checks every 10 s: the condition, the taint and the eviction follow within a few checks
    let mut saw_taint = false;
    let reason = poll_until("the hog evicted", Duration::from_secs(90), || {
        saw_taint |= taints().contains("node.kubernetes.io/memory-pressure");
        let r = jsonpath(&up, &["get", "pod", "hog", "-o", "jsonpath={.status.phase} {.status.reason}"]);
        (r == "Failed Evicted").then_some(r)
    });
    assert_eq!(reason, "Failed Evicted");
    let message = jsonpath(&up, &["get", "pod", "hog", "-o", "jsonpath={.status.message}"]);
    assert!(message.starts_with("The node was low on resource: memory. Threshold quantity: "), "{message}");
    let events = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=hog,reason=Evicted", "-o", "jsonpath={.items[*].message}"]);
    assert!(events.contains("The node was low on resource: memory."), "an Evicted event: {events}");
    // pressure is reported for the transition period after the last time the threshold was met
    poll_until("the memory-pressure taint seen while the condition holds", Duration::from_secs(20), || {
        saw_taint |= taints().contains("node.kubernetes.io/memory-pressure");
        saw_taint.then_some(())
    });

    // the memory came back with the hog's emptyDir: no more pressure, no taint, and the Guaranteed pod was spared
    poll_until("MemoryPressure False again", Duration::from_secs(60), || (pressure() == "False").then_some(()));
    poll_until("the taint removed", Duration::from_secs(30), || (!taints().contains("memory-pressure")).then_some(()));
    let steady = jsonpath(&up, &["get", "pod", "steady", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(steady, "Running", "the pod within its request stays");
    assert!(mem_available_mib() + MARGIN_MIB > avail, "the hog's memory was given back");
}
