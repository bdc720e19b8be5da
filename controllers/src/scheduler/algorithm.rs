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

/// Why no node fits, counted per reason across nodes (kube-scheduler's FitError).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_all_nodes: usize,
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_all_nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        let mut parts: Vec<String> = self.reasons.iter().map(|(r, c)| format!("{c} {r}")).collect();
        parts.sort();
        write!(f, "0/{} nodes are available: {}.", self.num_all_nodes, parts.join(", "))
    }
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
    pub next_start: usize,
    pub percentage: Option<u32>,
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
            return Err(FitError { num_all_nodes: 0, reasons: BTreeMap::new() });
        }
        let ctx = PodCtx::new(pod, cache);
        let want = num_feasible_nodes_to_find(n, self.percentage);
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(1024));
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
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
                    for r in rs {
                        *reasons.entry(r).or_default() += 1;
                    }
                }
            }
        }
        self.next_start = (start + processed) % n;
        if feasible.is_empty() {
            return Err(FitError { num_all_nodes: n, reasons });
        }
        if feasible.len() == 1 {
            return Ok(feasible[0].name.clone());
        }
        let scores = score_nodes(&ctx, &feasible);
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
