//! Pods and the workload kinds: Deployments, ReplicaSets, ReplicationControllers, StatefulSets, DaemonSets, Jobs
//! and CronJobs. Their defaults include the pod template's (`defaulting::pod`); their selectors cannot change.

use serde_json::Value;

use super::{validate_with, Strategy};
use crate::defaulting;
use crate::registry::ResourceInfo;
use crate::selectors::{text, text_or, Field};
use crate::table::{self, Printer};
use crate::status::Cause;
use crate::validation::workloads as checks;

/// Pods: the pod spec's defaults, containers checked, only a few fields changeable after creation; selectable
/// by node, restart policy, scheduler, service account, host network, phase, IP and nominated node.
pub struct Pods;

impl Strategy for Pods {
    fn printer(&self) -> &'static Printer {
        &table::POD
    }

    fn selectable_fields(&self, _info: &ResourceInfo) -> &'static [Field] {
        const FIELDS: &[Field] = &[
            Field { label: "spec.nodeName", value: |o| text(o, "/spec/nodeName") },
            Field { label: "spec.restartPolicy", value: |o| text(o, "/spec/restartPolicy") },
            Field { label: "spec.schedulerName", value: |o| text(o, "/spec/schedulerName") },
            Field { label: "spec.serviceAccountName", value: |o| text(o, "/spec/serviceAccountName") },
            Field { label: "spec.hostNetwork", value: |o| text_or(o, "/spec/hostNetwork", "false") },
            Field { label: "status.phase", value: |o| text(o, "/status/phase") },
            Field { label: "status.podIP", value: |o| text(o, "/status/podIP") },
            Field { label: "status.nominatedNodeName", value: |o| text(o, "/status/nominatedNodeName") },
        ];
        FIELDS
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        defaulting::default_pod(obj);
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |causes| {
            checks::validate_pod(obj, causes);
            if let Some(old) = old {
                checks::validate_pod_update(obj, old, causes);
            }
        })
    }
}

/// Deployments: replicas, strategy and the template defaulted; restartPolicy Always.
pub struct Deployments;

impl Strategy for Deployments {
    fn printer(&self) -> &'static Printer {
        &table::DEPLOYMENT
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        defaulting::default_deployment(obj);
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_replicated(self, info, obj, old, true)
    }
}

/// ReplicaSets: as Deployments, but any restartPolicy the pod spec allows; selectable by `status.replicas`.
pub struct ReplicaSets;

impl Strategy for ReplicaSets {
    fn printer(&self) -> &'static Printer {
        &table::REPLICA_SET
    }

    fn selectable_fields(&self, _info: &ResourceInfo) -> &'static [Field] {
        STATUS_REPLICAS
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        defaulting::default_replicaset(obj);
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_replicated(self, info, obj, old, false)
    }
}

/// StatefulSets: restartPolicy Always.
pub struct StatefulSets;

impl Strategy for StatefulSets {
    fn printer(&self) -> &'static Printer {
        &table::STATEFUL_SET
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        defaulting::default_statefulset(obj);
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_replicated(self, info, obj, old, true)
    }
}

/// DaemonSets: restartPolicy Always.
pub struct DaemonSets;

impl Strategy for DaemonSets {
    fn printer(&self) -> &'static Printer {
        &table::DAEMON_SET
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        defaulting::default_daemonset(obj);
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_replicated(self, info, obj, old, true)
    }
}

/// The checks the four replicated kinds share: selector against template on create, selector immutable.
fn validate_replicated(strategy: &dyn Strategy, info: &ResourceInfo, obj: &Value, old: Option<&Value>, restart_always: bool) -> Vec<Cause> {
    validate_with(strategy, info, obj, |causes| {
        checks::validate_replicated(obj, restart_always, causes);
        if let Some(old) = old {
            checks::validate_selector_update(obj, old, causes);
        }
    })
}

/// `status.replicas` of a ReplicaSet or ReplicationController (`0` until the controller has counted).
const STATUS_REPLICAS: &[Field] = &[Field { label: "status.replicas", value: |o| text_or(o, "/status/replicas", "0") }];

/// ReplicationControllers: a plain-map selector, defaulted from the template's labels; selectable by
/// `status.replicas`.
pub struct ReplicationControllers;

impl Strategy for ReplicationControllers {
    fn printer(&self) -> &'static Printer {
        &table::REPLICA_SET
    }

    fn selectable_fields(&self, _info: &ResourceInfo) -> &'static [Field] {
        STATUS_REPLICAS
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        defaulting::default_rc(obj);
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |causes| checks::validate_rc(obj, causes))
    }
}

/// Jobs: restartPolicy OnFailure or Never; selector, template (unless suspended) and completions immutable;
/// selectable by `status.successful`.
pub struct Jobs;

impl Strategy for Jobs {
    fn printer(&self) -> &'static Printer {
        &table::JOB
    }

    fn selectable_fields(&self, _info: &ResourceInfo) -> &'static [Field] {
        // The label is `status.successful`; the field it reads is `status.succeeded`, as upstream's.
        const FIELDS: &[Field] = &[Field { label: "status.successful", value: |o| text_or(o, "/status/succeeded", "0") }];
        FIELDS
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        defaulting::default_job(obj);
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |causes| {
            checks::validate_job(obj, causes);
            if let Some(old) = old {
                checks::validate_job_update(obj, old, causes);
            }
        })
    }
}

/// CronJobs: a schedule and a job template.
pub struct CronJobs;

impl Strategy for CronJobs {
    fn printer(&self) -> &'static Printer {
        &table::CRON_JOB
    }

    fn defaults(&self, _info: &ResourceInfo, obj: &mut Value) {
        defaulting::default_cronjob(obj);
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |causes| checks::validate_cronjob(obj, causes))
    }
}
