//! API errors as Kubernetes `Status` objects: the `code`, `reason`, `message` and `details` kubectl prints
//! (`Error from server (NotFound): pods "x" not found`). Every handler error ends up here.

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use serde_json::{json, Value};

use crate::registry::ResourceInfo;
use crate::storage::StorageError;

/// One field-level cause of an `Invalid` error.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueForbidden`...
    pub reason: &'static str,
    /// The field path the cause is about, as kubectl prints it (`spec.containers[0].image`).
    pub field: String,
    /// What is wrong with the field, in upstream's words (`Required value`, `Invalid value: ...`).
    pub message: String,
}

impl Cause {
    /// A value the field cannot hold (`FieldValueInvalid`): `Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {detail}", render_value(value)),
        }
    }

    /// A field that must be set (`FieldValueRequired`), with an optional detail.
    pub fn required(field: impl Into<String>, detail: &str) -> Cause {
        let message = if detail.is_empty() { "Required value".to_string() } else { format!("Required value: {detail}") };
        Cause { reason: "FieldValueRequired", field: field.into(), message }
    }

    /// A field that may not be set or changed here (`FieldValueForbidden`).
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Cause {
        Cause { reason: "FieldValueForbidden", field: field.into(), message: format!("Forbidden: {detail}") }
    }

    /// A value outside an enumeration (`FieldValueNotSupported`), naming the values that are.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Cause {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: {}: supported values: {}", render_value(value), list.join(", ")),
        }
    }

    /// A string or list over its limit (`FieldValueTooLong`).
    pub fn too_long(field: impl Into<String>, max: usize) -> Cause {
        Cause {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max} bytes"),
        }
    }

    /// `field: message`, as Kubernetes joins a cause into the error message.
    pub fn render(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// An error answered as a `Status`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status code (and the Status object's `code`).
    pub code: u16,
    /// The Status `reason` clients switch on: `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`...
    pub reason: &'static str,
    /// The human-readable message kubectl prints after `Error from server (<reason>):`.
    pub message: String,
    /// The Status `details` (name, group, kind and, for `Invalid`, the causes), when the error is about an object.
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

fn details(info: &ResourceInfo, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": info.resource});
    if !info.group.is_empty() {
        d["group"] = json!(info.group);
    }
    d
}

impl ApiError {
    /// An error with no details, for errors not about one object.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { code, reason, message: message.into(), details: None }
    }

    /// 400 BadRequest: the request itself is malformed (a bad query parameter, body or selector).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 404 NotFound for `name` of `info`: `<resource> "<name>" not found`.
    pub fn not_found(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", info.group_resource()),
            details: Some(details(info, name)),
        }
    }

    /// 404 for a path that names nothing served.
    pub fn path_not_found(path: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("the server could not find the requested resource ({path})"))
    }

    /// 409 AlreadyExists: a create of a name that is taken.
    pub fn already_exists(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", info.group_resource()),
            details: Some(details(info, name)),
        }
    }

    /// 409 Conflict on `name` of `info`, `why` saying what conflicted (a precondition, a version).
    pub fn conflict(info: &ResourceInfo, name: &str, why: &str) -> ApiError {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!("Operation cannot be fulfilled on {} \"{name}\": {why}", info.group_resource()),
            details: Some(details(info, name)),
        }
    }

    /// 409 Conflict for a write based on an old resourceVersion, in upstream's words.
    pub fn modified(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError::conflict(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid with one cause per bad field.
    pub fn invalid(info: &ResourceInfo, name: &str, causes: Vec<Cause>) -> ApiError {
        let rendered: Vec<String> = causes.iter().map(Cause::render).collect();
        let joined = if rendered.len() == 1 { rendered[0].clone() } else { format!("[{}]", rendered.join(", ")) };
        let mut d = json!({
            "name": name,
            "kind": info.kind,
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
        });
        if !info.group.is_empty() {
            d["group"] = json!(info.group);
        }
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{name}\" is invalid: {joined}", info.kind),
            details: Some(d),
        }
    }

    /// 405 MethodNotAllowed: the verb is not served on this path.
    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    /// 403 Forbidden for `name` of `info` (admission or policy refused it), `why` saying why.
    pub fn forbidden(info: &ResourceInfo, name: &str, why: &str) -> ApiError {
        ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!("{} \"{name}\" is forbidden: {why}", info.group_resource()),
            details: Some(details(info, name)),
        }
    }

    /// 410 Expired: a resourceVersion or continue token older than the compacted history.
    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge for a body over `limit` bytes.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {limit}"))
    }

    /// Upstream's 415 for a body in a media type the endpoint does not take, listing the ones it does.
    pub fn unsupported_media_type(accepted: &[&str]) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: {}", accepted.join(", ")),
        )
    }

    /// 406 NotAcceptable for an `Accept` the server cannot answer in, `what` being what was asked.
    pub fn not_acceptable(what: &str) -> ApiError {
        ApiError::new(406, "NotAcceptable", format!("only the following media types are accepted: application/json, application/yaml (got {what})"))
    }

    /// 500 InternalError: something failed on the server's side (storage, encoding), not in the request.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }

    /// 504 Timeout: the server could not finish in time (waiting for a revision, a watch cache).
    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(504, "Timeout", message)
    }

    /// Maps a storage error about `name` of `info` to the API error clients expect.
    pub fn from_storage(info: &ResourceInfo, name: &str, err: StorageError) -> ApiError {
        match err {
            StorageError::AlreadyExists { .. } => ApiError::already_exists(info, name),
            StorageError::NotFound { .. } => ApiError::not_found(info, name),
            StorageError::Conflict { .. } => ApiError::modified(info, name),
            StorageError::Compacted { requested, compacted } => {
                ApiError::gone(format!("too old resource version: {requested} ({compacted})"))
            }
            StorageError::FutureRevision { requested, current } => ApiError::timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            )),
            other => {
                tracing::error!(error = %other, resource = info.resource, name, "storage failure");
                ApiError::internal(other.to_string())
            }
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// A `Status` with status Success (what some deletes answer).
pub fn success(info: &ResourceInfo, name: &str, uid: &str) -> Value {
    let mut d = details(info, name);
    d["uid"] = json!(uid);
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;

    #[test]
    fn invalid_message_matches_kubernetes() {
        let pods = find("", "v1", "pods").expect("pods");
        let e = ApiError::invalid(pods, "X", vec![Cause::invalid("metadata.name", &json!("X"), "bad")]);
        assert_eq!(e.code, 422);
        assert_eq!(e.message, "Pod \"X\" is invalid: metadata.name: Invalid value: \"X\": bad");
        let s = e.to_status();
        assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
    }

    #[test]
    fn not_found_names_group_resource() {
        let d = find("apps", "v1", "deployments").expect("deployments");
        assert_eq!(ApiError::not_found(d, "web").message, "deployments.apps \"web\" not found");
    }
}
