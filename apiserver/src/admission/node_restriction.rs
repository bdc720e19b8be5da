//! The NodeRestriction admission, as upstream's plugin (plugin/pkg/admission/noderestriction): the node rules
//! of the Node authorizer (`auth::node`) let a kubelet write Nodes, pods, pod status and Leases at all; this
//! narrows each write to the kubelet's own: its own Node (no taint changes, no labels under
//! `node-restriction.kubernetes.io/` nor kubernetes.io/k8s.io labels other than the kubelet's own set), mirror
//! pods bound to itself and owned by its Node, the status of pods bound to it (labels untouched), deletes and
//! evictions of pods bound to it, its own Lease, and service account tokens bound to a pod on it. Users that are
//! not nodes pass untouched. The error texts are upstream's.
//!
//! The checks are pure functions of the user, the request and the objects involved; the handlers call them
//! where those objects are at hand: [`admit_verb`] before a write is carried out, [`admit_create`] with the
//! decoded body of a create, [`admit_write`] with the stored and the new object of every guarded write, and
//! [`admit_delete`] with the object a delete is about to remove.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::auth::node::{node_identity, NODE_LEASE_NAMESPACE};
use crate::auth::User;
use crate::registry::{self, ResourceInfo};
use crate::state::ApiState;
use crate::status::ApiError;

/// The annotation that marks a mirror pod (upstream's `kubernetes.io/config.mirror`).
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Upstream's `admission.NewForbidden`: `<resource> "<name>" is forbidden: <why>` (no name part when none).
fn forbidden(info: &ResourceInfo, name: &str, why: impl std::fmt::Display) -> ApiError {
    let mut e = ApiError::forbidden(info, name, &why.to_string());
    if name.is_empty() {
        e.message = format!("{} is forbidden: {why}", info.group_resource());
    }
    e
}

/// The node `user` speaks for; `Err` for a node user whose name names no node.
fn node_of<'a>(user: &'a User, info: &ResourceInfo, name: &str) -> Result<Option<&'a str>, ApiError> {
    match node_identity(user) {
        None => Ok(None),
        Some("") => Err(forbidden(info, name, format!("could not determine node from user {:?}", user.name))),
        Some(n) => Ok(Some(n)),
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

/// The writes a node may not make whatever the objects: a main-resource update of a pod, a pod subresource
/// other than status and eviction. `verb` is what authorization checked.
pub fn admit_verb(user: &User, info: &ResourceInfo, subresource: &str, verb: &str, name: &str) -> Result<(), ApiError> {
    let Some(node) = node_of_write(user, info, verb, name)? else { return Ok(()) };
    if info.group.is_empty() && info.resource == "pods" {
        match subresource {
            "" if matches!(verb, "update" | "patch") => {
                return Err(forbidden(info, name, format!("unexpected operation \"UPDATE\", node {node:?} can only create and delete mirror pods")))
            }
            "" | "status" | "eviction" => {}
            other => return Err(forbidden(info, name, format!("unexpected subresource {other:?}, only 'status' and 'eviction' are allowed"))),
        }
    }
    Ok(())
}

fn node_of_write<'a>(user: &'a User, info: &ResourceInfo, verb: &str, name: &str) -> Result<Option<&'a str>, ApiError> {
    if matches!(verb, "get" | "list" | "watch") {
        return Ok(None);
    }
    node_of(user, info, name)
}

