//! CertificateSigningRequests, as upstream's registry strategy (`pkg/registry/certificates/certificates/strategy.go`):
//! on create the requester (`spec.username`, `uid`, `groups`, `extra`) is set from who is asking, never from the
//! body, and status is cleared; `/approval` writes only the conditions (`kubectl certificate approve|deny`),
//! `/status` writes the certificate and the other conditions but never Approved or Denied. Condition times are
//! filled in when a client leaves them out. The request, signer and usages are checked by
//! `validation::certificates`. Signing and approving are the controllers' (controllers/src/certificates.rs).

use serde_json::{json, Value};

use super::{validate_with, Strategy};
use crate::auth::User;
use crate::registry::ResourceInfo;
use crate::status::Cause;
use crate::table::{self, Printer};
use crate::validation::certificates;

/// CertificateSigningRequests.
pub struct CertificateSigningRequests;

impl Strategy for CertificateSigningRequests {
    fn printer(&self) -> &'static Printer {
        &table::CERTIFICATE_SIGNING_REQUEST
    }

    fn prepare_for_create(&self, _info: &ResourceInfo, obj: Value, user: &User) -> Value {
        requester_from(obj, user)
    }

    fn for_subresource(&self, _info: &ResourceInfo, subresource: Option<&str>, cur: &Value, next: Value) -> Value {
        subresource_write(subresource, cur, next)
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |causes| certificates::validate_csr(obj, old, causes))
    }
}

/// The object to create: requester fields from `user`, no status.
fn requester_from(mut obj: Value, user: &User) -> Value {
    if !obj.is_object() {
        return obj;
    }
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    spec["username"] = json!(user.name);
    spec["uid"] = json!(user.uid);
    spec["groups"] = json!(user.groups);
    spec["extra"] = json!(user.extra);
    if user.uid.is_empty() {
        if let Some(m) = spec.as_object_mut() {
            m.remove("uid");
        }
    }
    if user.extra.is_empty() {
        if let Some(m) = spec.as_object_mut() {
            m.remove("extra");
        }
    }
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    obj
}

fn is_approval(c: &Value) -> bool {
    matches!(c.get("type").and_then(Value::as_str), Some("Approved" | "Denied"))
}

/// `next` (the client's whole object for a write to `subresource`) reduced to what that subresource may
/// change; the main resource passes through. Writes through `/approval` and `/status` then go the ordinary
/// status path (`admission::Part::Status`).
fn subresource_write(subresource: Option<&str>, cur: &Value, next: Value) -> Value {
    let conditions = |o: &Value| o.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out = match subresource {
        Some("approval") => {
            // all conditions from the client; the certificate stays
            let mut o = next.clone();
            if !o.get("status").is_some_and(Value::is_object) {
                o["status"] = json!({});
            }
            match cur.pointer("/status/certificate") {
                Some(c) => o["status"]["certificate"] = c.clone(),
                None => {
                    if let Some(m) = o["status"].as_object_mut() {
                        m.remove("certificate");
                    }
                }
            }
            o
        }
        Some("status") => {
            // Approved and Denied stay as they were; the rest from the client
            let mut o = next.clone();
            if !o.get("status").is_some_and(Value::is_object) {
                o["status"] = json!({});
            }
            let mut kept: Vec<Value> = conditions(cur).into_iter().filter(is_approval).collect();
            kept.extend(conditions(&next).into_iter().filter(|c| !is_approval(c)));
            o["status"]["conditions"] = json!(kept);
            o
        }
        _ => return next,
    };
    let now = crate::object::now_rfc3339();
    if let Some(list) = out.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
        for c in list.iter_mut().filter(|c| c.is_object()) {
            for field in ["lastUpdateTime", "lastTransitionTime"] {
                if c.get(field).is_none_or(Value::is_null) {
                    c[field] = json!(now);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::User;
    use crate::strategy::of;

    fn csr_info() -> &'static ResourceInfo {
        crate::registry::builtin::CERTIFICATE_SIGNING_REQUESTS
    }

    #[test]
    fn requester_comes_from_the_user_not_the_body() {
        let body = json!({"spec": {"username": "system:node:evil", "groups": ["system:masters"], "request": "x"}, "status": {"certificate": "Zm9v"}});
        let user = User { name: "system:bootstrap:abcdef".into(), groups: vec!["system:bootstrappers".into()], ..Default::default() };
        let got = of(csr_info()).prepare_for_create(csr_info(), body, &user);
        assert_eq!(got["spec"]["username"], "system:bootstrap:abcdef");
        assert_eq!(got["spec"]["groups"], json!(["system:bootstrappers"]));
        assert_eq!(got["spec"]["request"], "x");
        assert!(got.get("status").is_none());
    }

    #[test]
    fn approval_writes_conditions_and_status_writes_the_rest() {
        let cur = json!({"spec": {}, "status": {"conditions": [{"type": "Approved", "status": "True"}]}});
        // /status cannot drop Approved, can set the certificate
        let next = json!({"spec": {}, "status": {"certificate": "Y2VydA==", "conditions": [{"type": "Denied", "status": "True"}]}});
        let s = of(csr_info()).for_subresource(csr_info(), Some("status"), &cur, next);
        assert_eq!(s["status"]["certificate"], "Y2VydA==");
        let types: Vec<&str> = s["status"]["conditions"].as_array().expect("list").iter().filter_map(|c| c["type"].as_str()).collect();
        assert_eq!(types, vec!["Approved"]);
        // /approval cannot set the certificate
        let next = json!({"spec": {}, "status": {"certificate": "Y2VydA==", "conditions": [{"type": "Denied", "status": "True"}]}});
        let a = of(csr_info()).for_subresource(csr_info(), Some("approval"), &json!({"spec": {}}), next);
        assert!(a["status"].get("certificate").is_none());
        assert_eq!(a["status"]["conditions"][0]["type"], "Denied");
        assert!(a["status"]["conditions"][0]["lastUpdateTime"].is_string());
    }
}
