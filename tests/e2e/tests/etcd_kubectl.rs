//! `rkube server --etcd` driven by the real kubectl, with a real etcd on loopback ports and an `rkube kubelet`
//! running the pods: a Deployment is applied, rolls out, is scaled up and down, survives a kill -9 and restart of
//! the server (the same objects, uids and generation, read back from etcd), and its deletion is kept across
//! another restart. The objects are in etcd under the server's prefix, and no embedded store is made.
//!
//! Needs root, etcd (`apt-get install etcd-server etcd-client`) and the binaries: `cargo build --release -p rkube
//! -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod node_cluster;
mod up_support;

#[path = "../../../apiserver/tests/storage_common/mod.rs"]
mod storage_common;

use std::process::Command;
use std::time::Duration;

use node_cluster::{Cluster, Options};
use rkube_testsupport::{poll_until, require_command};

/// Names of the Deployment's pods that run on the node and are not terminating, sorted.
fn running_pods(c: &Cluster) -> Vec<String> {
    let rows = c.kubectl_ok(
        &["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}"],
        None,
    );
    let mut names: Vec<String> = rows
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() >= 2 && f[1] == "Running" && f.get(2).is_none_or(|d| d.is_empty())).then(|| f[0].to_string())
        })
        .collect();
    names.sort();
    names
}

fn all_pods(c: &Cluster) -> Vec<String> {
    let mut v: Vec<String> = c.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "name"], None).lines().map(str::to_string).collect();
    v.sort();
    v
}

fn etcd_keys(endpoint: &str) -> String {
    let etcdctl = require_command("etcdctl", "etcd-client");
    let out = Command::new(etcdctl)
        .args(["--endpoints", endpoint, "get", "/rkube", "--prefix", "--keys-only"])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl");
    assert!(out.status.success(), "etcdctl: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_deployment_on_the_etcd_backed_server_is_kept_across_restarts() {
    let etcd = storage_common::Etcd::start();
    let mut c = Cluster::start(Options { etcd: vec![etcd.endpoint.clone()], ..Default::default() });
    c.kubectl_ok(&["apply", "-f", "-"], Some(up_support::SLEEPING_DEPLOYMENT));
    c.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"], None);
    assert_eq!(running_pods(&c).len(), 2);
    c.kubectl_ok(&["scale", "deployment/web", "--replicas=3"], None);
    c.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"], None);
    poll_until("3 pods Running", Duration::from_secs(60), || (running_pods(&c).len() == 3).then_some(()));
    c.kubectl_ok(&["scale", "deployment/web", "--replicas=1"], None);
    poll_until("scaled down to 1 pod", Duration::from_secs(60), || (all_pods(&c).len() == 1).then_some(()));
    let kept = running_pods(&c);
    assert_eq!(kept.len(), 1);

    // the objects are in etcd, not in an embedded store
    let keys = etcd_keys(&etcd.endpoint);
    assert!(keys.lines().any(|k| k.contains("deployments") && k.ends_with("/web")), "the Deployment in etcd: {keys}");
    assert!(keys.lines().any(|k| k.contains("pods") && k.ends_with(&format!("/{}", kept[0]))), "the pod in etcd: {keys}");
    assert!(!c.server_dir.path().join("state.redb").exists(), "no embedded store next to --etcd");

    // kill -9 and restart: everything read back from etcd
    let fields = "{.metadata.uid} {.metadata.generation} {.spec.replicas} {.status.readyReplicas}";
    let before = c.get("deployment/web", fields);
    let rs_before = c.get("replicasets", "{.items[*].metadata.uid}");
    c.kill_server();
    c.start_server();
    assert_eq!(c.get("deployment/web", fields), before, "the same Deployment, generation and status");
    assert_eq!(c.get("replicasets", "{.items[*].metadata.uid}"), rs_before, "the same ReplicaSet");
    assert_eq!(running_pods(&c), kept, "the same pod, still Running");
    // the controllers pick up where they were: a scale after the restart is carried out
    c.kubectl_ok(&["scale", "deployment/web", "--replicas=2"], None);
    poll_until("2 pods Running after the restart", Duration::from_secs(60), || (running_pods(&c).len() == 2).then_some(()));
    assert!(running_pods(&c).contains(&kept[0]), "the old pod kept");

    // delete, restart, still deleted
    c.kubectl_ok(&["delete", "deployment", "web", "--timeout=60s"], None);
    poll_until("the Deployment's pods collected", Duration::from_secs(60), || all_pods(&c).is_empty().then_some(()));
    c.kill_server();
    c.start_server();
    let out = c.kubectl_output(None, &["get", "deployment", "web"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("deployments.apps \"web\" not found"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(all_pods(&c).is_empty(), "no pod came back");
    assert_eq!(c.get("replicasets", "{.items[*].metadata.name}"), "", "no ReplicaSet came back");
    let keys = etcd_keys(&etcd.endpoint);
    assert!(!keys.lines().any(|k| k.contains("deployments") && k.ends_with("/web")), "the Deployment gone from etcd: {keys}");
}
