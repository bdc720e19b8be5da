//! StatefulSet, DaemonSet, Job, CronJob (with concurrency policies and history limits), Endpoints, default
//! ServiceAccount, node loss → eviction → replacement, Foreground deletion (owners wait for a held dependent)
//! and namespace cascade, against the real apiserver with simulated nodes.

mod common;

use std::time::Duration;

use common::{create, is_ready, pods, test_config, wait_for, Cluster, PodWatch};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

fn template(app: &str, image: &str) -> serde_json::Value {
    json!({"metadata": {"labels": {"app": app}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": image}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_stable_names_ordered_scale_down_and_update() {
    let cluster = Cluster::start(2).await;
    let ns = cluster.namespace("rkst").await;
    let mut t = template("db", "db:1");
    t["spec"]["restartPolicy"] = json!("Always");
    let _: StatefulSet = create(&cluster.client, &ns, json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "db"}}, "template": t}
    }))
    .await;
    let client = cluster.client.clone();
    let nsc = ns.clone();
    let names = |want: usize, image: &'static str| {
        let client = client.clone();
        let ns = nsc.clone();
        move || {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                let ps = pods(&client, &ns).await;
                let live: Vec<&Pod> = ps.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
                let ok = live.len() == want
                    && live.iter().all(|p| is_ready(p) && p.spec.as_ref().and_then(|s| s.containers[0].image.as_deref()) == Some(image));
                let mut n: Vec<String> = live.iter().map(|p| p.name_any()).collect();
                n.sort();
                ok.then_some((n, live.iter().map(|p| (p.name_any(), p.metadata.creation_timestamp.clone())).collect::<Vec<_>>()))
            }
        }
    };
    let (n, created) = wait_for("web-0..2 ready", T, names(3, "db:1")).await;
    assert_eq!(n, vec!["web-0", "web-1", "web-2"]);
    // OrderedReady: web-0 was created no later than web-1, web-1 no later than web-2
    let ts = |name: &str| created.iter().find(|(n, _)| n == name).and_then(|(_, t)| t.clone());
    assert!(ts("web-0") <= ts("web-1") && ts("web-1") <= ts("web-2"));
    let api: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), &ns);
    // rolling update by ordinal, then scale down from the top
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "db:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("update");
    wait_for("all on db:2", T, names(3, "db:2")).await;
    api.patch("web", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": 1}}))).await.expect("scale");
    let (n, _) = wait_for("scaled to web-0", T, names(1, "db:2")).await;
    assert_eq!(n, vec!["web-0"]);
    let s = wait_for("status", T, || {
        let api = api.clone();
        async move {
            let s = api.get("web").await.ok()?.status?;
            (s.replicas == 1 && s.ready_replicas == Some(1)).then_some(s)
        }
    })
    .await;
    assert_eq!(s.current_revision, s.update_revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_runs_one_pod_per_eligible_node() {
    let cluster = Cluster::start(3).await;
    let ns = cluster.namespace("rkds").await;
    let mut t = template("agent", "agent:1");
    t["spec"]["restartPolicy"] = json!("Always");
    let _: DaemonSet = create(&cluster.client, &ns, json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": t}
    }))
    .await;
    let client = cluster.client.clone();
    let nsc = ns.clone();
    let per_node = |want: usize| {
        let client = client.clone();
        let ns = nsc.clone();
        move || {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                let ps = pods(&client, &ns).await;
                let mut nodes: Vec<String> = ps.iter().filter(|p| is_ready(p)).filter_map(|p| p.spec.as_ref()?.node_name.clone()).collect();
                nodes.sort();
                let n = nodes.len();
                nodes.dedup();
                (n == want && nodes.len() == want).then_some(nodes)
            }
        }
    };
    wait_for("3 daemon pods on 3 nodes", T, per_node(3)).await;
    cluster.kubelet.add_node("node-extra", "4", "8Gi").await;
    let nodes = wait_for("4 daemon pods after a node joined", T, per_node(4)).await;
    assert!(nodes.contains(&"node-extra".to_string()));
    let api: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), &ns);
    wait_for("daemonset status", T, || {
        let api = api.clone();
        async move {
            let s = api.get("agent").await.ok()?.status?;
            (s.desired_number_scheduled == 4 && s.number_ready == 4).then_some(())
        }
    })
    .await;
    // rolling update (maxUnavailable 1 by default): node by node, never more than one node without a ready pod
    // checked at every pod change, as the watch delivers them
    let mut watch = PodWatch::start(&cluster.client, &ns).await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}});
    api.patch("agent", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("update image");
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let ps = watch.next(deadline).await;
        let mut ready_nodes: Vec<String> = ps.iter().filter(|p| is_ready(p)).filter_map(|p| p.spec.as_ref()?.node_name.clone()).collect();
        ready_nodes.sort();
        ready_nodes.dedup();
        assert!(ready_nodes.len() >= 3, "change {}: only {ready_nodes:?} of 4 nodes had a ready daemon pod", watch.changes);
        let live: Vec<&Pod> = ps.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        let done = live.len() == 4
            && live.iter().all(|p| is_ready(p) && p.spec.as_ref().and_then(|s| s.containers[0].image.as_deref()) == Some("agent:2"));
        if done {
            break;
        }
    }
    assert!(watch.changes >= 8, "only {} pod changes seen during the update of 4 nodes", watch.changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_ordered_ready_waits_and_parallel_does_not() {
    let cluster = Cluster::start(2).await;
    let ns = cluster.namespace("rkpm").await;
    // pods that run but never become Ready
    for (name, policy) in [("ordered", "OrderedReady"), ("par", "Parallel")] {
        let mut t = template(name, "unready");
        t["spec"]["restartPolicy"] = json!("Always");
        let _: StatefulSet = create(&cluster.client, &ns, json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": 3, "serviceName": name, "podManagementPolicy": policy,
                     "selector": {"matchLabels": {"app": name}}, "template": t}
        }))
        .await;
    }
    let client = cluster.client.clone();
    let nsc = ns.clone();
    let running = |prefix: &'static str, want: usize| {
        let client = client.clone();
        let ns = nsc.clone();
        move || {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                let ps = pods(&client, &ns).await;
                let mut n: Vec<String> = ps
                    .iter()
                    .filter(|p| p.name_any().starts_with(prefix) && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                    .map(|p| p.name_any())
                    .collect();
                n.sort();
                (n.len() == want).then_some(n)
            }
        }
    };
    assert_eq!(wait_for("Parallel: all three running unready", T, running("par-", 3)).await, vec!["par-0", "par-1", "par-2"]);
    assert_eq!(wait_for("OrderedReady: ordered-0 running", T, running("ordered-", 1)).await, vec!["ordered-0"]);
    let api: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), &ns);
    // once the controller has counted ordered-0 it still does not go on to ordered-1
    wait_for("ordered status counts one pod", T, || {
        let api = api.clone();
        async move { (api.get("ordered").await.ok()?.status?.replicas == 1).then_some(()) }
    })
    .await;
    let ps = pods(&cluster.client, &ns).await;
    assert!(!ps.iter().any(|p| p.name_any() == "ordered-1"), "OrderedReady created ordered-1 before ordered-0 was Ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_fail_and_expire_and_cronjob_creates_jobs() {
    let clock = rkube_controllers::cronjob::Clock::manual(chrono::Utc::now());
    let cluster = Cluster::start_with(2, clock_config(&clock)).await;
    let ns = cluster.namespace("rkj").await;
    let _: Job = create(&cluster.client, &ns, json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "ok"},
        "spec": {"completions": 3, "parallelism": 2, "template": template("ok", "succeed")}
    }))
    .await;
    let _: Job = create(&cluster.client, &ns, json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad"},
        "spec": {"backoffLimit": 1, "template": template("bad", "fail")}
    }))
    .await;
    let _: Job = create(&cluster.client, &ns, json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "short"},
        "spec": {"ttlSecondsAfterFinished": 0, "template": template("short", "succeed")}
    }))
    .await;
    let api: Api<Job> = Api::namespaced(cluster.client.clone(), &ns);
    let cond = |name: &'static str, type_: &'static str| {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move {
                let j = api.get(name).await.ok()?;
                let s = j.status?;
                s.conditions?.iter().find(|c| c.type_ == type_ && c.status == "True").map(|c| (c.reason.clone(), s.succeeded, s.failed))
            }
        }
    };
    // parallelism 2 of 4 completions, pods that never finish: two at a time, then the deadline fails the Job
    let _: Job = create(&cluster.client, &ns, json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "slow"},
        "spec": {"completions": 4, "parallelism": 2, "activeDeadlineSeconds": 3, "template": template("slow", "run")}
    }))
    .await;
    let (_, succeeded, _) = wait_for("job ok Complete", T, cond("ok", "Complete")).await;
    assert_eq!(succeeded, Some(3));
    let (reason, _, failed) = wait_for("job bad Failed", T, cond("bad", "Failed")).await;
    assert_eq!(reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(failed, Some(2));
    let active = wait_for("job slow has 2 active pods", T, || {
        let api = api.clone();
        async move { api.get("slow").await.ok()?.status?.active.filter(|a| *a > 0) }
    })
    .await;
    assert_eq!(active, 2, "parallelism 2");
    let slow_pods = pods(&cluster.client, &ns).await.into_iter().filter(|p| p.name_any().starts_with("slow-")).count();
    assert_eq!(slow_pods, 2, "no more pods than parallelism");
    let (reason, _, _) = wait_for("job slow Failed by its deadline", T, cond("slow", "Failed")).await;
    assert_eq!(reason.as_deref(), Some("DeadlineExceeded"));
    let client = cluster.client.clone();
    let nsc = ns.clone();
    wait_for("job slow's pods removed", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        async move {
            let ps = pods(&client, &ns).await;
            ps.iter().filter(|p| p.name_any().starts_with("slow-")).all(|p| p.metadata.deletion_timestamp.is_some()).then_some(())
        }
    })
    .await;
    wait_for("job short deleted by TTL", T, || {
        let api = api.clone();
        async move { api.get_opt("short").await.ok()?.is_none().then_some(()) }
    })
    .await;
    // CronJob: every minute; the first Job is for the first minute boundary after its creation, made once the
    // controller's clock has passed it
    let cj: CronJob = create(&cluster.client, &ns, json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
        "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid",
                 "jobTemplate": {"spec": {"template": template("tick", "succeed")}}}
    }))
    .await;
    let boundary = next_minute(cj.metadata.creation_timestamp.as_ref().expect("creationTimestamp"));
    let capi: Api<CronJob> = Api::namespaced(cluster.client.clone(), &ns);
    clock.set(boundary + chrono::Duration::seconds(1));
    touch(&capi, &["tick"], 1).await;
    let job = wait_for("cronjob created a job", T, || {
        let api = api.clone();
        async move {
            api.list(&Default::default()).await.ok()?.items.into_iter().find(|j| j.name_any().starts_with("tick-"))
        }
    })
    .await;
    assert_eq!(job.name_any(), format!("tick-{}", boundary.timestamp() / 60), "the run of the boundary the clock passed");
    let owner = job.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("CronJob"));
    let last = wait_for("cronjob lastScheduleTime", T, || {
        let capi = capi.clone();
        async move { capi.get("tick").await.ok()?.status?.last_schedule_time }
    })
    .await;
    assert_eq!(last.0.as_second(), boundary.timestamp());
}

