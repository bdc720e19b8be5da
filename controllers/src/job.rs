//! Job controller: run pods until `completions` succeed (`parallelism` at a time), fail the Job after
//! `backoffLimit` failed pods or past `activeDeadlineSeconds`, and delete it `ttlSecondsAfterFinished` after
//! it finished. [`step`] is the pure decision over pod counts and time.

use chrono::{DateTime, Duration, Utc};

/// The Job spec fields the decision needs, defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobParams {
    /// None: work-queue job, complete once one pod succeeded and none is active
    pub completions: Option<i32>,
    /// How many pods may run at once.
    pub parallelism: i32,
    /// How many failed pods fail the Job.
    pub backoff_limit: i32,
    /// The Job fails this long after it started.
    pub active_deadline_seconds: Option<i64>,
    /// The finished Job is deleted this long after it finished.
    pub ttl_seconds_after_finished: Option<i32>,
    /// No pods run while set (active ones are deleted).
    pub suspend: bool,
}

/// Observed state of the Job's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobObserved {
    /// Pods pending or running.
    pub active: i32,
    /// Pods that succeeded.
    pub succeeded: i32,
    /// Pods that failed.
    pub failed: i32,
    /// `status.startTime`: when the Job first ran (its active deadline counts from it).
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

// ---------------------------------------------------------------------------------------------------------
// kube-rs wiring
// ---------------------------------------------------------------------------------------------------------

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::context::{delete_quiet, merge_patch_status, ReconcileError, Shared};
use crate::util::owner::{controller_ref, new_controller_ref};
use crate::util::pod::{from_template, PodName};
use rkube_apimachinery::pod as podutil;
use rkube_apimachinery::time::{from_chrono, to_chrono};

fn finished(job: &Job) -> Option<(String, chrono::DateTime<Utc>)> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| (c.type_.clone(), c.last_transition_time.as_ref().map(to_chrono).unwrap_or_else(Utc::now)))
}

