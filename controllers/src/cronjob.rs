//! CronJob controller: create a Job named `<cronjob>-<scheduled minutes since epoch>` at each scheduled time
//! (within `startingDeadlineSeconds`), apply `concurrencyPolicy` (Allow, Forbid, Replace), and keep only
//! `successfulJobsHistoryLimit` / `failedJobsHistoryLimit` finished Jobs. [`step`] is pure.

use chrono::{DateTime, Duration, Utc};

use crate::util::cron::Schedule;

/// Concurrency policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Runs may overlap.
    Allow,
    /// A run is skipped while the previous Job is still running.
    Forbid,
    /// A new run deletes the Job still running and takes its place.
    Replace,
}

impl Concurrency {
    /// From the API string; unknown values behave as Allow (the default).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("Forbid") => Concurrency::Forbid,
            Some("Replace") => Concurrency::Replace,
            _ => Concurrency::Allow,
        }
    }
}

/// A Job the CronJob owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedJob {
    /// The Job's name.
    pub name: String,
    /// None while running, Some(true) complete, Some(false) failed
    pub succeeded: Option<bool>,
    /// When it completed or failed (orders the history the limits trim).
    pub finished_at: Option<DateTime<Utc>>,
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronAction {
    /// Create the Job for this scheduled time.
    CreateJob {
        /// The Job's name ([`job_name`]).
        name: String,
        /// The scheduled time it runs for.
        scheduled: DateTime<Utc>,
    },
    /// Delete this Job (Replace policy or history limits).
    DeleteJob(String),
    /// A scheduled run was skipped (Forbid with a Job still running).
    Skip {
        /// The scheduled time that was skipped.
        scheduled: DateTime<Utc>,
    },
    /// Reconcile again at the next scheduled time.
    RequeueAfter(Duration),
}

/// The Job name for a scheduled time (the minutes since the epoch, as Kubernetes names them).
pub fn job_name(cronjob: &str, scheduled: DateTime<Utc>) -> String {
    format!("{cronjob}-{}", scheduled.timestamp() / 60)
}

/// Inputs for a step.
pub struct CronParams<'a> {
    /// The CronJob's name (Jobs are named after it).
    pub name: &'a str,
    /// The parsed `spec.schedule`.
    pub schedule: &'a Schedule,
    /// `spec.concurrencyPolicy`.
    pub concurrency: Concurrency,
    /// `spec.suspend`: no new runs while set.
    pub suspend: bool,
    /// `spec.startingDeadlineSeconds`: a run missed by more than this is not started late.
    pub starting_deadline_seconds: Option<i64>,
    /// `spec.successfulJobsHistoryLimit`: finished Jobs kept.
    pub successful_history: i32,
    /// `spec.failedJobsHistoryLimit`: failed Jobs kept.
    pub failed_history: i32,
    /// status.lastScheduleTime, or the CronJob's creation time
    pub last_scheduled: DateTime<Utc>,
}