/// The controllers' config with the CronJob controller reading `clock`.
fn clock_config(clock: &rkube_controllers::cronjob::Clock) -> rkube_controllers::Config {
    let mut config = test_config();
    config.clock = clock.clone();
    config
}

/// The first minute boundary strictly after `t` (when `* * * * *` runs next).
fn next_minute(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> chrono::DateTime<chrono::Utc> {
    let minute = rkube_apimachinery::time::to_chrono(t).timestamp().div_euclid(60);
    chrono::DateTime::from_timestamp((minute + 1) * 60, 0).expect("a time")
}

/// Touches each CronJob (an annotation) so the controller reconciles it now: it reads the moved clock on its
/// next reconcile, and would otherwise wait for its real-time requeue.
async fn touch(api: &Api<CronJob>, names: &[&str], round: u32) {
    for name in names {
        let patch = json!({"metadata": {"annotations": {"test.rkube.dev/clock-moved": round.to_string()}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("touch the cronjob");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_endpoints_and_default_service_account() {
    let cluster = Cluster::start(2).await;
    let ns = cluster.namespace("rke").await;
    let sa: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), &ns);
    wait_for("default service account", T, || {
        let sa = sa.clone();
        async move { sa.get_opt("default").await.ok()? }
    })
    .await;
    let svc: Service = create(&cluster.client, &ns, json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .await;
    assert!(svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).is_some_and(|ip| ip.starts_with("10.")));
    for i in 0..2 {
        let _: Pod = create(&cluster.client, &ns, json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("web-{i}"), "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "web"}]}
        }))
        .await;
    }
    let ep: Api<Endpoints> = Api::namespaced(cluster.client.clone(), &ns);
    let addrs = wait_for("2 ready endpoint addresses", T, || {
        let ep = ep.clone();
        async move {
            let e = ep.get_opt("web").await.ok()??;
            let s = e.subsets?.into_iter().next()?;
            let a = s.addresses.unwrap_or_default();
            (a.len() == 2 && s.ports.as_ref()?.first()?.port == 8080).then_some(a)
        }
    })
    .await;
    assert!(addrs.iter().all(|a| a.target_ref.as_ref().and_then(|t| t.name.as_deref()).is_some_and(|n| n.starts_with("web-"))));
    let slices: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), &ns);
    let list = slices.list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=web")).await.expect("slices");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].endpoints.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_node_goes_unknown_is_tainted_and_its_pods_are_replaced_elsewhere() {
    let mut config = test_config();
    config.lifecycle.grace = chrono::Duration::seconds(3);
    let cluster = Cluster::start_with(2, config).await;
    let ns = cluster.namespace("rkn").await;
    // the apiserver gives every pod 300 s tolerations for not-ready/unreachable at admission (as upstream's
    // DefaultTolerationSeconds does); these pods say 2 s themselves
    let short = |secs: i64| {
        json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs},
        ])
    };
    let mut t = template("keep", "keep:1");
    t["spec"]["restartPolicy"] = json!("Always");
    t["spec"]["tolerations"] = short(2);
    let _: Deployment = create(&cluster.client, &ns, json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "keep"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "keep"}}, "template": t}
    }))
    .await;
    // a pod that tolerates the lost node for an hour stays where it is
    let _: Pod = create(&cluster.client, &ns, json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "patient", "labels": {"app": "patient"}},
        "spec": {"nodeName": "node-0", "tolerations": short(3600), "containers": [{"name": "c", "image": "p"}]}
    }))
    .await;
    let client = cluster.client.clone();
    let nsc = ns.clone();
    let on_nodes = wait_for("4 ready pods", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        async move {
            let ps = pods(&client, &ns).await;
            let ready: Vec<String> = ps
                .iter()
                .filter(|p| is_ready(p) && p.name_any() != "patient")
                .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                .collect();
            (ready.len() == 4).then_some(ready)
        }
    })
    .await;
    assert!(on_nodes.iter().any(|n| n == "node-0"), "spreading put pods on node-0: {on_nodes:?}");
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    // podCIDRs were allocated from 10.244.0.0/16, a different /24 per node
    let cidrs = wait_for("podCIDRs on both nodes", T, || {
        let nodes = nodes.clone();
        async move {
            let mut out = Vec::new();
            for n in ["node-0", "node-1"] {
                out.push(nodes.get(n).await.ok()?.spec?.pod_cidr?);
            }
            Some(out)
        }
    })
    .await;
    assert!(cidrs.iter().all(|c| c.starts_with("10.244.") && c.ends_with("/24")), "{cidrs:?}");
    assert_ne!(cidrs[0], cidrs[1]);
    cluster.kubelet.kill_node("node-0");
    wait_for("node-0 Unknown with unreachable NoExecute taint", T, || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("node-0").await.ok()?;
            let unknown = n.status.as_ref()?.conditions.as_ref()?.iter().any(|c| c.type_ == "Ready" && c.status == "Unknown");
            let tainted = n.spec.as_ref()?.taints.as_ref()?.iter().any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute");
            (unknown && tainted).then_some(())
        }
    })
    .await;
    wait_for("pods replaced on node-1", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        async move {
            let ps = pods(&client, &ns).await;
            let keep: Vec<&Pod> = ps.iter().filter(|p| p.name_any() != "patient").collect();
            let ready_on_1 = keep.iter().filter(|p| is_ready(p) && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("node-1")).count();
            let evicted = keep.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("node-0")).all(|p| p.metadata.deletion_timestamp.is_some());
            (ready_on_1 == 4 && evicted).then_some(())
        }
    })
    .await;
    let papi: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
    let patient = papi.get("patient").await.expect("patient pod");
    assert!(patient.metadata.deletion_timestamp.is_none(), "a pod tolerating the taint for 3600 s was evicted");
    // the node heals (its kubelet renews the Lease and reports Ready again): taints come off
    cluster.kubelet.revive_node("node-0");
    wait_for("taints removed", T, || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("node-0").await.ok()?;
            n.spec?.taints.unwrap_or_default().is_empty().then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_waits_for_dependents_and_namespace_deletion_cascades() {
    let cluster = Cluster::start(2).await;
    let ns = cluster.namespace("rkg").await;
    let mut t = template("fg", "fg:1");
    t["spec"]["restartPolicy"] = json!("Always");
    let _: Deployment = create(&cluster.client, &ns, json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fg"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "fg"}}, "template": t.clone()}
    }))
    .await;
    let client = cluster.client.clone();
    let nsc = ns.clone();
    wait_for("2 ready pods", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        async move { (pods(&client, &ns).await.iter().filter(|p| is_ready(p)).count() == 2).then_some(()) }
    })
    .await;
    // one pod holds on (a finalizer of ours): Foreground must keep the Deployment and its ReplicaSet until it goes
    let papi: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
    let all = pods(&cluster.client, &ns).await;
    let held = all[0].name_any();
    papi.patch(&held, &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": ["rkube.test/hold"]}})))
        .await
        .expect("hold a pod");
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "delete", "deployment", "fg", "--cascade=foreground", "--wait=false"]).await;
    assert!(ok, "{out}");
    let dapi: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    let rsapi: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), &ns);
    wait_for("the other pod gone, the held one terminating", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        let held = held.clone();
        async move {
            let ps = pods(&client, &ns).await;
            (ps.len() == 1 && ps[0].name_any() == held && ps[0].metadata.deletion_timestamp.is_some()).then_some(())
        }
    })
    .await;
    // blockOwnerDeletion: owners wait, marked for deletion and carrying foregroundDeletion, while a dependent lives
    let d = dapi.get("fg").await.expect("deployment still there while a pod it owns (through its RS) lives");
    assert!(d.metadata.deletion_timestamp.is_some());
    assert!(d.finalizers().iter().any(|f| f == "foregroundDeletion"), "{:?}", d.finalizers());
    let rss = rsapi.list(&Default::default()).await.expect("list rs").items;
    assert_eq!(rss.len(), 1, "the ReplicaSet waits for its pod too");
    assert!(rss[0].metadata.deletion_timestamp.is_some() && rss[0].finalizers().iter().any(|f| f == "foregroundDeletion"), "{:?}", rss[0].metadata);
    papi.patch(&held, &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": null}})))
        .await
        .expect("let the pod go");
    wait_for("deployment, replicaset and pods gone", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        let dapi = dapi.clone();
        async move {
            if let Some(d) = dapi.get_opt("fg").await.ok()? {
                // while it exists it carries the finalizer the GC works on
                assert!(d.metadata.deletion_timestamp.is_some());
                return None;
            }
            pods(&client, &ns).await.is_empty().then_some(())
        }
    })
    .await;
    // namespace deletion removes everything inside, then the namespace
    let _: Deployment = create(&cluster.client, &ns, json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "inner"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "fg"}}, "template": t}
    }))
    .await;
    wait_for("inner pods", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        async move { (pods(&client, &ns).await.len() == 2).then_some(()) }
    })
    .await;
    let (ok, out) = cluster.kubectl_async(&["delete", "namespace", &ns, "--wait=false"]).await;
    assert!(ok, "{out}");
    let napi: Api<Namespace> = Api::all(cluster.client.clone());
    wait_for("namespace gone", T, || {
        let napi = napi.clone();
        let ns = nsc.clone();
        async move { napi.get_opt(&ns).await.ok()?.is_none().then_some(()) }
    })
    .await;
}

