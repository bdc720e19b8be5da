//! Validation with Kubernetes' rules and messages: object names (DNS-1123 subdomain or label depending on the
//! kind), label and annotation syntax and size, required fields of the workload kinds, selector/template
//! agreement, RBAC rules and bindings, and fields that cannot change after creation. Returns one `Cause` per
//! problem. These are the checks; which of them a kind runs, on create and on update, is its `strategy`.

pub(crate) mod certificates;
pub(crate) mod ingress;
pub(crate) mod rbac;
pub(crate) mod workloads;

pub(crate) use workloads::{validate_service, validate_service_update};

use rkube_apimachinery::validation as names;
use serde_json::Value;

use crate::registry::ResourceInfo;
use crate::status::Cause;

/// Object metadata: the name (by `name_error`, the kind's rule), namespace, labels, annotations, finalizers.
pub fn validate_meta(info: &ResourceInfo, obj: &Value, name_error: &dyn Fn(&str) -> Option<String>, causes: &mut Vec<Cause>) {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        causes.push(Cause::required("metadata.name", "name or generateName is required"));
    } else if let Some(e) = name_error(name) {
        causes.push(Cause::invalid("metadata.name", &Value::String(name.into()), &e));
    }
    if info.namespaced {
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
        if ns.is_empty() {
            causes.push(Cause::required("metadata.namespace", ""));
        } else if let Some(e) = names::dns1123_label_error(ns) {
            causes.push(Cause::invalid("metadata.namespace", &Value::String(ns.into()), &e));
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(e) = names::label_key_error(k) {
                causes.push(Cause::invalid("metadata.labels", &Value::String(k.clone()), &e));
            }
            match v.as_str() {
                Some(s) => {
                    if let Some(e) = names::label_value_error(s) {
                        causes.push(Cause::invalid("metadata.labels", v, &e));
                    }
                }
                None => causes.push(Cause::invalid("metadata.labels", v, "label values must be strings")),
            }
        }
    }
    if let Some(ann) = obj.pointer("/metadata/annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in ann {
            if let Some(e) = names::label_key_error(&k.to_ascii_lowercase()) {
                causes.push(Cause::invalid("metadata.annotations", &Value::String(k.clone()), &e));
            }
            total += k.len() + v.as_str().map(str::len).unwrap_or(0);
        }
        if total > names::ANNOTATIONS_MAX_BYTES {
            causes.push(Cause::too_long("metadata.annotations", names::ANNOTATIONS_MAX_BYTES));
        }
    }
    if let Some(fins) = obj.pointer("/metadata/finalizers").and_then(Value::as_array) {
        for (i, f) in fins.iter().enumerate() {
            let s = f.as_str().unwrap_or_default();
            if let Some(e) = names::label_key_error(s) {
                causes.push(Cause::invalid(format!("metadata.finalizers[{i}]"), f, &e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::find;
    use crate::strategy;
    use serde_json::json;

    #[test]
    fn bad_names_and_labels_are_reported_per_field() {
        let cm = find("", "v1", "configmaps").expect("configmaps");
        let obj = json!({"metadata": {"name": "Bad_Name", "namespace": "default", "labels": {"bad key": "v", "k": "-x"}}});
        let causes = strategy::of(cm).validate(cm, &obj, None);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["metadata.name", "metadata.labels", "metadata.labels"]);
    }

    #[test]
    fn huge_annotations_are_too_long() {
        let cm = find("", "v1", "configmaps").expect("configmaps");
        let obj = json!({"metadata": {"name": "a", "namespace": "d", "annotations": {"x": "y".repeat(300 * 1024)}}});
        let causes = strategy::of(cm).validate(cm, &obj, None);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].reason, "FieldValueTooLong");
    }
}
