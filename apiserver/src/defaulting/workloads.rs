//! Defaults of workload and service kinds: replicas, update strategies, history limits, job selectors,
//! service ports and secret data.

use base64::Engine;
use serde_json::{json, Value};

use super::{child, default_pod_spec, set_default};

fn default_template(obj: &mut Value) {
    if let Some(t) = obj.pointer_mut("/spec/template").filter(|t| t.is_object()) {
        let spec = child(t, "spec");
        default_pod_spec(spec);
        let _ = child(t, "metadata");
    }
}

/// Deployment defaults: 1 replica, 10 revisions kept, a 600 s progress deadline, RollingUpdate 25 %/25 %, and the pod template's.
pub fn default_deployment(d: &mut Value) {
    let spec = child(d, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    let strategy = child(spec, "strategy");
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        let ru = child(strategy, "rollingUpdate");
        set_default(ru, "maxUnavailable", json!("25%"));
        set_default(ru, "maxSurge", json!("25%"));
    }
    default_template(d);
}

/// ReplicaSet defaults: 1 replica and the pod template's.
pub fn default_replicaset(rs: &mut Value) {
    let spec = child(rs, "spec");
    set_default(spec, "replicas", json!(1));
    default_template(rs);
}

/// ReplicationController defaults: 1 replica, the selector taken from the template's labels, and the pod template's.
pub fn default_rc(rc: &mut Value) {
    let spec = child(rc, "spec");
    set_default(spec, "replicas", json!(1));
    let labels = spec.pointer("/template/metadata/labels").cloned();
    if let Some(l) = labels {
        set_default(spec, "selector", l);
    }
    default_template(rc);
}

/// StatefulSet defaults: 1 replica, OrderedReady, 10 revisions, Retain PVCs, RollingUpdate from partition 0, and the pod template's.
pub fn default_statefulset(s: &mut Value) {
    let spec = child(s, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "persistentVolumeClaimRetentionPolicy", json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
    let us = child(spec, "updateStrategy");
    set_default(us, "type", json!("RollingUpdate"));
    if us["type"] == "RollingUpdate" {
        let ru = child(us, "rollingUpdate");
        set_default(ru, "partition", json!(0));
    }
    default_template(s);
}

/// DaemonSet defaults: 10 revisions, RollingUpdate with maxUnavailable 1 and maxSurge 0, and the pod template's.
pub fn default_daemonset(ds: &mut Value) {
    let spec = child(ds, "spec");
    set_default(spec, "revisionHistoryLimit", json!(10));
    let us = child(spec, "updateStrategy");
    set_default(us, "type", json!("RollingUpdate"));
    if us["type"] == "RollingUpdate" {
        let ru = child(us, "rollingUpdate");
        set_default(ru, "maxUnavailable", json!(1));
        set_default(ru, "maxSurge", json!(0));
    }
    default_template(ds);
}

/// Job defaults, including the generated selector and template labels Kubernetes adds unless
/// `manualSelector` is set.
pub fn default_job(job: &mut Value) {
    let uid = job.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_string();
    let name = job.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let spec = child(job, "spec");
    set_default(spec, "parallelism", json!(1));
    if spec.get("completionMode").is_none_or(Value::is_null) || spec["completionMode"] == "NonIndexed" {
        set_default(spec, "completions", json!(1));
    }
    set_default(spec, "backoffLimit", json!(6));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    let manual = spec.get("manualSelector").and_then(Value::as_bool).unwrap_or(false);
    if !manual && !uid.is_empty() && spec.get("selector").is_none_or(Value::is_null) {
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        let t = child(spec, "template");
        let meta = child(t, "metadata");
        let labels = child(meta, "labels");
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            set_default(labels, k, json!(v));
        }
    }
    if let Some(t) = job.pointer_mut("/spec/template").filter(|t| t.is_object()) {
        let s = child(t, "spec");
        default_pod_spec(s);
    }
}

/// CronJob defaults: concurrency Allow, not suspended, 3 successful and 1 failed job kept, and the job's pod template's.
pub fn default_cronjob(cj: &mut Value) {
    let spec = child(cj, "spec");
    set_default(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(t) = spec.pointer_mut("/jobTemplate/spec/template").filter(|t| t.is_object()) {
        let s = child(t, "spec");
        default_pod_spec(s);
    }
}

/// Service defaults: type ClusterIP, no session affinity, single-stack IPv4 and Cluster traffic policies (not
/// for ExternalName), each port TCP with its targetPort the port, and an empty load balancer status.
pub fn default_service(svc: &mut Value) {
    let spec = child(svc, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let ty = spec["type"].as_str().unwrap_or_default().to_string();
    if ty != "ExternalName" {
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
            let port = p.get("port").cloned().unwrap_or(Value::Null);
            set_default(p, "targetPort", port);
        }
    }
    let _ = child(svc, "status");
    if let Some(status) = svc.get_mut("status") {
        set_default(status, "loadBalancer", json!({}));
    }
}

/// Secrets default to type Opaque; `stringData` is merged into `data` (base64) and dropped, as upstream does.
pub fn default_secret(secret: &mut Value) {
    set_default(secret, "type", json!("Opaque"));
    if let Some(Value::Object(sd)) = secret.as_object_mut().and_then(|m| m.remove("stringData")) {
        let data = child(secret, "data");
        for (k, v) in sd {
            let s = v.as_str().unwrap_or_default();
            data[k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(s));
        }
    }
}
