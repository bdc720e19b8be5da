//! The Node authorizer, upstream's `--authorization-mode=Node` (consulted before RBAC): a kubelet, a user named
//! `system:node:<name>` in group `system:nodes`, may read the Secrets, ConfigMaps, PersistentVolumeClaims and
//! PersistentVolumes, and create tokens for the service accounts, of pods bound to its node only; everything
//! else a kubelet needs comes from the fixed node rules ([`node_rules`], upstream's `NodeRules`), and the
//! NodeRestriction admission (`admission::node_restriction`) narrows the writes those rules let through to the
//! node's own objects. Users that are not nodes get no opinion, and neither does a node for what the rules do not
//! cover: RBAC decides then (and upstream's `system:nodes` group has no binding by default).
//!
//! The decision is a pure function, [`decide`], of the node's name, the request and what the node's pods
//! reference ([`NodeGraph`]); [`authorize`] builds that graph from the store (pods with `spec.nodeName` of the
//! node) only for the requests that need it. Nothing is cached: a pod bound a moment ago counts at once.
//!
//! rkube's kubelet also runs the service proxy and the cluster DNS, so the node rules add what upstream gives
//! kube-proxy and CoreDNS (`system:node-proxier`, `system:coredns`): get/list/watch of endpoints,
//! endpointslices and namespaces.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use super::attributes::Attributes;
use super::rbac;
use super::user::User;
use crate::registry;
use crate::state::ApiState;
use crate::status::ApiError;
use crate::storage::ListOptions;

/// The group every kubelet credential carries.
pub const NODES_GROUP: &str = "system:nodes";
/// Kubelet user names: `system:node:<node name>`.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// Where node Leases live.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Upstream's `NodeIdentity`: the node a user speaks for, if it is a node at all (name `system:node:<n>` and
/// group `system:nodes`). `Some("")` is a node user whose name names no node.
pub fn node_identity(user: &User) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    user.groups.iter().any(|g| g == NODES_GROUP).then_some(name)
}

/// The authorizer's answer. Upstream's node authorizer never denies outright: what it does not allow goes on to
/// RBAC, and its reason ends the 403's message when RBAC does not allow it either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The node may do this.
    Allow,
    /// Not the node authorizer's to allow; why, for the 403 if RBAC does not allow it either.
    NoOpinion(String),
}

/// `namespace/name` of a namespaced object.
type Ref = (String, String);

/// What the pods bound to one node reference: the edges of upstream's node graph that end at this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeGraph {
    /// The pods bound to the node (`spec.nodeName`).
    pub pods: BTreeSet<Ref>,
    /// Secrets those pods use (volumes, env, image pull secrets).
    pub secrets: BTreeSet<Ref>,
    /// ConfigMaps those pods use (volumes, env).
    pub config_maps: BTreeSet<Ref>,
    /// PersistentVolumeClaims those pods mount.
    pub pvcs: BTreeSet<Ref>,
    /// The pods' ServiceAccounts (the node may ask for their tokens).
    pub service_accounts: BTreeSet<Ref>,
    /// PersistentVolumes, by the claims above (`spec.volumeName` of a bound claim).
    pub pvs: BTreeSet<String>,
}

