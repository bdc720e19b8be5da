//! ReplicaSet and ReplicationController: keep `replicas` pods matching the selector alive.
//!
//! The decision is the pure [`step`]: given the owner, its selector and the pods in its namespace it returns
//! adopt/release/create/delete actions. Both kinds share it; they differ only in the selector (set-based vs
//! equality). [`Expectations`] stop a second reconcile from creating again before the watch cache has seen
//! the pods the first one created. The kube-rs wiring lives in `reconcile` below and in `controllers::run_all`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;

use crate::util::owner::controller_ref;
use rkube_apimachinery::pod as podutil;

/// Most pods one reconcile creates or deletes (kube-controller-manager's burstReplicas).
pub const BURST: usize = 500;

/// What a ReplicaSet/RC reconcile must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set our controller reference on an orphan that matches the selector.
    Adopt(String),
    /// Drop our controller reference from a pod that no longer matches.
    Release(String),
    /// Create this many pods from the template.
    Create(usize),
    /// Delete these pods (best candidates first).
    Delete(Vec<String>),
}

/// The owner as `step` needs it.
pub struct Owner<'a> {
    /// The owner's uid (pods whose controller reference names it are its own).
    pub uid: &'a str,
    /// `spec.replicas`.
    pub replicas: i32,
    /// The owner is being deleted: no pods are created or adopted.
    pub deleting: bool,
    /// Whether its selector selects a pod with these labels (orphans it selects are adopted).
    pub matches: &'a (dyn Fn(Option<&BTreeMap<String, String>>) -> bool + Sync),
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// Rank for deletion: lower sorts first = deleted first. Unscheduled < scheduled, Pending < Unknown < Running,
/// not ready < ready, ready for less time first, more restarts first, newer first (Kubernetes' ActivePods order).
fn deletion_rank(p: &Pod) -> (u8, u8, u8, i64, i64, i64) {
    let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| !n.is_empty());
    let phase = match podutil::phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    let ready_since = podutil::ready_since(p);
    let ready = u8::from(ready_since.is_some());
    let ready_ts = ready_since.flatten().map_or(0, |t| -t.timestamp());
    let restarts: i64 = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| i64::from(c.restart_count)).sum());
    let created = p.metadata.creation_timestamp.as_ref().map_or(0, |t| rkube_apimachinery::time::to_chrono(t).timestamp());
    (u8::from(scheduled), phase, ready, ready_ts, -restarts, -created)
}

/// Decide the actions for one owner over the pods in its namespace.
pub fn step(owner: &Owner<'_>, pods: &[&Pod]) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut owned: Vec<&Pod> = Vec::new();
    for p in pods {
        match controller_ref(&p.metadata) {
            Some(r) if r.uid == owner.uid => {
                if (owner.matches)(p.metadata.labels.as_ref()) {
                    owned.push(p);
                } else if p.metadata.deletion_timestamp.is_none() {
                    actions.push(Action::Release(name(p)));
                }
            }
            Some(_) => {}
            None => {
                if !owner.deleting
                    && p.metadata.deletion_timestamp.is_none()
                    && podutil::is_active(p)
                    && (owner.matches)(p.metadata.labels.as_ref())
                {
                    actions.push(Action::Adopt(name(p)));
                    owned.push(p);
                }
            }
        }
    }
    if owner.deleting {
        return actions;
    }
    let mut active: Vec<&Pod> = owned.into_iter().filter(|p| podutil::is_active(p)).collect();
    let want = owner.replicas.max(0) as usize;
    if active.len() < want {
        actions.push(Action::Create((want - active.len()).min(BURST)));
    } else if active.len() > want {
        active.sort_by_key(|p| deletion_rank(p));
        let n = (active.len() - want).min(BURST);
        actions.push(Action::Delete(active[..n].iter().map(|p| name(p)).collect()));
    }
    actions
}

/// Replica counts for `.status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Active pods it owns.
    pub replicas: i32,
    /// Those whose labels match the template's (`status.fullyLabeledReplicas`).
    pub fully_labeled: i32,
    /// Those Ready.
    pub ready: i32,
    /// Those Ready for minReadySeconds.
    pub available: i32,
}

