//! The Deployment reconcile: find or create the new ReplicaSet, scale new and old per strategy, keep the
//! revision annotations, prune history, write status. Decisions come from `rollout` and `history`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::history::{self, POD_TEMPLATE_HASH, REVISION};
use super::rollout::{self, RsState};
use super::{available_condition, progressing_condition, Progress};
use crate::context::{delete_quiet, is_conflict, merge_patch, merge_patch_status, ReconcileError, Shared};
use crate::util::owner::{controller_ref, new_controller_ref};
use rkube_apimachinery::pod as podutil;

/// Deployment controller state: the shared context plus the ReplicaSet cache.
pub struct DeploymentCtx {
    /// The client, configuration and caches every controller shares.
    pub shared: Arc<Shared>,
    /// The cache of ReplicaSets, read for the ones each Deployment owns.
    pub replicasets: Store<ReplicaSet>,
}

fn rs_state(rs: &ReplicaSet) -> RsState {
    let st = rs.status.as_ref();
    RsState {
        name: rs.name_any(),
        revision: history::revision(rs),
        spec_replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        status_replicas: st.map_or(0, |s| s.replicas),
        ready: st.and_then(|s| s.ready_replicas).unwrap_or(0),
        available: st.and_then(|s| s.available_replicas).unwrap_or(0),
    }
}