/// CronJob concurrencyPolicy and history limits over two schedule times of a clock the test moves: Allow starts
/// a second Job beside the first, Forbid skips the run while its Job is active, Replace deletes the active Job and
/// starts the new one, successfulJobsHistoryLimit 1 keeps only the newest finished Job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_concurrency_policies_and_history_limits() {
    let clock = rkube_controllers::cronjob::Clock::manual(chrono::Utc::now());
    let cluster = Cluster::start_with(2, clock_config(&clock)).await;
    let ns = cluster.namespace("rkc").await;
    let names = ["allow", "forbid", "replace", "hist"];
    let mut created = Vec::new();
    for (name, policy, image, history) in
        [("allow", "Allow", "run", 3), ("forbid", "Forbid", "run", 3), ("replace", "Replace", "run", 3), ("hist", "Allow", "succeed", 1)]
    {
        let cj: CronJob = create(&cluster.client, &ns, json!({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "* * * * *", "concurrencyPolicy": policy, "successfulJobsHistoryLimit": history,
                     "jobTemplate": {"spec": {"template": template(name, image)}}}
        }))
        .await;
        created.push(next_minute(cj.metadata.creation_timestamp.as_ref().expect("creationTimestamp")));
    }
    let api: Api<Job> = Api::namespaced(cluster.client.clone(), &ns);
    let capi: Api<CronJob> = Api::namespaced(cluster.client.clone(), &ns);
    let jobs_of = |cron: &'static str| {
        let api = api.clone();
        async move {
            let mut names: Vec<String> = api
                .list(&Default::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
                .into_iter()
                .filter(|j| j.metadata.deletion_timestamp.is_none())
                .filter(|j| j.owner_references().iter().any(|o| o.name == cron))
                .map(|j| j.name_any())
                .collect();
            names.sort(); // <cron>-<minutes since the epoch>: oldest first
            names
        }
    };
    // The first boundary after the last creation is a schedule time of all four (for one created before an
    // earlier boundary it is the latest missed run, which the controller makes once).
    let first_minute = created.iter().max().expect("four").timestamp() / 60;
    let run = |cron: &str, minute: i64| format!("{cron}-{minute}");
    clock.set(chrono::DateTime::from_timestamp(first_minute * 60 + 1, 0).expect("a time"));
    touch(&capi, &names, 1).await;
    for cron in names {
        wait_for(&format!("the first run of {cron}"), T, || async move { (jobs_of(cron).await == vec![run(cron, first_minute)]).then_some(()) }).await;
    }
    // hist's first run must have finished before the second, for the history limit to choose between them
    wait_for("hist's first run succeeded", T, || {
        let capi = capi.clone();
        async move { capi.get("hist").await.ok()?.status?.last_successful_time.map(|_| ()) }
    })
    .await;
    let second_minute = first_minute + 1;
    clock.set(chrono::DateTime::from_timestamp(second_minute * 60 + 1, 0).expect("a time"));
    touch(&capi, &names, 2).await;
    wait_for("the second run of allow, beside the first", T, || async {
        (jobs_of("allow").await == vec![run("allow", first_minute), run("allow", second_minute)]).then_some(())
    })
    .await;
    wait_for("replace: only the second run left", T, || async { (jobs_of("replace").await == vec![run("replace", second_minute)]).then_some(()) }).await;
    // Forbid: the second schedule time is recorded as seen, and no Job made for it
    wait_for("forbid: lastScheduleTime moves to the second run", T, || {
        let capi = capi.clone();
        async move {
            let t = capi.get("forbid").await.ok()?.status?.last_schedule_time?;
            (t.0.as_second() == second_minute * 60).then_some(())
        }
    })
    .await;
    assert_eq!(jobs_of("forbid").await, vec![run("forbid", first_minute)], "Forbid: the first run still alone");
    // history: both runs succeeded, only the newest is kept
    wait_for("hist keeps only its newest finished job", T, || async { (jobs_of("hist").await == vec![run("hist", second_minute)]).then_some(()) }).await;
    let status = capi.get("hist").await.expect("hist").status.expect("status");
    assert!(status.last_successful_time.is_some(), "lastSuccessfulTime set");
}

