//! The built-in policy every cluster starts with, as upstream's bootstrap policy: the user-facing ClusterRoles
//! `cluster-admin`, `admin`, `edit` and `view` (the last three aggregated, for the resources this server
//! serves), the discovery roles every authenticated user is bound to, `cluster-admin` bound to
//! `system:masters`, `system:kubelet-api-admin` bound to the apiserver's kubelet client user, and
//! `system:auth-delegator` (TokenReview and SubjectAccessReview, bound to nobody) for kubelets that check their
//! API's callers under an identity of their own, and what joining nodes need as kubeadm sets it up
//! (`system:node-bootstrapper` and the CSR auto-approval roles, bound to kubeadm's bootstrap token group and to
//! `system:nodes`). Created when missing at each start; an existing
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

/// What `edit` adds to `view`: writing workloads, secrets and configuration, exec and port-forward.
fn edit_only_rules() -> Vec<Value> {
    vec![
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
    ]
}

/// What `admin` adds to `edit`: Roles and RoleBindings in the namespace.
fn admin_only_rules() -> Vec<Value> {
    vec![
        rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]),
        rule(&[GROUP], &["rolebindings", "roles"], &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]),
    ]
}

/// Rules of several roles in the order the aggregation controller collects them (roles by name, no repeats),
/// so the pre-filled rules of an aggregated role are what the controller computes and it writes nothing.
fn union(parts: &[Vec<Value>]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for r in parts.iter().flatten() {
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
}

const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

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

/// Everything: `cluster-admin`'s rules, and what `system:masters` is shown to hold.
pub fn cluster_admin_rules() -> Vec<Value> {
    vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]
}

/// The built-in ClusterRoles. `admin`, `edit` and `view` aggregate (upstream's chain): `view` collects roles
/// labelled `aggregate-to-view` (`system:aggregate-to-view` holds its rules), `edit` those labelled
/// `aggregate-to-edit` (`view` itself and `system:aggregate-to-edit`), `admin` those labelled
/// `aggregate-to-admin` (`edit` and `system:aggregate-to-admin`). Their rules are filled in from the start, so
/// a server without the controllers running still authorizes with them.
pub fn cluster_roles() -> Vec<Value> {
    let role = |name: &str, rules: Vec<Value>| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(name), "rules": rules});
    let labelled = |mut r: Value, to: &str| {
        r["metadata"]["labels"][format!("{AGGREGATE_TO}{to}")] = json!("true");
        r
    };
    let aggregating = |mut r: Value, from: &str| {
        r["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {format!("{AGGREGATE_TO}{from}"): "true"}}]});
        r
    };
    // name order decides the collected order: "system:aggregate-to-edit" < "view", "edit" < "system:aggregate-to-admin"
    let edit = union(&[edit_only_rules(), view_rules()]);
    let admin = union(&[edit.clone(), admin_only_rules()]);
    vec![
        role("cluster-admin", cluster_admin_rules()),
        aggregating(role("admin", admin), "admin"),
        labelled(aggregating(role("edit", edit), "edit"), "admin"),
        labelled(aggregating(role("view", view_rules()), "view"), "edit"),
        labelled(role("system:aggregate-to-admin", admin_only_rules()), "admin"),
        labelled(role("system:aggregate-to-edit", edit_only_rules()), "edit"),
        labelled(role("system:aggregate-to-view", view_rules()), "view"),
        // upstream's full access to the kubelet API, what the apiserver's kubelet client user is bound to
        role(
            "system:kubelet-api-admin",
            vec![
                rule(&[""], &["nodes"], READ),
                rule(&[""], &["nodes"], &["proxy"]),
                rule(&[""], &["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/spec", "nodes/stats"], &["*"]),
            ],
        ),
        // upstream's role for delegated authentication and authorization (bound to nothing by default): what a
        // kubelet whose identity is not system:masters needs to check its API's callers (TokenReview, SAR)
        role(
            "system:auth-delegator",
            vec![
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(&["authorization.k8s.io"], &["subjectaccessreviews"], &["create"]),
            ],
        ),
        // joining nodes (upstream's bootstrap policy): a bootstrap token may file and watch CSRs; the
        // csrapproving controller approves a kubelet client CSR when its requester may create the
        // nodeclient (a new node) or selfnodeclient (a node renewing its own) subresource
        role("system:node-bootstrapper", vec![rule(&["certificates.k8s.io"], &["certificatesigningrequests"], &["create", "get", "list", "watch"])]),
        role(NODECLIENT, vec![rule(&["certificates.k8s.io"], &["certificatesigningrequests/nodeclient"], &["create"])]),
        role(SELFNODECLIENT, vec![rule(&["certificates.k8s.io"], &["certificatesigningrequests/selfnodeclient"], &["create"])]),
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

const NODECLIENT: &str = "system:certificates.k8s.io:certificatesigningrequests:nodeclient";
const SELFNODECLIENT: &str = "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient";

/// The built-in ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    let group = |g: &str| json!({"apiGroup": GROUP, "kind": "Group", "name": g});
    let user = |u: &str| json!({"apiGroup": GROUP, "kind": "User", "name": u});
    let binding_to = |name: &str, role: &str, subjects: Vec<Value>| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta(name),
               "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role}, "subjects": subjects})
    };
    let binding = |name: &str, subjects: Vec<Value>| binding_to(name, name, subjects);
    vec![
        binding("cluster-admin", vec![group(super::user::MASTERS)]),
        // the apiserver's client certificate for kubelets: the kubelet API, nothing else on this one
        binding_to(
            "kube-apiserver-kubelet-client",
            "system:kubelet-api-admin",
            vec![user(crate::tls::KUBELET_CLIENT_USER)],
        ),
        // kubeadm's bindings for the tokens it (and `rkube token create`) makes: file CSRs, have them approved;
        // nodes renew their own client certificates
        binding_to("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", vec![group(rkube_apimachinery::bootstrap_token::DEFAULT_NODE_GROUP)]),
        binding_to("kubeadm:node-autoapprove-bootstrap", NODECLIENT, vec![group(rkube_apimachinery::bootstrap_token::DEFAULT_NODE_GROUP)]),
        binding_to("kubeadm:node-autoapprove-certificate-rotation", SELFNODECLIENT, vec![group("system:nodes")]),
        binding("system:discovery", vec![group(super::user::AUTHENTICATED)]),
        binding("system:basic-user", vec![group(super::user::AUTHENTICATED)]),
        binding("system:public-info-viewer", vec![group(super::user::AUTHENTICATED), group("system:unauthenticated")]),
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
