//! Scheduler against the real apiserver with simulated nodes: binding, kube-scheduler's FailedScheduling
//! message, retry when a node appears, anti-affinity spreading, nodeName-pinned pods left alone, filters
//! (taints, cordon, selectors, host ports) and the preferred-affinity scores.

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
    assert_eq!(msg, "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..");
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
    assert_eq!(msg, "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod..");
    let papi: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
    assert_eq!(papi.get("pinned").await.expect("pinned").spec.and_then(|s| s.node_name).as_deref(), Some("node-0"));
}

/// Poll the namespace's events until one for `pod` says exactly `want` (earlier attempts may have seen an
/// older view of the nodes; the scheduler retries when nodes change).
async fn wait_failed_scheduling(cluster: &Cluster, ns: &str, pod: &str, want: &str) {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), ns);
    let seen = wait_for(&format!("FailedScheduling for {pod}: {want}"), T, || {
        let events = events.clone();
        async move {
            let list = events.list(&Default::default()).await.ok()?;
            let msgs: Vec<String> = list
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("FailedScheduling") && e.involved_object.name.as_deref() == Some(pod))
                .filter_map(|e| e.message)
                .collect();
            msgs.iter().any(|m| m == want).then_some(msgs)
        }
    })
    .await;
    assert!(seen.iter().any(|m| m == want));
}

async fn node_of(cluster: &Cluster, ns: &str, pod: &str) -> String {
    let papi: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    wait_for(&format!("{pod} bound"), T, || {
        let papi = papi.clone();
        async move { papi.get(pod).await.ok()?.spec?.node_name }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_cordon_node_selector_affinity_and_host_ports() {
    let cluster = Cluster::start(4).await;
    let ns = cluster.namespace("rkf").await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client.clone());
    let pp = kube::api::PatchParams::default();
    nodes
        .patch("node-0", &pp, &kube::api::Patch::Merge(&json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}})))
        .await
        .expect("taint node-0");
    nodes.patch("node-2", &pp, &kube::api::Patch::Merge(&json!({"metadata": {"labels": {"disk": "ssd"}}}))).await.expect("label node-2");
    let (ok, out) = cluster.kubectl_async(&["cordon", "node-1"]).await;
    assert!(ok, "{out}");

    // nothing fits: each node fails at its first filter, counted as kube-scheduler words it
    let mut hdd = pod("hdd", "64Mi");
    hdd["spec"]["nodeSelector"] = json!({"disk": "hdd"});
    let _: Pod = create(&cluster.client, &ns, hdd).await;
    wait_failed_scheduling(
        &cluster,
        &ns,
        "hdd",
        "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling..",
    )
    .await;

    // nodeSelector
    let mut ssd = pod("ssd", "64Mi");
    ssd["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    let _: Pod = create(&cluster.client, &ns, ssd).await;
    assert_eq!(node_of(&cluster, &ns, "ssd").await, "node-2");

    // a toleration plus required node affinity reaches the tainted node
    let mut gpu = pod("gpu", "64Mi");
    gpu["spec"]["tolerations"] = json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]);
    gpu["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-0"]}]}
    ]}}});
    let _: Pod = create(&cluster.client, &ns, gpu).await;
    assert_eq!(node_of(&cluster, &ns, "gpu").await, "node-0");

    // hostPort: the second pod wanting port 8080 on node-3 finds it taken
    let on_node3 = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-3"]}]}
    ]}}});
    for name in ["port-a", "port-b"] {
        let mut p = pod(name, "64Mi");
        p["spec"]["affinity"] = on_node3.clone();
        p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]);
        let _: Pod = create(&cluster.client, &ns, p).await;
        if name == "port-a" {
            assert_eq!(node_of(&cluster, &ns, "port-a").await, "node-3");
        }
    }
    wait_failed_scheduling(
        &cluster,
        &ns,
        "port-b",
        "0/4 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable. \
         preemption: 0/4 nodes are available: 1 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling..",
    )
    .await;

    // a pod that only fits the cordoned node waits; kubectl uncordon lets it bind (retry on node change)
    let mut wants1 = pod("wants-1", "64Mi");
    wants1["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "node-1"});
    let _: Pod = create(&cluster.client, &ns, wants1).await;
    wait_failed_scheduling(
        &cluster,
        &ns,
        "wants-1",
        "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling..",
    )
    .await;
    let (ok, out) = cluster.kubectl_async(&["uncordon", "node-1"]).await;
    assert!(ok, "{out}");
    assert_eq!(node_of(&cluster, &ns, "wants-1").await, "node-1");
    // port-b is still pending: its node never changed in a way that frees the port
    let papi: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
    assert!(papi.get("port-b").await.expect("port-b").spec.and_then(|s| s.node_name).is_none());
}

