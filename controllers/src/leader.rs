//! Leader election as client-go's `leaderelection` does it with a coordination.k8s.io/v1 Lease: several
//! control planes run the scheduler and the controllers, and only the holder of the Lease acts.
//!
//! - [`decide`] is the whole decision, pure: given what the last read of the Lease showed, when this process
//!   first saw that version of it, whether (and since when) it leads, and the clock, it says create, acquire,
//!   renew, wait, retry or lost. Table-tested below without an apiserver.
//! - [`Elector`] only carries it out: read the Lease every retry period, write what [`decide`] said with the
//!   read's `resourceVersion` (so two candidates never both win: the second write is a 409 Conflict), and start
//!   or stop the [`Term`] that does the leader's work.
//! - A [`Term`] runs the leader's work on a tokio runtime of its own, on its own thread. Losing the Lease ends
//!   the term by shutting that runtime down: every task spawned on it (controllers, watches, in-flight binds)
//!   is dropped, and [`Term::stop`] returns only once the thread has exited. Upstream's kube-scheduler and
//!   kube-controller-manager exit the process instead; here the apiserver shares the process, so the loops
//!   are stopped, provably, and the process campaigns again.
//!
//! Like upstream, expiry is measured on this process's clock from the moment it first saw a Lease version
//! (never from the holder's `renewTime`, so clocks need not agree), and a leader gives up once it has not
//! renewed for `renew_deadline`, which is shorter than `lease_duration`: it stops before anyone may take over.
//!
//! Must not: act on anything but the Lease; the leader's work is the caller's.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::Api;
use rand::Rng;
use tokio::sync::watch;

/// Namespace of the control plane's Leases.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// The scheduler's Lease (kube-scheduler's name).
pub const SCHEDULER_LEASE: &str = "kube-scheduler";
/// The controller manager's Lease (kube-controller-manager's name).
pub const CONTROLLER_MANAGER_LEASE: &str = "kube-controller-manager";
/// client-go's JitterFactor: a candidate waits retry_period plus up to 1.2 times it between tries.
pub const JITTER_FACTOR: f64 = 1.2;

/// Invalid leader election settings (client-go's wording).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaderElectionError {
    /// The Lease would expire for others before the leader gives up on renewing: two could lead.
    #[error("leaseDuration must be greater than renewDeadline")]
    LeaseNotLongerThanDeadline,
    /// The leader could miss its deadline between two jittered tries.
    #[error("renewDeadline must be greater than retryPeriod*JitterFactor")]
    DeadlineNotLongerThanRetry,
    /// A zero retry period would spin.
    #[error("retryPeriod must be greater than zero")]
    ZeroRetry,
    /// A duration flag that does not parse (the text given).
    #[error("invalid duration {0:?}: use a number with a unit, as 15s, 500ms or 1m")]
    Duration(String),
}

/// The three periods, upstream's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a candidate waits after it last saw the Lease change before it takes it over.
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful renewal.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { lease_duration: Duration::from_secs(15), renew_deadline: Duration::from_secs(10), retry_period: Duration::from_secs(2) }
    }
}

impl Timing {
    /// client-go's checks in NewLeaderElector.
    pub fn validate(&self) -> Result<(), LeaderElectionError> {
        if self.lease_duration <= self.renew_deadline {
            return Err(LeaderElectionError::LeaseNotLongerThanDeadline);
        }
        if self.retry_period.is_zero() {
            return Err(LeaderElectionError::ZeroRetry);
        }
        if self.renew_deadline <= self.retry_period.mul_f64(JITTER_FACTOR) {
            return Err(LeaderElectionError::DeadlineNotLongerThanRetry);
        }
        Ok(())
    }

    /// leaseDurationSeconds as written in the Lease (whole seconds, at least 1).
    pub fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_millis().div_ceil(1000)).unwrap_or(i32::MAX).max(1)
    }
}

