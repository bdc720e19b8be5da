//! Scheduler filters: may this pod run on this node? Each filter is a pure function over the prepared pod
//! (`PodCtx`) and a `NodeInfo`, returning the reasons it cannot, worded exactly like kube-scheduler's so the
//! FailedScheduling event reads as kube-scheduler's (the preemption part: `algorithm::preemption_message`).
//!
//! Order follows kube-scheduler's default profile; the first failing filter decides a node's reasons.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{NodeSelector, Pod, PodAffinityTerm, Taint, Toleration};

use super::cache::{non_zero_requests, Cache, NodeInfo, PodEntry};
use crate::util::owner;
use rkube_apimachinery::labels::{self as selector, selector_matches};
use rkube_apimachinery::node_selector::matches_parts as node_selector_matches_parts;
use rkube_apimachinery::pod::{self, Requests};

/// Why a node failed NodeUnschedulable (`spec.unschedulable` without a toleration), in kube-scheduler's words.
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// Why a node failed NodeName (`spec.nodeName` names another node).
pub const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// Why a node failed NodeAffinity (`nodeSelector` or required node affinity).
pub const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// Why a node failed NodePorts (a host port the pod asks for is taken there).
pub const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// Why a node failed InterPodAffinity on the pod's required affinity.
pub const REASON_POD_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// Why a node failed InterPodAffinity on the pod's required anti-affinity.
pub const REASON_POD_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// Why a node failed InterPodAffinity on an existing pod's anti-affinity against this pod.
pub const REASON_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
/// The taint the node lifecycle controller puts on a node that is not Ready.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint the node lifecycle controller puts on a node whose status stopped coming.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a cordoned node (`spec.unschedulable`), tolerated like any other.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Everything about the pod the filters and scores need, computed once per scheduling attempt
/// (kube-scheduler's PreFilter state).
#[derive(Debug, Clone)]
pub struct PodCtx {
    /// The pod's namespace (affinity terms without namespaces look in it).
    pub namespace: String,
    /// The pod's labels, which existing pods' anti-affinity terms are matched against.
    pub labels: BTreeMap<String, String>,
    /// The uid of the pod's controller, for spreading a controller's pods over nodes.
    pub owner_uid: Option<String>,
    /// What the pod requests (cpu milli, memory bytes), checked against what a node has left.
    pub requests: Requests,
    /// The requests with kube-scheduler's non-zero defaults for containers that ask nothing, for scoring.
    pub non_zero: Requests,
    /// The (protocol, hostIP, hostPort) triples the pod asks for.
    pub ports: Vec<(String, String, i32)>,
    /// The pod's tolerations, checked against node taints.
    pub tolerations: Vec<Toleration>,
    /// `spec.nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// The required terms of `spec.affinity.nodeAffinity` (one must match).
    pub required_node_affinity: Option<NodeSelector>,
    /// The preferred node affinity terms with their weights, for scoring.
    pub preferred_node_affinity: Vec<(i32, k8s_openapi::api::core::v1::NodeSelectorTerm)>,
    /// (topologyKey, value) domains holding pods matching a required affinity term, per term
    pub affinity_domains: Vec<HashSet<String>>,
    /// The topology key of each required affinity term, in the order of `affinity_domains`.
    pub affinity_keys: Vec<String>,
    /// a required affinity term matched no pod anywhere but matches the pod itself (first pod of a group)
    pub affinity_self_ok: bool,
    /// (topologyKey, value) forbidden by the pod's own required anti-affinity
    pub anti_domains: HashSet<(String, String)>,
    /// (topologyKey, value) forbidden by existing pods' anti-affinity matching this pod
    pub existing_anti_domains: HashSet<(String, String)>,
    /// preferred pod (anti-)affinity: weight per (topologyKey, value); positive attracts
    pub preferred_pod_domains: BTreeMap<(String, String), i64>,
}

fn term_matches_pod(term: &PodAffinityTerm, term_ns: &str, ns: &str, labels: &BTreeMap<String, String>) -> bool {
    let namespaces = term.namespaces.as_deref().unwrap_or_default();
    let ns_ok = if namespaces.is_empty() && term.namespace_selector.is_none() {
        ns == term_ns
    } else {
        // namespaceSelector would need Namespace labels; an empty selector means all namespaces
        namespaces.iter().any(|n| n == ns)
            || term.namespace_selector.as_ref().is_some_and(selector::selector_is_empty)
    };
    ns_ok && term.label_selector.as_ref().is_some_and(|s| selector_matches(s, Some(labels)))
}

