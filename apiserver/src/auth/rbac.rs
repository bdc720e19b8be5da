//! The RBAC authorizer: a request is allowed when a binding names the user (or one of its groups, or its
//! service account) and the bound role has a rule covering the request. Namespaced requests look at the
//! namespace's RoleBindings and every ClusterRoleBinding; cluster-scoped ones at ClusterRoleBindings only.
//! Nothing is cached: policies are read from the store per request, which costs only non-`system:masters`
//! users (the admin, the kubelets and the controllers skip the lookup).
//!
//! Writes of Roles and bindings are checked against escalation as upstream does: a user may only grant what it
//! holds itself, unless it has `escalate` on the role (or `bind` on the role a binding references).

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::attributes::Attributes;
use super::user::User;
use crate::registry::{builtin, ResourceInfo};
use crate::state::ApiState;
use crate::status::ApiError;
use crate::storage::ListOptions;

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// An authorizer's answer; `reason` says which binding allowed it, as upstream's RBAC reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether a binding allows the request.
    pub allowed: bool,
    /// Which binding and role allowed it (empty when none did).
    pub reason: String,
}

/// The rules one binding grants.
#[derive(Debug, Clone)]
pub struct Grant {
    /// `ClusterRoleBinding "x" of ClusterRole "y" to User "alice"`.
    pub via: String,
    /// The role's rules.
    pub rules: Vec<PolicyRule>,
}

/// Whether a rule of a role bound to `user` (cluster-wide, or in the request's namespace) allows the request.
pub async fn authorize(state: &ApiState, user: &User, a: &Attributes) -> Result<Decision, ApiError> {
    let grants = grants(state, user, &a.namespace).await?;
    Ok(match grants.iter().find(|g| g.rules.iter().any(|r| rule_allows(r, a))) {
        Some(g) => Decision { allowed: true, reason: format!("RBAC: allowed by {}", g.via) },
        None => Decision { allowed: false, reason: String::new() },
    })
}

/// Every grant that applies to `user` in `namespace` (cluster-wide ones only when `namespace` is empty).
pub async fn grants(state: &ApiState, user: &User, namespace: &str) -> Result<Vec<Grant>, ApiError> {
    let mut out = Vec::new();
    for b in list::<ClusterRoleBinding>(state, builtin::CLUSTER_ROLE_BINDINGS, None).await? {
        let Some(subject) = b.subjects.iter().flatten().find(|s| subject_matches(s, user, "")) else { continue };
        let rules = role_rules(state, &b.role_ref, "").await?;
        out.push(Grant { via: describe("ClusterRoleBinding", b.metadata.name.as_deref().unwrap_or(""), &b.role_ref, subject), rules });
    }
    if !namespace.is_empty() {
        for b in list::<RoleBinding>(state, builtin::ROLE_BINDINGS, Some(namespace)).await? {
            let Some(subject) = b.subjects.iter().flatten().find(|s| subject_matches(s, user, namespace)) else { continue };
            let rules = role_rules(state, &b.role_ref, namespace).await?;
            let name = format!("{}/{namespace}", b.metadata.name.as_deref().unwrap_or(""));
            out.push(Grant { via: describe("RoleBinding", &name, &b.role_ref, subject), rules });
        }
    }
    Ok(out)
}

fn describe(kind: &str, name: &str, role: &RoleRef, subject: &Subject) -> String {
    let who = match subject.kind.as_str() {
        "ServiceAccount" => format!("{}/{}", subject.namespace.as_deref().unwrap_or(""), subject.name),
        _ => subject.name.clone(),
    };
    format!("{kind} \"{name}\" of {} \"{}\" to {} \"{who}\"", role.kind, role.name, subject.kind)
}

fn subject_matches(s: &Subject, user: &User, binding_namespace: &str) -> bool {
    match s.kind.as_str() {
        "User" => s.name == user.name,
        "Group" => user.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = s.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(binding_namespace);
            user.service_account() == Some((ns, s.name.as_str()))
        }
        _ => false,
    }
}

/// The rules of the role a binding references; a missing role grants nothing (as upstream).
async fn role_rules(state: &ApiState, role: &RoleRef, namespace: &str) -> Result<Vec<PolicyRule>, ApiError> {
    Ok(match role.kind.as_str() {
        "ClusterRole" => get::<ClusterRole>(state, builtin::CLUSTER_ROLES, None, &role.name).await?.and_then(|r| r.rules),
        "Role" if !namespace.is_empty() => get::<Role>(state, builtin::ROLES, Some(namespace), &role.name).await?.and_then(|r| r.rules),
        _ => None,
    }
    .unwrap_or_default())
}

