//! Who is asking, and may they. Every request passes through [`admit`] before anything else:
//!
//! 1. Authentication: the TLS client certificate names the user (CN) and groups (O), as upstream's x509
//!    authenticator; without one, a service account bearer token names it, and with neither the request is
//!    `system:anonymous` on the health and version paths ([`ANONYMOUS_PATHS`]) and 401 anywhere else; plain
//!    HTTP (tests, `ServerConfig::insecure_listen`) is upstream's old insecure port, a privileged
//!    `system:unsecured` user.
//! 2. Impersonation: `Impersonate-User`/`-Group`/`-Uid`/`-Extra-*` headers (`kubectl --as`), each allowed by the
//!    `impersonate` verb on users/groups/serviceaccounts/uids/userextras.
//! 3. Authorization: [`attributes`] reads the verb, resource and namespace off the request as upstream's
//!    RequestInfo does (from the one parsed `request::Query` the handler reads too), and [`rbac`] evaluates
//!    the stored Roles and bindings (the built-in ones come from [`bootstrap`]). `system:masters` is allowed everything without a lookup, as upstream.
//!    Kubelets (`system:node:<name>` in `system:nodes`) meet the [`node`] authorizer first, as upstream's
//!    `--authorization-mode=Node,RBAC`: what it allows is allowed, what it does not goes on to RBAC.
//!
//! The review APIs `kubectl auth can-i` and `kubectl auth whoami` call are in [`review`]; service account
//! tokens (TokenRequest, bearer authentication) in [`token`]; bootstrap tokens (`<id>.<secret>`, what `rkube join`
//! files its CSR with) in [`bootstrap_token`].

pub mod attributes;
pub mod bootstrap;
pub mod bootstrap_token;
pub mod rbac;
pub mod review;
pub mod keys;
pub mod node;
pub mod token;
pub mod user;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderMap;

use crate::state::ApiState;
use crate::status::ApiError;
use attributes::Attributes;
pub use user::{TlsIdentity, User, AUTHENTICATED, MASTERS};

/// The user of a request with no credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of a request with no credentials (what RBAC bindings for anonymous access name).
pub const UNAUTHENTICATED: &str = "system:unauthenticated";

/// The only paths a request without credentials is taken as [`ANONYMOUS`] on: the URLs of upstream's
/// `system:public-info-viewer` (health and version), matched exactly as upstream's structured authentication
/// configuration matches `anonymous.conditions[].path`. Anywhere else no credentials is 401 `Unauthorized`,
/// as upstream with anonymous authentication limited to these endpoints (its `--anonymous-auth=false` plus
/// the health checks load balancers need); what ANONYMOUS may do on them is still up to RBAC (403 when the
/// binding is gone).
pub const ANONYMOUS_PATHS: &[&str] = &[
    "/healthz",
    "/livez",
    "/readyz",
    "/version",
    "/version/",
    // node discovery (`rkube join`, `kubeadm join`): the cluster's CA and address, readable by anonymous through
    // kubeadm's `kubeadm:bootstrap-signer-clusterinfo` RoleBinding, trusted by the CA pin and the token's JWS
    "/api/v1/namespaces/kube-public/configmaps/cluster-info",
];

/// Upstream's answer to a request it cannot authenticate.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// Authenticates (the connection's certificate, else a bearer token) and applies impersonation headers.
/// Returns the user the request for `path` acts as; a request without credentials is [`ANONYMOUS`] on
/// [`ANONYMOUS_PATHS`] only, 401 elsewhere.
pub async fn authenticate(state: &ApiState, tls: Option<&TlsIdentity>, headers: &HeaderMap, path: &str) -> Result<Arc<User>, ApiError> {
    let requester = match tls {
        None => Arc::new(User::unsecured()),
        Some(TlsIdentity(Some(user))) => user.clone(),
        Some(TlsIdentity(None)) => Arc::new(authenticate_bearer(state, headers).await?),
    };
    if requester.name == ANONYMOUS && !ANONYMOUS_PATHS.contains(&path) {
        tracing::debug!(path, "no credentials on a path that needs them");
        return Err(unauthorized());
    }
    impersonate(state, requester, headers).await
}

/// Authorizes what `attrs` asks for `user` (upstream's 403 when no rule allows it). `attrs` must come from the
/// same parsed request the handler serves (`Attributes::from_request` with the request's one `Query`).
pub async fn authorize(state: &ApiState, user: &User, attrs: &Attributes) -> Result<(), ApiError> {
    if user.is_privileged() {
        return Ok(());
    }
    let d = decide(state, user, attrs).await?;
    if !d.allowed {
        tracing::debug!(user = %user.name, verb = %attrs.verb, path = %attrs.path, "forbidden");
        let mut e = attrs.forbidden(&user.name);
        // upstream's Forbidden: the authorizers' reasons follow the message
        if !d.reason.is_empty() {
            e.message = format!("{}: {}", e.message, d.reason);
        }
        return Err(e);
    }
    Ok(())
}