/// A create by a node, with its decoded body (before defaulting, as upstream's plugin sees it): its own Node
/// with allowed labels, its own Lease, mirror pods bound to and owned by its Node (`node_uid`: the stored
/// Node's uid, None when it does not exist).
pub fn check_create(node: &str, info: &ResourceInfo, namespace: &str, obj: &Value, node_uid: Option<&str>) -> Result<(), ApiError> {
    let name = str_at(obj, "/metadata/name");
    match (info.group, info.resource) {
        ("", "pods") => check_mirror_pod(node, info, obj, node_uid),
        ("", "nodes") => {
            if name != node {
                return Err(forbidden(info, name, format!("node {node:?} is not allowed to modify node {name:?}")));
            }
            if obj.pointer("/spec/configSource").is_some_and(|c| !c.is_null()) {
                return Err(forbidden(info, name, format!("node {node:?} is not allowed to create pods with a non-nil configSource")));
            }
            let bad = forbidden_labels(&modified_labels(&labels(obj), &BTreeMap::new()));
            if !bad.is_empty() {
                let list = bad.into_iter().collect::<Vec<_>>().join(", ");
                return Err(forbidden(info, name, format!("node {node:?} is not allowed to set the following labels: {list}")));
            }
            Ok(())
        }
        ("coordination.k8s.io", "leases") => check_lease(info, namespace, name, node),
        _ => Ok(()),
    }
}

fn check_lease(info: &ResourceInfo, namespace: &str, name: &str, node: &str) -> Result<(), ApiError> {
    if namespace != NODE_LEASE_NAMESPACE {
        return Err(forbidden(info, name, format!("can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace")));
    }
    if name != node {
        return Err(forbidden(info, name, "can only access node lease with the same name as the requesting node"));
    }
    Ok(())
}

/// Upstream's `admitPodCreate`: only mirror pods, bound to this node, with one controller owner reference to
/// its Node (uid checked), referencing no service account, secret, configmap or claim.
fn check_mirror_pod(node: &str, info: &ResourceInfo, pod: &Value, node_uid: Option<&str>) -> Result<(), ApiError> {
    let name = str_at(pod, "/metadata/name");
    let deny = |why: String| Err(forbidden(info, name, why));
    if pod.pointer("/metadata/annotations").and_then(|a| a.get(MIRROR_POD_ANNOTATION)).is_none() {
        return deny(format!("pod does not have {MIRROR_POD_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"));
    }
    if str_at(pod, "/spec/nodeName") != node {
        return deny(format!("node {node:?} can only create pods with spec.nodeName set to itself"));
    }
    let owners = pod.pointer("/metadata/ownerReferences").and_then(Value::as_array).cloned().unwrap_or_default();
    match owners.as_slice() {
        [] => return deny(format!("node {node:?} can only create pods with an owner reference set to itself")),
        [owner] => {
            if str_at(owner, "/apiVersion") != "v1" || str_at(owner, "/kind") != "Node" || str_at(owner, "/name") != node {
                return deny(format!("node {node:?} can only create pods with an owner reference set to itself"));
            }
            if owner.get("controller").and_then(Value::as_bool) != Some(true) {
                return deny(format!("node {node:?} can only create pods with a controller owner reference set to itself"));
            }
            if owner.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
                return deny(format!("node {node:?} must not set blockOwnerDeletion on an owner reference"));
            }
            let Some(uid) = node_uid else {
                return Err(ApiError::not_found(registry::builtin::NODES, node));
            };
            let got = str_at(owner, "/uid");
            if got != uid {
                return deny(format!("node {node} UID mismatch: expected {uid} got {got}"));
            }
        }
        _ => return deny(format!("node {node:?} can only create pods with a single owner reference set to itself")),
    }
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    if !str_at(&spec, "/serviceAccountName").is_empty() {
        return deny(format!("node {node:?} can not create pods that reference a service account"));
    }
    let mut refs = crate::auth::node::NodeGraph::default();
    refs.add_pod(pod);
    if !refs.secrets.is_empty() {
        return deny(format!("node {node:?} can not create pods that reference secrets"));
    }
    if !refs.config_maps.is_empty() {
        return deny(format!("node {node:?} can not create pods that reference configmaps"));
    }
    let claims = spec.get("volumes").and_then(Value::as_array).into_iter().flatten().any(|v| v.get("persistentVolumeClaim").is_some());
    if claims {
        return deny(format!("node {node:?} can not create pods that reference persistentvolumeclaims"));
    }
    Ok(())
}

