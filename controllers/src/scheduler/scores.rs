//! Scheduler scores: among feasible nodes, which is best? Each scorer is pure over (`PodCtx`, `NodeInfo`) and
//! yields 0..=100 (after normalization across the feasible nodes where kube-scheduler normalizes too).
//! Weights follow kube-scheduler's default profile.

use super::cache::NodeInfo;
use super::filters::PodCtx;
use rkube_apimachinery::node_selector::term_matches_parts;

/// The best score one plugin gives a node (kube-scheduler's MaxNodeScore); each is normalized to 0..=this.
pub const MAX_SCORE: i64 = 100;
/// Weight of NodeResourcesFit's LeastAllocated score: prefer nodes with more free cpu and memory.
pub const WEIGHT_LEAST_ALLOCATED: i64 = 1;
/// Weight of NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory use stay even.
pub const WEIGHT_BALANCED: i64 = 1;
/// Weight of spreading a controller's pods over nodes (SelectorSpread / PodTopologySpread's default).
pub const WEIGHT_SPREAD: i64 = 2;
/// Weight of preferred node affinity.
pub const WEIGHT_NODE_AFFINITY: i64 = 2;
/// Weight of preferred pod affinity and anti-affinity (InterPodAffinity).
pub const WEIGHT_POD_AFFINITY: i64 = 2;
/// Weight of TaintToleration: prefer nodes with fewer PreferNoSchedule taints the pod does not tolerate.
pub const WEIGHT_TAINT: i64 = 3;

fn least(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_SCORE / capacity
}

/// NodeResourcesFit/LeastAllocated: prefer nodes with more free cpu and memory (non-zero requests).
pub fn least_allocated(p: &PodCtx, n: &NodeInfo) -> i64 {
    let cpu = least(n.non_zero_requested.cpu + p.non_zero.cpu, n.alloc_cpu);
    let mem = least(n.non_zero_requested.memory + p.non_zero.memory, n.alloc_memory);
    (cpu + mem) / 2
}

/// NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory usage fractions stay close.
pub fn balanced_allocation(p: &PodCtx, n: &NodeInfo) -> i64 {
    let frac = |req: i64, cap: i64| if cap <= 0 { 1.0 } else { (req as f64 / cap as f64).min(1.0) };
    let cpu = frac(n.requested.cpu + p.requests.cpu, n.alloc_cpu);
    let mem = frac(n.requested.memory + p.requests.memory, n.alloc_memory);
    // standard deviation of two values is half their distance
    let std = (cpu - mem).abs() / 2.0;
    ((1.0 - std) * MAX_SCORE as f64) as i64
}

/// Raw spreading count: pods of the same controller already on the node (fewer is better).
pub fn spread_count(p: &PodCtx, n: &NodeInfo) -> i64 {
    p.owner_uid.as_ref().and_then(|o| n.owner_counts.get(o)).map_or(0, |c| i64::from(*c))
}

/// Raw preferred node affinity: sum of weights of matching preferred terms.
pub fn node_affinity_raw(p: &PodCtx, n: &NodeInfo) -> i64 {
    p.preferred_node_affinity
        .iter()
        .filter(|(_, term)| term_matches_parts(term, &n.name, &n.labels))
        .map(|(w, _)| i64::from(*w))
        .sum()
}

/// Raw preferred pod affinity: weights of the topology domains this node belongs to (negative repels).
pub fn pod_affinity_raw(p: &PodCtx, n: &NodeInfo) -> i64 {
    p.preferred_pod_domains
        .iter()
        .filter(|((k, v), _)| n.labels.get(k) == Some(v))
        .map(|(_, w)| *w)
        .sum()
}

/// Raw taint score: number of untolerated PreferNoSchedule taints (fewer is better).
pub fn taint_raw(p: &PodCtx, n: &NodeInfo) -> i64 {
    n.taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|t| !p.tolerations.iter().any(|tol| super::filters::tolerates(tol, t)))
        .count() as i64
}

/// Score all feasible nodes; returns total weighted scores in the same order.
pub fn score_nodes(p: &PodCtx, nodes: &[&NodeInfo]) -> Vec<i64> {
    let spread: Vec<i64> = nodes.iter().map(|n| spread_count(p, n)).collect();
    let max_spread = spread.iter().copied().max().unwrap_or(0);
    let has_node_aff = !p.preferred_node_affinity.is_empty();
    let node_aff: Vec<i64> = if has_node_aff { nodes.iter().map(|n| node_affinity_raw(p, n)).collect() } else { vec![] };
    let max_node_aff = node_aff.iter().copied().max().unwrap_or(0);
    let has_pod_aff = !p.preferred_pod_domains.is_empty();
    let pod_aff: Vec<i64> = if has_pod_aff { nodes.iter().map(|n| pod_affinity_raw(p, n)).collect() } else { vec![] };
    let (min_pa, max_pa) = (
        pod_aff.iter().copied().min().unwrap_or(0),
        pod_aff.iter().copied().max().unwrap_or(0),
    );
    let taint: Vec<i64> = nodes.iter().map(|n| taint_raw(p, n)).collect();
    let max_taint = taint.iter().copied().max().unwrap_or(0);
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut s = WEIGHT_LEAST_ALLOCATED * least_allocated(p, n) + WEIGHT_BALANCED * balanced_allocation(p, n);
            s += WEIGHT_SPREAD
                * if max_spread == 0 { MAX_SCORE } else { (max_spread - spread[i]) * MAX_SCORE / max_spread };
            if has_node_aff && max_node_aff > 0 {
                s += WEIGHT_NODE_AFFINITY * node_aff[i] * MAX_SCORE / max_node_aff;
            }
            if has_pod_aff && max_pa > min_pa {
                s += WEIGHT_POD_AFFINITY * (pod_aff[i] - min_pa) * MAX_SCORE / (max_pa - min_pa);
            }
            s += WEIGHT_TAINT * if max_taint == 0 { MAX_SCORE } else { (max_taint - taint[i]) * MAX_SCORE / max_taint };
            s
        })
        .collect()
}
