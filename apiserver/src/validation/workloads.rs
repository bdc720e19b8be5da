//! Kind-specific rules: containers need names and images, workloads need a selector that matches their template
//! labels, and some fields are immutable (selectors, pod specs, service clusterIP, immutable ConfigMaps/Secrets).

use rkube_apimachinery::labels::{labels_of, Selector as LabelSelector};
use rkube_apimachinery::validation as names;
use serde_json::Value;

use crate::status::Cause;


fn validate_containers(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        None => causes.push(Cause::required(format!("{path}.containers"), "")),
        Some(cs) if cs.is_empty() => causes.push(Cause::required(format!("{path}.containers"), "")),
        Some(_) => {}
    }
    let mut seen = std::collections::HashSet::new();
    for list in ["initContainers", "containers"] {
        let Some(cs) = spec.get(list).and_then(Value::as_array) else { continue };
        for (i, c) in cs.iter().enumerate() {
            let p = format!("{path}.{list}[{i}]");
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() {
                causes.push(Cause::required(format!("{p}.name"), ""));
            } else if let Some(e) = names::dns1123_label_error(name) {
                causes.push(Cause::invalid(format!("{p}.name"), &Value::String(name.into()), &e));
            } else if !seen.insert(name.to_string()) {
                causes.push(Cause {
                    reason: "FieldValueDuplicate",
                    field: format!("{p}.name"),
                    message: format!("Duplicate value: \"{name}\""),
                });
            }
            if c.get("image").and_then(Value::as_str).unwrap_or_default().is_empty() {
                causes.push(Cause::required(format!("{p}.image"), ""));
            }
            if let Some(policy) = c.get("imagePullPolicy").and_then(Value::as_str) {
                if !["Always", "IfNotPresent", "Never"].contains(&policy) {
                    causes.push(Cause::not_supported(format!("{p}.imagePullPolicy"), &Value::String(policy.into()), &["Always", "IfNotPresent", "Never"]));
                }
            }
        }
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str) {
        if !["Always", "OnFailure", "Never"].contains(&rp) {
            causes.push(Cause::not_supported(format!("{path}.restartPolicy"), &Value::String(rp.into()), &["Always", "OnFailure", "Never"]));
        }
    }
}