/// A create by a node, reading what the check needs (the node's uid for a mirror pod).
pub async fn admit_create(state: &ApiState, user: &User, info: &ResourceInfo, namespace: &str, obj: &Value) -> Result<(), ApiError> {
    let Some(node) = node_of(user, info, str_at(obj, "/metadata/name"))? else { return Ok(()) };
    let mut node_uid = None;
    if info.group.is_empty() && info.resource == "pods" {
        let nodes = registry::builtin::NODES;
        node_uid = crate::object::read(state.store.as_ref(), nodes, &nodes.key(None, node), node)
            .await?
            .map(|(n, _)| crate::object::uid(&n).to_string());
    }
    check_create(node, info, namespace, obj, node_uid.as_deref())
}

/// A TokenRequest by a node (upstream's `admitServiceAccount`): bound to a pod, by uid, that runs on the node.
/// `pod` is the stored pod the request binds to, if any.
pub fn check_token(node: &str, info: &ResourceInfo, sa: &str, request: &Value, pod: Option<&Value>) -> Result<(), ApiError> {
    let r = request.pointer("/spec/boundObjectRef").cloned().unwrap_or(Value::Null);
    if r.is_null() || str_at(&r, "/apiVersion") != "v1" || str_at(&r, "/kind") != "Pod" || str_at(&r, "/name").is_empty() {
        return Err(forbidden(info, sa, "node requested token not bound to a pod"));
    }
    let uid = str_at(&r, "/uid");
    if uid.is_empty() {
        return Err(forbidden(info, sa, "node requested token with a pod binding without a uid"));
    }
    let pods = registry::builtin::PODS;
    let Some(pod) = pod else { return Err(ApiError::not_found(pods, str_at(&r, "/name"))) };
    if uid != crate::object::uid(pod) {
        return Err(forbidden(
            info,
            sa,
            format!("the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"),
        ));
    }
    if str_at(pod, "/spec/nodeName") != node {
        return Err(forbidden(info, sa, "node requested token bound to a pod scheduled on a different node"));
    }
    Ok(())
}

/// `serviceaccounts/<sa>/token` by a node, reading the pod the request binds to.
pub async fn admit_token(state: &ApiState, user: &User, info: &ResourceInfo, namespace: &str, sa: &str, request: &Value) -> Result<(), ApiError> {
    let Some(node) = node_of(user, info, sa)? else { return Ok(()) };
    let pod_name = str_at(request, "/spec/boundObjectRef/name");
    let pod = if pod_name.is_empty() { None } else { read_pod(state, namespace, pod_name).await? };
    check_token(node, info, sa, request, pod.as_ref())
}

/// `pods/<name>/eviction` by a node: only of pods bound to it.
pub async fn admit_eviction(state: &ApiState, user: &User, info: &ResourceInfo, namespace: &str, name: &str) -> Result<(), ApiError> {
    let Some(node) = node_of(user, info, name)? else { return Ok(()) };
    let Some(pod) = read_pod(state, namespace, name).await? else { return Err(ApiError::not_found(info, name)) };
    if str_at(&pod, "/spec/nodeName") != node {
        return Err(forbidden(info, name, format!("node {node} can only evict pods with spec.nodeName set to itself")));
    }
    Ok(())
}

async fn read_pod(state: &ApiState, namespace: &str, name: &str) -> Result<Option<Value>, ApiError> {
    let pods = registry::builtin::PODS;
    Ok(crate::object::read(state.store.as_ref(), pods, &pods.key(Some(namespace), name), name).await?.map(|(p, _)| p))
}

/// A delete by a node of `cur`: pods bound to it, its own Node, its own Lease.
pub fn admit_delete(user: &User, info: &ResourceInfo, cur: &Value) -> Result<(), ApiError> {
    let name = str_at(cur, "/metadata/name");
    let Some(node) = node_of(user, info, name)? else { return Ok(()) };
    match (info.group, info.resource) {
        ("", "pods") if str_at(cur, "/spec/nodeName") != node => {
            Err(forbidden(info, name, format!("node {node:?} can only delete pods with spec.nodeName set to itself")))
        }
        ("", "nodes") if name != node => Err(forbidden(info, name, format!("node {node:?} is not allowed to modify node {name:?}"))),
        ("coordination.k8s.io", "leases") => check_lease(info, str_at(cur, "/metadata/namespace"), name, node),
        _ => Ok(()),
    }
}