impl NodeGraph {
    /// The graph of `node` from every pod (JSON) given: those whose `spec.nodeName` is `node` count.
    pub fn from_pods<'a>(node: &str, pods: impl IntoIterator<Item = &'a Value>) -> NodeGraph {
        let mut g = NodeGraph::default();
        for pod in pods {
            if pod.pointer("/spec/nodeName").and_then(Value::as_str) != Some(node) || node.is_empty() {
                continue;
            }
            g.add_pod(pod);
        }
        g
    }

    /// Adds a pod's references (upstream's `VisitPodSecretNames`, `VisitPodConfigmapNames`, claims and
    /// ephemeral claims, its service account).
    pub fn add_pod(&mut self, pod: &Value) {
        let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_string();
        let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        let at = |name: &str| (ns.clone(), name.to_string());
        let str_at = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let Some(spec) = pod.get("spec") else { return };
        self.pods.insert(at(&pod_name));
        let sa = str_at(spec, "/serviceAccountName").or_else(|| str_at(spec, "/serviceAccount")).unwrap_or_else(|| "default".into());
        self.service_accounts.insert(at(&sa));
        for s in spec.get("imagePullSecrets").and_then(Value::as_array).into_iter().flatten() {
            if let Some(n) = str_at(s, "/name") {
                self.secrets.insert(at(&n));
            }
        }
        let containers = ["initContainers", "containers", "ephemeralContainers"]
            .iter()
            .flat_map(|k| spec.get(*k).and_then(Value::as_array).into_iter().flatten());
        for c in containers {
            for from in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
                if let Some(n) = str_at(from, "/secretRef/name") {
                    self.secrets.insert(at(&n));
                }
                if let Some(n) = str_at(from, "/configMapRef/name") {
                    self.config_maps.insert(at(&n));
                }
            }
            for env in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                if let Some(n) = str_at(env, "/valueFrom/secretKeyRef/name") {
                    self.secrets.insert(at(&n));
                }
                if let Some(n) = str_at(env, "/valueFrom/configMapKeyRef/name") {
                    self.config_maps.insert(at(&n));
                }
            }
        }
        for v in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
            if let Some(n) = str_at(v, "/secret/secretName") {
                self.secrets.insert(at(&n));
            }
            if let Some(n) = str_at(v, "/configMap/name") {
                self.config_maps.insert(at(&n));
            }
            for s in v.pointer("/projected/sources").and_then(Value::as_array).into_iter().flatten() {
                if let Some(n) = str_at(s, "/secret/name") {
                    self.secrets.insert(at(&n));
                }
                if let Some(n) = str_at(s, "/configMap/name") {
                    self.config_maps.insert(at(&n));
                }
            }
            // the volume plugins that take a secret reference (upstream visits each of them)
            for p in [
                "/azureFile/secretName",
                "/cephfs/secretRef/name",
                "/cinder/secretRef/name",
                "/flexVolume/secretRef/name",
                "/iscsi/secretRef/name",
                "/rbd/secretRef/name",
                "/scaleIO/secretRef/name",
                "/storageos/secretRef/name",
                "/csi/nodePublishSecretRef/name",
            ] {
                if let Some(n) = str_at(v, p) {
                    self.secrets.insert(at(&n));
                }
            }
            if let Some(n) = str_at(v, "/persistentVolumeClaim/claimName") {
                self.pvcs.insert(at(&n));
            }
            if v.get("ephemeral").is_some_and(Value::is_object) {
                if let Some(vol) = str_at(v, "/name") {
                    self.pvcs.insert(at(&format!("{pod_name}-{vol}")));
                }
            }
        }
    }

    /// Adds the PersistentVolumes the graph's claims are bound to, given the claims (JSON).
    pub fn add_volumes<'a>(&mut self, claims: impl IntoIterator<Item = &'a Value>) {
        for c in claims {
            let ns = c.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
            let name = c.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            if !self.pvcs.contains(&(ns.to_string(), name.to_string())) {
                continue;
            }
            if let Some(pv) = c.pointer("/spec/volumeName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                self.pvs.insert(pv.to_string());
            }
        }
    }
}

/// The kinds of object the graph answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vertex {
    Secret,
    ConfigMap,
    Pvc,
    Pv,
    ServiceAccount,
}

/// Which graph-decided kind a request is about, if any: the requests [`authorize`] reads the pods for.
fn vertex_of(a: &Attributes) -> Option<Vertex> {
    if !a.resource_request || !a.api_group.is_empty() {
        return None;
    }
    Some(match a.resource.as_str() {
        "secrets" => Vertex::Secret,
        "configmaps" => Vertex::ConfigMap,
        "persistentvolumeclaims" => Vertex::Pvc,
        "persistentvolumes" => Vertex::Pv,
        "serviceaccounts" => Vertex::ServiceAccount,
        _ => return None,
    })
}

/// Whether deciding `a` for a node needs its [`NodeGraph`].
pub fn needs_graph(a: &Attributes) -> bool {
    vertex_of(a).is_some()
}

fn no_opinion(reason: impl Into<String>) -> Decision {
    Decision::NoOpinion(reason.into())
}