impl PodCtx {
    /// Prepare a pod for scheduling against the current cache.
    pub fn new(p: &Pod, cache: &Cache) -> Self {
        let spec = p.spec.clone().unwrap_or_default();
        let namespace = p.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let labels = p.metadata.labels.clone().unwrap_or_default();
        let node_aff = spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref());
        let pod_aff = spec.affinity.as_ref().and_then(|a| a.pod_affinity.as_ref());
        let pod_anti = spec.affinity.as_ref().and_then(|a| a.pod_anti_affinity.as_ref());

        let node_label = |e: &PodEntry, key: &str| cache.node(&e.node).and_then(|n| n.labels.get(key).cloned());

        // required pod affinity: domains that hold a matching pod, per term
        let aff_terms = pod_aff.and_then(|a| a.required_during_scheduling_ignored_during_execution.clone()).unwrap_or_default();
        let mut affinity_domains = vec![HashSet::new(); aff_terms.len()];
        let mut any_match = vec![false; aff_terms.len()];
        // required anti-affinity of the pod itself
        let anti_terms = pod_anti.and_then(|a| a.required_during_scheduling_ignored_during_execution.clone()).unwrap_or_default();
        let mut anti_domains = HashSet::new();
        let pref_aff = pod_aff.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.clone()).unwrap_or_default();
        let pref_anti = pod_anti.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.clone()).unwrap_or_default();
        let mut preferred_pod_domains = BTreeMap::new();
        if !aff_terms.is_empty() || !anti_terms.is_empty() || !pref_aff.is_empty() || !pref_anti.is_empty() {
            for e in cache.pods() {
                for (i, t) in aff_terms.iter().enumerate() {
                    if term_matches_pod(t, &namespace, &e.namespace, &e.labels) {
                        any_match[i] = true;
                        if let Some(v) = node_label(e, &t.topology_key) {
                            affinity_domains[i].insert(v);
                        }
                    }
                }
                for t in &anti_terms {
                    if term_matches_pod(t, &namespace, &e.namespace, &e.labels) {
                        if let Some(v) = node_label(e, &t.topology_key) {
                            anti_domains.insert((t.topology_key.clone(), v));
                        }
                    }
                }
                for (w, t, sign) in pref_aff
                    .iter()
                    .map(|w| (w.weight, &w.pod_affinity_term, 1))
                    .chain(pref_anti.iter().map(|w| (w.weight, &w.pod_affinity_term, -1)))
                {
                    if term_matches_pod(t, &namespace, &e.namespace, &e.labels) {
                        if let Some(v) = node_label(e, &t.topology_key) {
                            *preferred_pod_domains.entry((t.topology_key.clone(), v)).or_insert(0) += sign * i64::from(w);
                        }
                    }
                }
            }
        }
        let affinity_self_ok = !aff_terms.is_empty()
            && any_match.iter().all(|m| !m)
            && aff_terms.iter().all(|t| term_matches_pod(t, &namespace, &namespace, &labels));
        // existing pods' anti-affinity against this pod (symmetry)
        let mut existing_anti_domains = HashSet::new();
        for e in cache.anti_affinity_pods() {
            for t in &e.anti_affinity {
                if term_matches_pod(t, &e.namespace, &namespace, &labels) {
                    if let Some(v) = node_label(e, &t.topology_key) {
                        existing_anti_domains.insert((t.topology_key.clone(), v));
                    }
                }
            }
        }
        PodCtx {
            requests: pod::requests(&spec),
            non_zero: non_zero_requests(&spec),
            ports: pod::host_ports(&spec),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_affinity: node_aff.and_then(|a| a.required_during_scheduling_ignored_during_execution.clone()),
            preferred_node_affinity: node_aff
                .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.weight, t.preference))
                .collect(),
            affinity_keys: aff_terms.iter().map(|t| t.topology_key.clone()).collect(),
            affinity_domains,
            affinity_self_ok,
            anti_domains,
            existing_anti_domains,
            preferred_pod_domains,
            owner_uid: owner::controller_ref(&p.metadata).map(|o| o.uid.clone()),
            namespace,
            labels,
        }
    }
}