/// A guarded write (update, patch, or the marking of a graceful delete) by a node from `cur` to `new`: the
/// status of pods bound to it with their labels untouched; its own Node without taint changes and with label
/// changes only in the allowed set; its own Lease. `subresource` is the request's.
pub fn admit_write(user: &User, info: &ResourceInfo, subresource: &str, cur: &Value, new: &Value) -> Result<(), ApiError> {
    let name = str_at(cur, "/metadata/name");
    let Some(node) = node_of(user, info, name)? else { return Ok(()) };
    match (info.group, info.resource) {
        ("", "pods") if subresource == "status" => {
            if str_at(cur, "/spec/nodeName") != node {
                return Err(forbidden(info, name, format!("node {node:?} can only update pod status for pods with spec.nodeName set to itself")));
            }
            if labels(cur) != labels(new) {
                return Err(forbidden(info, name, format!("node {node:?} cannot update labels through pod status")));
            }
            Ok(())
        }
        ("", "nodes") => {
            if name != node {
                return Err(forbidden(info, name, format!("node {node:?} is not allowed to modify node {name:?}")));
            }
            let config = |v: &Value| v.pointer("/spec/configSource").cloned().unwrap_or(Value::Null);
            if !config(new).is_null() && config(new) != config(cur) {
                return Err(forbidden(info, name, format!("node {node:?} is not allowed to update configSource to a new non-nil configSource")));
            }
            let taints = |v: &Value| v.pointer("/spec/taints").cloned().filter(|t| t.as_array().is_some_and(|a| !a.is_empty()));
            if taints(cur) != taints(new) {
                return Err(forbidden(info, name, format!("node {node:?} is not allowed to modify taints")));
            }
            let bad = forbidden_labels(&modified_labels(&labels(new), &labels(cur)));
            if !bad.is_empty() {
                let list = bad.into_iter().collect::<Vec<_>>().join(", ");
                return Err(forbidden(info, name, format!("is not allowed to modify labels: {list}")));
            }
            Ok(())
        }
        ("coordination.k8s.io", "leases") => check_lease(info, str_at(cur, "/metadata/namespace"), name, node),
        _ => Ok(()),
    }
}

/// Keys whose value differs between `a` and `b` (or that only one has).
fn modified_labels(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (k, v) in a {
        if b.get(k) != Some(v) {
            out.insert(k.clone());
        }
    }
    for (k, v) in b {
        if a.get(k) != Some(v) {
            out.insert(k.clone());
        }
    }
    out
}

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map(|(ns, _)| ns).unwrap_or_default()
}

fn in_domain(namespace: &str, domain: &str) -> bool {
    namespace == domain || namespace.ends_with(&format!(".{domain}"))
}

/// The labels a kubelet sets on its own Node (upstream's `kubeletapis.IsKubeletLabel`).
fn is_kubelet_label(key: &str) -> bool {
    const LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    ];
    let ns = label_namespace(key);
    LABELS.contains(&key) || in_domain(ns, "kubelet.kubernetes.io") || in_domain(ns, "node.kubernetes.io")
}

