//! Deployment controller: owns ReplicaSets named `<deploy>-<pod-template-hash>`, rolls from old to new by
//! RollingUpdate (maxSurge/maxUnavailable) or Recreate, keeps `revisionHistoryLimit` old ReplicaSets for
//! `kubectl rollout history|undo`, honours `spec.paused`, and reports status and conditions the way
//! `kubectl rollout status` and `kubectl get deploy` read them.
//!
//! The math is in `rollout` and `history` (pure); this module holds conditions and the kube-rs reconcile.

pub mod controller;
pub mod history;
pub mod rollout;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::DeploymentCondition;

use rkube_apimachinery::time::{from_chrono, to_chrono};

/// Inputs for the Progressing condition.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// `spec.paused`: the condition says DeploymentPaused and no deadline runs.
    pub paused: bool,
    /// Every replica is updated and available: NewReplicaSetAvailable.
    pub complete: bool,
    /// counts changed since the last status (a step was made)
    pub progressed: bool,
    /// The rollout's ReplicaSet was created in this step: NewReplicaSetCreated.
    pub new_rs_created: bool,
    /// `spec.progressDeadlineSeconds`: no progress for this long is ProgressDeadlineExceeded.
    pub deadline_seconds: Option<i32>,
}

fn cond(type_: &str, status: &str, reason: &str, message: String, now: DateTime<Utc>, prev: Option<&DeploymentCondition>) -> DeploymentCondition {
    let transition = match prev {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(from_chrono(now)),
    };
    let update = match prev {
        Some(p) if p.status == status && p.reason.as_deref() == Some(reason) && p.message.as_deref() == Some(&message) => {
            p.last_update_time.clone()
        }
        _ => Some(from_chrono(now)),
    };
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: transition,
        last_update_time: update,
    }
}

/// The Progressing condition after this reconcile (Kubernetes' reasons: NewReplicaSetCreated,
/// ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused, DeploymentResumed).
pub fn progressing_condition(
    prev: Option<&DeploymentCondition>,
    p: Progress,
    new_rs_name: &str,
    now: DateTime<Utc>,
) -> DeploymentCondition {
    let prev_reason = prev.and_then(|c| c.reason.as_deref());
    if p.paused {
        return cond("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused".into(), now, prev);
    }
    if prev_reason == Some("DeploymentPaused") {
        return cond("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed".into(), now, prev);
    }
    if p.complete {
        return cond(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_rs_name}\" has successfully progressed."),
            now,
            prev,
        );
    }
    if p.new_rs_created {
        return cond("Progressing", "True", "NewReplicaSetCreated", format!("Created new replica set \"{new_rs_name}\""), now, prev);
    }
    if p.progressed || prev.is_none() || prev_reason == Some("NewReplicaSetAvailable") {
        // force a fresh lastUpdateTime: progress was made
        let mut c = cond(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_rs_name}\" is progressing."),
            now,
            prev,
        );
        c.last_update_time = Some(from_chrono(now));
        return c;
    }
    if prev_reason == Some("ProgressDeadlineExceeded") {
        return prev.cloned().unwrap_or_else(|| cond("Progressing", "False", "ProgressDeadlineExceeded", String::new(), now, None));
    }
    if let (Some(deadline), Some(prev)) = (p.deadline_seconds, prev) {
        let last = prev.last_update_time.as_ref().map(to_chrono).unwrap_or(now);
        if now - last > chrono::Duration::seconds(i64::from(deadline)) {
            return cond(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_rs_name}\" has timed out progressing."),
                now,
                Some(prev),
            );
        }
    }
    prev.cloned().unwrap_or_else(|| cond("Progressing", "True", "ReplicaSetUpdated", String::new(), now, None))
}

/// The Available condition: at least desired - maxUnavailable pods available.
pub fn available_condition(prev: Option<&DeploymentCondition>, available: i32, desired: i32, max_unavailable: i32, now: DateTime<Utc>) -> DeploymentCondition {
    if available >= desired - max_unavailable {
        cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.".into(), now, prev)
    } else {
        cond("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into(), now, prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(complete: bool, progressed: bool) -> Progress {
        Progress { paused: false, complete, progressed, new_rs_created: false, deadline_seconds: Some(600) }
    }

    #[test]
    fn progressing_condition_edges() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).expect("ts");
        let c = progressing_condition(None, Progress { new_rs_created: true, ..p(false, false) }, "web-abc", t0);
        assert_eq!(c.reason.as_deref(), Some("NewReplicaSetCreated"));
        let c = progressing_condition(Some(&c), p(false, true), "web-abc", t0 + chrono::Duration::seconds(10));
        assert_eq!(c.reason.as_deref(), Some("ReplicaSetUpdated"));
        // no progress for less than the deadline: unchanged
        let same = progressing_condition(Some(&c), p(false, false), "web-abc", t0 + chrono::Duration::seconds(300));
        assert_eq!(same, c);
        // past the deadline: False / ProgressDeadlineExceeded, and it sticks
        let late = progressing_condition(Some(&c), p(false, false), "web-abc", t0 + chrono::Duration::seconds(700));
        assert_eq!((late.status.as_str(), late.reason.as_deref()), ("False", Some("ProgressDeadlineExceeded")));
        let still = progressing_condition(Some(&late), p(false, false), "web-abc", t0 + chrono::Duration::seconds(800));
        assert_eq!(still.reason.as_deref(), Some("ProgressDeadlineExceeded"));
        // completion wins
        let done = progressing_condition(Some(&late), p(true, false), "web-abc", t0 + chrono::Duration::seconds(900));
        assert_eq!((done.status.as_str(), done.reason.as_deref()), ("True", Some("NewReplicaSetAvailable")));
        // pause and resume
        let paused = progressing_condition(Some(&done), Progress { paused: true, ..p(false, false) }, "web-abc", t0);
        assert_eq!(paused.reason.as_deref(), Some("DeploymentPaused"));
        let resumed = progressing_condition(Some(&paused), p(false, false), "web-abc", t0);
        assert_eq!(resumed.reason.as_deref(), Some("DeploymentResumed"));
    }

    #[test]
    fn available_condition_uses_max_unavailable() {
        let now = Utc::now();
        assert_eq!(available_condition(None, 2, 3, 1, now).status, "True");
        assert_eq!(available_condition(None, 1, 3, 1, now).reason.as_deref(), Some("MinimumReplicasUnavailable"));
    }
}