fn validate_selector_template(obj: &Value, causes: &mut Vec<Cause>, selector_required: bool) {
    let sel = obj.pointer("/spec/selector");
    let labels = obj.pointer("/spec/template/metadata/labels").map(|_| labels_of(&obj["spec"]["template"])).unwrap_or_default();
    match sel {
        None | Some(Value::Null) => {
            if selector_required {
                causes.push(Cause::required("spec.selector", ""));
            }
        }
        Some(s) => {
            let parsed = if s.get("matchLabels").is_some() || s.get("matchExpressions").is_some() {
                LabelSelector::from_json(s)
            } else {
                // ReplicationController selectors are plain maps.
                LabelSelector::from_json(&serde_json::json!({"matchLabels": s}))
            };
            match parsed {
                Ok(sel) if sel.is_empty() && selector_required => {
                    causes.push(Cause::invalid("spec.selector", s, "empty selector is invalid for deployment"));
                }
                Ok(sel) => {
                    if obj.pointer("/spec/template").is_some() && !sel.matches(&labels) {
                        causes.push(Cause::invalid(
                            "spec.template.metadata.labels",
                            &serde_json::to_value(&labels).unwrap_or(Value::Null),
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
                Err(e) => causes.push(Cause::invalid("spec.selector", s, &e.message)),
            }
        }
    }
}

fn non_negative(obj: &Value, ptr: &str, field: &str, causes: &mut Vec<Cause>) {
    if let Some(v) = obj.pointer(ptr).and_then(Value::as_i64) {
        if v < 0 {
            causes.push(Cause::invalid(field, &Value::from(v), "must be greater than or equal to 0"));
        }
    }
}

/// A Pod's containers.
pub(crate) fn validate_pod(obj: &Value, causes: &mut Vec<Cause>) {
    validate_containers(obj.get("spec").unwrap_or(&Value::Null), "spec", causes);
}

/// Deployments, ReplicaSets, StatefulSets and DaemonSets: a selector matching the template, replicas, the
/// template's containers; `restart_always` (all but ReplicaSets) allows only restartPolicy Always.
pub(crate) fn validate_replicated(obj: &Value, restart_always: bool, causes: &mut Vec<Cause>) {
    validate_selector_template(obj, causes, true);
    non_negative(obj, "/spec/replicas", "spec.replicas", causes);
    match obj.pointer("/spec/template/spec") {
        Some(spec) => validate_containers(spec, "spec.template.spec", causes),
        None => causes.push(Cause::required("spec.template", "")),
    }
    if restart_always {
        if let Some(rp) = obj.pointer("/spec/template/spec/restartPolicy").and_then(Value::as_str) {
            if rp != "Always" {
                causes.push(Cause::not_supported("spec.template.spec.restartPolicy", &Value::String(rp.into()), &["Always"]));
            }
        }
    }
}

/// A ReplicationController: its plain-map selector (optional) against the template, replicas, containers.
pub(crate) fn validate_rc(obj: &Value, causes: &mut Vec<Cause>) {
    validate_selector_template(obj, causes, false);
    non_negative(obj, "/spec/replicas", "spec.replicas", causes);
    if let Some(spec) = obj.pointer("/spec/template/spec") {
        validate_containers(spec, "spec.template.spec", causes);
    }
}

/// A Job: selector and template, restartPolicy OnFailure or Never, counts not negative.
pub(crate) fn validate_job(obj: &Value, causes: &mut Vec<Cause>) {
    validate_selector_template(obj, causes, false);
    match obj.pointer("/spec/template/spec") {
        Some(spec) => {
            validate_containers(spec, "spec.template.spec", causes);
            let rp = spec.get("restartPolicy").and_then(Value::as_str).unwrap_or("Always");
            if rp != "OnFailure" && rp != "Never" {
                causes.push(Cause::not_supported("spec.template.spec.restartPolicy", &Value::String(rp.into()), &["OnFailure", "Never"]));
            }
        }
        None => causes.push(Cause::required("spec.template", "")),
    }
    non_negative(obj, "/spec/parallelism", "spec.parallelism", causes);
    non_negative(obj, "/spec/completions", "spec.completions", causes);
    non_negative(obj, "/spec/backoffLimit", "spec.backoffLimit", causes);
}

/// A CronJob: a schedule and a job template with containers.
pub(crate) fn validate_cronjob(obj: &Value, causes: &mut Vec<Cause>) {
    if obj.pointer("/spec/schedule").and_then(Value::as_str).unwrap_or_default().is_empty() {
        causes.push(Cause::required("spec.schedule", ""));
    }
    if let Some(spec) = obj.pointer("/spec/jobTemplate/spec/template/spec") {
        validate_containers(spec, "spec.jobTemplate.spec.template.spec", causes);
    } else {
        causes.push(Cause::required("spec.jobTemplate.spec.template", ""));
    }
}

/// ConfigMaps and Secrets: the keys of `data` and `binaryData`.
pub(crate) fn validate_config_data(obj: &Value, causes: &mut Vec<Cause>) {
    for field in ["data", "binaryData"] {
        if let Some(m) = obj.get(field).and_then(Value::as_object) {
            for k in m.keys() {
                let ok = !k.is_empty() && k.len() <= 253 && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !ok {
                    causes.push(Cause::invalid(format!("{field}[{k}]"), &Value::String(k.clone()), "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
                }
            }
        }
    }
}

fn immutable(field: &str, new: Option<&Value>, old: Option<&Value>, causes: &mut Vec<Cause>) {
    if new != old {
        causes.push(Cause::invalid(field, new.unwrap_or(&Value::Null), "field is immutable"));
    }
}

/// The workload kinds' update rule: the selector cannot change.
pub(crate) fn validate_selector_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    immutable("spec.selector", new.pointer("/spec/selector"), old.pointer("/spec/selector"), causes);
}

/// A Job update: the selector, the template (unless suspended) and completions cannot change.
pub(crate) fn validate_job_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    validate_selector_update(new, old, causes);
    // The template is immutable except on suspended jobs; keep it simple and strict.
    let suspended = old.pointer("/spec/suspend").and_then(Value::as_bool).unwrap_or(false);
    if !suspended {
        immutable("spec.template", new.pointer("/spec/template"), old.pointer("/spec/template"), causes);
    }
    immutable("spec.completions", new.pointer("/spec/completions"), old.pointer("/spec/completions"), causes);
}

/// A Pod update: only images, activeDeadlineSeconds, tolerations, the grace period, nodeName once and
/// scheduling gates may change.
pub(crate) fn validate_pod_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    // Only images, activeDeadlineSeconds and added tolerations may change.
    let strip = |v: &Value| -> Value {
        let mut s = v.pointer("/spec").cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(m) = c.as_object_mut() {
                        m.remove("image");
                        m.remove("resources");
                    }
                }
            }
        }
        if let Some(m) = s.as_object_mut() {
            m.remove("activeDeadlineSeconds");
            m.remove("tolerations");
            m.remove("terminationGracePeriodSeconds");
            m.remove("nodeName");
            m.remove("schedulingGates");
        }
        s
    };
    if strip(new) != strip(old) {
        causes.push(Cause::forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
    }
    let old_node = old.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
    let new_node = new.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
    if !old_node.is_empty() && old_node != new_node {
        causes.push(Cause::invalid("spec.nodeName", &Value::String(new_node.into()), "field is immutable"));
    }
}

/// An immutable ConfigMap or Secret: data, binaryData and `immutable` itself stay as they were.
pub(crate) fn validate_config_data_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    immutable("data", new.get("data"), old.get("data"), causes);
    immutable("binaryData", new.get("binaryData"), old.get("binaryData"), causes);
    if new.get("immutable") != old.get("immutable") {
        causes.push(Cause::forbidden("immutable", "field is immutable when `immutable` is set"));
    }
}

/// A Service's fields: ports (required unless ExternalName or headless, in range, named when several) and type.
pub(crate) fn validate_service(obj: &Value, causes: &mut Vec<Cause>) {
    let ty = obj.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP");
    let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
    let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
    if ty != "ExternalName" && !headless && ports.is_none_or(|p| p.is_empty()) {
        causes.push(Cause::required("spec.ports", ""));
    }
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty) {
        causes.push(Cause::not_supported("spec.type", &Value::String(ty.into()), &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]));
    }
    for (i, p) in ports.into_iter().flatten().enumerate() {
        match p.get("port").and_then(Value::as_i64) {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => causes.push(Cause::invalid(format!("spec.ports[{i}].port"), &Value::from(n), "must be between 1 and 65535, inclusive")),
            None => causes.push(Cause::required(format!("spec.ports[{i}].port"), "")),
        }
        if ports.is_some_and(|ps| ps.len() > 1) && p.get("name").and_then(Value::as_str).unwrap_or_default().is_empty() {
            causes.push(Cause::required(format!("spec.ports[{i}].name"), ""));
        }
    }
}

/// A Service update: the ClusterIP cannot change once set.
pub(crate) fn validate_service_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let old_ip = old.pointer("/spec/clusterIP");
    if old_ip.and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
        immutable("spec.clusterIP", new.pointer("/spec/clusterIP"), old_ip, causes);
    }
}
