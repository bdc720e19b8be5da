//! Node-pressure eviction on `rkube up`. The memory signal is under the test's control: the kubelet reads the
//! available memory from a file (the hidden test hook `--eviction-memory-signal-file`, in place of /proc/meminfo's
//! MemAvailable), so the outcome does not depend on what else this host runs. Threshold `memory.available<1Gi`;
//! the file says 8Gi (no pressure), then 512Mi: the kubelet must report MemoryPressure, evict the BestEffort pod
//! using memory over its (absent) request — Failed, Evicted, upstream's message in full and an Evicted event
//! saying the same — and not the Guaranteed pod within its request; the node controller must taint the node
//! `node.kubernetes.io/memory-pressure:NoSchedule` while the condition holds; once the file says 8Gi again, both
//! clear after the transition period (5 s here).
//!
//! The disk signal likewise (`--eviction-nodefs-signal-file`, in place of the data disk's free space; every other
//! e2e node gets a file saying 50% free, so none depends on the host's free disk): under the default
//! `nodefs.available<10%` the node reports DiskPressure, is tainted `node.kubernetes.io/disk-pressure`, and evicts
//! its pod for ephemeral-storage; back at 50%, both clear.
//!
//! `memory_pressure_from_real_memory` is the same story driven by the host's real free memory: ignored (it needs
//! about 4 GiB free, and fails if other work takes more than 1.5 GiB during its minute), run it by hand.

mod up_support;

use std::time::Duration;

use rkube_testsupport::poll_until;
use up_support::Up;

/// What the hog writes into its memory emptyDir, and how far under today's available memory the threshold is (the
/// margin is what other work on the host may take during the run without keeping the node under pressure).
const FILL_MIB: u64 = 2048;
const MARGIN_MIB: u64 = 1536;

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

const STEADY_AND_HOG: &str = r#"
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
      requests: {cpu: 50m, memory: 64Mi}
      limits: {cpu: 50m, memory: 64Mi}
---
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: ram
    emptyDir: {medium: Memory}
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "dd if=/dev/zero of=/ram/fill bs=1M count=96 && echo filled && sleep 3600"]
    volumeMounts:
    - {name: ram, mountPath: /ram}
"#;

/// Bytes of a quantity as the eviction message prints it (`100663296`, `98304Ki`, `96Mi`).
fn quantity_bytes(q: &str) -> Option<u64> {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (n, unit) = q.split_at(split);
    let mult = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    n.parse::<u64>().ok().map(|n| n * mult)
}

