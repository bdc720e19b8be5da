//! The write pipeline every create and update passes through, in Kubernetes' order: type checks (kind,
//! apiVersion, the typed struct), system metadata (uid, timestamps, generation), defaulting, then validation.
//! Status and spec are kept apart: writes to the main resource keep the stored status, `/status` writes keep
//! everything but status.

use serde_json::{json, Value};

pub mod default_toleration_seconds;
pub mod node_restriction;

use crate::object;
use crate::openapi;
use crate::registry::ResourceInfo;
use crate::status::{ApiError, Cause};
use crate::strategy;

/// How unknown fields are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// An unknown field fails the write (`fieldValidation=Strict`, what kubectl sends by default).
    Strict,
    /// Unknown fields are dropped.
    Ignore,
}

/// Checks `apiVersion`/`kind` in the body against the path and fills them in when absent.
pub fn check_type(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: the body is not a JSON object",
            info.kind, info.version, info.kind
        )));
    }
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    if (!kind.is_empty() && kind != info.kind) || (!api_version.is_empty() && api_version != info.api_version()) {
        let gvk_given = if api_version.is_empty() { kind.clone() } else { format!("{api_version}, Kind={kind}") };
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({}) or kind {gvk_given:?} does not match {:?}",
            if api_version.is_empty() { "<empty>" } else { &api_version },
            info.api_version(),
            info.kind
        )));
    }
    obj["apiVersion"] = json!(info.api_version());
    obj["kind"] = json!(info.kind);
    Ok(())
}

/// Typed decoding and (when strict) unknown-field detection, reported as Kubernetes does (400 BadRequest).
pub fn check_fields(info: &ResourceInfo, obj: &Value, validation: FieldValidation) -> Result<(), ApiError> {
    if let Err(e) = (info.typed_check)(obj) {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            info.kind, info.version, info.kind
        )));
    }
    if validation == FieldValidation::Strict {
        let unknown = openapi::schema::unknown_fields(info.definition, obj);
        if !unknown.is_empty() {
            let list: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                info.kind,
                info.version,
                info.kind,
                list.join(", ")
            )));
        }
    }
    Ok(())
}

/// Prepares a new object for storage. `ns` is the namespace from the path.
pub fn prepare_create(info: &ResourceInfo, mut obj: Value, ns: Option<&str>, validation: FieldValidation) -> Result<Value, ApiError> {
    check_type(info, &mut obj)?;
    check_fields(info, &obj, validation)?;
    let meta = object::meta_mut(&mut obj);
    if info.namespaced {
        let path_ns = ns.unwrap_or_default();
        match meta.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != path_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {
                meta.insert("namespace".into(), json!(path_ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    if meta.get("resourceVersion").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
    }
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    if name.is_empty() {
        match meta.get("generateName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            Some(prefix) => {
                let mut generated = prefix.to_string();
                generated.truncate(63 - 5);
                generated.push_str(&object::random_suffix());
                meta.insert("name".into(), json!(generated));
            }
            None => {
                return Err(ApiError::invalid(info, "", vec![Cause::required("metadata.name", "name or generateName is required")]))
            }
        }
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("selfLink");
    if info.has_status || strategy::of(info).has_generation() {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    strategy::of(info).defaults(info, &mut obj);
    let causes = strategy::of(info).validate(info, &obj, None);
    if !causes.is_empty() {
        return Err(ApiError::invalid(info, object::name(&obj), causes));
    }
    Ok(obj)
}

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: everything but status (when status is a subresource).
    Main,
    /// The `/status` subresource: status only (plus labels/annotations as upstream allows for some kinds).
    Status,
}

/// Prepares an updated object: keeps system fields from `old`, enforces the status/spec split, bumps
/// generation on spec changes, defaults and validates.
pub fn prepare_update(
    info: &ResourceInfo,
    old: &Value,
    mut new: Value,
    part: Part,
    validation: FieldValidation,
) -> Result<Value, ApiError> {
    check_type(info, &mut new)?;
    check_fields(info, &new, validation)?;
    let name = object::name(old).to_string();
    let new_name = object::name(&new).to_string();
    if !new_name.is_empty() && new_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({name})"
        )));
    }
    if let (Some(o), Some(n)) = (object::namespace(old), object::namespace(&new)) {
        if !n.is_empty() && o != n {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let mut merged = match part {
        Part::Main => {
            let mut n = new;
            if info.has_status {
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Value::Object(m) = &mut n {
                            m.remove("status");
                        }
                    }
                }
            }
            n
        }
        Part::Status => {
            let mut o = old.clone();
            match new.get("status") {
                Some(s) => o["status"] = s.clone(),
                None => {
                    if let Value::Object(m) = &mut o {
                        m.remove("status");
                    }
                }
            }
            // Upstream status updates may also change labels and annotations of some kinds; keep it simple:
            // metadata changes other than those are ignored.
            for field in ["labels", "annotations"] {
                if let Some(v) = new.pointer(&format!("/metadata/{field}")) {
                    object::meta_mut(&mut o).insert(field.into(), v.clone());
                }
            }
            o
        }
    };
    // System metadata the client cannot change.
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    {
        let meta = object::meta_mut(&mut merged);
        for field in ["uid", "creationTimestamp", "name", "namespace", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
            match old_meta.get(field) {
                Some(v) => {
                    meta.insert(field.into(), v.clone());
                }
                None => {
                    meta.remove(field);
                }
            }
        }
        meta.remove("selfLink");
        meta.remove("generateName");
        if let Some(g) = old_meta.get("generateName") {
            meta.insert("generateName".into(), g.clone());
        }
    }
    // Finalizers cannot be added to an object that is being deleted.
    if object::is_deleting(old) {
        let old_f = object::finalizers(old);
        let new_f = object::finalizers(&merged);
        if new_f.iter().any(|f| !old_f.contains(f)) {
            return Err(ApiError::invalid(
                info,
                &name,
                vec![Cause::forbidden("metadata.finalizers", "no new finalizers can be added if the object is being deleted")],
            ));
        }
    }
    strategy::of(info).defaults(info, &mut merged);
    if part == Part::Main && object::spec_part(&merged) != object::spec_part(old) {
        let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        if info.has_status || strategy::of(info).has_generation() {
            object::meta_mut(&mut merged).insert("generation".into(), json!(g + 1));
        }
    }
    let causes = strategy::of(info).validate(info, &merged, Some(old));
    if !causes.is_empty() {
        return Err(ApiError::invalid(info, &name, causes));
    }
    Ok(merged)
}

