//! The controller replaces a pod the kubelet evicted under node pressure: a Deployment of two on `rkube up`, the
//! memory signal set under the `--eviction-hard` threshold through the eviction manager's test hook
//! (`--eviction-memory-signal-file`, read in place of MemAvailable, so the host's free memory plays no part),
//! one pod evicted (Failed, reason Evicted, kept in the API as upstream keeps it), the signal back above the
//! threshold: the ReplicaSet has a new pod Running in its place and the Deployment is back to two available, the
//! evicted one still Failed beside them, and MemoryPressure and its NoSchedule taint clear.
//!
//! Needs root and the binaries: `cargo build --release -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod up_support;

use std::time::Duration;

use rkube_testsupport::poll_until;
use up_support::Up;

/// `name phase reason` of every pod of the Deployment.
fn pods(up: &Up) -> Vec<(String, String, String)> {
    let rows = up.kubectl(&["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.reason}{\"\\n\"}{end}"]);
    rows.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f.get(1).unwrap_or(&"").to_string(), f.get(2).unwrap_or(&"").to_string())
        })
        .collect()
}

#[test]
fn the_replicaset_replaces_a_pod_evicted_under_memory_pressure() {
    let signal_dir = tempfile::tempdir().expect("tempdir");
    let signal = signal_dir.path().join("memory.available");
    std::fs::write(&signal, "8Gi").expect("write the memory signal");
    let signal_arg = signal.display().to_string();
    let up = Up::start_with(&[
        "--eviction-hard",
        "memory.available<500Mi",
        "--eviction-pressure-transition-period",
        "10s",
        "--eviction-memory-signal-file",
        &signal_arg,
    ]);
    up.kubectl_ok(&["apply", "-f", "-"], Some(up_support::SLEEPING_DEPLOYMENT));
    up.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"], None);
    let before = pods(&up);
    assert_eq!(before.iter().filter(|p| p.1 == "Running").count(), 2, "{before:?}");

    // pressure: one pod evicted, then the signal is back above the threshold
    std::fs::write(&signal, "100Mi").expect("write the memory signal");
    let evicted = poll_until("a pod evicted", Duration::from_secs(60), || {
        pods(&up).into_iter().find(|p| p.1 == "Failed" && p.2 == "Evicted").map(|p| p.0)
    });
    std::fs::write(&signal, "8Gi").expect("write the memory signal");
    assert!(before.iter().any(|p| p.0 == evicted), "one of the Deployment's pods was evicted");
    let message = up.kubectl(&["get", "pod", &evicted, "-o", "jsonpath={.status.message}"]);
    assert!(message.starts_with("The node was low on resource: memory. Threshold quantity: 500Mi, available: 100Mi."), "{message}");

    // the ReplicaSet puts a new pod in its place once the node takes pods again
    let now = poll_until("a replacement Running and the Deployment available again", Duration::from_secs(120), || {
        let now = pods(&up);
        let running: Vec<&String> = now.iter().filter(|p| p.1 == "Running").map(|p| &p.0).collect();
        let available = up.kubectl(&["get", "deployment", "web", "-o", "jsonpath={.status.availableReplicas}"]);
        (running.len() == 2 && !running.contains(&&evicted) && available == "2").then_some(now)
    });
    let replacement: Vec<&String> = now.iter().filter(|p| p.1 == "Running" && !before.iter().any(|b| b.0 == p.0)).map(|p| &p.0).collect();
    assert_eq!(replacement.len(), 1, "exactly one new pod: {now:?} (before {before:?})");
    let owner = up.kubectl(&["get", "pod", replacement[0], "-o", "jsonpath={.metadata.ownerReferences[0].kind}"]);
    assert_eq!(owner, "ReplicaSet");
    // the evicted pod stays, Failed, for kubectl to show; it is no longer one of the ReplicaSet's replicas
    assert_eq!(up.kubectl(&["get", "pod", &evicted, "-o", "jsonpath={.status.phase}/{.status.reason}"]), "Failed/Evicted");
    assert_eq!(up.kubectl(&["get", "replicaset", "-l", "app=web", "-o", "jsonpath={.items[0].status.replicas}/{.items[0].status.readyReplicas}"]), "2/2");
    // the pressure clears once the signal has stayed above the threshold for the transition period (10 s); the
    // replacement may well have been admitted before that, so wait for it rather than assume it is over
    let node = up.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    poll_until("MemoryPressure False and its taint gone", Duration::from_secs(60), || {
        let pressure = up.kubectl(&["get", "node", &node, "-o", "jsonpath={.status.conditions[?(@.type==\"MemoryPressure\")].status}"]);
        let taints = up.kubectl(&["get", "node", &node, "-o", "jsonpath={.spec.taints[*].key}"]);
        (pressure == "False" && !taints.contains("memory-pressure")).then_some(())
    });
}