async fn list<T: DeserializeOwned>(state: &ApiState, info: &ResourceInfo, ns: Option<&str>) -> Result<Vec<T>, ApiError> {
    let page = state
        .store
        .list(ListOptions { prefix: info.prefix_for(ns), ..Default::default() })
        .await
        .map_err(|e| ApiError::from_storage(info, "", e))?;
    Ok(page.items.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect())
}

async fn get<T: DeserializeOwned>(state: &ApiState, info: &ResourceInfo, ns: Option<&str>, name: &str) -> Result<Option<T>, ApiError> {
    crate::object::read_as(state.store.as_ref(), info, ns, name).await
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == "*" || x == value)
}

/// Whether one rule covers the request, with upstream's matching: `*` in verbs, apiGroups, resources and
/// nonResourceURLs; `*/sub` for a subresource of any resource; resourceNames only for requests that name one
/// object; a trailing `*` in a nonResourceURL as a prefix.
pub fn rule_allows(rule: &PolicyRule, a: &Attributes) -> bool {
    if !has(&rule.verbs, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return rule.non_resource_urls.iter().flatten().any(|u| {
            u == "*" || *u == a.path || u.strip_suffix('*').is_some_and(|prefix| a.path.starts_with(prefix))
        });
    }
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let full = a.full_resource();
    let resource_ok = resources.iter().any(|r| {
        r == "*" || *r == full || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    let names = rule.resource_names.as_deref().unwrap_or_default();
    let name_ok = names.is_empty() || (!a.name.is_empty() && names.contains(&a.name));
    has(groups, &a.api_group) && resource_ok && name_ok
}

/// The single requests a rule stands for (wildcards kept as literal `*`), for coverage checks.
fn atoms(rule: &PolicyRule) -> Vec<Attributes> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for url in rule.non_resource_urls.iter().flatten() {
            out.push(Attributes { verb: verb.clone(), path: url.clone(), ..Default::default() });
        }
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                let (res, sub) = resource.split_once('/').unwrap_or((resource, ""));
                let names: Vec<String> = match rule.resource_names.as_deref() {
                    Some(n) if !n.is_empty() => n.to_vec(),
                    _ => vec![String::new()],
                };
                for name in names {
                    out.push(Attributes {
                        verb: verb.clone(),
                        resource_request: true,
                        api_group: group.clone(),
                        resource: res.to_string(),
                        subresource: sub.to_string(),
                        name,
                        ..Default::default()
                    });
                }
            }
        }
    }
    out
}

/// The first piece of `rule` no rule of `owned` covers.
fn uncovered(owned: &[PolicyRule], rule: &PolicyRule) -> Option<Attributes> {
    atoms(rule).into_iter().find(|atom| !owned.iter().any(|o| rule_allows(o, atom)))
}

