//! The built-in policy every cluster starts with, as upstream's bootstrap policy: the user-facing ClusterRoles
//! `cluster-admin`, `admin`, `edit` and `view` (upstream builds the last three by aggregation; here their rules
//! are written out, for the resources this server serves), the discovery roles every authenticated user is
//! bound to, and `cluster-admin` bound to `system:masters`. Created when missing at each start; an existing
//! object is left as it is (an operator's edit wins).

use serde_json::{json, Value};

use super::rbac::GROUP;

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(paths: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": paths, "verbs": verbs})
}

/// `view`: read everything in a namespace except secrets and RBAC.
fn view_rules() -> Vec<Value> {
    vec![
        rule(
            &[""],
            &[
                "configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
                "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                "services/status", "bindings", "events", "limitranges", "namespaces/status", "pods/log",
                "pods/status", "replicationcontrollers/status", "resourcequotas", "resourcequotas/status", "namespaces",
            ],
            READ,
        ),
        rule(
            &["apps"],
            &[
                "controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
                "statefulsets/scale", "statefulsets/status",
            ],
            READ,
        ),
        rule(&["batch"], &["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&["events.k8s.io"], &["events"], READ),
    ]
}

/// `edit`: `view` plus writing workloads, secrets and configuration, exec and port-forward.
fn edit_rules() -> Vec<Value> {
    let mut rules = view_rules();
    rules.extend([
        rule(&[""], &["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"], READ),
        rule(&[""], &["serviceaccounts"], &["impersonate"]),
        rule(&[""], &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], WRITE),
        rule(&[""], &["pods/eviction"], &["create"]),
        rule(
            &[""],
            &[
                "configmaps", "events", "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale",
                "secrets", "serviceaccounts", "services", "services/proxy",
            ],
            WRITE,
        ),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(
            &["apps"],
            &[
                "daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                "replicasets/scale", "statefulsets", "statefulsets/scale",
            ],
            WRITE,
        ),
        rule(&["batch"], &["cronjobs", "jobs"], WRITE),
        rule(&["discovery.k8s.io"], &["endpointslices"], WRITE),
        rule(&["coordination.k8s.io"], &["leases"], &["get", "list", "watch", "create", "delete", "deletecollection", "patch", "update"]),
    ]);
    rules
}

/// `admin`: `edit` plus Roles and RoleBindings in the namespace.
fn admin_rules() -> Vec<Value> {
    let mut rules = edit_rules();
    rules.extend([
        rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]),
        rule(&[GROUP], &["rolebindings", "roles"], &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]),
    ]);
    rules
}

const DISCOVERY_URLS: &[&str] =
    &["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"];
const PUBLIC_INFO_URLS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

fn meta(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

/// The built-in ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let role = |name: &str, rules: Vec<Value>| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(name), "rules": rules});
    vec![
        role("cluster-admin", vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]),
        role("admin", admin_rules()),
        role("edit", edit_rules()),
        role("view", view_rules()),
        role("system:discovery", vec![urls(DISCOVERY_URLS, &["get"])]),
        role("system:public-info-viewer", vec![urls(PUBLIC_INFO_URLS, &["get"])]),
        role(
            "system:basic-user",
            vec![
                rule(&["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"], &["create"]),
                rule(&["authentication.k8s.io"], &["selfsubjectreviews"], &["create"]),
            ],
        ),
    ]
}

/// The built-in ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    let group = |g: &str| json!({"apiGroup": GROUP, "kind": "Group", "name": g});
    let binding = |name: &str, subjects: Vec<Value>| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta(name),
               "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name}, "subjects": subjects})
    };
    vec![
        binding("cluster-admin", vec![group(super::MASTERS)]),
        binding("system:discovery", vec![group(super::AUTHENTICATED)]),
        binding("system:basic-user", vec![group(super::AUTHENTICATED)]),
        binding("system:public-info-viewer", vec![group(super::AUTHENTICATED), group("system:unauthenticated")]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};

    #[test]
    fn built_in_policy_is_well_typed_and_nested() {
        let roles: Vec<ClusterRole> = cluster_roles().into_iter().map(|r| serde_json::from_value(r).expect("a ClusterRole")).collect();
        let rules = |name: &str| roles.iter().find(|r| r.metadata.name.as_deref() == Some(name)).and_then(|r| r.rules.clone()).expect(name);
        // each of view < edit < admin holds all of the one before
        assert!(rules("edit").len() > rules("view").len() && rules("admin").len() > rules("edit").len());
        for bound in cluster_role_bindings() {
            let b: ClusterRoleBinding = serde_json::from_value(bound).expect("a ClusterRoleBinding");
            assert!(roles.iter().any(|r| r.metadata.name.as_ref() == Some(&b.role_ref.name)), "{} refers to a built-in role", b.role_ref.name);
        }
    }
}
