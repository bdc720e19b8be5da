//! Periodic compaction: forget revisions older than both a time window and a count, as kube-apiserver does
//! against etcd (it compacts every 5 minutes to the revision it saw 5 minutes earlier).
//!
//! Every `interval` the compactor samples the store's current revision. It then compacts to the newest revision
//! sampled at least `retention` ago, but never closer than `keep_revisions` to the current one, so a quiet
//! cluster keeps recent history and a busy one keeps at least the window. Reads and watches below the compaction
//! point then fail with `StorageError::Compacted` (410 Gone). Several apiservers sharing one etcd may all run it:
//! compacting to a revision already compacted is a no-op.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Revision, Store};

/// When to compact.
#[derive(Debug, Clone)]
pub struct CompactionPolicy {
    /// How often to sample and compact.
    pub interval: Duration,
    /// Keep at least this much time of history.
    pub retention: Duration,
    /// Keep at least this many revisions of history.
    pub keep_revisions: Revision,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy { interval: Duration::from_secs(60), retention: Duration::from_secs(300), keep_revisions: 1000 }
    }
}

/// The revision samples a compactor has taken, oldest first.
#[derive(Debug, Default)]
pub struct Planner {
    samples: VecDeque<(Instant, Revision)>,
    compacted: Revision,
}

impl Planner {
    /// Records `current` seen at `now` and returns the revision to compact to, if any.
    pub fn plan(&mut self, policy: &CompactionPolicy, now: Instant, current: Revision) -> Option<Revision> {
        self.samples.push_back((now, current));
        let cutoff = now.checked_sub(policy.retention)?;
        // The newest sample at least `retention` old; older ones are no longer needed.
        let mut old = None;
        while let Some(&(t, rev)) = self.samples.front() {
            if t > cutoff {
                break;
            }
            old = Some(rev);
            if self.samples.len() > 1 && self.samples.get(1).map(|s| s.0 <= cutoff).unwrap_or(false) {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        let target = old?.min(current - policy.keep_revisions);
        if target > self.compacted {
            self.compacted = target;
            Some(target)
        } else {
            None
        }
    }
}

/// Runs compaction on `store` every `policy.interval` until the returned handle is aborted or dropped with the
/// runtime. Errors are logged and retried on the next tick.
pub fn spawn(store: Arc<dyn Store>, policy: CompactionPolicy) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut planner = Planner::default();
        let mut tick = tokio::time::interval(policy.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let current = match store.current_revision().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "compactor cannot read the current revision");
                    continue;
                }
            };
            if let Some(target) = planner.plan(&policy, Instant::now(), current) {
                match store.compact(target).await {
                    Ok(()) => tracing::info!(revision = target, current, "compacted storage"),
                    Err(e) => tracing::warn!(revision = target, error = %e, "compaction failed"),
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_to_the_revision_seen_one_retention_ago_keeping_n() {
        let policy =
            CompactionPolicy { interval: Duration::from_secs(60), retention: Duration::from_secs(300), keep_revisions: 10 };
        let t0 = Instant::now();
        let mut p = Planner::default();
        let at = |m: u64| t0 + Duration::from_secs(60 * m);
        // 100 revisions a minute: nothing is old enough for five minutes.
        for m in 0..5 {
            assert_eq!(p.plan(&policy, at(m), 100 * m as Revision), None, "minute {m}");
        }
        // At minute 5 the sample from minute 0 (revision 0) is old enough, but 0 is not above the last compaction.
        assert_eq!(p.plan(&policy, at(5), 500), None);
        assert_eq!(p.plan(&policy, at(6), 600), Some(100));
        assert_eq!(p.plan(&policy, at(7), 700), Some(200));
        // A quiet cluster: keep_revisions bounds how far compaction goes.
        assert_eq!(p.plan(&policy, at(20), 205), None, "never closer than keep_revisions to current");
        assert_eq!(p.plan(&policy, at(21), 260), Some(250));
    }
}