/// The annotation that makes an IngressClass the cluster's default (`networking.k8s.io/v1`).
pub const DEFAULT_INGRESS_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Upstream's `DefaultIngressClass` admission plugin (plugin/pkg/admission/network/defaultingressclass), on
/// create: an Ingress with neither `spec.ingressClassName` nor the legacy `kubernetes.io/ingress.class`
/// annotation gets the name of the IngressClass annotated `ingressclass.kubernetes.io/is-default-class: "true"`.
/// With several such classes the newest wins, ties by name (upstream since 1.26; before that, more than one
/// default was refused). Returns the class written, if any.
pub fn default_ingress_class(ingress: &mut Value, classes: &[Value]) -> Option<String> {
    if ingress.pointer("/spec/ingressClassName").is_some_and(|c| !c.is_null()) {
        return None;
    }
    if ingress.pointer("/metadata/annotations/kubernetes.io~1ingress.class").is_some() {
        return None;
    }
    let is_default = |c: &&Value| {
        c.pointer("/metadata/annotations").and_then(|a| a.get(DEFAULT_INGRESS_CLASS_ANNOTATION)).and_then(Value::as_str) == Some("true")
    };
    let created = |c: &Value| c.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or_default().to_string();
    let newest = classes.iter().filter(is_default).max_by(|a, b| {
        // newest first; on the same timestamp the smaller name wins, as upstream sorts them
        created(a).cmp(&created(b)).then_with(|| object::name(b).cmp(object::name(a)))
    })?;
    let name = object::name(newest).to_string();
    if !ingress.get("spec").is_some_and(Value::is_object) {
        ingress["spec"] = json!({});
    }
    ingress["spec"]["ingressClassName"] = json!(name);
    Some(name)
}

#[cfg(test)]
mod default_ingress_class_tests {
    use super::*;

    fn class(name: &str, created: &str, default: Option<&str>) -> Value {
        let mut c = json!({"metadata": {"name": name, "creationTimestamp": created}, "spec": {"controller": "x.io/c"}});
        if let Some(v) = default {
            c["metadata"]["annotations"] = json!({DEFAULT_INGRESS_CLASS_ANNOTATION: v});
        }
        c
    }

    #[test]
    fn the_newest_default_class_then_the_smaller_name() {
        let classes = [
            class("old", "2026-01-01T00:00:00Z", Some("true")),
            class("new", "2026-02-01T00:00:00Z", Some("true")),
            class("newest-not-default", "2026-03-01T00:00:00Z", Some("false")),
            class("plain", "2026-03-01T00:00:00Z", None),
        ];
        let mut ing = json!({"metadata": {"name": "i"}, "spec": {}});
        assert_eq!(default_ingress_class(&mut ing, &classes).as_deref(), Some("new"));
        assert_eq!(ing["spec"]["ingressClassName"], "new");
        let tied = [class("b", "2026-01-01T00:00:00Z", Some("true")), class("a", "2026-01-01T00:00:00Z", Some("true"))];
        let mut ing = json!({"metadata": {"name": "i"}});
        assert_eq!(default_ingress_class(&mut ing, &tied).as_deref(), Some("a"));
    }

    #[test]
    fn a_named_class_the_legacy_annotation_or_no_default_are_left_alone() {
        let classes = [class("rkube", "2026-01-01T00:00:00Z", Some("true"))];
        let mut named = json!({"metadata": {"name": "i"}, "spec": {"ingressClassName": "other"}});
        assert_eq!(default_ingress_class(&mut named, &classes), None);
        assert_eq!(named["spec"]["ingressClassName"], "other");
        let mut legacy = json!({"metadata": {"name": "i", "annotations": {"kubernetes.io/ingress.class": "nginx"}}, "spec": {}});
        assert_eq!(default_ingress_class(&mut legacy, &classes), None);
        assert!(legacy.pointer("/spec/ingressClassName").is_none());
        let mut none = json!({"metadata": {"name": "i"}, "spec": {}});
        assert_eq!(default_ingress_class(&mut none, &[class("x", "2026-01-01T00:00:00Z", Some("True"))]), None);
    }
}
