//! Service account tokens: the TokenRequest API (`POST .../serviceaccounts/<name>/token`, what
//! `kubectl create token` calls) issues JWTs signed with the cluster's service account key (ES256), and bearer
//! tokens on requests are verified back into `system:serviceaccount:<ns>:<name>` users, as upstream's bound
//! service account tokens: signature, expiry, audience, and the service account (and the pod a token is
//! bound to) still existing with the uid the token names.

use serde_json::{json, Value};

use super::user::{User, AUTHENTICATED};
use crate::registry::{self, ResourceInfo};
use crate::state::ApiState;
use crate::status::{ApiError, Cause};

/// Issuer and default audience, as upstream's default `--service-account-issuer`/`--api-audiences`.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Upstream's floor for `expirationSeconds`.
const MIN_EXPIRATION: i64 = 600;
const DEFAULT_EXPIRATION: i64 = 3600;

async fn read(state: &ApiState, info: &'static ResourceInfo, ns: &str, name: &str) -> Result<Option<Value>, ApiError> {
    crate::object::read_as(state.store.as_ref(), info, Some(ns), name).await
}

/// Answers a TokenRequest for service account `name` in `ns`: the request with `status.token` and
/// `status.expirationTimestamp` filled in.
pub async fn request(state: &ApiState, ns: &str, name: &str, mut body: Value) -> Result<Value, ApiError> {
    let info = registry::builtin::SERVICE_ACCOUNTS;
    let Some(sa) = read(state, registry::builtin::SERVICE_ACCOUNTS, ns, name).await? else {
        return Err(ApiError::not_found(info, name));
    };
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let expiration = spec.get("expirationSeconds").and_then(Value::as_i64).unwrap_or(DEFAULT_EXPIRATION);
    if expiration < MIN_EXPIRATION {
        return Err(ApiError::invalid(
            info,
            name,
            vec![Cause::invalid("spec.expirationSeconds", &json!(expiration), "may not specify a duration less than 10 minutes")],
        ));
    }
    let audiences: Vec<String> = serde_json::from_value(spec.get("audiences").cloned().unwrap_or(Value::Null)).unwrap_or_default();
    let audiences = if audiences.is_empty() { vec![ISSUER.to_string()] } else { audiences };
    let now = chrono::Utc::now().timestamp();
    let mut k8s = json!({
        "namespace": ns,
        "serviceaccount": {"name": name, "uid": sa.pointer("/metadata/uid").cloned().unwrap_or(Value::Null)},
    });
    if let Some(bound) = spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        let kind = bound.get("kind").and_then(Value::as_str).unwrap_or_default();
        let bound_name = bound.get("name").and_then(Value::as_str).unwrap_or_default();
        if kind != "Pod" && kind != "Secret" {
            return Err(ApiError::invalid(
                info,
                name,
                vec![Cause::not_supported("spec.boundObjectRef.kind", &json!(kind), &["Pod", "Secret"])],
            ));
        }
        let target = if kind == "Pod" { registry::builtin::PODS } else { registry::builtin::SECRETS };
        let Some(obj) = read(state, target, ns, bound_name).await? else {
            return Err(ApiError::not_found(target, bound_name));
        };
        let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
        if let Some(want) = bound.get("uid").and_then(Value::as_str).filter(|u| !u.is_empty()) {
            if uid != want {
                return Err(ApiError::conflict(info, name, &format!("the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated")));
            }
        }
        k8s[if kind == "Pod" { "pod" } else { "secret" }] = json!({"name": bound_name, "uid": uid});
    }
    let claims = json!({
        "aud": audiences,
        "exp": now + expiration,
        "iat": now,
        "nbf": now,
        "iss": ISSUER,
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": k8s,
        "sub": format!("system:serviceaccount:{ns}:{name}"),
    });
    let token = state.tokens.sign(&claims);
    let expires = chrono::DateTime::from_timestamp(now + expiration, 0).unwrap_or_default();
    body["spec"]["audiences"] = json!(audiences);
    body["spec"]["expirationSeconds"] = json!(expiration);
    body["status"] = json!({"token": token, "expirationTimestamp": expires.format("%Y-%m-%dT%H:%M:%SZ").to_string()});
    body["apiVersion"] = json!("authentication.k8s.io/v1");
    body["kind"] = json!("TokenRequest");
    if !body["metadata"].is_object() {
        body["metadata"] = json!({});
    }
    body["metadata"]["name"] = json!(name);
    body["metadata"]["namespace"] = json!(ns);
    body["metadata"]["creationTimestamp"] = Value::Null;
    tracing::debug!(namespace = ns, serviceaccount = name, expiration, "issued service account token");
    Ok(body)
}