/// Decide what to do at `now`.
pub fn step(p: &CronParams<'_>, jobs: &[OwnedJob], now: DateTime<Utc>) -> Vec<CronAction> {
    let mut out = Vec::new();
    // most recent missed time in (last_scheduled, now]
    let mut latest = None;
    let mut t = p.last_scheduled;
    let mut missed = 0;
    while let Some(next) = p.schedule.next_after(t) {
        if next > now {
            break;
        }
        latest = Some(next);
        t = next;
        missed += 1;
        if missed > 1000 {
            // like Kubernetes: too many missed runs, just take the most recent one from here
            t = now - Duration::minutes(1);
            missed = 0;
        }
    }
    let active: Vec<&OwnedJob> = jobs.iter().filter(|j| j.succeeded.is_none()).collect();
    if let Some(scheduled) = latest {
        let too_late = p.starting_deadline_seconds.is_some_and(|d| now - scheduled > Duration::seconds(d));
        let name = job_name(p.name, scheduled);
        let exists = jobs.iter().any(|j| j.name == name);
        if !p.suspend && !too_late && !exists {
            match p.concurrency {
                Concurrency::Forbid if !active.is_empty() => out.push(CronAction::Skip { scheduled }),
                Concurrency::Replace => {
                    out.extend(active.iter().map(|j| CronAction::DeleteJob(j.name.clone())));
                    out.push(CronAction::CreateJob { name, scheduled });
                }
                _ => out.push(CronAction::CreateJob { name, scheduled }),
            }
        }
    }
    // history limits, oldest first
    for (ok, limit) in [(true, p.successful_history), (false, p.failed_history)] {
        let mut done: Vec<&OwnedJob> = jobs.iter().filter(|j| j.succeeded == Some(ok)).collect();
        // finish times have one-second precision: two runs finished within a second keep their schedule order
        // (the name ends in the scheduled minute), as upstream breaks start-time ties by name
        done.sort_by(|a, b| a.finished_at.cmp(&b.finished_at).then_with(|| a.name.cmp(&b.name)));
        let excess = done.len().saturating_sub(limit.max(0) as usize);
        out.extend(done[..excess].iter().map(|j| CronAction::DeleteJob(j.name.clone())));
    }
    if let Some(next) = p.schedule.next_after(now) {
        out.push(CronAction::RequeueAfter((next - now).max(Duration::seconds(1))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn params<'a>(s: &'a Schedule, c: Concurrency, last: &str) -> CronParams<'a> {
        CronParams {
            name: "cj",
            schedule: s,
            concurrency: c,
            suspend: false,
            starting_deadline_seconds: None,
            successful_history: 3,
            failed_history: 1,
            last_scheduled: at(last),
        }
    }

    fn running(name: &str) -> OwnedJob {
        OwnedJob { name: name.into(), succeeded: None, finished_at: None }
    }

    #[test]
    fn creates_the_latest_missed_run_once() {
        let s = Schedule::parse("*/1 * * * *").expect("schedule");
        let now = at("2024-01-01T10:03:30Z");
        let p = params(&s, Concurrency::Allow, "2024-01-01T10:00:00Z");
        let acts = step(&p, &[], now);
        let sched = at("2024-01-01T10:03:00Z");
        assert_eq!(acts[0], CronAction::CreateJob { name: job_name("cj", sched), scheduled: sched });
        assert_eq!(acts.last(), Some(&CronAction::RequeueAfter(Duration::seconds(30))));
        // already created: nothing but the requeue
        let again = step(&p, &[running(&job_name("cj", sched))], now);
        assert_eq!(again, vec![CronAction::RequeueAfter(Duration::seconds(30))]);
    }

    #[test]
    fn concurrency_policies() {
        let s = Schedule::parse("* * * * *").expect("schedule");
        let now = at("2024-01-01T10:01:10Z");
        let sched = at("2024-01-01T10:01:00Z");
        let jobs = [running("cj-old")];
        let forbid = step(&params(&s, Concurrency::Forbid, "2024-01-01T10:00:00Z"), &jobs, now);
        assert_eq!(forbid[0], CronAction::Skip { scheduled: sched });
        let replace = step(&params(&s, Concurrency::Replace, "2024-01-01T10:00:00Z"), &jobs, now);
        assert_eq!(replace[0], CronAction::DeleteJob("cj-old".into()));
        assert!(matches!(replace[1], CronAction::CreateJob { .. }));
        let mut late = params(&s, Concurrency::Allow, "2024-01-01T10:00:00Z");
        late.starting_deadline_seconds = Some(5);
        assert!(!step(&late, &[], now).iter().any(|a| matches!(a, CronAction::CreateJob { .. })));
    }

    #[test]
    fn history_limits_delete_oldest_finished() {
        let s = Schedule::parse("0 0 1 1 *").expect("schedule");
        let now = at("2024-06-01T00:00:00Z");
        let job = |n: &str, ok: bool, t: &str| OwnedJob { name: n.into(), succeeded: Some(ok), finished_at: Some(at(t)) };
        let jobs = [
            job("s1", true, "2024-01-01T00:00:00Z"),
            job("s2", true, "2024-02-01T00:00:00Z"),
            job("s3", true, "2024-03-01T00:00:00Z"),
            job("s4", true, "2024-04-01T00:00:00Z"),
            job("f1", false, "2024-01-01T00:00:00Z"),
            job("f2", false, "2024-02-01T00:00:00Z"),
        ];
        let acts = step(&params(&s, Concurrency::Allow, "2024-05-01T00:00:00Z"), &jobs, now);
        let deleted: Vec<&CronAction> = acts.iter().filter(|a| matches!(a, CronAction::DeleteJob(_))).collect();
        assert_eq!(deleted, vec![&CronAction::DeleteJob("s1".into()), &CronAction::DeleteJob("f1".into())]);
    }

    #[test]
    fn history_limits_keep_the_later_run_when_both_finished_in_the_same_second() {
        let s = Schedule::parse("* * * * *").expect("schedule");
        let now = at("2024-06-01T00:02:30Z");
        let done = |n: &str| OwnedJob { name: n.into(), succeeded: Some(true), finished_at: Some(at("2024-06-01T00:02:10Z")) };
        let mut p = params(&s, Concurrency::Allow, "2024-06-01T00:02:00Z");
        p.successful_history = 1;
        for jobs in [[done("cj-28623361"), done("cj-28623362")], [done("cj-28623362"), done("cj-28623361")]] {
            let deleted: Vec<CronAction> = step(&p, &jobs, now).into_iter().filter(|a| matches!(a, CronAction::DeleteJob(_))).collect();
            assert_eq!(deleted, vec![CronAction::DeleteJob("cj-28623361".into())], "the earlier run goes, whatever the list order");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// kube-rs wiring
// ---------------------------------------------------------------------------------------------------------

use std::sync::Arc;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::context::{delete_quiet, is_conflict, merge_patch_status, ReconcileError, Shared};
use crate::util::owner::{controller_ref, new_controller_ref};
use rkube_apimachinery::time::{from_chrono, to_chrono};

/// Where the CronJob controller reads the time: the system clock, or a clock a test holds and moves
/// ([`Clock::manual`], [`Clock::set`]) so schedule times come when the test says, not at real minute boundaries.
/// Only "now" is injected: requeues still wait in real time, so a test that moves the clock also touches the
/// CronJobs (any change reconciles them).
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<std::sync::Mutex<DateTime<Utc>>>>);

impl Clock {
    /// A clock that reads `start` until it is moved.
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock(Some(Arc::new(std::sync::Mutex::new(start))))
    }

    /// The current time: the system clock's, or a manual clock's reading.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Some(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
            None => Utc::now(),
        }
    }

    /// Moves a manual clock to `t`; the system clock cannot be moved and ignores it.
    pub fn set(&self, t: DateTime<Utc>) {
        if let Some(c) = &self.0 {
            *c.lock().unwrap_or_else(|e| e.into_inner()) = t;
        }
    }
}

