//! Job controller: run pods until `completions` succeed (`parallelism` at a time), fail the Job after
//! `backoffLimit` failed pods or past `activeDeadlineSeconds`, and delete it `ttlSecondsAfterFinished` after
//! it finished. [`step`] is the pure decision over pod counts and time.

use chrono::{DateTime, Duration, Utc};

/// The Job spec fields the decision needs, defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobParams {
    /// None: work-queue job, complete once one pod succeeded and none is active
    pub completions: Option<i32>,
    pub parallelism: i32,
    pub backoff_limit: i32,
    pub active_deadline_seconds: Option<i64>,
    pub ttl_seconds_after_finished: Option<i32>,
    pub suspend: bool,
}

/// Observed state of the Job's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobObserved {
    pub active: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub start_time: Option<DateTime<Utc>>,
    /// Complete/Failed condition already recorded at this time
    pub finished_at: Option<DateTime<Utc>>,
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobAction {
    /// Create this many pods.
    Create(i32),
    /// Delete this many active pods (too many, suspended or finished).
    DeleteActive(i32),
    /// Mark Complete.
    Complete,
    /// Mark Failed with this reason (BackoffLimitExceeded, DeadlineExceeded).
    Fail(&'static str),
    /// Delete the Job itself (TTL after finish).
    DeleteJob,
    /// Reconcile again after this long (deadline or TTL).
    RequeueAfter(Duration),
}

/// Decide what the Job controller does now.
pub fn step(p: &JobParams, o: &JobObserved, now: DateTime<Utc>) -> Vec<JobAction> {
    let mut out = Vec::new();
    if let Some(done) = o.finished_at {
        if o.active > 0 {
            out.push(JobAction::DeleteActive(o.active));
        }
        if let Some(ttl) = p.ttl_seconds_after_finished {
            let at = done + Duration::seconds(i64::from(ttl));
            if now >= at {
                out.push(JobAction::DeleteJob);
            } else {
                out.push(JobAction::RequeueAfter(at - now));
            }
        }
        return out;
    }
    if o.failed > p.backoff_limit {
        if o.active > 0 {
            out.push(JobAction::DeleteActive(o.active));
        }
        out.push(JobAction::Fail("BackoffLimitExceeded"));
        return out;
    }
    if let (Some(deadline), Some(start)) = (p.active_deadline_seconds, o.start_time) {
        let at = start + Duration::seconds(deadline);
        if now >= at {
            if o.active > 0 {
                out.push(JobAction::DeleteActive(o.active));
            }
            out.push(JobAction::Fail("DeadlineExceeded"));
            return out;
        }
        out.push(JobAction::RequeueAfter(at - now));
    }
    let complete = match p.completions {
        Some(c) => o.succeeded >= c,
        None => o.succeeded > 0 && o.active == 0,
    };
    if complete {
        if o.active > 0 {
            out.push(JobAction::DeleteActive(o.active));
        }
        out.retain(|a| !matches!(a, JobAction::RequeueAfter(_)));
        out.push(JobAction::Complete);
        return out;
    }
    let want = if p.suspend {
        0
    } else {
        match p.completions {
            Some(c) => p.parallelism.min(c - o.succeeded).max(0),
            // work queue: once any pod succeeded, start no new ones
            None if o.succeeded > 0 => o.active.min(p.parallelism),
            None => p.parallelism,
        }
    };
    if o.active < want {
        out.insert(0, JobAction::Create(want - o.active));
    } else if o.active > want {
        out.insert(0, JobAction::DeleteActive(o.active - want));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(completions: Option<i32>, parallelism: i32) -> JobParams {
        JobParams {
            completions,
            parallelism,
            backoff_limit: 2,
            active_deadline_seconds: None,
            ttl_seconds_after_finished: None,
            suspend: false,
        }
    }

    fn obs(active: i32, succeeded: i32, failed: i32) -> JobObserved {
        JobObserved { active, succeeded, failed, ..Default::default() }
    }

    #[test]
    fn step_table() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("ts");
        let cases: Vec<(&str, JobParams, JobObserved, Vec<JobAction>)> = vec![
            ("starts parallelism pods", params(Some(5), 2), obs(0, 0, 0), vec![JobAction::Create(2)]),
            ("never more than remaining completions", params(Some(5), 3), obs(1, 3, 0), vec![JobAction::Create(1)]),
            ("complete at completions", params(Some(2), 2), obs(0, 2, 0), vec![JobAction::Complete]),
            ("failures within backoff retry", params(Some(1), 1), obs(0, 0, 2), vec![JobAction::Create(1)]),
            ("backoff exceeded fails", params(Some(1), 1), obs(1, 0, 3), vec![JobAction::DeleteActive(1), JobAction::Fail("BackoffLimitExceeded")]),
            ("work queue completes when one succeeded and none active", params(None, 3), obs(0, 1, 0), vec![JobAction::Complete]),
            ("work queue waits for active ones", params(None, 3), obs(2, 1, 0), vec![]),
            ("suspend deletes active", JobParams { suspend: true, ..params(Some(3), 2) }, obs(2, 0, 0), vec![JobAction::DeleteActive(2)]),
        ];
        for (what, p, o, want) in cases {
            assert_eq!(step(&p, &o, now), want, "{what}");
        }
    }

    #[test]
    fn deadline_and_ttl() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).expect("ts");
        let p = JobParams { active_deadline_seconds: Some(30), ttl_seconds_after_finished: Some(10), ..params(Some(1), 1) };
        let running = JobObserved { active: 1, start_time: Some(t0), ..Default::default() };
        assert_eq!(step(&p, &running, t0 + Duration::seconds(10)), vec![JobAction::RequeueAfter(Duration::seconds(20))]);
        assert_eq!(
            step(&p, &running, t0 + Duration::seconds(30)),
            vec![JobAction::DeleteActive(1), JobAction::Fail("DeadlineExceeded")]
        );
        let done = JobObserved { succeeded: 1, finished_at: Some(t0), ..Default::default() };
        assert_eq!(step(&p, &done, t0 + Duration::seconds(4)), vec![JobAction::RequeueAfter(Duration::seconds(6))]);
        assert_eq!(step(&p, &done, t0 + Duration::seconds(10)), vec![JobAction::DeleteJob]);
    }
}
