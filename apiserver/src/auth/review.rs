//! The review APIs: create-only resources answered from the authorizer and never stored.
//! - `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview and
//!   LocalSubjectAccessReview (someone else, e.g. `kubectl auth can-i --as`), SelfSubjectRulesReview
//!   (`kubectl auth can-i --list`);
//! - `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`) and TokenReview (is this service
//!   account token good, and whose is it: what webhook authenticators and Vault ask).

use std::collections::BTreeMap;

use k8s_openapi::api::authorization::v1::{NonResourceAttributes, ResourceAttributes};
use serde_json::{json, Value};

use super::attributes::Attributes;
use super::rbac;
use super::user::{User, MASTERS};
use crate::registry::ResourceInfo;
use crate::state::ApiState;
use crate::status::ApiError;

/// Answers a create of a review: the request body with `status` filled in.
pub async fn create(state: &ApiState, user: &User, info: &ResourceInfo, namespace: Option<&str>, mut body: Value) -> Result<Value, ApiError> {
    crate::admission::check_type(info, &mut body)?;
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let status = match info.resource {
        "selfsubjectreviews" => json!({"userInfo": user_info(user)}),
        "tokenreviews" => {
            let token = spec.get("token").and_then(Value::as_str).unwrap_or_default();
            let wanted: Vec<String> = serde_json::from_value(spec.get("audiences").cloned().unwrap_or(Value::Null)).unwrap_or_default();
            let audiences: Vec<&str> = if wanted.is_empty() { vec![super::token::ISSUER] } else { wanted.iter().map(String::as_str).collect() };
            match super::token::authenticate(state, token, &audiences).await {
                Ok(u) => json!({"authenticated": true, "user": user_info(&u), "audiences": audiences}),
                Err(why) => json!({"authenticated": false, "error": why}),
            }
        }
        "selfsubjectrulesreviews" => {
            let ns = spec.get("namespace").and_then(Value::as_str).unwrap_or_default();
            rules_review(state, user, ns).await?
        }
        "selfsubjectaccessreviews" => access_review(state, user, &spec, None).await?,
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let subject = subject_of(&spec).ok_or_else(|| {
                ApiError::invalid(info, "", vec![crate::status::Cause::required("spec.user", "at least one of user or group must be specified")])
            })?;
            access_review(state, &subject, &spec, namespace).await?
        }
        other => return Err(ApiError::method_not_allowed(format!("{other} are not reviews"))),
    };
    body["status"] = status;
    if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("creationTimestamp".into(), Value::Null);
    } else {
        body["metadata"] = json!({"creationTimestamp": null});
    }
    Ok(body)
}

fn user_info(user: &User) -> Value {
    let mut v = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        v["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        v["extra"] = json!(user.extra);
    }
    v
}

/// The user a SubjectAccessReview asks about.
fn subject_of(spec: &Value) -> Option<User> {
    let name = spec.get("user").and_then(Value::as_str).unwrap_or_default().to_string();
    let groups: Vec<String> = serde_json::from_value(spec.get("groups").cloned().unwrap_or(Value::Null)).unwrap_or_default();
    if name.is_empty() && groups.is_empty() {
        return None;
    }
    let extra: BTreeMap<String, Vec<String>> = serde_json::from_value(spec.get("extra").cloned().unwrap_or(Value::Null)).unwrap_or_default();
    let uid = spec.get("uid").and_then(Value::as_str).unwrap_or_default().to_string();
    Some(User { name, uid, groups, extra })
}

async fn access_review(state: &ApiState, user: &User, spec: &Value, forced_namespace: Option<&str>) -> Result<Value, ApiError> {
    let attrs = if let Some(r) = spec.get("resourceAttributes").filter(|v| !v.is_null()) {
        let r: ResourceAttributes = serde_json::from_value(r.clone()).map_err(|e| ApiError::bad_request(format!("spec.resourceAttributes: {e}")))?;
        Attributes {
            verb: r.verb.unwrap_or_default(),
            resource_request: true,
            namespace: forced_namespace.map(str::to_string).or(r.namespace).unwrap_or_default(),
            api_group: r.group.unwrap_or_default(),
            resource: r.resource.unwrap_or_default(),
            subresource: r.subresource.unwrap_or_default(),
            name: r.name.unwrap_or_default(),
            path: String::new(),
        }
    } else if let Some(n) = spec.get("nonResourceAttributes").filter(|v| !v.is_null()) {
        let n: NonResourceAttributes = serde_json::from_value(n.clone()).map_err(|e| ApiError::bad_request(format!("spec.nonResourceAttributes: {e}")))?;
        Attributes { verb: n.verb.unwrap_or_default(), path: n.path.unwrap_or_default(), ..Default::default() }
    } else {
        return Err(ApiError::bad_request("spec: exactly one of nonResourceAttributes or resourceAttributes must be specified"));
    };
    if user.is_privileged() {
        return Ok(json!({"allowed": true, "reason": format!("the user is in the {} group", MASTERS)}));
    }
    let d = super::decide(state, user, &attrs).await?;
    let mut status = json!({"allowed": d.allowed});
    if !d.reason.is_empty() {
        status["reason"] = json!(d.reason);
    }
    Ok(status)
}

async fn rules_review(state: &ApiState, user: &User, namespace: &str) -> Result<Value, ApiError> {
    let rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule> = if user.is_privileged() {
        serde_json::from_value(Value::Array(super::bootstrap::cluster_admin_rules())).unwrap_or_default()
    } else {
        rbac::grants(state, user, namespace).await?.into_iter().flat_map(|g| g.rules).collect()
    };
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in rules {
        if let Some(urls) = r.non_resource_urls.filter(|u| !u.is_empty()) {
            non_resource_rules.push(json!({"verbs": r.verbs, "nonResourceURLs": urls}));
        }
        if r.resources.as_ref().is_some_and(|x| !x.is_empty()) {
            let mut rr = json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if let Some(n) = r.resource_names.filter(|n| !n.is_empty()) {
                rr["resourceNames"] = json!(n);
            }
            resource_rules.push(rr);
        }
    }
    Ok(json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false}))
}
