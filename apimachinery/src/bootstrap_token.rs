//! Bootstrap tokens as upstream keeps them (`k8s.io/cluster-bootstrap/token`): a token `<id>.<secret>`
//! (`[a-z0-9]{6}.[a-z0-9]{16}`) lives in a Secret of type `bootstrap.kubernetes.io/token` named
//! `bootstrap-token-<id>` in kube-system, with the data keys below. The apiserver authenticates with it, the
//! token cleaner deletes it once expired, `rkube token` and `rkube join` make and use it. Pure: the clock is
//! passed in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// The Secret type of a bootstrap token.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// A token's Secret is named `bootstrap-token-<id>`.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The namespace of the tokens' Secrets.
pub const NAMESPACE: &str = "kube-system";
/// A token's user is `system:bootstrap:<id>`.
pub const USER_PREFIX: &str = "system:bootstrap:";
/// Every bootstrap token's user is in this group.
pub const GROUP: &str = "system:bootstrappers";
/// The extra group kubeadm gives the tokens it makes for joining nodes, and `rkube token create` too.
pub const DEFAULT_NODE_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

/// Data key: the token's id (the part before the dot).
pub const KEY_TOKEN_ID: &str = "token-id";
/// Data key: the token's secret (the part after the dot).
pub const KEY_TOKEN_SECRET: &str = "token-secret";
/// Data key: when the token expires (RFC 3339); none means never.
pub const KEY_EXPIRATION: &str = "expiration";
/// Data key: a human-readable note.
pub const KEY_DESCRIPTION: &str = "description";
/// Data key: comma-separated groups the token's user is in besides [`GROUP`].
pub const KEY_EXTRA_GROUPS: &str = "auth-extra-groups";
/// Data key: `"true"` when the token may authenticate to the apiserver.
pub const KEY_USAGE_AUTHENTICATION: &str = "usage-bootstrap-authentication";
/// Data key: `"true"` when the token signs the cluster-info ConfigMap.
pub const KEY_USAGE_SIGNING: &str = "usage-bootstrap-signing";

/// The ConfigMap in kube-public holding the cluster's CA and address, and the prefix of its per-token
/// signatures (`jws-kubeconfig-<id>`).
pub const CLUSTER_INFO: &str = "cluster-info";
/// The namespace of [`CLUSTER_INFO`], readable without credentials.
pub const PUBLIC_NAMESPACE: &str = "kube-public";
/// The prefix of a token's signature key in [`CLUSTER_INFO`]: `jws-kubeconfig-<id>`.
pub const JWS_PREFIX: &str = "jws-kubeconfig-";

/// What is wrong with a bootstrap token or its Secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not `<id>.<secret>` in the right alphabet and lengths.
    #[error("the token does not match the format [a-z0-9]{{6}}.[a-z0-9]{{16}}")]
    Format,
    /// A group in auth-extra-groups is outside `system:bootstrappers:`.
    #[error("auth-extra-groups {0:?}: a group must match system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]")]
    ExtraGroup(String),
}

fn all_lower_alnum(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `(id, secret)` of a token `<id>.<secret>`.
pub fn parse(token: &str) -> Result<(&str, &str), TokenError> {
    let (id, secret) = token.split_once('.').ok_or(TokenError::Format)?;
    if all_lower_alnum(id, 6) && all_lower_alnum(secret, 16) {
        Ok((id, secret))
    } else {
        Err(TokenError::Format)
    }
}

/// Whether `id` is a token id (`[a-z0-9]{6}`).
pub fn is_token_id(id: &str) -> bool {
    all_lower_alnum(id, 6)
}

/// The Secret holding token `id`.
pub fn secret_name(id: &str) -> String {
    format!("{SECRET_PREFIX}{id}")
}

/// Whether a token with this `expiration` (RFC3339; None: never expires) has expired at `now`. An expiration
/// that does not parse counts as expired, as upstream.
pub fn expired(expiration: Option<&str>, now: DateTime<Utc>) -> bool {
    match expiration {
        None => false,
        Some(e) => DateTime::parse_from_rfc3339(e).map_or(true, |t| t.with_timezone(&Utc) < now),
    }
}

/// The extra groups of `auth-extra-groups` (comma-separated), each checked as upstream.
pub fn extra_groups(value: Option<&str>) -> Result<Vec<String>, TokenError> {
    let mut out = Vec::new();
    for g in value.unwrap_or_default().split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let rest = g.strip_prefix("system:bootstrappers:").ok_or_else(|| TokenError::ExtraGroup(g.into()))?;
        let ok = !rest.is_empty()
            && rest.len() <= 256
            && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
            && rest.bytes().last().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            return Err(TokenError::ExtraGroup(g.into()));
        }
        out.push(g.to_string());
    }
    Ok(out)
}

/// A token's Secret, as its decoded data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSecret {
    /// The Secret's data, base64-decoded.
    pub data: BTreeMap<String, String>,
}

impl TokenSecret {
    fn get(&self, k: &str) -> Option<&str> {
        self.data.get(k).map(String::as_str)
    }

    /// The token's expiration time as written in the Secret, if it has one.
    pub fn expiration(&self) -> Option<&str> {
        self.get(KEY_EXPIRATION)
    }

