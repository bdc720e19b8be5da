//! The scheduling queue: pending pods wait in `active` (FIFO), failed ones back off (1 s doubling to 10 s)
//! and unschedulable ones park until the cluster changes (a node added/updated, a pod deleted) or 60 s pass.
//! Pure over an injected clock so it is tested without sleeping.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

/// A pod's first backoff after a failed attempt; it doubles with each further failure.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often even without cluster events.
pub const UNSCHEDULABLE_MAX_WAIT: Duration = Duration::from_secs(60);

/// The pods waiting to be scheduled, in the three states described above.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    pods: HashMap<String, Arc<Pod>>,
    active: VecDeque<String>,
    in_active: HashSet<String>,
    /// ready time -> keys
    backoff: BTreeMap<Instant, Vec<String>>,
    in_backoff: HashMap<String, Instant>,
    /// key -> since
    unschedulable: HashMap<String, Instant>,
    attempts: HashMap<String, u32>,
}

impl SchedulingQueue {
    /// Add a new pending pod or refresh one already queued (a parked pod whose spec changed is retried).
    pub fn add_or_update(&mut self, key: &str, pod: Arc<Pod>, now: Instant) {
        let changed = self.pods.get(key).is_some_and(|old| old.spec != pod.spec || old.metadata.labels != pod.metadata.labels);
        self.pods.insert(key.to_string(), pod);
        if self.in_active.contains(key) || self.in_backoff.contains_key(key) {
            return;
        }
        if self.unschedulable.contains_key(key) && !changed {
            return;
        }
        self.unschedulable.remove(key);
        self.push_active(key);
        let _ = now;
    }

    fn push_active(&mut self, key: &str) {
        if self.in_active.insert(key.to_string()) {
            self.active.push_back(key.to_string());
        }
    }

    /// Forget a pod (bound, deleted, or no longer ours).
    pub fn delete(&mut self, key: &str) {
        self.pods.remove(key);
        self.in_active.remove(key);
        self.unschedulable.remove(key);
        self.attempts.remove(key);
        if let Some(at) = self.in_backoff.remove(key) {
            if let Some(v) = self.backoff.get_mut(&at) {
                v.retain(|k| k != key);
                if v.is_empty() {
                    self.backoff.remove(&at);
                }
            }
        }
    }

    /// Next pod to schedule, if any is active.
    pub fn pop(&mut self) -> Option<(String, Arc<Pod>)> {
        while let Some(key) = self.active.pop_front() {
            if !self.in_active.remove(&key) {
                continue;
            }
            if let Some(p) = self.pods.get(&key) {
                return Some((key, p.clone()));
            }
        }
        None
    }

    fn backoff_for(&mut self, key: &str) -> Duration {
        let n = self.attempts.entry(key.to_string()).or_insert(0);
        *n += 1;
        let exp = (*n - 1).min(10);
        (INITIAL_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
    }

    /// The pod fit nowhere: park it until the cluster changes.
    pub fn unschedulable(&mut self, key: &str, now: Instant) {
        if !self.pods.contains_key(key) {
            return;
        }
        self.backoff_for(key);
        self.unschedulable.insert(key.to_string(), now);
    }

    /// Binding failed (transient error): retry after the pod's backoff.
    pub fn retry_later(&mut self, key: &str, now: Instant) {
        if !self.pods.contains_key(key) {
            return;
        }
        let d = self.backoff_for(key);
        let at = now + d;
        self.in_backoff.insert(key.to_string(), at);
        self.backoff.entry(at).or_default().push(key.to_string());
    }

    /// The cluster changed in a way that may make parked pods fit: move them to backoff/active.
    pub fn move_all_to_active(&mut self, now: Instant) {
        let parked: Vec<String> = self.unschedulable.drain().map(|(k, _)| k).collect();
        for key in parked {
            let n = self.attempts.get(&key).copied().unwrap_or(1).max(1);
            let d = (INITIAL_BACKOFF * 2u32.pow((n - 1).min(10))).min(MAX_BACKOFF);
            // the backoff counts from the last attempt; don't make a pod wait again for what it already waited
            let at = now + d / 2;
            self.in_backoff.insert(key.clone(), at);
            self.backoff.entry(at).or_default().push(key);
        }
    }

    /// Move pods whose backoff expired to active, and long-parked pods too.
    pub fn flush(&mut self, now: Instant) {
        let ready: Vec<Instant> = self.backoff.range(..=now).map(|(k, _)| *k).collect();
        for at in ready {
            if let Some(keys) = self.backoff.remove(&at) {
                for k in keys {
                    if self.in_backoff.remove(&k).is_some() {
                        self.push_active(&k);
                    }
                }
            }
        }
        let stale: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= UNSCHEDULABLE_MAX_WAIT)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.unschedulable.remove(&k);
            self.push_active(&k);
        }
    }

    /// When the next backoff expires.
    pub fn next_ready(&self) -> Option<Instant> {
        self.backoff.keys().next().copied()
    }

    /// Pods waiting to be tried now.
    pub fn active_len(&self) -> usize {
        self.in_active.len()
    }

    /// Pods known to the queue (active, backing off or parked).
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// No pods at all.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Whether the pod is parked as unschedulable.
    pub fn is_unschedulable(&self, key: &str) -> bool {
        self.unschedulable.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Arc<Pod> {
        Arc::new(Pod::default())
    }

    #[tokio::test(start_paused = true)]
    async fn fifo_dedup_and_delete() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update("a", p(), now);
        q.add_or_update("b", p(), now);
        q.add_or_update("a", p(), now);
        q.delete("b");
        assert_eq!(q.pop().map(|(k, _)| k), Some("a".into()));
        assert!(q.pop().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_waits_for_cluster_event_then_backoff() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update("a", p(), t0);
        let _ = q.pop();
        q.unschedulable("a", t0);
        assert!(q.is_unschedulable("a"));
        // an unrelated update of the same pod does not retry it
        q.add_or_update("a", p(), t0);
        q.flush(t0 + Duration::from_secs(5));
        assert!(q.pop().is_none());
        // node added: retried after its (halved) backoff
        tokio::time::advance(Duration::from_secs(5)).await;
        let t1 = Instant::now();
        q.move_all_to_active(t1);
        q.flush(t1);
        assert!(q.pop().is_none(), "still backing off");
        tokio::time::advance(Duration::from_millis(600)).await;
        q.flush(Instant::now());
        assert_eq!(q.pop().map(|(k, _)| k), Some("a".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn parked_pods_retry_after_max_wait_and_backoff_doubles() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update("a", p(), t0);
        let _ = q.pop();
        q.unschedulable("a", t0);
        q.flush(t0 + UNSCHEDULABLE_MAX_WAIT);
        assert_eq!(q.pop().map(|(k, _)| k), Some("a".into()));
        // bind failures back off 2 s, then 4 s (attempt counter continues)
        q.retry_later("a", t0);
        assert_eq!(q.next_ready(), Some(t0 + Duration::from_secs(2)));
        q.flush(t0 + Duration::from_secs(2));
        let _ = q.pop();
        q.retry_later("a", t0);
        assert_eq!(q.next_ready(), Some(t0 + Duration::from_secs(4)));
    }
}
