//! StatefulSet controller: pods with stable names `<set>-<ordinal>`, created in order (OrderedReady: each
//! only once all lower ordinals are Running and Ready) or all at once (Parallel), removed from the highest
//! ordinal down, and rolled to a new template one ordinal at a time from the top (respecting `partition`).
//!
//! [`step`] is the pure decision; the template revision is the `controller-revision-hash` label.

/// Label carrying the template revision a pod was created from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// Label with the pod's own name (Kubernetes sets it for per-pod Services).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// What the step needs of one existing pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPod {
    /// Its ordinal, the `-N` of `<set>-N`.
    pub ordinal: i32,
    /// Its `controller-revision-hash`: the template revision it runs.
    pub revision: String,
    /// Running and Ready (OrderedReady waits for it before the next ordinal).
    pub running_ready: bool,
    /// Its phase is Failed: it is deleted and made again.
    pub failed: bool,
    /// Being deleted.
    pub terminating: bool,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsAction {
    /// Create the pod for this ordinal at the update revision.
    Create(i32),
    /// Delete the pod with this ordinal (scale down, failed pod, or update).
    Delete(i32),
}

/// Pod name for an ordinal.
pub fn pod_name(set: &str, ordinal: i32) -> String {
    format!("{set}-{ordinal}")
}

/// Ordinal from a pod name of this set, if it is one.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok().filter(|o: &i32| *o >= 0)
}