    /// The user and groups `token` authenticates as against this Secret at `now` (`system:authenticated` is
    /// the caller's to add), or why it does not: a wrong secret or id, expired, not for authentication, bad
    /// extra groups. Upstream's checks, in its order.
    pub fn authenticate(&self, token: &str, now: DateTime<Utc>) -> Result<(String, Vec<String>), String> {
        let (id, secret) = parse(token).map_err(|e| e.to_string())?;
        if self.get(KEY_TOKEN_ID) != Some(id) {
            return Err(format!("token id {id:?} does not match the secret's"));
        }
        // compared whole, not stopping at the first difference
        let stored = self.get(KEY_TOKEN_SECRET).unwrap_or_default().as_bytes();
        let same = stored.len() == secret.len() && stored.iter().zip(secret.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !same {
            return Err(format!("bootstrap token {id}: the secret does not match"));
        }
        if expired(self.expiration(), now) {
            return Err(format!("bootstrap token {id} has expired"));
        }
        if self.get(KEY_USAGE_AUTHENTICATION) != Some("true") {
            return Err(format!("bootstrap token {id} is not usable for authentication"));
        }
        let mut groups = vec![GROUP.to_string()];
        groups.extend(extra_groups(self.get(KEY_EXTRA_GROUPS)).map_err(|e| e.to_string())?);
        Ok((format!("{USER_PREFIX}{id}"), groups))
    }
}

/// The detached JWS (`<header>..<signature>`, HS256, `kid` the token id, keyed by the token secret) of
/// `content` that upstream's bootstrapsigner writes to cluster-info as `jws-kubeconfig-<id>` and `kubeadm join`
/// checks: the header is go-jose's (`{"alg":"HS256","kid":"<id>"}`), so the strings compare equal.
pub fn detached_jws(content: &str, id: &str, secret: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{id}"}}"#));
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(content));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let sig = ring::hmac::sign(&key, input.as_bytes());
    format!("{header}..{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(pairs: &[(&str, &str)]) -> TokenSecret {
        TokenSecret { data: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    #[test]
    fn jws_is_keyed_by_the_token() {
        let a = detached_jws("kubeconfig", "abcdef", "0123456789abcdef");
        let (header, sig) = a.split_once("..").expect("detached");
        assert_eq!(header, "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9");
        assert!(!sig.is_empty());
        assert_eq!(a, detached_jws("kubeconfig", "abcdef", "0123456789abcdef"));
        assert_ne!(a, detached_jws("kubeconfig", "abcdef", "0123456789abcdee"));
        assert_ne!(a, detached_jws("kubeconfig2", "abcdef", "0123456789abcdef"));
    }

    #[test]
    fn token_format_is_upstreams() {
        assert_eq!(parse("abcdef.0123456789abcdef"), Ok(("abcdef", "0123456789abcdef")));
        for bad in ["abcdef0123456789abcdef", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdef", "abcdef.0123456789abcde", "abcdef.0123456789abcdeg0", ""] {
            assert_eq!(parse(bad), Err(TokenError::Format), "{bad}");
        }
        assert!(is_token_id("a1b2c3") && !is_token_id("a1b2c"));
        assert_eq!(secret_name("abcdef"), "bootstrap-token-abcdef");
    }

    #[test]
    fn expiry_counts_unparsable_as_expired() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").expect("time").with_timezone(&Utc);
        assert!(!expired(None, now));
        assert!(!expired(Some("2026-01-01T00:00:01Z"), now));
        assert!(expired(Some("2025-12-31T23:59:59Z"), now));
        assert!(expired(Some("tomorrow"), now));
    }

    #[test]
    fn extra_groups_must_be_bootstrappers() {
        assert_eq!(extra_groups(Some("system:bootstrappers:kubeadm:default-node-token")).expect("ok"), vec![DEFAULT_NODE_GROUP]);
        assert!(extra_groups(None).expect("none").is_empty());
        assert!(extra_groups(Some("system:masters")).is_err());
        assert!(extra_groups(Some("system:bootstrappers:")).is_err());
        assert!(extra_groups(Some("system:bootstrappers:x-")).is_err());
    }

    #[test]
    fn authentication_checks_secret_expiry_and_usage() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").expect("time").with_timezone(&Utc);
        let good = [
            (KEY_TOKEN_ID, "abcdef"),
            (KEY_TOKEN_SECRET, "0123456789abcdef"),
            (KEY_USAGE_AUTHENTICATION, "true"),
            (KEY_EXPIRATION, "2026-01-02T00:00:00Z"),
            (KEY_EXTRA_GROUPS, DEFAULT_NODE_GROUP),
        ];
        let (user, groups) = secret(&good).authenticate("abcdef.0123456789abcdef", now).expect("authenticates");
        assert_eq!(user, "system:bootstrap:abcdef");
        assert_eq!(groups, vec![GROUP, DEFAULT_NODE_GROUP]);
        assert!(secret(&good).authenticate("abcdef.0123456789abcdee", now).is_err(), "wrong secret");
        assert!(secret(&good).authenticate("abcdeg.0123456789abcdef", now).is_err(), "wrong id");
        let later = now + chrono::Duration::days(2);
        assert!(secret(&good).authenticate("abcdef.0123456789abcdef", later).expect_err("expired").contains("expired"));
        let mut no_auth = good;
        no_auth[2] = (KEY_USAGE_AUTHENTICATION, "false");
        assert!(secret(&no_auth).authenticate("abcdef.0123456789abcdef", now).is_err());
        let mut bad_group = good;
        bad_group[4] = (KEY_EXTRA_GROUPS, "system:masters");
        assert!(secret(&bad_group).authenticate("abcdef.0123456789abcdef", now).is_err());
    }
}
