//! ReplicaSet, ReplicationController, Deployment (rolling update, Recreate, rollout undo via kubectl, restart
//! survival, progress deadline), adoption/orphaning and cascading deletes against the real apiserver with
//! simulated nodes.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{create, is_ready, pods, wait_for, Cluster, PodWatch};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

fn deployment(name: &str, replicas: i32, image: &str, strategy: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image, "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
            }
        }
    })
}

fn image_of(p: &Pod) -> String {
    p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone()).unwrap_or_default()
}

async fn wait_rolled_out(cluster: &Cluster, ns: &str, name: &str, replicas: i32) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    wait_for(&format!("deployment {name} rolled out"), T, || {
        let api = api.clone();
        let name = name.to_string();
        async move {
            let d = api.get(&name).await.ok()?;
            let s = d.status.clone()?;
            let done = s.observed_generation >= d.metadata.generation
                && s.updated_replicas == Some(replicas)
                && s.available_replicas == Some(replicas)
                && s.replicas == Some(replicas);
            done.then_some(d)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_never_drops_below_max_unavailable_and_undo_restores_template() {
    let cluster = Cluster::start(3).await;
    let ns = cluster.namespace("rkd").await;
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    let _: Deployment = create(&cluster.client, &ns, deployment("web", 4, "nginx:1", strategy)).await;
    wait_rolled_out(&cluster, &ns, "web", 4).await;
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "get", "deploy", "web", "--no-headers"]).await;
    assert!(ok, "{out}");
    let cols: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(&cols[1..4], &["4/4", "4", "4"], "READY UP-TO-DATE AVAILABLE: {out}");

    // update the image; the bounds hold at every pod change of the rollout, as the watch delivers them
    let mut watch = PodWatch::start(&cluster.client, &ns).await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("update image");
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let ps = watch.next(deadline).await;
        let live: Vec<&Pod> = ps.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        let ready = live.iter().filter(|p| is_ready(p)).count();
        let state = || live.iter().map(|p| format!("{} {} ready={}", p.name_any(), image_of(p), is_ready(p))).collect::<Vec<_>>();
        assert!(ready >= 3, "change {}: {ready} ready pods (< replicas - maxUnavailable = 3): {:?}", watch.changes, state());
        assert!(live.len() <= 5, "change {}: {} pods at once (> replicas + maxSurge = 5): {:?}", watch.changes, live.len(), state());
        if live.len() == 4 && live.iter().all(|p| image_of(p) == "nginx:2" && is_ready(p)) {
            break;
        }
    }
    // a rollout of 4 pods with surge 1 goes through many states: the bounds were checked at each
    assert!(watch.changes >= 8, "only {} pod changes seen during the rollout", watch.changes);
    wait_rolled_out(&cluster, &ns, "web", 4).await;
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "rollout", "status", "deployment/web", "--timeout=30s"]).await;
    assert!(ok && out.contains("successfully rolled out"), "{out}");
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "rollout", "history", "deployment/web"]).await;
    assert!(ok, "{out}");
    let revisions: Vec<&str> = out.lines().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(revisions, vec!["1", "2"], "{out}");

    // kubectl rollout undo goes back to nginx:1 as revision 3
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "rollout", "undo", "deployment/web"]).await;
    assert!(ok, "{out}");
    let client = cluster.client.clone();
    let nsc = ns.clone();
    wait_for("pods back on nginx:1", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        async move {
            let ps = pods(&client, &ns).await;
            let live: Vec<&Pod> = ps.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
            (live.len() == 4 && live.iter().all(|p| image_of(p) == "nginx:1" && is_ready(p))).then_some(())
        }
    })
    .await;
    let d = wait_rolled_out(&cluster, &ns, "web", 4).await;
    assert_eq!(d.metadata.annotations.as_ref().and_then(|a| a.get("deployment.kubernetes.io/revision")).map(String::as_str), Some("3"));
    let rs_api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), &ns);
    let rss = rs_api.list(&Default::default()).await.expect("rs list").items;
    assert_eq!(rss.len(), 2, "rollback re-used the first ReplicaSet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_scale_pause_resume_and_history_limit() {
    let cluster = Cluster::start(2).await;
    let ns = cluster.namespace("rkd").await;
    let mut d = deployment("app", 3, "img:1", json!({"type": "Recreate"}));
    d["spec"]["revisionHistoryLimit"] = json!(1);
    let _: Deployment = create(&cluster.client, &ns, d).await;
    wait_rolled_out(&cluster, &ns, "app", 3).await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    for v in ["img:2", "img:3"] {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": v}]}}}});
        api.patch("app", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("update");
        wait_rolled_out(&cluster, &ns, "app", 3).await;
        // Recreate: never old and new pods running together (checked at the end state: only new ones)
        let ps = pods(&cluster.client, &ns).await;
        assert!(ps.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).all(|p| image_of(p) == v));
    }
    let rs_api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), &ns);
    let client = cluster.client.clone();
    let nsc = ns.clone();
    wait_for("history pruned to 1 old ReplicaSet", T, || {
        let rs_api = rs_api.clone();
        async move { (rs_api.list(&Default::default()).await.ok()?.items.len() == 2).then_some(()) }
    })
    .await;
    // scaling
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "scale", "deployment/app", "--replicas=5"]).await;
    assert!(ok, "{out}");
    wait_rolled_out(&cluster, &ns, "app", 5).await;
    // pause: a template change does not roll out until resume
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "rollout", "pause", "deployment/app"]).await;
    assert!(ok, "{out}");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:4"}]}}}});
    api.patch("app", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("update");
    wait_for("paused condition", T, || {
        let api = api.clone();
        async move {
            let d = api.get("app").await.ok()?;
            let c = d.status?.conditions?;
            c.iter().any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused")).then_some(())
        }
    })
    .await;
    let ps = pods(&client, &nsc).await;
    assert!(ps.iter().all(|p| image_of(p) != "img:4"), "paused deployment rolled out");
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "rollout", "resume", "deployment/app"]).await;
    assert!(ok, "{out}");
    wait_for("img:4 rolled out after resume", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        async move {
            let ps = pods(&client, &ns).await;
            let live: Vec<&Pod> = ps.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
            (live.len() == 5 && live.iter().all(|p| image_of(p) == "img:4")).then_some(())
        }
    })
    .await;
    // kubectl rollout restart makes a new ReplicaSet (restartedAt annotation)
    let before: BTreeSet<String> = rs_api.list(&Default::default()).await.expect("rs").items.into_iter().filter_map(|r| r.metadata.name).collect();
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "rollout", "restart", "deployment/app"]).await;
    assert!(ok, "{out}");
    wait_for("new ReplicaSet after restart", T, || {
        let rs_api = rs_api.clone();
        let before = before.clone();
        async move {
            let now: BTreeSet<String> = rs_api.list(&Default::default()).await.ok()?.items.into_iter().filter_map(|r| r.metadata.name).collect();
            now.difference(&before).next().cloned()
        }
    })
    .await;
    wait_rolled_out(&cluster, &ns, "app", 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_adopts_orphans_and_orphan_delete_leaves_pods() {
    let cluster = Cluster::start(2).await;
    let ns = cluster.namespace("rkr").await;
    let orphan = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "labels": {"app": "rs"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]}
    });
    let stray: Pod = create(&cluster.client, &ns, orphan).await;
    // Timestamps have one-second resolution. If the controller's pod cache has not seen the stray pod yet when
    // the ReplicaSet arrives, it creates three, then adopts the stray and deletes one of four: newest first, so
    // the ReplicaSet's pods must be strictly newer than the stray one or the tie may remove it (seen once in a
    // full suite run). Wait for the clock to pass the stray pod's second.
    let born = stray.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()).expect("creationTimestamp");
    wait_for("the clock to pass the stray pod's creation second", T, || async move {
        (k8s_openapi::jiff::Timestamp::now().as_second() > born).then_some(())
    })
    .await;
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "rs"},
        "spec": {"replicas": 3, "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["rs"]}]},
                 "template": {"metadata": {"labels": {"app": "rs"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}
    });
    let created: ReplicaSet = create(&cluster.client, &ns, rs.clone()).await;
    let uid = created.metadata.uid.clone().expect("uid");
    let client = cluster.client.clone();
    let nsc = ns.clone();
    let owned = wait_for("3 pods owned by the ReplicaSet", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        let uid = uid.clone();
        async move {
            let ps = pods(&client, &ns).await;
            let owned: Vec<String> = ps
                .iter()
                .filter(|p| p.metadata.owner_references.iter().flatten().any(|o| o.uid == uid))
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            (owned.len() == 3 && ps.len() == 3).then_some(owned)
        }
    })
    .await;
    assert!(owned.contains(&"stray".to_string()), "orphan adopted: {owned:?}");

    // --cascade=orphan: the ReplicaSet goes, the pods stay and lose their owner reference
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "delete", "rs", "rs", "--cascade=orphan", "--timeout=60s"]).await;
    assert!(ok, "{out}");
    let rs_api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), &ns);
    wait_for("ReplicaSet gone and pods released", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        let rs_api = rs_api.clone();
        async move {
            if rs_api.get_opt("rs").await.ok()?.is_some() {
                return None;
            }
            let ps = pods(&client, &ns).await;
            (ps.len() == 3 && ps.iter().all(|p| p.metadata.owner_references.as_ref().is_none_or(|o| o.is_empty()))).then_some(())
        }
    })
    .await;
    // a new ReplicaSet adopts the three pods instead of creating more, and a background delete removes them
    let again: ReplicaSet = create(&cluster.client, &ns, rs).await;
    let uid2 = again.metadata.uid.clone().expect("uid");
    wait_for("pods adopted by the new ReplicaSet", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        let uid2 = uid2.clone();
        async move {
            let ps = pods(&client, &ns).await;
            (ps.len() == 3 && ps.iter().all(|p| p.metadata.owner_references.iter().flatten().any(|o| o.uid == uid2))).then_some(())
        }
    })
    .await;
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "delete", "rs", "rs", "--timeout=60s"]).await;
    assert!(ok, "{out}");
    wait_for("pods garbage collected", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        async move { pods(&client, &ns).await.is_empty().then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_restart_mid_rollout_finishes_without_extra_pods() {
    let mut cluster = Cluster::start(3).await;
    let ns = cluster.namespace("rkc").await;
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let _: Deployment = create(&cluster.client, &ns, deployment("svc", 6, "v:1", strategy)).await;
    wait_rolled_out(&cluster, &ns, "svc", 6).await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    // the new pods stay Pending until the controllers are dead, so the kill lands mid-rollout every time
    cluster.kubelet.hold("v:2");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v:2"}]}}}});
    api.patch("svc", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("update");
    let client = cluster.client.clone();
    let nsc = ns.clone();
    wait_for("rollout started (the surge pod made)", T, || {
        let client = client.clone();
        let ns = nsc.clone();
        async move { pods(&client, &ns).await.iter().any(|p| image_of(p) == "v:2").then_some(()) }
    })
    .await;
    cluster.kill_controllers();
    let mid = pods(&cluster.client, &ns).await;
    let mid_new = mid.iter().filter(|p| image_of(p) == "v:2").count();
    assert_eq!(mid_new, 1, "maxSurge 1: one new pod before the kill");
    cluster.kubelet.release("v:2").await;
    cluster.start_controllers();
    wait_rolled_out(&cluster, &ns, "svc", 6).await;
    let after = pods(&cluster.client, &ns).await;
    let live: Vec<&Pod> = after.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    assert_eq!(live.len(), 6, "no extra pods");
    assert!(live.iter().all(|p| image_of(p) == "v:2"));
    let rs_api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), &ns);
    assert_eq!(rs_api.list(&Default::default()).await.expect("rs").items.len(), 2, "no duplicate ReplicaSet");
}

/// ReplicationController (equality selector): runs its replicas, owns them as kind ReplicationController,
/// `kubectl scale rc` shrinks it; and a Deployment whose pods never get Ready fails its progressDeadlineSeconds
/// with the condition and the `kubectl rollout status` error upstream reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_controller_scales_and_progress_deadline_is_reported() {
    let cluster = Cluster::start(2).await;
    let ns = cluster.namespace("rkrc").await;
    let _: k8s_openapi::api::core::v1::ReplicationController = create(&cluster.client, &ns, json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "rc"},
        "spec": {"replicas": 3, "selector": {"app": "rc"},
                 "template": {"metadata": {"labels": {"app": "rc"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}
    }))
    .await;
    let client = cluster.client.clone();
    let nsc = ns.clone();
    let count_rc_pods = move || {
        let client = client.clone();
        let ns = nsc.clone();
        async move {
            pods(&client, &ns)
                .await
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| p.metadata.owner_references.iter().flatten().any(|o| o.kind == "ReplicationController" && o.name == "rc" && o.controller == Some(true)))
                .count()
        }
    };
    let c = count_rc_pods.clone();
    wait_for("3 pods owned by the ReplicationController", T, || {
        let c = c.clone();
        async move { (c().await == 3).then_some(()) }
    })
    .await;
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "scale", "rc", "rc", "--replicas=1"]).await;
    assert!(ok, "{out}");
    let c = count_rc_pods.clone();
    wait_for("scaled to 1", T, || {
        let c = c.clone();
        async move { (c().await == 1).then_some(()) }
    })
    .await;
    let rcapi: Api<k8s_openapi::api::core::v1::ReplicationController> = Api::namespaced(cluster.client.clone(), &ns);
    wait_for("rc status.replicas 1", T, || {
        let rcapi = rcapi.clone();
        async move { (rcapi.get("rc").await.ok()?.status?.replicas == 1).then_some(()) }
    })
    .await;

    // pods Running but never Ready: after progressDeadlineSeconds the Deployment says so
    let mut d = deployment("stuck", 1, "unready", json!({"type": "RollingUpdate"}));
    d["spec"]["progressDeadlineSeconds"] = json!(2);
    let _: Deployment = create(&cluster.client, &ns, d).await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    let cond = wait_for("Progressing=False ProgressDeadlineExceeded", T, || {
        let api = api.clone();
        async move {
            let d = api.get("stuck").await.ok()?;
            d.status?.conditions?.into_iter().find(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
        }
    })
    .await;
    assert_eq!(cond.status, "False");
    assert!(cond.message.as_deref().unwrap_or_default().contains("has timed out progressing"), "{:?}", cond.message);
    let (ok, out) = cluster.kubectl_async(&["-n", &ns, "rollout", "status", "deployment/stuck", "--timeout=20s"]).await;
    assert!(!ok, "rollout status must fail: {out}");
    assert!(out.contains("exceeded its progress deadline"), "{out}");
}