/// Count active owned pods (after `step`'s adoptions are applied).
pub fn counts(
    owner_uid: &str,
    template_labels: &BTreeMap<String, String>,
    min_ready_seconds: i32,
    pods: &[&Pod],
    now: DateTime<Utc>,
) -> Counts {
    let mut c = Counts::default();
    for p in pods {
        if !controller_ref(&p.metadata).is_some_and(|r| r.uid == owner_uid) || !podutil::is_active(p) {
            continue;
        }
        c.replicas += 1;
        let labels = p.metadata.labels.clone().unwrap_or_default();
        if template_labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            c.fully_labeled += 1;
        }
        if podutil::is_ready(p) {
            c.ready += 1;
        }
        if podutil::is_available(p, min_ready_seconds, now) {
            c.available += 1;
        }
    }
    c
}

/// Creations and deletions a reconcile issued and the watch has not shown yet, per owner key. While an
/// owner has outstanding expectations it must not create or delete again (it would double up).
#[derive(Debug, Default)]
pub struct Expectations {
    pending: HashMap<String, Pending>,
}

#[derive(Debug)]
struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Instant,
}

/// How long expectations are trusted before a reconcile acts anyway (lost watch event, failed create).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(60);

impl Expectations {
    /// Remember the pod names just created and deleted for `key`.
    pub fn expect(&mut self, key: &str, creates: impl IntoIterator<Item = String>, deletes: impl IntoIterator<Item = String>) {
        let e = self.pending.entry(key.to_string()).or_insert_with(|| Pending {
            creates: HashSet::new(),
            deletes: HashSet::new(),
            since: Instant::now(),
        });
        e.creates.extend(creates);
        e.deletes.extend(deletes);
        e.since = Instant::now();
    }

    /// Whether the cache now reflects everything expected for `key`: every created name present and every
    /// deleted name gone or terminating. `present(name)` answers (exists, terminating) from the cache.
    pub fn satisfied(&mut self, key: &str, present: impl Fn(&str) -> (bool, bool)) -> bool {
        let Some(e) = self.pending.get_mut(key) else { return true };
        e.creates.retain(|n| !present(n).0);
        e.deletes.retain(|n| {
            let (exists, terminating) = present(n);
            exists && !terminating
        });
        let done = (e.creates.is_empty() && e.deletes.is_empty()) || e.since.elapsed() > EXPECTATIONS_TIMEOUT;
        if done {
            self.pending.remove(key);
        }
        done
    }

    /// A create that failed will never show up: stop waiting for it.
    pub fn creation_failed(&mut self, key: &str, name: &str) {
        if let Some(e) = self.pending.get_mut(key) {
            e.creates.remove(name);
        }
    }