/// A ClusterRole labelled `aggregate-to-view` extends `view`, and through the built-in chain `edit` and
/// `admin`; RBAC answers from the aggregated rules; deleting it takes the rules away again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_roles_aggregate_into_view_edit_and_admin() {
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    use k8s_openapi::api::rbac::v1::ClusterRole;
    use kube::api::{DeleteParams, PostParams};
    let cluster = Cluster::start(0).await;
    let roles: Api<ClusterRole> = Api::all(cluster.client.clone());
    let extra: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}],
    }))
    .expect("a ClusterRole");
    roles.create(&PostParams::default(), &extra).await.expect("create widgets-view");
    let has_widgets = |r: &ClusterRole| r.rules.iter().flatten().any(|p| p.resources.as_deref() == Some(&["widgets".to_string()][..]));
    for name in ["view", "edit", "admin"] {
        wait_for(&format!("{name} aggregates widgets"), T, || {
            let roles = roles.clone();
            async move { roles.get(name).await.ok().filter(has_widgets) }
        })
        .await;
    }
    let binding = json!({
        "metadata": {"name": "viewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}],
    });
    let crb: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(cluster.client.clone());
    crb.create(&PostParams::default(), &serde_json::from_value(binding).expect("binding")).await.expect("bind viewer");
    let reviews: Api<SubjectAccessReview> = Api::all(cluster.client.clone());
    let allowed = |verb: &'static str| {
        let reviews = reviews.clone();
        async move {
            let review: SubjectAccessReview = serde_json::from_value(json!({
                "spec": {"user": "viewer", "resourceAttributes": {"namespace": "default", "verb": verb, "group": "example.com", "resource": "widgets"}},
            }))
            .expect("a review");
            reviews.create(&PostParams::default(), &review).await.expect("review").status.map(|s| s.allowed)
        }
    };
    assert_eq!(allowed("list").await, Some(true), "view's aggregated rule allows listing widgets");
    assert_eq!(allowed("delete").await, Some(false));
    roles.delete("widgets-view", &DeleteParams::default()).await.expect("delete widgets-view");
    for name in ["view", "edit", "admin"] {
        wait_for(&format!("{name} drops widgets"), T, || {
            let roles = roles.clone();
            async move { roles.get(name).await.ok().filter(|r| !has_widgets(r)) }
        })
        .await;
    }
    assert_eq!(allowed("list").await, Some(false));
}
