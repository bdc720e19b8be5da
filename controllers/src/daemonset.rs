//! DaemonSet controller: one pod per eligible node (nodeSelector, required node affinity, taints tolerated
//! with the DaemonSet default tolerations), pinned to its node through a `metadata.name` node affinity so the
//! scheduler still checks resources; RollingUpdate replaces old-revision pods at most `maxUnavailable` nodes
//! at a time. A pod already on a node stays while the node's taints it does not tolerate are NoSchedule only
//! (upstream's `shouldContinueRunning`: a NotReady node's `unreachable:NoSchedule` keeps its daemon pod; only an
//! untolerated NoExecute taint removes it). [`step`], [`should_run`] and [`should_continue_running`] are pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, Taint, Toleration};

use crate::scheduler::filters::tolerates;
use rkube_apimachinery::node_selector::matches_parts as node_selector_matches_parts;

/// Label carrying the template revision (as for StatefulSets).
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Tolerations every DaemonSet pod gets, as kube-controller-manager adds them.
pub fn default_tolerations() -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
}

/// The node facts eligibility depends on.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// The node's name.
    pub name: String,
    /// Its labels, for the pod's nodeSelector and node affinity.
    pub labels: BTreeMap<String, String>,
    /// Its taints, which the daemon pod must tolerate.
    pub taints: Vec<Taint>,
}

/// Whether the node is selected at all: nodeSelector and required node affinity.
fn selects(spec: &PodSpec, node: &NodeView) -> bool {
    if let Some(sel) = &spec.node_selector {
        if sel.iter().any(|(k, v)| node.labels.get(k) != Some(v)) {
            return false;
        }
    }
    let req = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref());
    match req {
        Some(req) => node_selector_matches_parts(req, &node.name, &node.labels),
        None => true,
    }
}

/// Whether the node's taints with these effects are all tolerated (the spec's and the default tolerations).
fn tolerated(spec: &PodSpec, node: &NodeView, effects: &[&str]) -> bool {
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    tolerations.extend(default_tolerations());
    node.taints.iter().filter(|t| effects.contains(&t.effect.as_str())).all(|t| tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// Whether a new daemon pod with this spec belongs on the node (upstream's `shouldRun`).
pub fn should_run(spec: &PodSpec, node: &NodeView) -> bool {
    selects(spec, node) && tolerated(spec, node, &["NoSchedule", "NoExecute"])
}

/// Whether a daemon pod already on the node may stay (upstream's `shouldContinueRunning`): an untolerated
/// NoSchedule taint only stops new pods.
pub fn should_continue_running(spec: &PodSpec, node: &NodeView) -> bool {
    selects(spec, node) && tolerated(spec, node, &["NoExecute"])
}

/// A daemon pod as the step sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonPod {
    /// The pod's name.
    pub name: String,
    /// The node it runs on.
    pub node: String,
    /// Its `controller-revision-hash` label: the template revision it runs.
    pub revision: String,
    /// Ready for minReadySeconds.
    pub available: bool,
    /// Being deleted.
    pub terminating: bool,
}

/// One action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DsAction {
    /// Create the daemon pod for this node.
    Create(String),
    /// Delete this pod.
    Delete(String),
}