/// Decide the next actions. `start` is `spec.ordinals.start` (0 by default).
pub fn step(
    replicas: i32,
    start: i32,
    parallel: bool,
    update_revision: &str,
    partition: i32,
    pods: &[SetPod],
) -> Vec<SsAction> {
    let mut actions = Vec::new();
    let end = start + replicas.max(0); // exclusive
    let mut by_ord: std::collections::BTreeMap<i32, &SetPod> = std::collections::BTreeMap::new();
    for p in pods {
        by_ord.insert(p.ordinal, p);
    }
    // failed pods are deleted and recreated
    for p in by_ord.values() {
        if p.failed && !p.terminating {
            actions.push(SsAction::Delete(p.ordinal));
        }
    }
    if !actions.is_empty() && !parallel {
        return actions;
    }
    // creation in ordinal order
    for ord in start..end {
        match by_ord.get(&ord) {
            None => {
                actions.push(SsAction::Create(ord));
                if !parallel {
                    return actions;
                }
            }
            Some(p) => {
                if !parallel && (p.terminating || !p.running_ready || p.failed) {
                    // OrderedReady: wait for this ordinal before touching the next
                    return actions;
                }
            }
        }
    }
    // scale down from the highest ordinal
    let excess: Vec<&SetPod> = by_ord.values().rev().filter(|p| p.ordinal >= end || p.ordinal < start).copied().collect();
    if !excess.is_empty() {
        if parallel {
            actions.extend(excess.iter().filter(|p| !p.terminating).map(|p| SsAction::Delete(p.ordinal)));
        } else {
            let all_ready = by_ord.values().all(|p| p.running_ready && !p.terminating);
            if all_ready {
                actions.push(SsAction::Delete(excess[0].ordinal));
            }
        }
        return actions;
    }
    // rolling update: highest ordinal first, one at a time, only when every pod is running and ready
    if !actions.is_empty() {
        return actions;
    }
    let all_ready = (start..end).all(|o| by_ord.get(&o).is_some_and(|p| p.running_ready && !p.terminating));
    if !all_ready {
        return actions;
    }
    for ord in (start..end).rev() {
        if ord < start + partition.max(0) {
            break;
        }
        if let Some(p) = by_ord.get(&ord) {
            if p.revision != update_revision {
                actions.push(SsAction::Delete(ord));
                break;
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(ordinal: i32, rev: &str, ready: bool) -> SetPod {
        SetPod { ordinal, revision: rev.into(), running_ready: ready, failed: false, terminating: false }
    }

    #[test]
    fn names_and_ordinals() {
        assert_eq!(pod_name("web", 2), "web-2");
        assert_eq!(ordinal_of("web", "web-2"), Some(2));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
    }

    #[test]
    fn step_table() {
        use SsAction::*;
        let cases: Vec<(&str, i32, bool, i32, Vec<SetPod>, Vec<SsAction>)> = vec![
            ("ordered: first pod", 3, false, 0, vec![], vec![Create(0)]),
            ("ordered: waits for web-0 ready", 3, false, 0, vec![sp(0, "r1", false)], vec![]),
            ("ordered: next when ready", 3, false, 0, vec![sp(0, "r1", true)], vec![Create(1)]),
            ("parallel: all at once", 3, true, 0, vec![], vec![Create(0), Create(1), Create(2)]),
            ("ordered: scale down highest first", 1, false, 0, vec![sp(0, "r1", true), sp(1, "r1", true), sp(2, "r1", true)], vec![Delete(2)]),
            ("parallel: scale down all excess", 1, true, 0, vec![sp(0, "r1", true), sp(1, "r1", true), sp(2, "r1", true)], vec![Delete(2), Delete(1)]),
            ("update: highest ordinal first", 3, false, 0, vec![sp(0, "r1", true), sp(1, "r1", true), sp(2, "r1", true)], vec![Delete(2)]),
            ("update: next lower after top updated", 3, false, 0, vec![sp(0, "r1", true), sp(1, "r1", true), sp(2, "r2", true)], vec![Delete(1)]),
            ("update: waits while a pod is not ready", 3, false, 0, vec![sp(0, "r1", true), sp(1, "r1", true), sp(2, "r2", false)], vec![]),
            ("update: partition keeps lower ordinals", 3, false, 2, vec![sp(0, "r1", true), sp(1, "r1", true), sp(2, "r2", true)], vec![]),
        ];
        for (what, replicas, parallel, partition, pods, want) in cases {
            assert_eq!(step(replicas, 0, parallel, "r2", partition, &pods), want, "{what}");
        }
        let failed = SetPod { failed: true, ..sp(1, "r2", false) };
        assert_eq!(step(3, 0, false, "r2", 0, &[sp(0, "r2", true), failed]), vec![SsAction::Delete(1)]);
    }
}

// ---------------------------------------------------------------------------------------------------------
// kube-rs wiring
// ---------------------------------------------------------------------------------------------------------

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::context::{delete_quiet, is_conflict, merge_patch_status, ReconcileError, Shared};
use crate::util::owner::{controller_ref, new_controller_ref};
use crate::util::pod::{from_template, PodName};
use rkube_apimachinery::pod as podutil;

/// Reconcile one StatefulSet.
pub async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Shared>) -> Result<Requeue, ReconcileError> {
    let ns = set.namespace().unwrap_or_else(|| "default".into());
    let name = set.name_any();
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    let uid = set.uid().unwrap_or_default();
    let Some(spec) = set.spec.clone() else {
        return Err(ReconcileError::Invalid { what: format!("statefulset {ns}/{name}"), problem: "spec is missing".into() });
    };
    let replicas = spec.replicas.unwrap_or(1);
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
    let on_delete = spec.update_strategy.as_ref().and_then(|u| u.type_.as_deref()) == Some("OnDelete");
    let partition = spec.update_strategy.as_ref().and_then(|u| u.rolling_update.as_ref()).and_then(|r| r.partition).unwrap_or(0);
    let update_revision = format!("{name}-{}", crate::deployment::history::pod_template_hash(&spec.template, None));
    let all = ctx.pods_in(&ns);
    let owned: Vec<&Arc<Pod>> = all.iter().filter(|p| controller_ref(&p.metadata).is_some_and(|o| o.uid == uid)).collect();
    let set_pods: Vec<SetPod> = owned
        .iter()
        .filter_map(|p| {
            let ordinal = ordinal_of(&name, p.metadata.name.as_deref()?)?;
            Some(SetPod {
                ordinal,
                revision: p.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)).cloned().unwrap_or_default(),
                running_ready: podutil::phase(p) == "Running" && podutil::is_ready(p),
                failed: podutil::phase(p) == "Failed",
                terminating: p.metadata.deletion_timestamp.is_some(),
            })
        })
        .collect();
    let mut actions = step(replicas, start, parallel, &update_revision, partition, &set_pods);
    if on_delete {
        // OnDelete: never delete for an update; only scale and replace failed pods
        actions.retain(|a| match a {
            SsAction::Delete(o) => *o >= start + replicas || set_pods.iter().any(|p| p.ordinal == *o && p.failed),
            SsAction::Create(_) => true,
        });
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let oref = new_controller_ref("apps/v1", "StatefulSet", &set.metadata);
    for a in &actions {
        match a {
            SsAction::Create(ord) => {
                let pod_name = pod_name(&name, *ord);
                let ord_s = ord.to_string();
                let mut pod = from_template(
                    &spec.template,
                    &ns,
                    PodName::Fixed(&pod_name),
                    oref.clone(),
                    &[(REVISION_LABEL, &update_revision), (POD_NAME_LABEL, &pod_name), (POD_INDEX_LABEL, &ord_s)],
                );
                if let Some(ps) = pod.spec.as_mut() {
                    ps.hostname = Some(pod_name.clone());
                    if !spec.service_name.as_deref().unwrap_or_default().is_empty() {
                        ps.subdomain = spec.service_name.clone();
                    }
                }
                let (pod, span) = crate::util::trace::create_child(&pod, crate::util::trace::of_owner(&set.metadata), "statefulset", &format!("StatefulSet/{ns}/{name}"));
                match tracing::Instrument::instrument(api.create(&PostParams::default(), &pod), span.clone()).await {
                    Ok(created) => {
                        crate::util::trace::created(&span, &created);
                        tracing::info!(statefulset = %name, pod = %pod_name, "created pod")
                    }
                    Err(e) if is_conflict(&e) => {}
                    Err(e) => return Err(ReconcileError::Api { what: format!("create pod {ns}/{pod_name}"), source: e }),
                }
            }
            SsAction::Delete(ord) => {
                let pod_name = pod_name(&name, *ord);
                delete_quiet(&api, &pod_name, &DeleteParams::default())
                    .await
                    .map_err(ReconcileError::api(format!("delete pod {ns}/{pod_name}")))?;
                tracing::info!(statefulset = %name, pod = %pod_name, "deleted pod");
            }
        }
    }
    // status
    let active: Vec<&&Arc<Pod>> = owned.iter().filter(|p| podutil::is_active(p)).collect();
    let updated = active.iter().filter(|p| p.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)) == Some(&update_revision)).count() as i32;
    let ready = active.iter().filter(|p| podutil::is_ready(p)).count() as i32;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = chrono::Utc::now();
    let available = active.iter().filter(|p| podutil::is_available(p, min_ready, now)).count() as i32;
    let all_updated = updated == replicas && active.len() as i32 == replicas;
    let current_revision = if all_updated {
        update_revision.clone()
    } else {
        set.status.as_ref().and_then(|s| s.current_revision.clone()).unwrap_or_else(|| update_revision.clone())
    };
    let current = active.iter().filter(|p| p.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)) == Some(&current_revision)).count() as i32;
    let status = json!({
        "observedGeneration": set.metadata.generation.unwrap_or(0),
        "replicas": active.len() as i32,
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": update_revision,
    });
    let before = serde_json::to_value(set.status.clone().unwrap_or_default()).unwrap_or_default();
    let differs = status.as_object().is_some_and(|m| m.iter().any(|(k, v)| before.get(k).unwrap_or(&json!(0)) != v));
    if differs {
        let sapi: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
        merge_patch_status(&sapi, &name, json!({ "status": status }))
            .await
            .map_err(ReconcileError::api(format!("update status of statefulset {ns}/{name}")))?;
    }
    Ok(if actions.is_empty() && all_updated { Requeue::requeue(Duration::from_secs(300)) } else { Requeue::requeue(Duration::from_secs(2)) })
}