/// Rejects a Role/ClusterRole or binding that would give more than `user` holds (upstream's escalation check).
/// `obj` is the object about to be stored, `namespace` its namespace ("" for cluster-scoped kinds).
pub async fn check_escalation(state: &ApiState, user: &User, info: &ResourceInfo, namespace: &str, obj: &Value) -> Result<(), ApiError> {
    if user.is_privileged() || info.group != GROUP {
        return Ok(());
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let (rules, permit) = match info.resource {
        "roles" | "clusterroles" => {
            let rules: Vec<PolicyRule> = serde_json::from_value(obj.get("rules").cloned().unwrap_or(Value::Null)).unwrap_or_default();
            (rules, Attributes { verb: "escalate".into(), resource: info.resource.into(), name: name.into(), ..rbac_attrs(namespace) })
        }
        "rolebindings" | "clusterrolebindings" => {
            let Ok(role) = serde_json::from_value::<RoleRef>(obj.get("roleRef").cloned().unwrap_or(Value::Null)) else { return Ok(()) };
            let resource = if role.kind == "Role" { "roles" } else { "clusterroles" };
            let rules = role_rules(state, &role, namespace).await?;
            (rules, Attributes { verb: "bind".into(), resource: resource.into(), name: role.name.clone(), ..rbac_attrs(namespace) })
        }
        _ => return Ok(()),
    };
    // one read of the user's grants serves both questions: may it escalate/bind, and does it hold the rules
    let owned: Vec<PolicyRule> = grants(state, user, namespace).await?.into_iter().flat_map(|g| g.rules).collect();
    if owned.iter().any(|r| rule_allows(r, &permit)) {
        return Ok(());
    }
    match rules.iter().find_map(|r| uncovered(&owned, r)) {
        None => Ok(()),
        Some(missing) => Err(ApiError::forbidden(
            info,
            name,
            &format!(
                "user \"{}\" (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{} (no \"{}\" permission on {} \"{}\")",
                user.name,
                user.groups.iter().map(|g| format!("{g:?}")).collect::<Vec<_>>().join(" "),
                describe_atom(&missing),
                permit.verb,
                permit.resource,
                permit.name
            ),
        )),
    }
}

fn rbac_attrs(namespace: &str) -> Attributes {
    Attributes { resource_request: true, api_group: GROUP.into(), namespace: namespace.into(), ..Default::default() }
}

fn describe_atom(a: &Attributes) -> String {
    if a.resource_request {
        let names = if a.name.is_empty() { String::new() } else { format!(", ResourceNames:[\"{}\"]", a.name) };
        format!("{{APIGroups:[\"{}\"], Resources:[\"{}\"]{names}, Verbs:[\"{}\"]}}", a.api_group, a.full_resource(), a.verb)
    } else {
        format!("{{NonResourceURLs:[\"{}\"], Verbs:[\"{}\"]}}", a.path, a.verb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        PolicyRule {
            verbs: v(verbs),
            api_groups: Some(v(groups)),
            resources: Some(v(resources)),
            resource_names: (!names.is_empty()).then(|| v(names)),
            non_resource_urls: None,
        }
    }

    fn req(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: "default".into(),
            path: String::new(),
        }
    }

    #[test]
    fn rules_match_like_upstream() {
        let r = rule(&["get", "list"], &[""], &["pods"], &[]);
        assert!(rule_allows(&r, &req("list", "", "pods", "", "")));
        assert!(!rule_allows(&r, &req("delete", "", "pods", "", "x")));
        assert!(!rule_allows(&r, &req("get", "apps", "pods", "", "x")), "group must match");
        assert!(!rule_allows(&r, &req("get", "", "pods", "log", "x")), "a subresource is its own resource");
        let all = rule(&["*"], &["*"], &["*"], &[]);
        assert!(rule_allows(&all, &req("deletecollection", "apps", "deployments", "scale", "")));
        let any_scale = rule(&["get"], &["apps"], &["*/scale"], &[]);
        assert!(rule_allows(&any_scale, &req("get", "apps", "deployments", "scale", "web")));
        assert!(!rule_allows(&any_scale, &req("get", "apps", "deployments", "", "web")));
        let named = rule(&["get", "list"], &[""], &["configmaps"], &["cfg"]);
        assert!(rule_allows(&named, &req("get", "", "configmaps", "", "cfg")));
        assert!(!rule_allows(&named, &req("get", "", "configmaps", "", "other")));
        assert!(!rule_allows(&named, &req("list", "", "configmaps", "", "")), "resourceNames never match unnamed lists");
        let urls = PolicyRule { verbs: vec!["get".into()], non_resource_urls: Some(vec!["/apis/*".into(), "/version".into()]), ..Default::default() };
        let path = |p: &str| Attributes { verb: "get".into(), path: p.into(), ..Default::default() };
        assert!(rule_allows(&urls, &path("/apis/apps/v1")));
        assert!(rule_allows(&urls, &path("/version")));
        assert!(!rule_allows(&urls, &path("/metrics")));
        assert!(!rule_allows(&r, &path("/version")), "resource rules never allow paths");
    }

    #[test]
    fn coverage_finds_what_is_not_held() {
        let owned = vec![rule(&["get", "list", "watch"], &[""], &["pods", "configmaps"], &[])];
        assert!(uncovered(&owned, &rule(&["get"], &[""], &["pods"], &[])).is_none());
        let missing = uncovered(&owned, &rule(&["get", "delete"], &[""], &["pods"], &[])).expect("delete is not held");
        assert_eq!(missing.verb, "delete");
        assert!(uncovered(&owned, &rule(&["*"], &[""], &["pods"], &[])).is_some(), "a wildcard needs a wildcard");
        assert!(uncovered(&owned, &rule(&["get"], &[""], &["configmaps"], &["one"])).is_none(), "a named grant is narrower");
        let user = User { name: "system:serviceaccount:ns1:robot".into(), ..Default::default() };
        let sa = Subject { kind: "ServiceAccount".into(), name: "robot".into(), namespace: None, api_group: None };
        assert!(subject_matches(&sa, &user, "ns1"));
        assert!(!subject_matches(&sa, &user, "ns2"));
    }
}