/// The authorizer chain, `Node,RBAC` as upstream's default for kubeadm clusters: the node authorizer's allow
/// ends it; otherwise RBAC decides, and a denial carries the node authorizer's reason.
pub async fn decide(state: &ApiState, user: &User, attrs: &Attributes) -> Result<rbac::Decision, ApiError> {
    let node_reason = match node::authorize(state, user, attrs).await? {
        Some(node::Decision::Allow) => return Ok(rbac::Decision { allowed: true, reason: String::new() }),
        Some(node::Decision::NoOpinion(reason)) => reason,
        None => String::new(),
    };
    let d = rbac::authorize(state, user, attrs).await?;
    if d.allowed || node_reason.is_empty() {
        return Ok(d);
    }
    let reason = if d.reason.is_empty() { node_reason } else { format!("{node_reason}\n{}", d.reason) };
    Ok(rbac::Decision { allowed: false, reason })
}

/// A bearer token's service account, `system:anonymous` without a token, 401 for a token that does not verify.
async fn authenticate_bearer(state: &ApiState, headers: &HeaderMap) -> Result<User, ApiError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(User { name: "system:anonymous".into(), groups: vec!["system:unauthenticated".into()], ..Default::default() });
    };
    let token = value.strip_prefix("Bearer ").map(str::trim).unwrap_or_default();
    if bootstrap_token::looks_like(token) {
        return bootstrap_token::authenticate(state, token).await.map_err(|why| {
            tracing::debug!(reason = %why, "bootstrap token refused");
            ApiError::new(401, "Unauthorized", "Unauthorized")
        });
    }
    token::authenticate(state, token, &[token::ISSUER]).await.map_err(|why| {
        tracing::debug!(reason = %why, "bearer token refused");
        ApiError::new(401, "Unauthorized", "Unauthorized")
    })
}

/// The user named by impersonation headers, if any, once `requester` is allowed to act as it.
async fn impersonate(state: &ApiState, requester: Arc<User>, headers: &HeaderMap) -> Result<Arc<User>, ApiError> {
    if !headers.keys().any(|k| k.as_str().starts_with("impersonate-")) {
        return Ok(requester);
    }
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
    };
    let users = values("impersonate-user");
    let groups = values("impersonate-group");
    let uids = values("impersonate-uid");
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix("impersonate-extra-") {
            let key = percent_decode(key);
            extra.entry(key).or_default().extend(v.to_str().ok().map(str::to_string));
        }
    }
    let Some(name) = users.first().cloned() else {
        if !groups.is_empty() || !uids.is_empty() || !extra.is_empty() {
            return Err(ApiError::new(
                500,
                "InternalError",
                "Internal error occurred: requested impersonation of groups, uid or extra without impersonating a user",
            ));
        }
        return Ok(requester);
    };
    let mut wanted = Vec::new();
    let sa = User { name: name.clone(), ..Default::default() };
    match sa.service_account() {
        Some((ns, n)) => wanted.push(Attributes::impersonation("serviceaccounts", "", ns, n)),
        None => wanted.push(Attributes::impersonation("users", "", "", &name)),
    }
    wanted.extend(groups.iter().map(|g| Attributes::impersonation("groups", "", "", g)));
    wanted.extend(uids.iter().map(|u| Attributes::impersonation("uids", "", "", u)));
    for (k, vs) in &extra {
        wanted.extend(vs.iter().map(|v| Attributes::impersonation("userextras", k, "", v)));
    }
    if !requester.is_privileged() {
        for attrs in &wanted {
            if !rbac::authorize(state, &requester, attrs).await?.allowed {
                return Err(attrs.forbidden(&requester.name));
            }
        }
    }
    let mut all_groups = groups;
    if all_groups.is_empty() {
        if let Some((ns, _)) = sa.service_account() {
            all_groups.push("system:serviceaccounts".into());
            all_groups.push(format!("system:serviceaccounts:{ns}"));
        }
    }
    if name != "system:anonymous" && !all_groups.iter().any(|g| g == AUTHENTICATED) {
        all_groups.push(AUTHENTICATED.into());
    }
    tracing::debug!(requester = %requester.name, user = %name, "impersonating");
    Ok(Arc::new(User { name, uid: uids.into_iter().next().unwrap_or_default(), groups: all_groups, extra }))
}

/// Header names carry extra keys percent-encoded (`Impersonate-Extra-scopes%2Fx`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_subject_names_user_and_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = crate::tls::ensure_pki(dir.path(), &[]).expect("pki");
        let pair = crate::tls::issue_user(&pki, "alice", &["devs".into()]).expect("issue");
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::pem_slice_iter(pair.cert.as_bytes()).next().expect("one").expect("pem");
        let user = User::from_certificate(&der).expect("parsed");
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, vec!["devs", AUTHENTICATED]);
        assert!(crate::tls::issue_user(&pki, "bob", &["a".into(), "b".into()]).is_err(), "one group per certificate");
        assert!(!user.is_privileged());
    }

    #[test]
    fn service_account_users_split_namespace_and_name() {
        let u = User { name: "system:serviceaccount:kube-system:default".into(), ..Default::default() };
        assert_eq!(u.service_account(), Some(("kube-system", "default")));
        assert_eq!(User { name: "alice".into(), ..Default::default() }.service_account(), None);
    }

    #[test]
    fn extra_keys_are_percent_decoded() {
        assert_eq!(percent_decode("scopes%2Fa"), "scopes/a");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
    }
}