/// A Go-style duration as the flags take it: `15s`, `500ms`, `1m30s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, LeaderElectionError> {
    let err = || LeaderElectionError::Duration(s.to_string());
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(err)?;
        let n: f64 = rest[..n_end].parse().map_err(|_| err())?;
        let unit_end = rest[n_end..].find(|c: char| c.is_ascii_digit()).map_or(rest.len(), |i| n_end + i);
        let secs = match &rest[n_end..unit_end] {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(err()),
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_end..];
    }
    Ok(total)
}

/// The Lease fields leader election reads and writes (client-go's LeaderElectionRecord).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// `holderIdentity`: who leads (empty: nobody).
    pub holder: String,
    /// `leaseDurationSeconds`: how long others wait after a change before taking over.
    pub lease_duration_seconds: i32,
    /// `acquireTime`: when the holder took the Lease.
    pub acquire_time: Option<DateTime<Utc>>,
    /// `renewTime`: when the holder last renewed (shown to people; expiry never reads it).
    pub renew_time: Option<DateTime<Utc>>,
    /// `leaseTransitions`: how many times the Lease changed hands.
    pub transitions: i32,
}

fn to_micro(t: DateTime<Utc>) -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::from_microsecond(t.timestamp_micros()).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
}

fn from_micro(t: &MicroTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(t.0.as_microsecond())
}

impl Record {
    /// The record a Lease holds (empty fields for a Lease without a spec).
    pub fn from_lease(lease: &Lease) -> Record {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.as_ref().and_then(from_micro),
            renew_time: spec.renew_time.as_ref().and_then(from_micro),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    /// The Lease spec that writes this record.
    pub fn to_spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.map(to_micro),
            renew_time: self.renew_time.map(to_micro),
            lease_transitions: Some(self.transitions),
            ..Default::default()
        }
    }
}

/// What the last read of the Lease showed.
#[derive(Clone, Copy, Debug)]
pub enum Observed<'a> {
    /// There is no such Lease.
    Missing,
    /// The Lease, and when this process first saw this version of it (its own clock).
    Found {
        /// What the Lease holds.
        record: &'a Record,
        /// When this process first saw this version of it.
        seen_since: DateTime<Utc>,
    },
    /// The read failed (apiserver or storage unreachable, timed out).
    Unreachable,
}

/// Why a leader stops leading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lost {
    /// No successful renewal within the renew deadline.
    RenewDeadline,
    /// The Lease names another holder.
    TakenBy(String),
}

/// What to do after one read of the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create the Lease holding it.
    Create(Record),
    /// Take the Lease over (update with the read's resourceVersion).
    Acquire(Record),
    /// Renew the Lease this process holds (update with the read's resourceVersion).
    Renew(Record),
    /// Another holder's Lease is valid until `expires` (this process's clock).
    Wait {
        /// Who holds it.
        holder: String,
        /// When it expires for this process if not renewed.
        expires: DateTime<Utc>,
    },
    /// The read failed but the leader (if leading) is within its renew deadline: try again.
    Retry,
    /// Stop acting now.
    Lost(Lost),
}

/// The decision for one try. `leading`: when this process last renewed (it leads), or None. `sole_candidate`:
/// no other process can hold this Lease (the embedded store serves one control plane), so a holder that is not
/// this process is a dead one from an earlier start and is replaced at once instead of after its lease runs out.
pub fn decide(observed: Observed<'_>, leading: Option<DateTime<Utc>>, now: DateTime<Utc>, me: &str, timing: &Timing, sole_candidate: bool) -> Decision {
    if let Some(last) = leading {
        if (now - last).to_std().unwrap_or(Duration::ZERO) >= timing.renew_deadline {
            return Decision::Lost(Lost::RenewDeadline);
        }
    }
    let fresh = |old: &Record| Record {
        holder: me.to_string(),
        lease_duration_seconds: timing.lease_duration_seconds(),
        acquire_time: Some(now),
        renew_time: Some(now),
        transitions: old.transitions,
    };
    match observed {
        Observed::Unreachable => Decision::Retry,
        Observed::Missing => Decision::Create(fresh(&Record::default())),
        Observed::Found { record, seen_since } => {
            if record.holder == me {
                return Decision::Renew(Record { acquire_time: record.acquire_time.or(Some(now)), ..fresh(record) });
            }
            if leading.is_some() {
                return Decision::Lost(Lost::TakenBy(record.holder.clone()));
            }
            let expires = seen_since + chrono::Duration::seconds(i64::from(record.lease_duration_seconds.max(0)));
            if !record.holder.is_empty() && !sole_candidate && expires > now {
                return Decision::Wait { holder: record.holder.clone(), expires };
            }
            Decision::Acquire(Record { transitions: record.transitions + 1, ..fresh(record) })
        }
    }
}

