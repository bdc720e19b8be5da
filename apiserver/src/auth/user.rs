//! Who a request is: an authenticated (or impersonated) [`User`], and the mark the TLS layer leaves on a
//! connection ([`TlsIdentity`]). Plain data at the bottom of `auth`: the authenticators, the authorizer and the
//! listener all read it, and it reads nothing of theirs.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The group whose members may do everything, checked before any policy.
pub const MASTERS: &str = "system:masters";
/// Every authenticated user is in this group.
pub const AUTHENTICATED: &str = "system:authenticated";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// An authenticated (or impersonated) identity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// The user name RBAC subjects of kind User match (`kubernetes-admin`, `system:node:n1`).
    pub name: String,
    /// The user's uid, when the authenticator knows one (service account tokens).
    pub uid: String,
    /// The groups RBAC subjects of kind Group match, `system:authenticated` included.
    pub groups: Vec<String>,
    /// Extra attributes (impersonated `Impersonate-Extra-*`, a token's pod name), passed on to reviews.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// The user a client certificate names: CN is the user, each O a group.
    pub fn from_certificate(der: &[u8]) -> Option<User> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        let mut groups: Vec<String> =
            subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
        groups.push(AUTHENTICATED.to_string());
        Some(User { name, groups, ..Default::default() })
    }

    /// The identity of plain-HTTP requests: upstream's insecure port served them as this privileged user.
    pub fn unsecured() -> User {
        User { name: "system:unsecured".into(), groups: vec![MASTERS.into(), AUTHENTICATED.into()], ..Default::default() }
    }

    /// The apiserver itself, for work it does on its own (emptying a terminating namespace).
    pub fn internal() -> User {
        User { name: "system:apiserver".into(), groups: vec![MASTERS.into(), AUTHENTICATED.into()], ..Default::default() }
    }

    /// Whether the user is in `system:masters`, which every authorization allows.
    pub fn is_privileged(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }

    /// `(namespace, name)` when this is a service account's user (`system:serviceaccount:ns:name`).
    pub fn service_account(&self) -> Option<(&str, &str)> {
        self.name.strip_prefix(SERVICE_ACCOUNT_PREFIX)?.split_once(':')
    }
}

/// What the TLS layer knows of a connection: the user its client certificate names, if it presented one.
/// Requests without this mark came over plain HTTP.
#[derive(Debug, Clone)]
pub struct TlsIdentity(pub Option<Arc<User>>);