/// Does a toleration tolerate a taint (key, effect, operator Equal/Exists)?
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or("");
    let op = t.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return op == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match op {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// The taints the scheduler applies: the node's own, plus not-ready / unschedulable ones implied by
/// its status when the node lifecycle controller has not written them yet.
pub fn effective_taints(n: &NodeInfo) -> Vec<Taint> {
    let mut taints = n.taints.clone();
    let implied = |key: &str| Taint { key: key.into(), effect: "NoSchedule".into(), ..Default::default() };
    if !n.ready && !taints.iter().any(|t| t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE) {
        taints.push(implied(TAINT_NOT_READY));
    }
    taints
}

/// NodeUnschedulable: cordoned nodes take only pods tolerating the unschedulable taint.
pub fn node_unschedulable(p: &PodCtx, n: &NodeInfo) -> Result<(), Vec<String>> {
    if !n.unschedulable {
        return Ok(());
    }
    let taint = Taint { key: TAINT_UNSCHEDULABLE.into(), effect: "NoSchedule".into(), ..Default::default() };
    if p.tolerations.iter().any(|t| tolerates(t, &taint)) {
        Ok(())
    } else {
        Err(vec![REASON_UNSCHEDULABLE.into()])
    }
}

/// TaintToleration: every NoSchedule/NoExecute taint must be tolerated.
pub fn taint_toleration(p: &PodCtx, n: &NodeInfo) -> Result<(), Vec<String>> {
    let needs_check = !n.taints.is_empty() || !n.ready;
    if !needs_check {
        return Ok(());
    }
    for taint in effective_taints(n) {
        if taint.effect != "NoSchedule" && taint.effect != "NoExecute" {
            continue;
        }
        if !p.tolerations.iter().any(|t| tolerates(t, &taint)) {
            return Err(vec![format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or("")
            )]);
        }
    }
    Ok(())
}

/// NodeAffinity: nodeSelector labels and required node affinity terms.
pub fn node_affinity(p: &PodCtx, n: &NodeInfo) -> Result<(), Vec<String>> {
    for (k, v) in &p.node_selector {
        if n.labels.get(k) != Some(v) {
            return Err(vec![REASON_NODE_AFFINITY.into()]);
        }
    }
    if let Some(req) = &p.required_node_affinity {
        if !node_selector_matches_parts(req, &n.name, &n.labels) {
            return Err(vec![REASON_NODE_AFFINITY.into()]);
        }
    }
    Ok(())
}

/// NodePorts: a requested hostPort must be free for its protocol and a conflicting host IP.
pub fn node_ports(p: &PodCtx, n: &NodeInfo) -> Result<(), Vec<String>> {
    for (proto, ip, port) in &p.ports {
        let conflict = n.used_ports.iter().any(|(up, uip, uport)| {
            uport == port && up == proto && (uip == ip || uip == "0.0.0.0" || ip == "0.0.0.0")
        });
        if conflict {
            return Err(vec![REASON_PORTS.into()]);
        }
    }
    Ok(())
}

/// NodeResourcesFit: requests plus already requested must fit allocatable; pod count below max pods.
pub fn resources_fit(p: &PodCtx, n: &NodeInfo) -> Result<(), Vec<String>> {
    let mut reasons = Vec::new();
    if n.pod_count + 1 > n.alloc_pods {
        reasons.push("Too many pods".to_string());
    }
    if p.requests.cpu > 0 && n.requested.cpu + p.requests.cpu > n.alloc_cpu {
        reasons.push("Insufficient cpu".to_string());
    }
    if p.requests.memory > 0 && n.requested.memory + p.requests.memory > n.alloc_memory {
        reasons.push("Insufficient memory".to_string());
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// InterPodAffinity: required affinity, required anti-affinity, and existing pods' anti-affinity.
pub fn inter_pod_affinity(p: &PodCtx, n: &NodeInfo) -> Result<(), Vec<String>> {
    for (i, key) in p.affinity_keys.iter().enumerate() {
        let Some(v) = n.labels.get(key) else { return Err(vec![REASON_POD_AFFINITY.into()]) };
        if !p.affinity_self_ok && !p.affinity_domains[i].contains(v) {
            return Err(vec![REASON_POD_AFFINITY.into()]);
        }
    }
    for (key, value) in &p.anti_domains {
        if n.labels.get(key) == Some(value) {
            return Err(vec![REASON_POD_ANTI_AFFINITY.into()]);
        }
    }
    for (key, value) in &p.existing_anti_domains {
        if n.labels.get(key) == Some(value) {
            return Err(vec![REASON_EXISTING_ANTI_AFFINITY.into()]);
        }
    }
    Ok(())
}

/// Run all filters in kube-scheduler's order; the first failure is the node's verdict.
pub fn run_filters(p: &PodCtx, n: &NodeInfo) -> Result<(), Vec<String>> {
    node_unschedulable(p, n)?;
    taint_toleration(p, n)?;
    node_affinity(p, n)?;
    node_ports(p, n)?;
    resources_fit(p, n)?;
    inter_pod_affinity(p, n)
}