/// `<hostname>_<uuid>`, upstream's holderIdentity.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let host = if host.is_empty() { "localhost".to_string() } else { host };
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// The leader's work on a runtime and thread of its own; stopping it drops every task spawned on it.
pub struct Term {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Term {
    /// Runs `work()` on a new two-thread tokio runtime in a thread named `name`.
    pub fn spawn<F, Fut>(name: &str, work: F) -> std::io::Result<Term>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name(format!("{name}-worker")).enable_all().build()?;
        let thread = std::thread::Builder::new().name(name.to_string()).spawn(move || {
            rt.block_on(async move {
                tokio::select! {
                    _ = work() => {}
                    _ = rx => {}
                }
            });
            // dropping the runtime cancels every task spawned on it at its next await point
            rt.shutdown_timeout(Duration::from_secs(2));
        })?;
        Ok(Term { stop: Some(tx), thread: Some(thread) })
    }

    /// Stops the work and waits until its runtime is gone.
    pub async fn stop(mut self) {
        self.signal();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }

    fn signal(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Whether the thread has exited (the work ended or was stopped).
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        // without a join: the thread shuts its runtime down on its own
        self.signal();
    }
}

/// One candidate for one Lease.
pub struct Elector {
    /// Leases in [`LEASE_NAMESPACE`].
    pub api: Api<Lease>,
    /// The Lease's name ([`SCHEDULER_LEASE`], [`CONTROLLER_MANAGER_LEASE`]).
    pub name: String,
    /// This candidate's identity, written as the holder (`<hostname>_<uuid>`, [`identity`]).
    pub identity: String,
    /// The lease, renew and retry periods.
    pub timing: Timing,
    /// No other candidate can exist (a single control plane): take over a Lease left by a previous run at
    /// once instead of waiting for it to expire.
    pub sole_candidate: bool,
}