/// Decide creates/deletes over eligible nodes (a pod belongs there) and existing daemon pods; a pod on a node of
/// `keep` that is not eligible (an untolerated NoSchedule taint) stays, and none is made there.
pub fn step(eligible: &[String], keep: &[String], pods: &[DaemonPod], update_revision: &str, max_unavailable: usize) -> Vec<DsAction> {
    let mut out = Vec::new();
    let mut by_node: BTreeMap<&str, Vec<&DaemonPod>> = BTreeMap::new();
    for p in pods.iter().filter(|p| !p.terminating) {
        by_node.entry(p.node.as_str()).or_default().push(p);
    }
    let terminating_nodes: std::collections::HashSet<&str> =
        pods.iter().filter(|p| p.terminating).map(|p| p.node.as_str()).collect();
    // pods on nodes that should not run one
    for (node, ps) in &by_node {
        if !eligible.iter().any(|n| n == node) && !keep.iter().any(|n| n == node) {
            out.extend(ps.iter().map(|p| DsAction::Delete(p.name.clone())));
        }
    }
    let mut unavailable = 0;
    let mut old_available: Vec<&DaemonPod> = Vec::new();
    for node in eligible {
        match by_node.get(node.as_str()) {
            None => {
                if !terminating_nodes.contains(node.as_str()) {
                    out.push(DsAction::Create(node.clone()));
                }
                unavailable += 1;
            }
            Some(ps) => {
                // keep the newest-revision available one, delete duplicates
                let mut sorted = ps.clone();
                sorted.sort_by_key(|p| (p.revision != update_revision, !p.available, p.name.clone()));
                for extra in &sorted[1..] {
                    out.push(DsAction::Delete(extra.name.clone()));
                }
                let keep = sorted[0];
                if !keep.available {
                    unavailable += 1;
                    if keep.revision != update_revision {
                        // an old pod that is not available anyway costs nothing to replace
                        out.push(DsAction::Delete(keep.name.clone()));
                    }
                } else if keep.revision != update_revision {
                    old_available.push(keep);
                }
            }
        }
    }
    let budget = max_unavailable.saturating_sub(unavailable);
    for p in old_available.into_iter().take(budget) {
        out.push(DsAction::Delete(p.name.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dp(name: &str, node: &str, rev: &str, available: bool) -> DaemonPod {
        DaemonPod { name: name.into(), node: node.into(), revision: rev.into(), available, terminating: false }
    }

    fn nodes(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn step_table() {
        use DsAction::*;
        let cases: Vec<(&str, Vec<String>, Vec<DaemonPod>, usize, Vec<DsAction>)> = vec![
            ("one per node", nodes(&["a", "b"]), vec![dp("p1", "a", "r2", true)], 1, vec![Create("b".into())]),
            ("node no longer eligible", nodes(&["a"]), vec![dp("p1", "a", "r2", true), dp("p2", "b", "r2", true)], 1, vec![Delete("p2".into())]),
            ("duplicate on a node", nodes(&["a"]), vec![dp("p1", "a", "r2", true), dp("p2", "a", "r1", true)], 1, vec![Delete("p2".into())]),
            ("rolling: one at a time", nodes(&["a", "b"]), vec![dp("p1", "a", "r1", true), dp("p2", "b", "r1", true)], 1, vec![Delete("p1".into())]),
            ("rolling: budget used by unavailable pod", nodes(&["a", "b"]), vec![dp("p1", "a", "r2", false), dp("p2", "b", "r1", true)], 1, vec![]),
            ("rolling: maxUnavailable 2", nodes(&["a", "b"]), vec![dp("p1", "a", "r1", true), dp("p2", "b", "r1", true)], 2, vec![Delete("p1".into()), Delete("p2".into())]),
        ];
        for (what, eligible, pods, mu, want) in cases {
            assert_eq!(step(&eligible, &eligible, &pods, "r2", mu), want, "{what}");
        }
        // b is unreachable (unreachable:NoSchedule, not tolerated by default): its pod stays, none is made on c
        let (eligible, keep) = (nodes(&["a"]), nodes(&["a", "b", "c"]));
        let pods = vec![dp("p1", "a", "r2", true), dp("p2", "b", "r2", true)];
        assert_eq!(step(&eligible, &keep, &pods, "r2", 1), vec![], "kept on a NoSchedule-tainted node");
        assert_eq!(step(&eligible, &eligible, &pods, "r2", 1), vec![Delete("p2".into())], "not kept elsewhere");
    }

    #[test]
    fn eligibility_honours_selector_and_taints_with_default_tolerations() {
        let mut spec = PodSpec::default();
        let node = |taints: Vec<Taint>| NodeView {
            name: "n".into(),
            labels: [("role".to_string(), "edge".to_string())].into(),
            taints,
        };
        let taint = |k: &str, e: &str| Taint { key: k.into(), effect: e.into(), value: None, time_added: None };
        assert!(should_run(&spec, &node(vec![])));
        assert!(should_run(&spec, &node(vec![taint("node.kubernetes.io/unreachable", "NoExecute")])));
        assert!(should_run(&spec, &node(vec![taint("node.kubernetes.io/unschedulable", "NoSchedule")])));
        assert!(!should_run(&spec, &node(vec![taint("dedicated", "NoSchedule")])));
        assert!(should_run(&spec, &node(vec![taint("dedicated", "PreferNoSchedule")])));
        // a NotReady node: no new daemon pod for the NoSchedule taint, the one there stays (NoExecute tolerated)
        let unreachable = node(vec![taint("node.kubernetes.io/unreachable", "NoSchedule"), taint("node.kubernetes.io/unreachable", "NoExecute")]);
        assert!(!should_run(&spec, &unreachable));
        assert!(should_continue_running(&spec, &unreachable));
        assert!(!should_continue_running(&spec, &node(vec![taint("dedicated", "NoExecute")])));
        spec.node_selector = Some([("role".to_string(), "core".to_string())].into());
        assert!(!should_run(&spec, &node(vec![])));
    }
}

// ---------------------------------------------------------------------------------------------------------
// kube-rs wiring
// ---------------------------------------------------------------------------------------------------------

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::context::{delete_quiet, merge_patch_status, ReconcileError, Shared};
use crate::util::owner::{controller_ref, new_controller_ref};
use crate::util::pod::{from_template, PodName};
use rkube_apimachinery::pod as podutil;

/// DaemonSet controller state: shared context plus the node cache.
pub struct DaemonSetCtx {
    /// The client, configuration and caches every controller shares.
    pub shared: Arc<Shared>,
    /// The cache of Nodes, one daemon pod per eligible node.
    pub nodes: Store<Node>,
}

fn view(n: &Node) -> NodeView {
    NodeView {
        name: n.name_any(),
        labels: n.metadata.labels.clone().unwrap_or_default(),
        taints: n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default(),
    }
}

/// Pin a daemon pod's spec to one node via required node affinity on `metadata.name`.
fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector { node_selector_terms: vec![term] });
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for t in default_tolerations() {
        if !tolerations.contains(&t) {
            tolerations.push(t);
        }
    }
}

/// The node a daemon pod is for: its binding, or the node its affinity pins it to.
fn pod_node(p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    if let Some(n) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    spec.affinity.as_ref()?.node_affinity.as_ref()?.required_during_scheduling_ignored_during_execution.as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// Reconcile one DaemonSet.
pub async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<DaemonSetCtx>) -> Result<Requeue, ReconcileError> {
    let shared = &ctx.shared;
    let ns = ds.namespace().unwrap_or_else(|| "default".into());
    let name = ds.name_any();
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    let uid = ds.uid().unwrap_or_default();
    let Some(spec) = ds.spec.clone() else {
        return Err(ReconcileError::Invalid { what: format!("daemonset {ns}/{name}"), problem: "spec is missing".into() });
    };
    let template_spec = spec.template.spec.clone().unwrap_or_default();
    let revision = format!("{}", crate::deployment::history::pod_template_hash(&spec.template, None));
    let nodes: Vec<NodeView> = ctx.nodes.state().iter().map(|n| view(n)).collect();
    let eligible: Vec<String> = nodes.iter().filter(|n| should_run(&template_spec, n)).map(|n| n.name.clone()).collect();
    let keep: Vec<String> = nodes.iter().filter(|n| should_continue_running(&template_spec, n)).map(|n| n.name.clone()).collect();
    let all = shared.pods_in(&ns);
    let owned: Vec<&Arc<Pod>> = all
        .iter()
        .filter(|p| controller_ref(&p.metadata).is_some_and(|o| o.uid == uid))
        .filter(|p| podutil::is_active(p) || p.metadata.deletion_timestamp.is_some())
        .collect();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = chrono::Utc::now();
    let dpods: Vec<DaemonPod> = owned
        .iter()
        .filter_map(|p| {
            Some(DaemonPod {
                name: p.name_any(),
                node: pod_node(p)?,
                revision: p.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)).cloned().unwrap_or_default(),
                available: podutil::is_available(p, min_ready, now),
                terminating: p.metadata.deletion_timestamp.is_some(),
            })
        })
        .collect();
    let on_delete = spec.update_strategy.as_ref().and_then(|u| u.type_.as_deref()) == Some("OnDelete");
    let max_unavailable = if on_delete {
        0
    } else {
        let mu = spec.update_strategy.as_ref().and_then(|u| u.rolling_update.as_ref()).and_then(|r| r.max_unavailable.clone());
        let (_, u) = crate::deployment::rollout::resolve_fenceposts(
            Some(&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0)),
            Some(&mu.unwrap_or(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))),
            eligible.len() as i32,
        )
        .map_err(|e| ReconcileError::Invalid { what: format!("daemonset {ns}/{name}"), problem: e.to_string() })?;
        u.max(1) as usize
    };
    let actions = step(&eligible, &keep, &dpods, &revision, max_unavailable);
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &ns);
    let oref = new_controller_ref("apps/v1", "DaemonSet", &ds.metadata);
    for a in &actions {
        match a {
            DsAction::Create(node) => {
                let prefix = format!("{name}-");
                let mut pod = from_template(&spec.template, &ns, PodName::Generate(&prefix), oref.clone(), &[(REVISION_LABEL, &revision)]);
                if let Some(ps) = pod.spec.as_mut() {
                    pin_to_node(ps, node);
                }
                let (pod, span) = crate::util::trace::create_child(&pod, crate::util::trace::of_owner(&ds.metadata), "daemonset", &format!("DaemonSet/{ns}/{name}"));
                let created = tracing::Instrument::instrument(api.create(&PostParams::default(), &pod), span.clone())
                    .await
                    .map_err(ReconcileError::api(format!("create daemon pod of {ns}/{name} for node {node}")))?;
                crate::util::trace::created(&span, &created);
                tracing::info!(daemonset = %name, node = %node, "created daemon pod");
            }
            DsAction::Delete(pod) => {
                delete_quiet(&api, pod, &DeleteParams::default())
                    .await
                    .map_err(ReconcileError::api(format!("delete daemon pod {ns}/{pod}")))?;
            }
        }
    }
    let live: Vec<&DaemonPod> = dpods.iter().filter(|p| !p.terminating).collect();
    let scheduled = live.iter().filter(|p| eligible.contains(&p.node)).count() as i32;
    let misscheduled = live.iter().filter(|p| !eligible.contains(&p.node)).count() as i32;
    let ready = owned.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && podutil::is_ready(p)).count() as i32;
    let available = live.iter().filter(|p| p.available).count() as i32;
    let updated = live.iter().filter(|p| p.revision == revision).count() as i32;
    let desired = eligible.len() as i32;
    let status = json!({
        "observedGeneration": ds.metadata.generation.unwrap_or(0),
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": scheduled,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "numberAvailable": available,
        "numberUnavailable": (desired - available).max(0),
        "updatedNumberScheduled": updated,
    });
    let before = serde_json::to_value(ds.status.clone().unwrap_or_default()).unwrap_or_default();
    if status.as_object().is_some_and(|m| m.iter().any(|(k, v)| before.get(k).unwrap_or(&json!(0)) != v)) {
        let dapi: Api<DaemonSet> = Api::namespaced(shared.client.clone(), &ns);
        merge_patch_status(&dapi, &name, json!({ "status": status }))
            .await
            .map_err(ReconcileError::api(format!("update status of daemonset {ns}/{name}")))?;
    }
    Ok(if actions.is_empty() && updated == desired { Requeue::requeue(Duration::from_secs(300)) } else { Requeue::requeue(Duration::from_secs(2)) })
}