    /// Drop everything for a deleted owner.
    pub fn forget(&mut self, key: &str) {
        self.pending.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod(name: &str, owner: Option<&str>, app: &str, node: Option<&str>, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("app".to_string(), app.to_string())].into()),
                owner_references: owner.map(|o| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: "rs".into(),
                        uid: o.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: node.map(String::from), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(if node.is_some() { "Running" } else { "Pending" }.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn web(labels: Option<&BTreeMap<String, String>>) -> bool {
        labels.and_then(|l| l.get("app")).is_some_and(|v| v == "web")
    }

    #[test]
    fn step_table() {
        let owned_ready = pod("a", Some("u1"), "web", Some("n1"), true);
        let owned_pending = pod("b", Some("u1"), "web", None, false);
        let orphan = pod("c", None, "web", Some("n1"), true);
        let other_owner = pod("d", Some("u2"), "web", Some("n1"), true);
        let relabeled = pod("e", Some("u1"), "db", Some("n1"), true);
        let cases: Vec<(&str, i32, Vec<&Pod>, Vec<Action>)> = vec![
            ("scale up from zero", 3, vec![], vec![Action::Create(3)]),
            ("at desired", 1, vec![&owned_ready], vec![]),
            ("adopts orphan, counts it", 2, vec![&owned_ready, &orphan], vec![Action::Adopt("c".into())]),
            ("ignores other controller's pods", 1, vec![&other_owner], vec![Action::Create(1)]),
            (
                "releases relabeled pod and replaces it",
                1,
                vec![&relabeled],
                vec![Action::Release("e".into()), Action::Create(1)],
            ),
            (
                "scale down deletes unscheduled before running",
                1,
                vec![&owned_ready, &owned_pending],
                vec![Action::Delete(vec!["b".into()])],
            ),
            ("burst limit", 10_000, vec![], vec![Action::Create(BURST)]),
        ];
        for (what, replicas, pods, want) in cases {
            let owner = Owner { uid: "u1", replicas, deleting: false, matches: &web };
            assert_eq!(step(&owner, &pods), want, "{what}");
        }
    }

    #[test]
    fn deleting_owner_neither_adopts_nor_creates() {
        let orphan = pod("c", None, "web", Some("n1"), true);
        let owner = Owner { uid: "u1", replicas: 3, deleting: true, matches: &web };
        assert_eq!(step(&owner, &[&orphan]), vec![]);
    }

    #[test]
    fn counts_ready_and_available() {
        let a = pod("a", Some("u1"), "web", Some("n1"), true);
        let b = pod("b", Some("u1"), "web", None, false);
        let tl: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let c = counts("u1", &tl, 0, &[&a, &b], Utc::now());
        assert_eq!(c, Counts { replicas: 2, fully_labeled: 2, ready: 1, available: 1 });
    }

    #[test]
    fn expectations_block_until_cache_catches_up() {
        let mut e = Expectations::default();
        e.expect("ns/rs", ["p1".to_string(), "p2".to_string()], ["old".to_string()]);
        assert!(!e.satisfied("ns/rs", |n| (n == "p1" || n == "old", false)));
        assert!(!e.satisfied("ns/rs", |n| (n == "p1" || n == "p2" || n == "old", false)));
        // deletion observed as terminating counts
        assert!(e.satisfied("ns/rs", |n| (true, n == "old")));
        assert!(e.satisfied("ns/other", |_| (false, false)));
        e.expect("ns/rs", ["p3".to_string()], []);
        e.creation_failed("ns/rs", "p3");
        assert!(e.satisfied("ns/rs", |_| (false, false)));
    }
}

// ---------------------------------------------------------------------------------------------------------
// kube-rs wiring
// ---------------------------------------------------------------------------------------------------------

pub use wiring::{reconcile_owner, ReplicaOwner};

mod wiring {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use futures::future::join_all;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
    use kube::api::{DeleteParams, PostParams};
    use kube::runtime::controller::Action as Requeue;
    use kube::{Api, Resource, ResourceExt};
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::{counts, step, Action, Counts, Owner};
    use crate::context::{delete_quiet, merge_patch, merge_patch_status, ReconcileError, Shared};
    use crate::util::owner::new_controller_ref;
    use crate::util::pod::{from_template, PodName};
    use rkube_apimachinery::labels::{equality_selector_matches, selector_matches};

    /// What ReplicaSet and ReplicationController have in common for the replica loop.
    pub trait ReplicaOwner:
        Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
    {
        /// The owner's apiVersion, for the controller references of its pods.
        const API_VERSION: &'static str;
        /// The owner's kind, for the controller references of its pods.
        const KIND: &'static str;
        /// `spec.replicas` (1 when unset).
        fn replicas(&self) -> i32;
        /// Whether the owner's selector selects a pod with `labels`.
        fn selects(&self, labels: Option<&BTreeMap<String, String>>) -> bool;
        /// `spec.template`, which new pods are made from.
        fn pod_template(&self) -> Option<&PodTemplateSpec>;
        /// `spec.minReadySeconds`: how long a pod must be Ready to count as available.
        fn min_ready(&self) -> i32;
        /// (replicas, fullyLabeled, ready, available, observedGeneration) currently in status
        fn status_tuple(&self) -> (i32, i32, i32, i32, i64);
    }

    /// The accessors whose code is the same for both kinds: their spec and status types differ but have the
    /// same field names.
    macro_rules! same_shape_accessors {
        () => {
            fn pod_template(&self) -> Option<&PodTemplateSpec> {
                self.spec.as_ref().and_then(|s| s.template.as_ref())
            }
            fn min_ready(&self) -> i32 {
                self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
            }
            fn status_tuple(&self) -> (i32, i32, i32, i32, i64) {
                self.status.as_ref().map_or((0, 0, 0, 0, 0), |s| {
                    (
                        s.replicas,
                        s.fully_labeled_replicas.unwrap_or(0),
                        s.ready_replicas.unwrap_or(0),
                        s.available_replicas.unwrap_or(0),
                        s.observed_generation.unwrap_or(0),
                    )
                })
            }
        };
    }

    impl ReplicaOwner for ReplicaSet {
        const API_VERSION: &'static str = "apps/v1";
        const KIND: &'static str = "ReplicaSet";
        fn replicas(&self) -> i32 {
            self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
        }
        fn selects(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
            // an empty selector on a ReplicaSet would select every pod: refuse it
            self.spec.as_ref().is_some_and(|s| {
                !rkube_apimachinery::labels::selector_is_empty(&s.selector) && selector_matches(&s.selector, labels)
            })
        }
        same_shape_accessors!();
    }

    impl ReplicaOwner for ReplicationController {
        const API_VERSION: &'static str = "v1";
        const KIND: &'static str = "ReplicationController";
        fn replicas(&self) -> i32 {
            self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
        }
        fn selects(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
            // RC selector defaults to the template labels
            let sel = self.spec.as_ref().and_then(|s| {
                s.selector.clone().or_else(|| s.template.as_ref().and_then(|t| t.metadata.as_ref()?.labels.clone()))
            });
            sel.is_some_and(|s| equality_selector_matches(&s, labels))
        }
        same_shape_accessors!();
    }

    /// Reconcile one ReplicaSet or ReplicationController.
    pub async fn reconcile_owner<K: ReplicaOwner>(obj: Arc<K>, ctx: Arc<Shared>) -> Result<Requeue, ReconcileError> {
        let ns = obj.namespace().unwrap_or_else(|| "default".into());
        let name = obj.name_any();
        let uid = obj.uid().unwrap_or_default();
        let exp_key = format!("{}/{ns}/{name}", K::KIND);
        let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        let all = ctx.pods_in(&ns);
        let pods: Vec<&Pod> = all.iter().map(|p| p.as_ref()).collect();
        let deleting = obj.meta().deletion_timestamp.is_some();
        let synced = ctx
            .expectations
            .lock()
            .map(|mut e| e.satisfied(&exp_key, |n| ctx.pod_presence(&ns, n)))
            .unwrap_or(true);
        let matches = |l: Option<&BTreeMap<String, String>>| obj.selects(l);
        let owner = Owner { uid: &uid, replicas: obj.replicas(), deleting, matches: &matches };
        let actions = step(&owner, &pods);
        let oref = new_controller_ref(K::API_VERSION, K::KIND, obj.meta());
        let mut adopted: Vec<String> = Vec::new();
        for a in &actions {
            match a {
                Action::Adopt(pod) => {
                    let patch = json!({"metadata": {"ownerReferences": [oref], "uid": null}});
                    match merge_patch(&pods_api, pod, &ctx.config.manager, patch).await {
                        Ok(_) => adopted.push(pod.clone()),
                        Err(e) => tracing::warn!(pod = %pod, owner = %name, error = %e, "adopting pod failed"),
                    }
                }
                Action::Release(pod) => {
                    let p = pods.iter().find(|p| p.metadata.name.as_deref() == Some(pod));
                    let kept: Vec<_> = p
                        .and_then(|p| p.metadata.owner_references.clone())
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|r| r.uid != uid)
                        .collect();
                    let patch = json!({"metadata": {"ownerReferences": kept}});
                    if let Err(e) = merge_patch(&pods_api, pod, &ctx.config.manager, patch).await {
                        tracing::warn!(pod = %pod, owner = %name, error = %e, "releasing pod failed");
                    }
                }
                Action::Create(n) if synced => {
                    let Some(template) = obj.pod_template() else {
                        return Err(ReconcileError::Invalid {
                            what: format!("{} {ns}/{name}", K::KIND),
                            problem: "spec.template is missing".into(),
                        });
                    };
                    let prefix = format!("{name}-");
                    let pod = from_template(template, &ns, PodName::Generate(&prefix), oref.clone(), &[]);
                    let trace = crate::util::trace::of_owner(obj.meta());
                    create_slow_start(&ctx, &pods_api, &exp_key, &pod, *n, trace).await?;
                }
                Action::Delete(victims) if synced => {
                    if let Ok(mut e) = ctx.expectations.lock() {
                        e.expect(&exp_key, [], victims.iter().cloned());
                    }
                    let dp = DeleteParams::default();
                    let results = join_all(victims.iter().map(|v| delete_quiet(&pods_api, v, &dp))).await;
                    for (v, r) in victims.iter().zip(results) {
                        if let Err(e) = r {
                            tracing::warn!(pod = %v, owner = %name, error = %e, "deleting pod failed");
                        }
                    }
                }
                _ => {}
            }
        }
        // status
        let template_labels =
            obj.pod_template().and_then(|t| t.metadata.as_ref()?.labels.clone()).unwrap_or_default();
        let now = chrono::Utc::now();
        let mut c: Counts = counts(&uid, &template_labels, obj.min_ready(), &pods, now);
        // adopted pods count from now on even if the cache has not caught up
        for a in &adopted {
            if let Some(p) = pods.iter().find(|p| p.metadata.name.as_deref() == Some(a)) {
                if rkube_apimachinery::pod::is_active(p) {
                    c.replicas += 1;
                    c.fully_labeled += 1;
                    c.ready += i32::from(rkube_apimachinery::pod::is_ready(p));
                    c.available += i32::from(rkube_apimachinery::pod::is_available(p, obj.min_ready(), now));
                }
            }
        }
        let generation = obj.meta().generation.unwrap_or(0);
        if obj.status_tuple() != (c.replicas, c.fully_labeled, c.ready, c.available, generation) && !deleting {
            let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
            let patch = json!({"status": {
                "replicas": c.replicas,
                "fullyLabeledReplicas": c.fully_labeled,
                "readyReplicas": c.ready,
                "availableReplicas": c.available,
                "observedGeneration": generation,
            }});
            merge_patch_status(&api, &name, patch)
                .await
                .map_err(ReconcileError::api(format!("update status of {} {ns}/{name}", K::KIND)))?;
        }
        if c.ready > c.available && obj.min_ready() > 0 {
            return Ok(Requeue::requeue(Duration::from_secs(obj.min_ready() as u64)));
        }
        if !synced {
            return Ok(Requeue::requeue(Duration::from_secs(1)));
        }
        Ok(Requeue::requeue(Duration::from_secs(300)))
    }

    /// Create `n` pods in batches of 1, 2, 4, ... stopping at the first failing batch (like
    /// kube-controller-manager's slow start: a broken template fails once, not n times).
    async fn create_slow_start(
        ctx: &Shared,
        api: &Api<Pod>,
        exp_key: &str,
        pod: &Pod,
        n: usize,
        trace: Option<rkube_trace::TraceParent>,
    ) -> Result<(), ReconcileError> {
        let mut done = 0;
        let mut batch = 1;
        let pp = PostParams { field_manager: Some(ctx.config.manager.clone()), ..Default::default() };
        while done < n {
            let size = batch.min(n - done);
            let results = join_all((0..size).map(|_| {
                let (pod, span) = crate::util::trace::create_child(pod, trace, "replicaset", exp_key);
                let pp = &pp;
                async move {
                    let r = tracing::Instrument::instrument(api.create(pp, &pod), span.clone()).await;
                    if let Ok(p) = &r {
                        crate::util::trace::created(&span, p);
                    }
                    r
                }
            }))
            .await;
            let mut created = Vec::new();
            let mut first_err = None;
            for r in results {
                match r {
                    Ok(p) => created.push(p.name_any()),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if let Ok(mut e) = ctx.expectations.lock() {
                e.expect(exp_key, created.iter().cloned(), []);
            }
            done += size;
            if let Some(e) = first_err {
                return Err(ReconcileError::Api { what: format!("create pod for {exp_key}"), source: e });
            }
            batch *= 2;
        }
        Ok(())
    }
}
