//! The write pipeline every create and update passes through, in Kubernetes' order: type checks (kind,
//! apiVersion, the typed struct), system metadata (uid, timestamps, generation), defaulting, then validation.
//! Status and spec are kept apart: writes to the main resource keep the stored status, `/status` writes keep
//! everything but status.

use serde_json::{json, Value};

use crate::defaulting;
use crate::object;
use crate::openapi;
use crate::registry::ResourceInfo;
use crate::status::{ApiError, Cause};
use crate::validation;

/// How unknown fields are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
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
    if info.has_status || has_generation(info) {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    defaulting::apply(info, &mut obj);
    let causes = validation::validate(info, &obj, None);
    if !causes.is_empty() {
        return Err(ApiError::invalid(info, object::name(&obj), causes));
    }
    Ok(obj)
}

fn has_generation(info: &ResourceInfo) -> bool {
    !matches!(info.kind, "ConfigMap" | "Secret" | "Event" | "Endpoints" | "EndpointSlice" | "Lease" | "ServiceAccount")
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
    defaulting::apply(info, &mut merged);
    if part == Part::Main && object::spec_part(&merged) != object::spec_part(old) {
        let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        if info.has_status || has_generation(info) {
            object::meta_mut(&mut merged).insert("generation".into(), json!(g + 1));
        }
    }
    let causes = validation::validate(info, &merged, Some(old));
    if !causes.is_empty() {
        return Err(ApiError::invalid(info, &name, causes));
    }
    Ok(merged)
}