impl Elector {
    /// Campaign until `stop` turns true: while holding the Lease, a [`Term`] made by `start` runs; when the Lease
    /// is lost it is stopped before anything else happens. On stop, the term ends and a held Lease is released
    /// (holder emptied, as client-go's ReleaseOnCancel) so another candidate takes over without waiting.
    pub async fn run<S>(self, mut start: S, mut stop: watch::Receiver<bool>)
    where
        S: FnMut() -> std::io::Result<Term>,
    {
        let lease = format!("{LEASE_NAMESPACE}/{}", self.name);
        let mut seen: Option<(Record, DateTime<Utc>)> = None;
        let mut resource_version: Option<String> = None;
        let mut leading: Option<DateTime<Utc>> = None;
        let mut term: Option<Term> = None;
        tracing::info!(lease = %lease, identity = %self.identity, "attempting to acquire leader lease {lease}...");
        loop {
            if *stop.borrow() {
                break;
            }
            let started = Utc::now();
            // a read that hangs must not keep a leader past its deadline
            let read_timeout = match leading {
                Some(last) => (last + chrono::Duration::from_std(self.timing.renew_deadline).unwrap_or_default() - started).to_std().unwrap_or(Duration::ZERO),
                None => self.timing.renew_deadline,
            };
            let read = tokio::time::timeout(read_timeout, self.api.get_opt(&self.name)).await;
            let now = Utc::now();
            let observed_lease = match read {
                Ok(Ok(Some(l))) => Some(Some(l)),
                Ok(Ok(None)) => Some(None),
                Ok(Err(e)) => {
                    tracing::warn!(lease = %lease, error = %e, "error retrieving resource lock {lease}");
                    None
                }
                Err(_) => {
                    tracing::warn!(lease = %lease, "error retrieving resource lock {lease}: timed out");
                    None
                }
            };
            if let Some(Some(l)) = &observed_lease {
                let record = Record::from_lease(l);
                resource_version = l.metadata.resource_version.clone();
                if seen.as_ref().is_none_or(|(r, _)| *r != record) {
                    seen = Some((record, now));
                }
            }
            let observed = match &observed_lease {
                None => Observed::Unreachable,
                Some(None) => Observed::Missing,
                Some(Some(_)) => match &seen {
                    Some((record, since)) => Observed::Found { record, seen_since: *since },
                    None => Observed::Missing,
                },
            };
            let decision = decide(observed, leading, now, &self.identity, &self.timing, self.sole_candidate);
            let write = match &decision {
                Decision::Create(r) => Some((true, r.clone())),
                Decision::Acquire(r) | Decision::Renew(r) => Some((false, r.clone())),
                Decision::Lost(why) => {
                    match why {
                        Lost::RenewDeadline => tracing::error!(lease = %lease, "failed to renew lease {lease}: timed out waiting for the condition"),
                        Lost::TakenBy(h) => tracing::error!(lease = %lease, holder = %h, "lease {lease} taken over by {h}"),
                    }
                    tracing::error!(lease = %lease, "leaderelection lost");
                    leading = None;
                    if let Some(t) = term.take() {
                        t.stop().await;
                    }
                    None
                }
                Decision::Wait { .. } | Decision::Retry => None,
            };
            if let Some((create, record)) = write {
                let mut l = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), namespace: Some(LEASE_NAMESPACE.into()), ..Default::default() },
                    spec: Some(record.to_spec()),
                };
                let write_timeout = read_timeout.saturating_sub((now - started).to_std().unwrap_or(Duration::ZERO));
                let result = if create {
                    tokio::time::timeout(write_timeout, self.api.create(&PostParams::default(), &l)).await
                } else {
                    l.metadata.resource_version = resource_version.clone();
                    tokio::time::timeout(write_timeout, self.api.replace(&self.name, &PostParams::default(), &l)).await
                };
                match result {
                    Ok(Ok(written)) => {
                        resource_version = written.metadata.resource_version.clone();
                        seen = Some((record, now));
                        if leading.is_none() {
                            tracing::info!(lease = %lease, identity = %self.identity, "successfully acquired lease {lease}");
                        }
                        // the time before the read: the deadline runs from before anyone could have seen this renewal
                        leading = Some(started);
                    }
                    Ok(Err(e)) => tracing::info!(lease = %lease, error = %e, "failed to acquire or renew lease {lease}"),
                    Err(_) => tracing::info!(lease = %lease, "failed to acquire or renew lease {lease}: timed out"),
                }
            }
            if leading.is_some() && term.as_ref().is_none_or(Term::finished) {
                if term.take().is_some() {
                    tracing::error!(lease = %lease, "the leader's work ended while holding lease {lease}; starting it again");
                }
                match start() {
                    Ok(t) => term = Some(t),
                    Err(e) => tracing::error!(lease = %lease, error = %e, "cannot start the leader's work"),
                }
            }
            let pause = match leading {
                Some(last) => {
                    let deadline = (last + chrono::Duration::from_std(self.timing.renew_deadline).unwrap_or_default() - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                    self.timing.retry_period.min(deadline)
                }
                None => self.timing.retry_period.mul_f64(1.0 + rand::rng().random::<f64>() * JITTER_FACTOR),
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        if let Some(t) = term.take() {
            t.stop().await;
        }
        if leading.is_some() {
            self.release(&lease, resource_version).await;
        }
    }

    async fn release(&self, lease: &str, resource_version: Option<String>) {
        let now = Utc::now();
        let Ok(Some(current)) = self.api.get_opt(&self.name).await else { return };
        let record = Record::from_lease(&current);
        if record.holder != self.identity {
            return;
        }
        let released = Record { holder: String::new(), lease_duration_seconds: 1, acquire_time: Some(now), renew_time: Some(now), transitions: record.transitions };
        let mut l = current.clone();
        l.spec = Some(released.to_spec());
        l.metadata.resource_version = current.metadata.resource_version.or(resource_version);
        match self.api.replace(&self.name, &PostParams::default(), &l).await {
            Ok(_) => tracing::info!(lease = %lease, "released lease {lease}"),
            Err(e) => tracing::warn!(lease = %lease, error = %e, "failed to release lease {lease}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("valid")
    }

    fn held(holder: &str, transitions: i32) -> Record {
        Record { holder: holder.into(), lease_duration_seconds: 15, acquire_time: Some(t(-100)), renew_time: Some(t(-1)), transitions }
    }

    const ME: &str = "host-a_1111";
    const OTHER: &str = "host-b_2222";

    #[test]
    fn no_lease_is_created_holding_it_with_no_transition() {
        let d = decide(Observed::Missing, None, t(0), ME, &Timing::default(), false);
        assert_eq!(d, Decision::Create(Record { holder: ME.into(), lease_duration_seconds: 15, acquire_time: Some(t(0)), renew_time: Some(t(0)), transitions: 0 }));
    }

    #[test]
    fn a_valid_lease_of_another_is_waited_for_from_when_it_was_first_seen() {
        let r = held(OTHER, 3);
        // seen 5 s ago with a 15 s lease: 10 s left, whatever renewTime says
        let d = decide(Observed::Found { record: &r, seen_since: t(-5) }, None, t(0), ME, &Timing::default(), false);
        assert_eq!(d, Decision::Wait { holder: OTHER.into(), expires: t(10) });
        // the holder's renewTime long ago does not shorten the wait: only this process's clock counts
        let stale = Record { renew_time: Some(t(-1000)), ..held(OTHER, 3) };
        let d = decide(Observed::Found { record: &stale, seen_since: t(-14) }, None, t(0), ME, &Timing::default(), false);
        assert!(matches!(d, Decision::Wait { .. }), "{d:?}");
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_transitions_go_up_by_one() {
        let r = held(OTHER, 3);
        let d = decide(Observed::Found { record: &r, seen_since: t(-15) }, None, t(0), ME, &Timing::default(), false);
        assert_eq!(d, Decision::Acquire(Record { holder: ME.into(), lease_duration_seconds: 15, acquire_time: Some(t(0)), renew_time: Some(t(0)), transitions: 4 }));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let r = Record { holder: String::new(), lease_duration_seconds: 1, acquire_time: Some(t(0)), renew_time: Some(t(0)), transitions: 2 };
        let d = decide(Observed::Found { record: &r, seen_since: t(0) }, None, t(0), ME, &Timing::default(), false);
        assert!(matches!(d, Decision::Acquire(ref n) if n.holder == ME && n.transitions == 3), "{d:?}");
    }

    #[test]
    fn a_sole_candidate_replaces_a_dead_holder_at_once() {
        let r = held(OTHER, 0);
        let d = decide(Observed::Found { record: &r, seen_since: t(0) }, None, t(0), ME, &Timing::default(), true);
        assert!(matches!(d, Decision::Acquire(ref n) if n.holder == ME && n.transitions == 1), "{d:?}");
    }

    #[test]
    fn the_holder_renews_keeping_acquire_time_and_transitions() {
        let r = held(ME, 5);
        let d = decide(Observed::Found { record: &r, seen_since: t(-2) }, Some(t(-2)), t(0), ME, &Timing::default(), false);
        assert_eq!(d, Decision::Renew(Record { holder: ME.into(), lease_duration_seconds: 15, acquire_time: Some(t(-100)), renew_time: Some(t(0)), transitions: 5 }));
    }

    #[test]
    fn a_leader_past_its_renew_deadline_has_lost_even_if_the_lease_still_names_it() {
        let r = held(ME, 1);
        let timing = Timing::default();
        let d = decide(Observed::Found { record: &r, seen_since: t(-10) }, Some(t(-10)), t(0), ME, &timing, false);
        assert_eq!(d, Decision::Lost(Lost::RenewDeadline));
        assert_eq!(decide(Observed::Unreachable, Some(t(-10)), t(0), ME, &timing, false), Decision::Lost(Lost::RenewDeadline));
        // just inside the deadline a failed read is retried, not lost
        assert_eq!(decide(Observed::Unreachable, Some(t(-9)), t(0), ME, &timing, false), Decision::Retry);
        assert_eq!(decide(Observed::Unreachable, None, t(0), ME, &timing, false), Decision::Retry);
    }

    #[test]
    fn a_leader_that_sees_another_holder_has_lost() {
        let r = held(OTHER, 2);
        let d = decide(Observed::Found { record: &r, seen_since: t(0) }, Some(t(-1)), t(0), ME, &Timing::default(), false);
        assert_eq!(d, Decision::Lost(Lost::TakenBy(OTHER.into())));
    }

    #[test]
    fn the_leader_stops_before_a_follower_may_take_over() {
        // the leader last renewed at 0 (before its write); a follower saw that renewal no earlier
        let timing = Timing { lease_duration: Duration::from_secs(4), renew_deadline: Duration::from_secs(3), retry_period: Duration::from_secs(1) };
        timing.validate().expect("valid");
        let r = Record { lease_duration_seconds: timing.lease_duration_seconds(), ..held(ME, 0) };
        for s in 0..=6 {
            let leader = decide(Observed::Unreachable, Some(t(0)), t(s), ME, &timing, false);
            let follower = decide(Observed::Found { record: &r, seen_since: t(0) }, None, t(s), OTHER, &timing, false);
            let leader_acts = leader == Decision::Retry;
            let follower_takes = matches!(follower, Decision::Acquire(_));
            assert!(!(leader_acts && follower_takes), "both would act at {s} s: {leader:?} / {follower:?}");
        }
    }

    #[test]
    fn timing_is_checked_as_client_go_does() {
        Timing::default().validate().expect("defaults are valid");
        let d = |l, r, p| Timing { lease_duration: Duration::from_secs(l), renew_deadline: Duration::from_secs(r), retry_period: Duration::from_secs(p) };
        assert_eq!(d(10, 10, 2).validate(), Err(LeaderElectionError::LeaseNotLongerThanDeadline));
        assert_eq!(d(15, 2, 2).validate(), Err(LeaderElectionError::DeadlineNotLongerThanRetry));
        assert_eq!(d(15, 10, 0).validate(), Err(LeaderElectionError::ZeroRetry));
        assert_eq!(LeaderElectionError::DeadlineNotLongerThanRetry.to_string(), "renewDeadline must be greater than retryPeriod*JitterFactor");
        assert_eq!(Timing { lease_duration: Duration::from_millis(2500), ..d(15, 1, 0) }.lease_duration_seconds(), 3);
    }

    #[test]
    fn durations_parse_as_go_writes_them() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "15", "s", "15x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn records_round_trip_through_a_lease() {
        let r = Record { holder: ME.into(), lease_duration_seconds: 15, acquire_time: Some(t(1)), renew_time: Some(t(2)), transitions: 7 };
        let lease = Lease { spec: Some(r.to_spec()), ..Default::default() };
        assert_eq!(Record::from_lease(&lease), r);
    }

    #[tokio::test]
    async fn stopping_a_term_drops_the_tasks_it_spawned() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let term = Term::spawn("test-term", move || async move {
            // a detached task, as the controllers' watches are: it holds the sender until it is dropped
            tokio::spawn(async move {
                let _tx = tx;
                std::future::pending::<()>().await;
            });
            std::future::pending::<()>().await;
        })
        .expect("spawn term");
        assert!(!term.finished());
        term.stop().await;
        assert_eq!(rx.recv().await, None, "the detached task and its sender are gone");
    }
}