/// CronJob controller state.
pub struct CronJobCtx {
    /// The client, configuration and caches every controller shares.
    pub shared: Arc<Shared>,
    /// The cache of Jobs, read for the Jobs each CronJob owns.
    pub jobs: Store<Job>,
}

fn job_outcome(j: &Job) -> (Option<bool>, Option<DateTime<Utc>>) {
    let conds = j.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    for c in conds {
        if c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed") {
            return (Some(c.type_ == "Complete"), c.last_transition_time.as_ref().map(to_chrono));
        }
    }
    (None, None)
}

/// Reconcile one CronJob.
pub async fn reconcile(cj: Arc<CronJob>, ctx: Arc<CronJobCtx>) -> Result<Requeue, ReconcileError> {
    let ns = cj.namespace().unwrap_or_else(|| "default".into());
    let name = cj.name_any();
    let what = format!("cronjob {ns}/{name}");
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    let uid = cj.uid().unwrap_or_default();
    let Some(spec) = cj.spec.clone() else {
        return Err(ReconcileError::Invalid { what, problem: "spec is missing".into() });
    };
    if let Some(tz) = spec.time_zone.as_deref().filter(|tz| !matches!(*tz, "UTC" | "Etc/UTC")) {
        return Err(ReconcileError::Invalid { what, problem: format!("timeZone {tz:?} is not supported (only UTC)") });
    }
    let schedule = Schedule::parse(&spec.schedule).map_err(|e| ReconcileError::Invalid { what: what.clone(), problem: e.to_string() })?;
    let clock = &ctx.shared.config.clock;
    let created = cj.metadata.creation_timestamp.as_ref().map(to_chrono).unwrap_or_else(|| clock.now());
    let last = cj.status.as_ref().and_then(|s| s.last_schedule_time.as_ref()).map(to_chrono).unwrap_or(created);
    let owned: Vec<Arc<Job>> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|j| j.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|j| controller_ref(&j.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    let jobs: Vec<OwnedJob> = owned
        .iter()
        .map(|j| {
            let (succeeded, finished_at) = job_outcome(j);
            OwnedJob { name: j.name_any(), succeeded, finished_at }
        })
        .collect();
    let params = CronParams {
        name: &name,
        schedule: &schedule,
        concurrency: Concurrency::parse(spec.concurrency_policy.as_deref()),
        suspend: spec.suspend.unwrap_or(false),
        starting_deadline_seconds: spec.starting_deadline_seconds,
        successful_history: spec.successful_jobs_history_limit.unwrap_or(3),
        failed_history: spec.failed_jobs_history_limit.unwrap_or(1),
        last_scheduled: last,
    };
    let now = clock.now();
    let actions = step(&params, &jobs, now);
    let api: Api<Job> = Api::namespaced(ctx.shared.client.clone(), &ns);
    let mut requeue = std::time::Duration::from_secs(60);
    let mut new_last: Option<DateTime<Utc>> = None;
    let mut active_refs: Vec<serde_json::Value> = owned
        .iter()
        .filter(|j| job_outcome(j).0.is_none())
        .map(|j| json!({"apiVersion": "batch/v1", "kind": "Job", "name": j.name_any(), "namespace": ns, "uid": j.uid()}))
        .collect();
    for a in &actions {
        match a {
            CronAction::CreateJob { name: job_name, scheduled } => {
                let tmpl = spec.job_template.clone();
                let meta = tmpl.metadata.unwrap_or_default();
                let mut annotations = meta.annotations.unwrap_or_default();
                annotations.insert("batch.kubernetes.io/cronjob-scheduled-timestamp".into(), scheduled.to_rfc3339());
                let job = Job {
                    metadata: ObjectMeta {
                        name: Some(job_name.clone()),
                        namespace: Some(ns.clone()),
                        labels: meta.labels,
                        annotations: Some(annotations),
                        owner_references: Some(vec![new_controller_ref("batch/v1", "CronJob", &cj.metadata)]),
                        ..Default::default()
                    },
                    spec: tmpl.spec,
                    status: None,
                };
                let (job, span) = crate::util::trace::create_child(&job, crate::util::trace::of_owner(&cj.metadata), "cronjob", &format!("CronJob/{ns}/{name}"));
                match tracing::Instrument::instrument(api.create(&PostParams::default(), &job), span.clone()).await {
                    Ok(j) => {
                        crate::util::trace::created(&span, &j);
                        tracing::info!(cronjob = %name, job = %job_name, "created job");
                        active_refs.push(json!({"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "namespace": ns, "uid": j.uid()}));
                    }
                    Err(e) if is_conflict(&e) => {}
                    Err(e) => return Err(ReconcileError::Api { what: format!("create job {ns}/{job_name}"), source: e }),
                }
                new_last = Some(*scheduled);
            }
            CronAction::Skip { scheduled } => {
                tracing::info!(cronjob = %name, scheduled = %scheduled, "skipped run: previous job still active (Forbid)");
                new_last = Some(*scheduled);
            }
            CronAction::DeleteJob(j) => {
                delete_quiet(&api, j, &DeleteParams::background()).await.map_err(ReconcileError::api(format!("delete job {ns}/{j}")))?;
                active_refs.retain(|r| r["name"] != json!(j));
            }
            CronAction::RequeueAfter(d) => requeue = d.to_std().unwrap_or(requeue),
        }
    }
    let last_success = owned
        .iter()
        .filter_map(|j| match job_outcome(j) {
            (Some(true), t) => t,
            _ => None,
        })
        .max();
    let mut status = json!({ "active": active_refs });
    if let Some(t) = new_last.or(cj.status.as_ref().and_then(|s| s.last_schedule_time.as_ref()).map(to_chrono)) {
        status["lastScheduleTime"] = json!(from_chrono(t));
    }
    if let Some(t) = last_success {
        status["lastSuccessfulTime"] = json!(from_chrono(t));
    }
    let before = serde_json::to_value(cj.status.clone().unwrap_or_default()).unwrap_or_default();
    let before_active = before.get("active").cloned().unwrap_or(json!([]));
    let changed = before_active.as_array().map_or(0, |a| a.len()) != active_refs.len()
        || ["lastScheduleTime", "lastSuccessfulTime"].iter().any(|k| before.get(*k) != status.get(*k));
    if changed {
        let capi: Api<CronJob> = Api::namespaced(ctx.shared.client.clone(), &ns);
        merge_patch_status(&capi, &name, json!({ "status": status }))
            .await
            .map_err(ReconcileError::api(format!("update status of {what}")))?;
    }
    Ok(Requeue::requeue(requeue))
}
