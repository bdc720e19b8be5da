//! Scheduler against the real apiserver with simulated nodes: binding, kube-scheduler's FailedScheduling
//! message, retry when a node appears, anti-affinity spreading, nodeName-pinned pods left alone.

mod common;

use std::time::Duration;

use common::{create, pods, wait_for, Cluster};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn pod(name: &str, mem: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "sched"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m", "memory": mem}}}]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pod_gets_kube_scheduler_message_and_binds_when_a_node_fits() {
    let cluster = Cluster::start(3).await;
    let ns = cluster.namespace("rks").await;
    let _: Pod = create(&cluster.client, &ns, pod("big", "16Gi")).await;
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), &ns);
    let msg = wait_for("FailedScheduling event", T, || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find(|e| e.reason.as_deref() == Some("FailedScheduling")).and_then(|e| e.message)
        }
    })
    .await;
    assert_eq!(msg, "0/3 nodes are available: 3 Insufficient memory.");
    // the pod's PodScheduled condition says the same
    let papi: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
    let p = papi.get("big").await.expect("pod");
    assert!(p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none());
    // a node that fits appears: the scheduler retries without any change to the pod
    cluster.kubelet.add_node("node-big", "8", "32Gi").await;
    let node = wait_for("pod bound to node-big", T, || {
        let papi = papi.clone();
        async move { papi.get("big").await.ok()?.spec?.node_name }
    })
    .await;
    assert_eq!(node, "node-big");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_affinity_spreads_one_per_node_and_pinned_pods_are_not_rescheduled() {
    let cluster = Cluster::start(3).await;
    let ns = cluster.namespace("rks").await;
    for i in 0..4 {
        let mut p = pod(&format!("w{i}"), "64Mi");
        p["spec"]["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "sched"}}, "topologyKey": "kubernetes.io/hostname"}
        ]}});
        let _: Pod = create(&cluster.client, &ns, p).await;
    }
    let mut pinned = pod("pinned", "64Mi");
    pinned["metadata"]["labels"] = json!({"app": "other"});
    pinned["spec"]["nodeName"] = json!("node-0");
    let _: Pod = create(&cluster.client, &ns, pinned).await;
    let client = cluster.client.clone();
    let nsc = ns.clone();
    let bound = wait_for("three anti-affinity pods bound", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        async move {
            let ps = pods(&client, &ns).await;
            let bound: Vec<(String, String)> = ps
                .iter()
                .filter(|p| p.metadata.name.as_deref() != Some("pinned"))
                .filter_map(|p| Some((p.metadata.name.clone()?, p.spec.as_ref()?.node_name.clone()?)))
                .collect();
            (bound.len() >= 3).then_some(bound)
        }
    })
    .await;
    let mut nodes: Vec<&String> = bound.iter().map(|(_, n)| n).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "one per node: {bound:?}");
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), &ns);
    let msg = wait_for("FailedScheduling for the 4th pod", T, || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find(|e| e.reason.as_deref() == Some("FailedScheduling")).and_then(|e| e.message)
        }
    })
    .await;
    assert_eq!(msg, "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.");
    let papi: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
    assert_eq!(papi.get("pinned").await.expect("pinned").spec.and_then(|s| s.node_name).as_deref(), Some("node-0"));
}