/// Reconcile one Job.
pub async fn reconcile(job: Arc<Job>, ctx: Arc<Shared>) -> Result<Requeue, ReconcileError> {
    let ns = job.namespace().unwrap_or_else(|| "default".into());
    let name = job.name_any();
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    let uid = job.uid().unwrap_or_default();
    let Some(spec) = job.spec.clone() else {
        return Err(ReconcileError::Invalid { what: format!("job {ns}/{name}"), problem: "spec is missing".into() });
    };
    let params = JobParams {
        completions: spec.completions,
        parallelism: spec.parallelism.unwrap_or(1),
        backoff_limit: spec.backoff_limit.unwrap_or(6),
        active_deadline_seconds: spec.active_deadline_seconds,
        ttl_seconds_after_finished: spec.ttl_seconds_after_finished,
        suspend: spec.suspend.unwrap_or(false),
    };
    let all = ctx.pods_in(&ns);
    let owned: Vec<&Arc<Pod>> = all.iter().filter(|p| controller_ref(&p.metadata).is_some_and(|o| o.uid == uid)).collect();
    let active: Vec<&&Arc<Pod>> = owned.iter().filter(|p| podutil::is_active(p)).collect();
    let succeeded = owned.iter().filter(|p| podutil::phase(p) == "Succeeded").count() as i32;
    let failed = owned.iter().filter(|p| podutil::phase(p) == "Failed").count() as i32;
    let now = Utc::now();
    let start_time = job.status.as_ref().and_then(|s| s.start_time.as_ref()).map(to_chrono)
        .or(if params.suspend { None } else { Some(now) });
    let done = finished(&job);
    let observed = JobObserved {
        active: active.len() as i32,
        succeeded,
        failed,
        start_time,
        finished_at: done.as_ref().map(|d| d.1),
    };
    let exp_key = format!("Job/{ns}/{name}");
    let synced = ctx.expectations.lock().map(|mut e| e.satisfied(&exp_key, |n| ctx.pod_presence(&ns, n))).unwrap_or(true);
    let actions = step(&params, &observed, now);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut requeue = std::time::Duration::from_secs(300);
    let mut new_condition: Option<(&str, &str, String)> = None;
    let uid_s = uid.clone();
    for a in &actions {
        match a {
            JobAction::Create(n) if synced => {
                let oref = new_controller_ref("batch/v1", "Job", &job.metadata);
                let prefix = format!("{name}-");
                let labels = [
                    ("job-name", name.as_str()),
                    ("batch.kubernetes.io/job-name", name.as_str()),
                    ("controller-uid", uid_s.as_str()),
                    ("batch.kubernetes.io/controller-uid", uid_s.as_str()),
                ];
                let pod = from_template(&spec.template, &ns, PodName::Generate(&prefix), oref, &labels);
                let mut created = Vec::new();
                let owner_trace = crate::util::trace::of_owner(&job.metadata);
                for _ in 0..*n {
                    let (pod, span) = crate::util::trace::create_child(&pod, owner_trace, "job", &exp_key);
                    let p = tracing::Instrument::instrument(api.create(&PostParams::default(), &pod), span.clone())
                        .await
                        .map_err(ReconcileError::api(format!("create pod for job {ns}/{name}")))?;
                    crate::util::trace::created(&span, &p);
                    created.push(p.name_any());
                }
                if let Ok(mut e) = ctx.expectations.lock() {
                    e.expect(&exp_key, created, []);
                }
            }
            JobAction::DeleteActive(n) => {
                let mut victims: Vec<&&&Arc<Pod>> = active.iter().collect();
                victims.sort_by_key(|p| podutil::is_ready(p));
                for v in victims.into_iter().take(*n as usize) {
                    delete_quiet(&api, &v.name_any(), &DeleteParams::background())
                        .await
                        .map_err(ReconcileError::api(format!("delete pod {ns}/{} of job", v.name_any())))?;
                }
            }
            JobAction::Complete => new_condition = Some(("Complete", "", String::new())),
            JobAction::Fail(reason) => {
                let msg = if *reason == "DeadlineExceeded" { "Job was active longer than specified deadline" } else { "Job has reached the specified backoff limit" };
                new_condition = Some(("Failed", reason, msg.to_string()));
            }
            JobAction::DeleteJob => {
                let japi: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
                delete_quiet(&japi, &name, &DeleteParams::background()).await.map_err(ReconcileError::api(format!("delete finished job {ns}/{name}")))?;
                tracing::info!(job = %name, "deleted after ttlSecondsAfterFinished");
                return Ok(Requeue::await_change());
            }
            JobAction::RequeueAfter(d) => requeue = requeue.min(d.to_std().unwrap_or_default()),
            _ => {}
        }
    }
    // status
    let ready = active.iter().filter(|p| podutil::is_ready(p)).count() as i32;
    let mut status = json!({
        "active": active.len() as i32,
        "succeeded": succeeded,
        "failed": failed,
        "ready": ready,
    });
    if let Some(st) = start_time {
        status["startTime"] = json!(from_chrono(st));
    }
    let mut conds: Vec<serde_json::Value> = job.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default()
        .into_iter().filter_map(|c| serde_json::to_value(c).ok()).collect();
    if let Some((type_, reason, message)) = &new_condition {
        let ts = from_chrono(now);
        let mut c = json!({"type": type_, "status": "True", "lastProbeTime": ts, "lastTransitionTime": ts});
        if !reason.is_empty() {
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        conds.push(c);
        if *type_ == "Complete" {
            status["completionTime"] = json!(ts);
        }
        status["conditions"] = json!(conds);
        status["active"] = json!(0);
        if let Some(ttl) = params.ttl_seconds_after_finished {
            requeue = requeue.min(std::time::Duration::from_secs(ttl.max(0) as u64));
        }
    }
    let before = serde_json::to_value(job.status.clone().unwrap_or_default()).unwrap_or_default();
    if status.as_object().is_some_and(|m| m.iter().any(|(k, v)| before.get(k).unwrap_or(&json!(0)) != v)) {
        let japi: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        merge_patch_status(&japi, &name, json!({ "status": status }))
            .await
            .map_err(ReconcileError::api(format!("update status of job {ns}/{name}")))?;
    }
    if !synced {
        requeue = requeue.min(std::time::Duration::from_secs(1));
    }
    Ok(Requeue::requeue(requeue))
}