/// Scores among nodes that all pass the filters. Each preference here goes against least-allocated (it draws
/// the pod to the busier node), so a scheduler that ignored it would place the pod elsewhere: preferred node
/// affinity, preferred pod affinity (next to a pod), preferred pod anti-affinity (away from one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_node_and_pod_affinity_outweigh_free_resources() {
    let cluster = Cluster::start(3).await;
    let ns = cluster.namespace("rkp").await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cluster.client.clone());
    let pp = kube::api::PatchParams::default();
    nodes.patch("node-1", &pp, &kube::api::Patch::Merge(&json!({"metadata": {"labels": {"zone": "b"}}}))).await.expect("label node-1");
    let labelled = |name: &str, mem: &str, app: &str| {
        let mut p = pod(name, mem);
        p["metadata"]["labels"] = json!({"app": app});
        p
    };
    // The scheduler sees nodes through a watch of their own: a pod that can only bind once the scheduler has
    // seen the label (a required term; a node update wakes it) proves the label is in its cache.
    let mut probe = labelled("probe-zone", "64Mi", "probe");
    probe["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}
    ]}}});
    let _: Pod = create(&cluster.client, &ns, probe).await;
    assert_eq!(node_of(&cluster, &ns, "probe-zone").await, "node-1", "the scheduler has seen the zone label");
    for name in ["zb-0", "zb-1"] {
        let mut p = labelled(name, "64Mi", "zoned");
        p["spec"]["affinity"] = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}}
        ]}});
        let _: Pod = create(&cluster.client, &ns, p).await;
        // one after the other: the second sees the first's requests on node-1 and still prefers it
        assert_eq!(node_of(&cluster, &ns, name).await, "node-1", "{name}: preferred zone b");
    }
    // node-0 half full (ballast) and holding the leader; node-2 nearly empty, holding a quiet pod
    for (name, node, cpu, mem, app) in [("ballast", "node-0", "2", "4Gi", "ballast"), ("leader", "node-0", "100m", "64Mi", "leader"), ("quiet", "node-2", "100m", "64Mi", "quiet")] {
        let mut p = labelled(name, mem, app);
        p["spec"]["nodeName"] = json!(node);
        p["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!(cpu);
        let _: Pod = create(&cluster.client, &ns, p).await;
    }
    let term = |app: &str| json!({"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}});
    let mut follower = labelled("follower", "64Mi", "follower");
    follower["spec"]["affinity"] = json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [term("leader")]}});
    let _: Pod = create(&cluster.client, &ns, follower).await;
    assert_eq!(node_of(&cluster, &ns, "follower").await, "node-0", "preferred pod affinity: next to the leader, busy node or not");
    // node-0 or node-2 only; it would rather not share a host with the quiet pod
    let mut avoider = labelled("avoider", "64Mi", "avoider");
    avoider["spec"]["affinity"] = json!({
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-0", "node-2"]}]}
        ]}},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [term("quiet")]}
    });
    let _: Pod = create(&cluster.client, &ns, avoider).await;
    assert_eq!(node_of(&cluster, &ns, "avoider").await, "node-0", "preferred anti-affinity: away from the quiet pod, onto the busy node");
    // the same pod without preferences goes where the resources are: the control for the two above
    let mut plain = labelled("plain", "64Mi", "plain");
    plain["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-0", "node-2"]}]}
    ]}}});
    let _: Pod = create(&cluster.client, &ns, plain).await;
    assert_eq!(node_of(&cluster, &ns, "plain").await, "node-2", "no preference: least allocated");
}
