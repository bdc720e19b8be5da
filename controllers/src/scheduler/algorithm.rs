//! One scheduling decision: filter nodes (stopping once enough feasible nodes are found, like
//! kube-scheduler's percentageOfNodesToScore), score the feasible ones, pick the best (random among ties).
//! Pure over the cache; binding and retries live in `scheduler::run`.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use rand::Rng;

use super::cache::{Cache, NodeInfo};
use super::filters::{run_filters, PodCtx};
use super::scores::score_nodes;

/// Why no node fits, counted per reason across nodes (kube-scheduler's FitError), with what its default
/// preemption plugin (DefaultPreemption, a PostFilter) said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// How many nodes were considered (`0/N nodes are available`).
    pub num_all_nodes: usize,
    /// How many nodes failed for each reason (`2 node(s) had untolerated taint...`).
    pub reasons: BTreeMap<String, usize>,
    /// The PostFilter's message, `preemption: ` and the rest (see [`preemption_message`]); None when upstream's
    /// dry run would find victims, where upstream preempts and adds nothing to the message.
    pub preemption: Option<String>,
}

impl fmt::Display for FitError {
    /// Upstream's `FitError.Error()`: `0/N nodes are available:` then each part as `" %v."` (SeparatorFormat).
    /// The preemption part ends in a period of its own, so upstream prints two: `...incoming pod..`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_all_nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available: {}.", self.num_all_nodes, histogram(&self.reasons))?;
        if let Some(p) = &self.preemption {
            write!(f, " {p}.")?;
        }
        Ok(())
    }
}

/// `count reason` strings sorted as strings and joined, as upstream's sortReasonsHistogram.
fn histogram(reasons: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(r, c)| format!("{c} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

/// Upstream's status for a filter failure that preemption cannot fix (UnschedulableAndUnresolvable): the node is
/// cordoned, tainted, does not match the pod's node selection or pod affinity, or has less allocatable than the
/// pod requests (NodeResourcesFit's Unresolvable). Ports, pod count, room taken by other pods and
/// anti-affinity are Unschedulable: evicting pods might help.
fn unresolvable(p: &PodCtx, n: &NodeInfo, reasons: &[String]) -> bool {
    reasons.iter().any(|r| {
        r == super::filters::REASON_UNSCHEDULABLE
            || r == super::filters::REASON_NODE_NAME
            || r == super::filters::REASON_NODE_AFFINITY
            || r == super::filters::REASON_POD_AFFINITY
            || r.starts_with("node(s) had untolerated taint")
            || (r == "Insufficient cpu" && p.requests.cpu > n.alloc_cpu)
            || (r == "Insufficient memory" && p.requests.memory > n.alloc_memory)
    })
}

/// What kube-scheduler's DefaultPreemption PostFilter says about a pod no node fits, found the way its dry run
/// finds it: a pod with `preemptionPolicy: Never` is not eligible; a node whose failure preemption cannot fix is
/// "Preemption is not helpful for scheduling"; a node without pods of lower priority has "No preemption victims
/// found for incoming pod"; on the others the filters run again without those pods and their reasons count.
/// If the pod would fit somewhere once lower-priority pods were gone, upstream preempts them and says nothing
/// here; rkube does not preempt (the pod waits), but its message is upstream's: None.
pub fn preemption_message(p: &PodCtx, pod: &Pod, cache: &Cache, failed: &[(&NodeInfo, Vec<String>)]) -> Option<String> {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Some("preemption: not eligible due to preemptionPolicy=Never.".into());
    }
    let priority = spec.and_then(|s| s.priority).unwrap_or(0);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (node, rs) in failed {
        if unresolvable(p, node, rs) {
            *reasons.entry("Preemption is not helpful for scheduling".into()).or_default() += 1;
            continue;
        }
        let victims: Vec<&super::cache::PodEntry> = cache.pods().filter(|e| e.node == node.name && e.priority < priority).collect();
        if victims.is_empty() {
            *reasons.entry("No preemption victims found for incoming pod".into()).or_default() += 1;
            continue;
        }
        match run_filters(p, &node.without(&victims)) {
            Ok(()) => return None,
            Err(rs) => {
                for r in rs {
                    *reasons.entry(r).or_default() += 1;
                }
            }
        }
    }
    Some(format!("preemption: 0/{} nodes are available: {}.", cache.len(), histogram(&reasons)))
}

impl std::error::Error for FitError {}

/// How many feasible nodes to look for before scoring (adaptive percentage, at least 100 nodes).
pub fn num_feasible_nodes_to_find(num_all: usize, percentage: Option<u32>) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if num_all < MIN_FEASIBLE {
        return num_all;
    }
    let pct = match percentage {
        Some(p) if p > 0 => p.min(100) as usize,
        _ => (50usize.saturating_sub(num_all / 125)).max(5),
    };
    if pct >= 100 {
        return num_all;
    }
    (num_all * pct / 100).max(MIN_FEASIBLE)
}

/// The stateful part of the algorithm: where the next scan starts, percentage of nodes to score, the rng.
pub struct Algorithm<R: Rng> {
    /// The node index the next scan starts at, so successive pods do not always try the same nodes first.
    pub next_start: usize,
    /// percentageOfNodesToScore (None: the adaptive default).
    pub percentage: Option<u32>,
    /// Picks among nodes with the same best score.
    pub rng: R,
}

impl<R: Rng> Algorithm<R> {
    /// New algorithm with adaptive percentage of nodes to score.
    pub fn new(rng: R) -> Self {
        Algorithm { next_start: 0, percentage: None, rng }
    }

    /// Pick a node for `pod`, or say why none fits.
    pub fn schedule(&mut self, cache: &Cache, pod: &Pod) -> Result<String, FitError> {
        let n = cache.len();
        if n == 0 {
            return Err(FitError { num_all_nodes: 0, reasons: BTreeMap::new(), preemption: None });
        }
        let ctx = PodCtx::new(pod, cache);
        let want = num_feasible_nodes_to_find(n, self.percentage);
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(1024));
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut failed: Vec<(&NodeInfo, Vec<String>)> = Vec::new();
        let start = self.next_start % n;
        let mut processed = 0;
        for i in 0..n {
            let node = &cache.nodes[(start + i) % n];
            processed += 1;
            match run_filters(&ctx, node) {
                Ok(()) => {
                    feasible.push(node);
                    if feasible.len() >= want {
                        break;
                    }
                }
                Err(rs) => {
                    rkube_trace::trace_event!(node = %node.name, reasons = ?rs, "filtered out");
                    for r in &rs {
                        *reasons.entry(r.clone()).or_default() += 1;
                    }
                    failed.push((node, rs));
                }
            }
        }
        self.next_start = (start + processed) % n;
        if feasible.is_empty() {
            let preemption = preemption_message(&ctx, pod, cache, &failed);
            return Err(FitError { num_all_nodes: n, reasons, preemption });
        }
        if feasible.len() == 1 {
            return Ok(feasible[0].name.clone());
        }
        let scores = score_nodes(&ctx, &feasible);
        rkube_trace::trace_event!(scores = ?super::trace::Scores(&feasible, &scores), "scored");
        // reservoir sampling among the best, as kube-scheduler's selectHost
        let mut best = 0;
        let mut best_score = scores[0];
        let mut ties = 1u32;
        for (i, s) in scores.iter().enumerate().skip(1) {
            if *s > best_score {
                best = i;
                best_score = *s;
                ties = 1;
            } else if *s == best_score {
                ties += 1;
                if self.rng.random_range(0..ties) == 0 {
                    best = i;
                }
            }
        }
        Ok(feasible[best].name.clone())
    }
}