/// Reconcile one Deployment.
pub async fn reconcile(d: Arc<Deployment>, ctx: Arc<DeploymentCtx>) -> Result<Requeue, ReconcileError> {
    let shared = &ctx.shared;
    let ns = d.namespace().unwrap_or_else(|| "default".into());
    let name = d.name_any();
    let what = format!("deployment {ns}/{name}");
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    let uid = d.uid().unwrap_or_default();
    let Some(spec) = d.spec.clone() else {
        return Err(ReconcileError::Invalid { what, problem: "spec is missing".into() });
    };
    let desired = spec.replicas.unwrap_or(1);
    let strategy = spec.strategy.clone().unwrap_or_default();
    let recreate = strategy.type_.as_deref() == Some("Recreate");
    let ru = strategy.rolling_update.clone().unwrap_or_default();
    let (surge, unavailable) = if recreate {
        (0, 0)
    } else {
        rollout::resolve_fenceposts(ru.max_surge.as_ref(), ru.max_unavailable.as_ref(), desired)
            .map_err(|e| ReconcileError::Invalid { what: what.clone(), problem: e.to_string() })?
    };
    let rs_api: Api<ReplicaSet> = Api::namespaced(shared.client.clone(), &ns);
    let manager = shared.config.manager.clone();

    let mut all: Vec<Arc<ReplicaSet>> = ctx
        .replicasets
        .state()
        .into_iter()
        .filter(|r| r.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|r| controller_ref(&r.metadata).is_some_and(|o| o.uid == uid))
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    all.sort_by_key(|r| history::revision(r));
    let new_rs = all.iter().find(|r| {
        r.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| history::templates_equal(t, &spec.template))
    });
    let old: Vec<Arc<ReplicaSet>> =
        all.iter().filter(|r| Some(r.name_any()) != new_rs.map(|n| n.name_any())).cloned().collect();
    let all_refs: Vec<&ReplicaSet> = all.iter().map(|r| r.as_ref()).collect();
    let max_rev = history::max_revision(&all_refs);
    let paused = spec.paused.unwrap_or(false);
    let mut new_state = new_rs.map(|r| rs_state(r));
    let mut old_states: Vec<RsState> = old.iter().map(|r| rs_state(r)).collect();
    let mut new_rs_created = false;
    let mut collision = d.status.as_ref().and_then(|s| s.collision_count);
    let mut new_rs_name = new_rs.map(|r| r.name_any()).unwrap_or_default();
    let mut new_revision = new_rs.map(|r| history::revision(r)).unwrap_or(max_rev + 1);

    if !paused {
        // 1. the new ReplicaSet exists and carries the newest revision
        match new_rs {
            None => {
                let all_states: Vec<RsState> = old_states.clone();
                let zero = RsState { name: String::new(), revision: 0, spec_replicas: 0, status_replicas: 0, ready: 0, available: 0 };
                let replicas = if recreate { 0 } else { rollout::new_rs_replicas(desired, surge, &zero, &all_states) };
                let hash = history::pod_template_hash(&spec.template, collision);
                let rs_name = format!("{name}-{hash}");
                let mut template = spec.template.clone();
                let tmeta = template.metadata.get_or_insert_with(Default::default);
                tmeta.labels.get_or_insert_with(Default::default).insert(POD_TEMPLATE_HASH.into(), hash.clone());
                let mut selector = spec.selector.clone();
                selector.match_labels.get_or_insert_with(Default::default).insert(POD_TEMPLATE_HASH.into(), hash.clone());
                let rs = ReplicaSet {
                    metadata: ObjectMeta {
                        name: Some(rs_name.clone()),
                        namespace: Some(ns.clone()),
                        labels: tmeta.labels.clone(),
                        annotations: Some(history::new_rs_annotations(
                            None,
                            d.metadata.annotations.as_ref(),
                            max_rev + 1,
                            desired,
                            desired + surge,
                        )),
                        owner_references: Some(vec![new_controller_ref("apps/v1", "Deployment", &d.metadata)]),
                        ..Default::default()
                    },
                    spec: Some(ReplicaSetSpec {
                        replicas: Some(replicas),
                        min_ready_seconds: spec.min_ready_seconds,
                        selector,
                        template: Some(template),
                    }),
                    status: None,
                };
                let pp = PostParams { field_manager: Some(manager.clone()), ..Default::default() };
                let (rs, span) = crate::util::trace::create_child(&rs, crate::util::trace::of_owner(&d.metadata), "deployment", &format!("Deployment/{ns}/{name}"));
                match tracing::Instrument::instrument(rs_api.create(&pp, &rs), span.clone()).await {
                    Ok(created) => {
                        crate::util::trace::created(&span, &created);
                        tracing::info!(deployment = %name, replicaset = %rs_name, replicas, "created new replica set");
                        new_state = Some(rs_state(&created));
                        new_rs_created = true;
                        new_rs_name = rs_name;
                        new_revision = max_rev + 1;
                    }
                    Err(e) if is_conflict(&e) => {
                        // a ReplicaSet with this name but another template: hash collision, bump and retry
                        let existing = rs_api.get(&rs_name).await.map_err(ReconcileError::api(format!("get replicaset {ns}/{rs_name}")))?;
                        let same = existing.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| history::templates_equal(t, &spec.template));
                        let ours = controller_ref(&existing.metadata).is_some_and(|o| o.uid == uid);
                        if !(same && ours) {
                            collision = Some(collision.unwrap_or(0) + 1);
                            let api: Api<Deployment> = Api::namespaced(shared.client.clone(), &ns);
                            merge_patch_status(&api, &name, json!({"status": {"collisionCount": collision}}))
                                .await
                                .map_err(ReconcileError::api(format!("update collisionCount of {what}")))?;
                        }
                        return Ok(Requeue::requeue(Duration::from_millis(200)));
                    }
                    Err(e) => return Err(ReconcileError::Api { what: format!("create replicaset {ns}/{rs_name}"), source: e }),
                }
            }
            Some(rs) => {
                let rev = history::revision(rs);
                let newest_elsewhere = old_states.iter().map(|o| o.revision).max().unwrap_or(0);
                if rev == 0 || rev < newest_elsewhere {
                    // rollback (or adoption): the re-used template becomes the newest revision
                    new_revision = max_rev + 1;
                    let ann = history::new_rs_annotations(rs.metadata.annotations.as_ref(), d.metadata.annotations.as_ref(), new_revision, desired, desired + surge);
                    merge_patch(&rs_api, &rs.name_any(), &manager, json!({"metadata": {"annotations": ann}}))
                        .await
                        .map_err(ReconcileError::api(format!("annotate replicaset {ns}/{}", rs.name_any())))?;
                    if let Some(s) = new_state.as_mut() {
                        s.revision = new_revision;
                    }
                }
            }
        }

        // 2. scale
        let mut changes: Vec<(String, i32)> = Vec::new();
        if let Some(new) = new_state.clone() {
            if recreate {
                let old_uids: Vec<String> = old.iter().filter_map(|r| r.uid()).collect();
                let old_pods_left = shared
                    .pods_in(&ns)
                    .iter()
                    .filter(|p| controller_ref(&p.metadata).is_some_and(|o| old_uids.contains(&o.uid)))
                    .filter(|p| podutil::is_active(p) || p.metadata.deletion_timestamp.is_some())
                    .count();
                let (c, _) = rollout::recreate_step(desired, Some(&new), &old_states, old_pods_left);
                changes = c;
            } else {
                let mut all_states = vec![new.clone()];
                all_states.extend(old_states.iter().cloned());
                let target = rollout::new_rs_replicas(desired, surge, &new, &all_states);
                if target != new.spec_replicas {
                    changes.push((new.name.clone(), target));
                }
                let new_after = RsState { spec_replicas: target, ..new.clone() };
                changes.extend(rollout::scale_down_old(desired, unavailable, &new_after, &old_states));
            }
        }
        for (rs_name, replicas) in &changes {
            let mut patch = json!({"spec": {"replicas": replicas}});
            if Some(rs_name) == new_state.as_ref().map(|n| &n.name) {
                patch["metadata"] = json!({"annotations": {
                    history::DESIRED_REPLICAS: desired.to_string(),
                    history::MAX_REPLICAS: (desired + surge).to_string(),
                }});
            }
            merge_patch(&rs_api, rs_name, &manager, patch)
                .await
                .map_err(ReconcileError::api(format!("scale replicaset {ns}/{rs_name} to {replicas}")))?;
            tracing::info!(deployment = %name, replicaset = %rs_name, replicas, "scaled replica set");
            if let Some(n) = new_state.as_mut().filter(|n| &n.name == rs_name) {
                n.spec_replicas = *replicas;
            }
            for o in old_states.iter_mut().filter(|o| &o.name == rs_name) {
                o.spec_replicas = *replicas;
            }
        }

        // 3. history limit
        let old_refs: Vec<&ReplicaSet> = old.iter().map(|r| r.as_ref()).collect();
        for victim in history::cleanup_candidates(&old_refs, spec.revision_history_limit.unwrap_or(10)) {
            delete_quiet(&rs_api, &victim, &DeleteParams::background())
                .await
                .map_err(ReconcileError::api(format!("delete old replicaset {ns}/{victim}")))?;
            old_states.retain(|o| o.name != victim);
        }

        // 4. the Deployment carries its current revision
        let have = d.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).cloned();
        if new_state.is_some() && have != Some(new_revision.to_string()) {
            let api: Api<Deployment> = Api::namespaced(shared.client.clone(), &ns);
            merge_patch(&api, &name, &manager, json!({"metadata": {"annotations": {REVISION: new_revision.to_string()}}}))
                .await
                .map_err(ReconcileError::api(format!("annotate {what}")))?;
        }
    }

    // 5. status
    let mut all_states: Vec<RsState> = old_states.clone();
    if let Some(n) = &new_state {
        all_states.push(n.clone());
    }
    let counts = rollout::status_counts(desired, new_state.as_ref(), &all_states);
    let complete = new_state.is_some() && rollout::is_complete(desired, &counts)
        && old_states.iter().all(|o| o.spec_replicas == 0 && o.status_replicas == 0);
    let prev_status = d.status.clone().unwrap_or_default();
    let progressed = prev_status.updated_replicas.unwrap_or(0) != counts.updated
        || prev_status.ready_replicas.unwrap_or(0) != counts.ready
        || prev_status.available_replicas.unwrap_or(0) != counts.available
        || prev_status.replicas.unwrap_or(0) != counts.replicas;
    let now = chrono::Utc::now();
    let prev_conds = prev_status.conditions.clone().unwrap_or_default();
    let prev_prog = prev_conds.iter().find(|c| c.type_ == "Progressing");
    let prev_avail = prev_conds.iter().find(|c| c.type_ == "Available");
    let deadline = spec.progress_deadline_seconds.or(Some(600));
    let prog = progressing_condition(
        prev_prog,
        Progress { paused, complete, progressed: progressed || new_rs_created, new_rs_created, deadline_seconds: deadline },
        &new_rs_name,
        now,
    );
    let avail = available_condition(prev_avail, counts.available, desired, unavailable, now);
    let status = json!({
        "observedGeneration": d.metadata.generation.unwrap_or(0),
        "replicas": counts.replicas,
        "updatedReplicas": counts.updated,
        "readyReplicas": counts.ready,
        "availableReplicas": counts.available,
        "unavailableReplicas": counts.unavailable,
        "collisionCount": collision,
        "conditions": [avail, prog],
    });
    let before = serde_json::to_value(&prev_status).unwrap_or_default();
    let changed = ["observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas", "conditions"]
        .iter()
        .any(|k| before.get(*k).cloned().unwrap_or(json!(0)) != status[*k])
        || status["conditions"] != before.get("conditions").cloned().unwrap_or_default();
    if changed {
        let api: Api<Deployment> = Api::namespaced(shared.client.clone(), &ns);
        merge_patch_status(&api, &name, json!({ "status": status }))
            .await
            .map_err(ReconcileError::api(format!("update status of {what}")))?;
    }
    if complete || paused {
        Ok(Requeue::requeue(Duration::from_secs(300)))
    } else {
        Ok(Requeue::requeue(Duration::from_secs(2)))
    }
}

/// Pods of a ReplicaSet, for callers that need them (rollout tests).
pub fn pods_of(pods: &[Arc<Pod>], rs_uid: &str) -> usize {
    pods.iter().filter(|p| controller_ref(&p.metadata).is_some_and(|o| o.uid == rs_uid) && podutil::is_active(p)).count()
}