/// Upstream's `getForbiddenLabels`: node-restriction.kubernetes.io labels, and kubernetes.io / k8s.io labels
/// outside the kubelet's own.
fn forbidden_labels(modified: &BTreeSet<String>) -> BTreeSet<String> {
    modified
        .iter()
        .filter(|k| {
            let ns = label_namespace(k);
            let restricted = in_domain(ns, "node-restriction.kubernetes.io");
            let kubernetes = in_domain(ns, "kubernetes.io") || in_domain(ns, "k8s.io");
            restricted || (kubernetes && !is_kubelet_label(k))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::node::NODES_GROUP;
    use serde_json::json;

    fn info(group: &str, resource: &str) -> &'static ResourceInfo {
        let version = if group.is_empty() { "v1" } else { registry::group_version(group).expect("served group") };
        registry::find(group, version, resource).expect("in the table")
    }

    fn node(name: &str) -> User {
        User { name: format!("system:node:{name}"), groups: vec![NODES_GROUP.into(), crate::auth::AUTHENTICATED.into()], ..Default::default() }
    }

    fn message(r: Result<(), ApiError>) -> String {
        let e = r.expect_err("refused");
        assert_eq!(e.code, 403, "{}", e.message);
        e.message
    }

    fn mirror(node: &str, uid: &str) -> Value {
        json!({"metadata": {"name": "static-web", "namespace": "default",
                "annotations": {MIRROR_POD_ANNOTATION: "h"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid, "controller": true}]},
               "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
    }

    #[test]
    fn others_pass_and_nameless_nodes_are_refused() {
        let admin = User { name: "alice".into(), ..Default::default() };
        let pods = info("", "pods");
        assert!(admit_delete(&admin, pods, &json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n2"}})).is_ok());
        let nameless = User { name: "system:node:".into(), groups: vec![NODES_GROUP.into()], ..Default::default() };
        assert_eq!(
            message(admit_delete(&nameless, pods, &json!({"metadata": {"name": "p"}}))),
            "pods \"p\" is forbidden: could not determine node from user \"system:node:\""
        );
        assert!(admit_verb(&node("n1"), pods, "", "get", "p").is_ok());
        assert_eq!(
            message(admit_verb(&node("n1"), pods, "", "patch", "p")),
            "pods \"p\" is forbidden: unexpected operation \"UPDATE\", node \"n1\" can only create and delete mirror pods"
        );
    }

    #[test]
    fn only_mirror_pods_of_its_own_node() {
        let pods = info("", "pods");
        assert!(check_create("n1", pods, "default", &mirror("n1", "u1"), Some("u1")).is_ok());
        let mut plain = mirror("n1", "u1");
        plain["metadata"]["annotations"] = json!({});
        assert_eq!(
            message(check_create("n1", pods, "default", &plain, Some("u1"))),
            "pods \"static-web\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods"
        );
        assert_eq!(
            message(check_create("n1", pods, "default", &mirror("n2", "u1"), Some("u1"))),
            "pods \"static-web\" is forbidden: node \"n1\" can only create pods with spec.nodeName set to itself"
        );
        assert_eq!(
            message(check_create("n1", pods, "default", &mirror("n1", "stale"), Some("u1"))),
            "pods \"static-web\" is forbidden: node n1 UID mismatch: expected u1 got stale"
        );
        let mut secret = mirror("n1", "u1");
        secret["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": "x"}}]);
        assert!(message(check_create("n1", pods, "default", &secret, Some("u1"))).ends_with("node \"n1\" can not create pods that reference secrets"));
        let mut sa = mirror("n1", "u1");
        sa["spec"]["serviceAccountName"] = json!("robot");
        assert!(message(check_create("n1", pods, "default", &sa, Some("u1"))).ends_with("can not create pods that reference a service account"));
        let mut orphan = mirror("n1", "u1");
        orphan["metadata"]["ownerReferences"] = json!([]);
        assert!(message(check_create("n1", pods, "default", &orphan, Some("u1"))).ends_with("can only create pods with an owner reference set to itself"));
    }

    #[test]
    fn pod_status_deletes_and_evictions_only_of_pods_bound_to_it() {
        let pods = info("", "pods");
        let on = |n: &str| json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}}, "spec": {"nodeName": n}});
        assert!(admit_write(&node("n1"), pods, "status", &on("n1"), &on("n1")).is_ok());
        assert_eq!(
            message(admit_write(&node("n1"), pods, "status", &on("n2"), &on("n2"))),
            "pods \"web\" is forbidden: node \"n1\" can only update pod status for pods with spec.nodeName set to itself"
        );
        let mut relabeled = on("n1");
        relabeled["metadata"]["labels"]["app"] = json!("other");
        assert!(message(admit_write(&node("n1"), pods, "status", &on("n1"), &relabeled)).ends_with("cannot update labels through pod status"));
        assert!(admit_delete(&node("n1"), pods, &on("n1")).is_ok());
        assert_eq!(
            message(admit_delete(&node("n1"), pods, &on("n2"))),
            "pods \"web\" is forbidden: node \"n1\" can only delete pods with spec.nodeName set to itself"
        );
    }

    #[test]
    fn its_own_node_without_taints_or_restricted_labels() {
        let nodes = info("", "nodes");
        let n = |name: &str, labels: Value| json!({"metadata": {"name": name, "labels": labels}, "spec": {}});
        let own = n("n1", json!({"kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux", "node.kubernetes.io/exclude-from-external-load-balancers": "true", "example.com/x": "y"}));
        assert!(check_create("n1", nodes, "", &own, None).is_ok());
        assert_eq!(
            message(check_create("n1", nodes, "", &n("n2", json!({})), None)),
            "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
        );
        assert_eq!(
            message(check_create("n1", nodes, "", &n("n1", json!({"node-role.kubernetes.io/control-plane": "", "node-restriction.kubernetes.io/a": "b"})), None)),
            "nodes \"n1\" is forbidden: node \"n1\" is not allowed to set the following labels: node-restriction.kubernetes.io/a, node-role.kubernetes.io/control-plane"
        );
        assert!(admit_write(&node("n1"), nodes, "status", &own, &own).is_ok());
        assert_eq!(
            message(admit_write(&node("n1"), nodes, "status", &n("n2", json!({})), &n("n2", json!({})))),
            "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
        );
        let mut tainted = own.clone();
        tainted["spec"]["taints"] = json!([{"key": "k", "effect": "NoSchedule"}]);
        assert!(message(admit_write(&node("n1"), nodes, "", &tainted, &own)).ends_with("node \"n1\" is not allowed to modify taints"));
        let mut relabeled = own.clone();
        relabeled["metadata"]["labels"]["node-restriction.kubernetes.io/trusted"] = json!("yes");
        relabeled["metadata"]["labels"]["example.com/x"] = json!("z");
        assert_eq!(
            message(admit_write(&node("n1"), nodes, "", &own, &relabeled)),
            "nodes \"n1\" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/trusted"
        );
        assert!(admit_delete(&node("n1"), nodes, &own).is_ok());
    }

    #[test]
    fn its_own_lease_and_tokens_of_its_pods() {
        let leases = info("coordination.k8s.io", "leases");
        let lease = |ns: &str, name: &str| json!({"metadata": {"name": name, "namespace": ns}});
        assert!(check_create("n1", leases, NODE_LEASE_NAMESPACE, &lease(NODE_LEASE_NAMESPACE, "n1"), None).is_ok());
        assert_eq!(
            message(check_create("n1", leases, NODE_LEASE_NAMESPACE, &lease(NODE_LEASE_NAMESPACE, "n2"), None)),
            "leases.coordination.k8s.io \"n2\" is forbidden: can only access node lease with the same name as the requesting node"
        );
        assert!(message(admit_write(&node("n1"), leases, "", &lease("kube-system", "n1"), &lease("kube-system", "n1")))
            .ends_with("can only access leases in the \"kube-node-lease\" system namespace"));
        let sas = info("", "serviceaccounts");
        let pod = json!({"metadata": {"name": "web", "uid": "p1"}, "spec": {"nodeName": "n1"}});
        let req = |uid: &str| json!({"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": uid}}});
        assert!(check_token("n1", sas, "default", &req("p1"), Some(&pod)).is_ok());
        assert_eq!(
            message(check_token("n2", sas, "default", &req("p1"), Some(&pod))),
            "serviceaccounts \"default\" is forbidden: node requested token bound to a pod scheduled on a different node"
        );
        assert!(message(check_token("n1", sas, "default", &json!({"spec": {}}), Some(&pod))).ends_with("node requested token not bound to a pod"));
        assert!(message(check_token("n1", sas, "default", &req("old"), Some(&pod))).contains("does not match the UID in record"));
    }
}