/// Upstream's node authorizer for node `node`: `graph` is what the pods bound to it reference (only read for
/// secrets, configmaps, persistentvolumeclaims, persistentvolumes and serviceaccounts). The reasons are
/// upstream's, word for word.
pub fn decide(node: &str, a: &Attributes, graph: &NodeGraph) -> Decision {
    if node.is_empty() {
        return no_opinion(String::new());
    }
    if let Some(vertex) = vertex_of(a) {
        let check = match vertex {
            Vertex::Secret | Vertex::ConfigMap => read_namespaced(a),
            Vertex::Pvc if a.subresource == "status" => status_update(a),
            Vertex::Pvc | Vertex::Pv => get_only(a),
            Vertex::ServiceAccount => create_token(a),
        };
        if let Err(reason) = check {
            return no_opinion(reason);
        }
        return related(node, vertex, a, graph);
    }
    if a.resource_request && a.api_group == "coordination.k8s.io" && a.resource == "leases" {
        return lease(node, a);
    }
    if node_rules().iter().any(|r| rbac::rule_allows(r, a)) {
        return Decision::Allow;
    }
    no_opinion(String::new())
}

fn read_namespaced(a: &Attributes) -> Result<(), &'static str> {
    if !matches!(a.verb.as_str(), "get" | "list" | "watch") {
        return Err("can only read resources of this type");
    }
    if !a.subresource.is_empty() {
        return Err("cannot read subresource");
    }
    if a.namespace.is_empty() {
        return Err("can only read namespaced object of this type");
    }
    Ok(())
}

fn status_update(a: &Attributes) -> Result<(), &'static str> {
    if !matches!(a.verb.as_str(), "update" | "patch") {
        return Err("can only get/update/patch this type");
    }
    if a.subresource != "status" {
        return Err("can only update status subresource");
    }
    Ok(())
}

fn get_only(a: &Attributes) -> Result<(), &'static str> {
    if a.verb != "get" {
        return Err("can only get individual resources of this type");
    }
    if !a.subresource.is_empty() {
        return Err("cannot get subresource");
    }
    Ok(())
}

fn create_token(a: &Attributes) -> Result<(), &'static str> {
    if a.verb != "create" || a.name.is_empty() {
        return Err("can only create tokens for individual service accounts");
    }
    if a.subresource != "token" {
        return Err("can only create token subresource of serviceaccount");
    }
    Ok(())
}

/// Upstream's `hasPathFrom`: is there an edge from the named object to a pod of this node.
fn related(node: &str, vertex: Vertex, a: &Attributes, g: &NodeGraph) -> Decision {
    if a.name.is_empty() {
        return no_opinion("No Object name found");
    }
    let key = (a.namespace.clone(), a.name.clone());
    let found = match vertex {
        Vertex::Secret => g.secrets.contains(&key),
        Vertex::ConfigMap => g.config_maps.contains(&key),
        Vertex::Pvc => g.pvcs.contains(&key),
        Vertex::ServiceAccount => g.service_accounts.contains(&key),
        Vertex::Pv => g.pvs.contains(&a.name),
    };
    if found {
        Decision::Allow
    } else {
        no_opinion(format!("no relationship found between node '{node}' and this object"))
    }
}

/// Upstream's `authorizeLease`: its own Lease in kube-node-lease (any name on create: NodeRestriction checks it).
fn lease(node: &str, a: &Attributes) -> Decision {
    if !matches!(a.verb.as_str(), "get" | "create" | "update" | "patch" | "delete") {
        return no_opinion("can only get, create, update, patch, or delete a node lease");
    }
    if a.namespace != NODE_LEASE_NAMESPACE {
        return no_opinion(format!("can only access leases in the \"{NODE_LEASE_NAMESPACE}\" system namespace"));
    }
    if a.verb != "create" && a.name != node {
        return no_opinion("can only access node lease with the same name as the requesting node");
    }
    Decision::Allow
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    PolicyRule { verbs: v(verbs), api_groups: Some(v(groups)), resources: Some(v(resources)), ..Default::default() }
}

const READ: &[&str] = &["get", "list", "watch"];

