//! Restart backoff (CrashLoopBackOff and image pull backoff): 10 s doubling to 5 min, reset once a container
//! has run for 10 minutes. Pure bookkeeping keyed by container name; the clock is always passed in.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Initial delay before restarting a crashed container.
pub const INITIAL: Duration = Duration::from_secs(10);
/// Longest delay between restarts.
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran at least this long before exiting starts again from [`INITIAL`].
pub const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    delay: Duration,
    /// The exit this delay was computed for, so asking twice about one exit does not double twice.
    finished_at: DateTime<Utc>,
}

/// Per-container restart delays of one pod.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    entries: HashMap<String, Entry>,
}

impl Backoff {
    /// No delays yet: every container's first restart waits [`INITIAL`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Delay before restarting `name` after the exit at `finished_at` of a run that started at `started_at`.
    /// Idempotent for one exit; each new exit doubles the previous delay up to [`MAX`], unless the run lasted
    /// [`RESET_AFTER`] or more, which starts again from [`INITIAL`].
    pub fn delay_for(
        &mut self,
        name: &str,
        started_at: Option<DateTime<Utc>>,
        finished_at: DateTime<Utc>,
    ) -> Duration {
        if let Some(e) = self.entries.get(name) {
            if e.finished_at == finished_at {
                return e.delay;
            }
        }
        let ran_long = started_at
            .map(|s| (finished_at - s).to_std().unwrap_or_default() >= RESET_AFTER)
            .unwrap_or(false);
        let delay = match self.entries.get(name) {
            Some(e) if !ran_long => (e.delay * 2).min(MAX),
            _ => INITIAL,
        };
        self.entries.insert(name.to_string(), Entry { delay, finished_at });
        delay
    }

    /// The delay already computed for the latest exit of `name`, if any.
    pub fn current(&self, name: &str) -> Option<Duration> {
        self.entries.get(name).map(|e| e.delay)
    }

    /// Forget `name` (its container was removed from the spec).
    pub fn forget(&mut self, name: &str) {
        self.entries.remove(name);
    }
}

/// Delay before retry number `attempts` (1-based) of a failed operation such as an image pull: the same
/// 10 s doubling to 5 min curve.
pub fn retry_delay(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    (INITIAL * (1u32 << shift)).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).single().expect("valid time")
    }

    #[test]
    fn doubles_from_ten_seconds_to_five_minutes() {
        let mut b = Backoff::new();
        let mut got = Vec::new();
        let mut now = 0;
        for _ in 0..8 {
            let d = b.delay_for("app", Some(t(now)), t(now + 1));
            got.push(d.as_secs());
            now += 1 + d.as_secs() as i64;
        }
        assert_eq!(got, vec![10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn same_exit_asked_twice_does_not_double() {
        let mut b = Backoff::new();
        assert_eq!(b.delay_for("app", Some(t(0)), t(1)), INITIAL);
        assert_eq!(b.delay_for("app", Some(t(0)), t(1)), INITIAL);
        assert_eq!(b.delay_for("app", Some(t(20)), t(21)).as_secs(), 20);
    }

    #[test]
    fn resets_after_ten_minutes_running() {
        let mut b = Backoff::new();
        for i in 0..5 {
            b.delay_for("app", Some(t(i * 100)), t(i * 100 + 1));
        }
        assert_eq!(b.current("app"), Some(Duration::from_secs(160)));
        // ran 599 s: still doubling
        assert_eq!(b.delay_for("app", Some(t(1000)), t(1599)).as_secs(), 300);
        // ran exactly 600 s: reset
        assert_eq!(b.delay_for("app", Some(t(2000)), t(2600)), INITIAL);
    }

    #[test]
    fn containers_are_independent() {
        let mut b = Backoff::new();
        b.delay_for("a", Some(t(0)), t(1));
        b.delay_for("a", Some(t(2)), t(3));
        assert_eq!(b.delay_for("b", Some(t(2)), t(3)), INITIAL);
        b.forget("a");
        assert_eq!(b.current("a"), None);
    }

    #[test]
    fn retry_delay_curve() {
        let got: Vec<u64> = (1..=8).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(got, vec![10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(retry_delay(0).as_secs(), 10);
        assert_eq!(retry_delay(100).as_secs(), 300);
    }
}