/// The user a bearer token names, or why it does not authenticate (answered 401). The token must be meant for
/// one of `audiences` (the API server's own for requests; a TokenReview may name others).
pub async fn authenticate(state: &ApiState, token: &str, audiences: &[&str]) -> Result<User, String> {
    let claims = state.tokens.verified_claims(token).ok_or("invalid bearer token")?;
    let now = chrono::Utc::now().timestamp();
    if claims["iss"] != ISSUER {
        return Err("token issuer is not this cluster".into());
    }
    if claims["exp"].as_i64().is_none_or(|exp| exp < now) || claims["nbf"].as_i64().is_some_and(|nbf| nbf > now + 60) {
        return Err("token has expired".into());
    }
    if !claims["aud"].as_array().is_some_and(|a| a.iter().any(|x| audiences.iter().any(|want| x == want))) {
        return Err(format!("token audiences do not include {audiences:?}"));
    }
    let k8s = &claims["kubernetes.io"];
    let ns = k8s["namespace"].as_str().unwrap_or_default();
    let sa_name = k8s["serviceaccount"]["name"].as_str().unwrap_or_default();
    let sa = read(state, registry::builtin::SERVICE_ACCOUNTS, ns, sa_name).await.map_err(|e| e.message)?;
    if sa.as_ref().and_then(|s| s.pointer("/metadata/uid")) != Some(&k8s["serviceaccount"]["uid"]) {
        return Err(format!("service account {ns}/{sa_name} has been deleted"));
    }
    for (kind, resource) in [("pod", registry::builtin::PODS), ("secret", registry::builtin::SECRETS)] {
        if let Some(bound) = k8s.get(kind).filter(|b| b.is_object()) {
            let bound_name = bound["name"].as_str().unwrap_or_default();
            let obj = read(state, resource, ns, bound_name).await.map_err(|e| e.message)?;
            if obj.as_ref().and_then(|o| o.pointer("/metadata/uid")) != Some(&bound["uid"]) {
                return Err(format!("{kind} {ns}/{bound_name} the token is bound to no longer exists"));
            }
        }
    }
    let mut extra = std::collections::BTreeMap::new();
    if let Some(p) = k8s.get("pod").filter(|b| b.is_object()) {
        extra.insert("authentication.kubernetes.io/pod-name".to_string(), vec![p["name"].as_str().unwrap_or_default().to_string()]);
        extra.insert("authentication.kubernetes.io/pod-uid".to_string(), vec![p["uid"].as_str().unwrap_or_default().to_string()]);
    }
    if let Some(jti) = claims["jti"].as_str() {
        extra.insert("authentication.kubernetes.io/credential-id".to_string(), vec![format!("JTI={jti}")]);
    }
    Ok(User {
        name: format!("system:serviceaccount:{ns}:{sa_name}"),
        uid: k8s["serviceaccount"]["uid"].as_str().unwrap_or_default().to_string(),
        groups: vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}"), AUTHENTICATED.into()],
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::super::keys::TokenKeys;
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    #[test]
    fn tokens_verify_only_with_their_key_and_intact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = TokenKeys::load_or_create(Some(dir.path())).expect("create");
        let again = TokenKeys::load_or_create(Some(dir.path())).expect("reload");
        assert_eq!(keys.key_id, again.key_id, "the stored key is reused");
        let t = keys.sign(&json!({"sub": "system:serviceaccount:a:b"}));
        assert_eq!(again.verified_claims(&t).expect("verifies")["sub"], "system:serviceaccount:a:b");
        let other = TokenKeys::load_or_create(None).expect("ephemeral");
        assert!(other.verified_claims(&t).is_none(), "another key does not verify it");
        let (head, rest) = t.split_once('.').expect("jwt");
        let (_, sig) = rest.split_once('.').expect("jwt");
        let forged = format!("{head}.{}.{sig}", URL_SAFE_NO_PAD.encode(r#"{"sub":"system:serviceaccount:kube-system:admin"}"#));
        assert!(keys.verified_claims(&forged).is_none(), "changed claims break the signature");
    }
}