/// Upstream's `NodeRules` (plugin/pkg/auth/authorizer/rbac/bootstrappolicy), less the kinds the graph decides,
/// plus what rkube's kubelet needs for the service proxy and DNS it runs (endpoints and endpointslices
/// get/list/watch as `system:node-proxier`, namespaces as `system:coredns`). The NodeRestriction admission
/// limits the writes to the node's own Node, its mirror pods and the status of its pods.
pub fn node_rules() -> Vec<PolicyRule> {
    vec![
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews", "localsubjectaccessreviews"]),
        rule(READ, &[""], &["services"]),
        rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        rule(&["update", "patch"], &[""], &["nodes/status"]),
        rule(&["update", "patch"], &[""], &["nodes"]),
        rule(&["create", "update", "patch"], &["", "events.k8s.io"], &["events"]),
        rule(READ, &[""], &["pods"]),
        rule(&["create", "delete"], &[""], &["pods"]),
        rule(&["update", "patch"], &[""], &["pods/status"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(&["create", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"]),
        rule(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
        rule(READ, &["storage.k8s.io"], &["csidrivers"]),
        rule(&["get", "create", "update", "patch", "delete"], &["storage.k8s.io"], &["csinodes"]),
        rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
        // rkube: the kubelet's service proxy and DNS
        rule(READ, &[""], &["endpoints", "namespaces"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
    ]
}

/// The Node authorizer for `user`: None for users that are not nodes (upstream's "no opinion" without a
/// reason), else the decision, reading the node's pods from the store when the request needs them.
pub async fn authorize(state: &ApiState, user: &User, a: &Attributes) -> Result<Option<Decision>, ApiError> {
    let Some(node) = node_identity(user) else { return Ok(None) };
    if node.is_empty() {
        tracing::debug!(user = %user.name, "node deny: unknown node");
        return Ok(Some(no_opinion(format!("unknown node for user {:?}", user.name))));
    }
    let graph = if needs_graph(a) { graph_of(state, node).await? } else { NodeGraph::default() };
    let d = decide(node, a, &graph);
    if let Decision::NoOpinion(reason) = &d {
        tracing::debug!(node, verb = %a.verb, resource = %a.full_resource(), namespace = %a.namespace, name = %a.name, reason, "node deny");
    }
    Ok(Some(d))
}

/// The graph of `node` from the stored pods (and claims, when the store serves them).
async fn graph_of(state: &ApiState, node: &str) -> Result<NodeGraph, ApiError> {
    let pods = list_all(state, "pods").await?;
    let mut graph = NodeGraph::from_pods(node, pods.iter());
    if !graph.pvcs.is_empty() {
        graph.add_volumes(list_all(state, "persistentvolumeclaims").await?.iter());
    }
    Ok(graph)
}

/// Every stored object of a core resource, decoded; nothing when the resource is not served.
async fn list_all(state: &ApiState, resource: &str) -> Result<Vec<Value>, ApiError> {
    let Some(info) = registry::find("", "v1", resource) else { return Ok(Vec::new()) };
    let page = state
        .store
        .list(ListOptions { prefix: info.key_prefix(), ..Default::default() })
        .await
        .map_err(|e| ApiError::from_storage(info, "", e))?;
    Ok(page.items.iter().filter_map(|kv| crate::object::decode(kv).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    fn no_rel(node: &str) -> Decision {
        Decision::NoOpinion(format!("no relationship found between node '{node}' and this object"))
    }

    /// A pod on `node` referencing a bit of everything, and one on another node.
    fn pods() -> Vec<Value> {
        vec![
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
                "nodeName": "n1",
                "serviceAccountName": "robot",
                "imagePullSecrets": [{"name": "pull"}],
                "initContainers": [{"name": "i", "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "init-cm", "key": "k"}}}]}],
                "containers": [{"name": "c",
                    "envFrom": [{"secretRef": {"name": "env-all"}}, {"configMapRef": {"name": "env-cm"}}],
                    "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "env-one", "key": "p"}}}]}],
                "volumes": [
                    {"name": "s", "secret": {"secretName": "vol-secret"}},
                    {"name": "c", "configMap": {"name": "vol-cm"}},
                    {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "kube-root-ca.crt"}}, {"serviceAccountToken": {"path": "t"}}]}},
                    {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "x", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}}}
                ]}}),
            json!({"metadata": {"name": "other", "namespace": "default"}, "spec": {
                "nodeName": "n2", "containers": [{"name": "c"}],
                "volumes": [{"name": "s", "secret": {"secretName": "b-only"}}]}}),
            json!({"metadata": {"name": "pending", "namespace": "default"}, "spec": {
                "containers": [{"name": "c"}], "volumes": [{"name": "s", "secret": {"secretName": "unbound"}}]}}),
        ]
    }

    #[test]
    fn node_users_are_named_and_grouped() {
        let node = User { name: "system:node:n1".into(), groups: vec![NODES_GROUP.into()], ..Default::default() };
        assert_eq!(node_identity(&node), Some("n1"));
        let no_group = User { name: "system:node:n1".into(), ..Default::default() };
        assert_eq!(node_identity(&no_group), None, "the name alone is not a node");
        let other = User { name: "alice".into(), groups: vec![NODES_GROUP.into()], ..Default::default() };
        assert_eq!(node_identity(&other), None);
        let nameless = User { name: "system:node:".into(), groups: vec![NODES_GROUP.into()], ..Default::default() };
        assert_eq!(node_identity(&nameless), Some(""));
    }

    #[test]
    fn the_graph_holds_what_the_nodes_pods_reference() {
        let all = pods();
        let g = NodeGraph::from_pods("n1", all.iter());
        let at = |n: &str| ("default".to_string(), n.to_string());
        for s in ["pull", "env-all", "env-one", "vol-secret", "proj-secret", "csi-secret"] {
            assert!(g.secrets.contains(&at(s)), "secret {s}");
        }
        for c in ["init-cm", "env-cm", "vol-cm", "kube-root-ca.crt"] {
            assert!(g.config_maps.contains(&at(c)), "configmap {c}");
        }
        assert!(!g.secrets.contains(&at("b-only")) && !g.secrets.contains(&at("unbound")));
        assert_eq!(g.pvcs, [at("data"), at("web-scratch")].into_iter().collect());
        assert_eq!(g.service_accounts, [at("robot")].into_iter().collect());
        let n2 = NodeGraph::from_pods("n2", all.iter());
        assert_eq!(n2.service_accounts, [at("default")].into_iter().collect(), "no serviceAccountName: default");
        assert!(NodeGraph::from_pods("", all.iter()).secrets.is_empty(), "an unscheduled pod belongs to no node");
        let mut g = g;
        g.add_volumes([json!({"metadata": {"name": "data", "namespace": "default"}, "spec": {"volumeName": "pv-1"}}),
                       json!({"metadata": {"name": "elsewhere", "namespace": "default"}, "spec": {"volumeName": "pv-2"}})].iter());
        assert_eq!(g.pvs, ["pv-1".to_string()].into_iter().collect());
    }

    #[test]
    fn secrets_configmaps_and_tokens_only_of_the_nodes_pods() {
        let all = pods();
        let g1 = NodeGraph::from_pods("n1", all.iter());
        let d = |a: &Attributes| decide("n1", a, &g1);
        assert_eq!(d(&req("get", "", "secrets", "", "default", "vol-secret")), Decision::Allow);
        assert_eq!(d(&req("watch", "", "secrets", "", "default", "env-one")), Decision::Allow, "a watch of one name");
        assert_eq!(d(&req("get", "", "secrets", "", "default", "b-only")), no_rel("n1"));
        assert_eq!(d(&req("get", "", "secrets", "", "other", "vol-secret")), no_rel("n1"), "same name, other namespace");
        assert_eq!(d(&req("list", "", "secrets", "", "default", "")), Decision::NoOpinion("No Object name found".into()));
        assert_eq!(d(&req("update", "", "secrets", "", "default", "vol-secret")), Decision::NoOpinion("can only read resources of this type".into()));
        assert_eq!(d(&req("get", "", "configmaps", "", "default", "kube-root-ca.crt")), Decision::Allow);
        assert_eq!(d(&req("get", "", "configmaps", "", "default", "nope")), no_rel("n1"));
        assert_eq!(d(&req("create", "", "serviceaccounts", "token", "default", "robot")), Decision::Allow);
        assert_eq!(d(&req("create", "", "serviceaccounts", "token", "default", "default")), no_rel("n1"));
        assert_eq!(
            d(&req("get", "", "serviceaccounts", "", "default", "robot")),
            Decision::NoOpinion("can only create tokens for individual service accounts".into())
        );
        assert_eq!(d(&req("get", "", "persistentvolumeclaims", "", "default", "data")), Decision::Allow);
        assert_eq!(
            d(&req("list", "", "persistentvolumeclaims", "", "default", "")),
            Decision::NoOpinion("can only get individual resources of this type".into())
        );
        assert_eq!(d(&req("patch", "", "persistentvolumeclaims", "status", "default", "data")), Decision::Allow);
        assert_eq!(d(&req("get", "", "persistentvolumes", "", "", "pv-9")), no_rel("n1"));
        // the other node sees its own pod's secret and not n1's
        let g2 = NodeGraph::from_pods("n2", all.iter());
        assert_eq!(decide("n2", &req("get", "", "secrets", "", "default", "b-only"), &g2), Decision::Allow);
        assert_eq!(decide("n2", &req("get", "", "secrets", "", "default", "vol-secret"), &g2), no_rel("n2"));
    }

    #[test]
    fn leases_only_its_own_in_kube_node_lease() {
        let g = NodeGraph::default();
        let d = |a: &Attributes| decide("n1", a, &g);
        assert_eq!(d(&req("update", "coordination.k8s.io", "leases", "", NODE_LEASE_NAMESPACE, "n1")), Decision::Allow);
        assert_eq!(d(&req("create", "coordination.k8s.io", "leases", "", NODE_LEASE_NAMESPACE, "")), Decision::Allow);
        assert_eq!(
            d(&req("update", "coordination.k8s.io", "leases", "", NODE_LEASE_NAMESPACE, "n2")),
            Decision::NoOpinion("can only access node lease with the same name as the requesting node".into())
        );
        assert_eq!(
            d(&req("get", "coordination.k8s.io", "leases", "", "kube-system", "n1")),
            Decision::NoOpinion("can only access leases in the \"kube-node-lease\" system namespace".into())
        );
        assert_eq!(
            d(&req("list", "coordination.k8s.io", "leases", "", NODE_LEASE_NAMESPACE, "")),
            Decision::NoOpinion("can only get, create, update, patch, or delete a node lease".into())
        );
    }

    #[test]
    fn the_fixed_rules_cover_what_a_kubelet_does_and_no_more() {
        let g = NodeGraph::default();
        let d = |a: &Attributes| decide("n1", a, &g);
        for a in [
            req("get", "", "nodes", "", "", "n2"),
            req("watch", "", "nodes", "", "", ""),
            req("create", "", "nodes", "", "", ""),
            req("patch", "", "nodes", "status", "", "n1"),
            req("list", "", "pods", "", "", ""),
            req("patch", "", "pods", "status", "default", "web"),
            req("create", "", "pods", "", "default", ""),
            req("delete", "", "pods", "", "default", "web"),
            req("create", "", "events", "", "default", ""),
            req("watch", "", "services", "", "", ""),
            req("watch", "discovery.k8s.io", "endpointslices", "", "", ""),
            req("watch", "", "namespaces", "", "", ""),
            req("create", "authentication.k8s.io", "tokenreviews", "", "", ""),
            req("create", "authorization.k8s.io", "subjectaccessreviews", "", "", ""),
            req("create", "certificates.k8s.io", "certificatesigningrequests", "", "", ""),
        ] {
            assert_eq!(d(&a), Decision::Allow, "{a:?}");
        }
        for a in [
            req("delete", "", "nodes", "", "", "n1"),
            req("update", "", "pods", "", "default", "web"),
            req("create", "", "pods", "binding", "default", "web"),
            req("get", "", "pods", "log", "default", "web"),
            req("create", "", "pods", "exec", "default", "web"),
            req("create", "", "services", "", "default", ""),
            req("list", "apps", "deployments", "", "", ""),
            req("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", ""),
            req("update", "certificates.k8s.io", "certificatesigningrequests", "approval", "", "x"),
            Attributes { verb: "get".into(), path: "/metrics".into(), ..Default::default() },
        ] {
            assert_eq!(d(&a), Decision::NoOpinion(String::new()), "{a:?}");
        }
        assert_eq!(decide("", &req("get", "", "nodes", "", "", "n1"), &g), Decision::NoOpinion(String::new()));
    }
}
