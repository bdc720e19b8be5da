//! The bootstrap token authenticator (upstream's `--enable-bootstrap-token-auth`): `Authorization: Bearer
//! <id>.<secret>` is checked against the Secret `bootstrap-token-<id>` in kube-system and names user
//! `system:bootstrap:<id>` in `system:bootstrappers` (plus the token's `auth-extra-groups`) and
//! `system:authenticated`. A missing, deleted, expired or mismatching token is a 401, as upstream. The token's
//! rules are in `rkube_apimachinery::bootstrap_token`.

use std::collections::BTreeMap;

use base64::Engine;
use rkube_apimachinery::bootstrap_token as bt;
use serde_json::Value;

use super::user::{User, AUTHENTICATED};
use crate::registry;
use crate::state::ApiState;

/// Whether `token` has a bootstrap token's shape (then only this authenticator judges it).
pub fn looks_like(token: &str) -> bool {
    bt::parse(token).is_ok()
}

/// The user a bootstrap token names, or why it does not authenticate.
pub async fn authenticate(state: &ApiState, token: &str) -> Result<User, String> {
    let (id, _) = bt::parse(token).map_err(|e| e.to_string())?;
    let info = registry::builtin::SECRETS;
    let name = bt::secret_name(id);
    let secret: Value = crate::object::read_as(state.store.as_ref(), info, Some(bt::NAMESPACE), &name)
        .await
        .map_err(|e| e.message)?
        .ok_or_else(|| format!("no secret {}/{name} for bootstrap token {id}", bt::NAMESPACE))?;
    if secret.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
        return Err(format!("secret {}/{name} is being deleted", bt::NAMESPACE));
    }
    if secret.get("type").and_then(Value::as_str) != Some(bt::SECRET_TYPE) {
        return Err(format!("secret {}/{name} is not of type {}", bt::NAMESPACE, bt::SECRET_TYPE));
    }
    let (user, mut groups) = token_secret(&secret).authenticate(token, chrono::Utc::now())?;
    groups.push(AUTHENTICATED.into());
    Ok(User { name: user, groups, ..Default::default() })
}

/// A Secret's data, base64-decoded (values that do not decode are left out).
fn token_secret(secret: &Value) -> bt::TokenSecret {
    let b64 = base64::engine::general_purpose::STANDARD;
    let data: BTreeMap<String, String> = secret
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let bytes = b64.decode(v.as_str()?).ok()?;
            Some((k.clone(), String::from_utf8(bytes).ok()?))
        })
        .collect();
    bt::TokenSecret { data }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_data_is_decoded() {
        let s = json!({"data": {"token-id": "YWJjZGVm", "bad": "%%%"}});
        let t = token_secret(&s);
        assert_eq!(t.data.get("token-id").map(String::as_str), Some("abcdef"));
        assert!(!t.data.contains_key("bad"));
        assert!(looks_like("abcdef.0123456789abcdef") && !looks_like("eyJhbGciOi.x.y"));
    }
}