#[test]
fn memory_pressure_from_the_signal_evicts_the_pod_over_its_request_and_taints_the_node() {
    let signal_dir = tempfile::tempdir().expect("signal dir");
    let signal = signal_dir.path().join("memory-available");
    std::fs::write(&signal, "8Gi").expect("write the memory signal");
    let up = Up::start_with(&[
        "--eviction-hard",
        "memory.available<1Gi",
        "--eviction-pressure-transition-period",
        "5s",
        "--eviction-memory-signal-file",
        signal.to_str().expect("utf-8 path"),
    ]);
    let node = jsonpath(&up, &["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let pressure = || jsonpath(&up, &["get", "node", &node, "-o", "jsonpath={.status.conditions[?(@.type==\"MemoryPressure\")].status}"]);
    let taints = || jsonpath(&up, &["get", "node", &node, "-o", "jsonpath={.spec.taints[*].key}"]);
    assert_eq!(pressure(), "False", "8Gi available over a 1Gi threshold: no pressure");
    up.kubectl_ok(&["apply", "-f", "-"], Some(STEADY_AND_HOG));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/steady", "pod/hog", "--timeout=60s"], None);
    poll_until("the hog filled its memory emptyDir", Duration::from_secs(60), || {
        up.kubectl(&["logs", "hog"]).contains("filled").then_some(())
    });
    assert_eq!(pressure(), "False", "still no pressure: the signal, not the host, decides");

    // under the threshold: the kubelet checks every 10 s; the condition, the taint and the eviction follow
    std::fs::write(&signal, "512Mi").expect("write the memory signal");
    let mut saw_taint = false;
    poll_until("the hog evicted", Duration::from_secs(60), || {
        saw_taint |= taints().split_whitespace().any(|t| t == "node.kubernetes.io/memory-pressure");
        (jsonpath(&up, &["get", "pod", "hog", "-o", "jsonpath={.status.phase} {.status.reason}"]) == "Failed Evicted").then_some(())
    });
    assert_eq!(pressure(), "True", "the condition holds while the signal is under the threshold");
    // upstream's message in full: the threshold and what the signal said, then the one container over its request
    let message = up.kubectl(&["get", "pod", "hog", "-o", "jsonpath={.status.message}"]);
    let usage = message
        .strip_prefix("The node was low on resource: memory. Threshold quantity: 1Gi, available: 512Mi. Container c was using ")
        .and_then(|r| r.strip_suffix(", request is 0, has larger consumption of memory. "))
        .unwrap_or_else(|| panic!("not upstream's eviction message: {message:?}"));
    let bytes = quantity_bytes(usage).unwrap_or_else(|| panic!("usage {usage:?} is not a quantity as Kubernetes prints one"));
    assert!(bytes >= 96 << 20, "the hog's working set holds its 96 MiB of tmpfs: {usage}");
    let events = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=hog,reason=Evicted", "-o", "jsonpath={range .items[*]}{.type}|{.message}{\"\\n\"}{end}"]);
    assert!(events.lines().any(|l| l == format!("Warning|{message}")), "a Warning Evicted event with the same message: {events}");
    poll_until("the memory-pressure taint seen while the condition holds", Duration::from_secs(30), || {
        saw_taint |= taints().split_whitespace().any(|t| t == "node.kubernetes.io/memory-pressure");
        saw_taint.then_some(())
    });
    assert_eq!(jsonpath(&up, &["get", "pod", "steady", "-o", "jsonpath={.status.phase}"]), "Running", "the pod within its request stays");

    // the signal back over the threshold: pressure and taint clear after the transition period
    std::fs::write(&signal, "8Gi").expect("write the memory signal");
    poll_until("MemoryPressure False again", Duration::from_secs(60), || (pressure() == "False").then_some(()));
    poll_until("the taint removed", Duration::from_secs(30), || (!taints().contains("memory-pressure")).then_some(()));
    assert_eq!(jsonpath(&up, &["get", "pod", "steady", "-o", "jsonpath={.status.phase}"]), "Running", "the Guaranteed pod was spared");
    assert_eq!(jsonpath(&up, &["get", "pod", "hog", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]), "0", "an evicted pod is not restarted");
}

#[test]
fn disk_pressure_from_the_signal_taints_the_node_and_evicts_for_ephemeral_storage() {
    let signal_dir = tempfile::tempdir().expect("signal dir");
    let signal = signal_dir.path().join("nodefs-available");
    std::fs::write(&signal, "50%").expect("write the nodefs signal");
    let up = Up::start_with(&["--eviction-pressure-transition-period", "5s", "--eviction-nodefs-signal-file", signal.to_str().expect("utf-8 path")]);
    let node = jsonpath(&up, &["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let pressure = || jsonpath(&up, &["get", "node", &node, "-o", "jsonpath={.status.conditions[?(@.type==\"DiskPressure\")].status}"]);
    let taints = || jsonpath(&up, &["get", "node", &node, "-o", "jsonpath={.spec.taints[*].key}"]);
    assert_eq!(pressure(), "False", "50% free by the signal over the default 10% threshold: no pressure");
    up.kubectl_ok(&["run", "writer", "--image=busybox:latest", "--image-pull-policy=Never", "--restart=Never", "--", "sh", "-c", "sleep 3600"], None);
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/writer", "--timeout=60s"], None);

    // under the threshold: DiskPressure, the taint, and the pod evicted for ephemeral-storage
    std::fs::write(&signal, "5%").expect("write the nodefs signal");
    let mut saw_taint = false;
    poll_until("the writer evicted", Duration::from_secs(60), || {
        saw_taint |= taints().split_whitespace().any(|t| t == "node.kubernetes.io/disk-pressure");
        (jsonpath(&up, &["get", "pod", "writer", "-o", "jsonpath={.status.phase} {.status.reason}"]) == "Failed Evicted").then_some(())
    });
    assert_eq!(pressure(), "True", "the condition holds while the signal is under the threshold");
    let message = up.kubectl(&["get", "pod", "writer", "-o", "jsonpath={.status.message}"]);
    assert!(message.starts_with("The node was low on resource: ephemeral-storage. Threshold quantity: "), "{message:?}");
    poll_until("the disk-pressure taint seen while the condition holds", Duration::from_secs(30), || {
        saw_taint |= taints().split_whitespace().any(|t| t == "node.kubernetes.io/disk-pressure");
        saw_taint.then_some(())
    });

    // back over the threshold: pressure and taint clear after the transition period
    std::fs::write(&signal, "50%").expect("write the nodefs signal");
    poll_until("DiskPressure False again", Duration::from_secs(60), || (pressure() == "False").then_some(()));
    poll_until("the taint removed", Duration::from_secs(30), || (!taints().contains("disk-pressure")).then_some(()));
}

#[test]
#[ignore = "depends on the host's real free memory: run by hand, outside CI"]
fn memory_pressure_from_real_memory() {
    let avail = mem_available_mib();
    assert!(avail > FILL_MIB + MARGIN_MIB + 512, "this test needs about 4 GiB of available memory; MemAvailable is {avail} MiB");
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
    assert!(message.ends_with(", request is 0, has larger consumption of memory."), "{message}");
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
