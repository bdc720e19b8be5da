//! The client half of `rkube inspect pod`: find the pod's node from the API, fetch the kubelet's
//! `/inspect/pods/<ns>/<name>` through the apiserver's node proxy (`/api/v1/nodes/<node>/proxy/...`), and
//! format the answer. Every way it can fail is an [`InspectClientError`] naming the pod and what to do; nothing
//! partial is returned as if whole.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::schema::{NodeInspection, PodInspection, ServiceInspection, API_VERSION, NODE_KIND, POD_KIND, SERVICE_KIND};

/// How long the kubelet (through the node proxy) may take before the node is called unreachable.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// Why `rkube inspect` (or the dashboard) could not get an inspection: each says what failed, on what, and
/// what to do. `pod`, `service`: `namespace/name`; `node`: the node's name; `message`: what the node proxy or the
/// kubelet said.
#[derive(Debug, thiserror::Error)]
pub enum InspectClientError {
    /// The API has no such pod.
    #[error("pod {pod} not found (kubectl get pods -n {ns} lists the pods there)")]
    PodNotFound {
        /// The pod.
        pod: String,
        /// Its namespace.
        ns: String,
    },
    /// The pod has no node yet.
    #[error("pod {pod} is {phase} and not scheduled to a node yet: there is nothing to inspect until it starts (kubectl describe pod shows why)")]
    NotScheduled {
        /// The pod.
        pod: String,
        /// Its `status.phase` (`Pending` when it has none).
        phase: String,
    },
    /// The kubelet has the pod but no sandbox process for it (409).
    #[error("pod {pod} has not started on node {node} yet: {message}")]
    NotStarted {
        /// The pod.
        pod: String,
        /// Its node.
        node: String,
        /// The kubelet's words.
        message: String,
    },
    /// The node proxy could not reach the kubelet, or it did not answer within [`FETCH_TIMEOUT`].
    #[error("node {node} of pod {pod} is unreachable: {message}")]
    NodeUnreachable {
        /// The pod.
        pod: String,
        /// Its node.
        node: String,
        /// The node proxy's error, or the timeout.
        message: String,
    },
    /// The kubelet answered the pod's inspection with an error.
    #[error("inspect pod {pod} on node {node}: {message}")]
    Kubelet {
        /// The pod.
        pod: String,
        /// Its node.
        node: String,
        /// The kubelet's answer.
        message: String,
    },
    /// Reading the pod from the API failed.
    #[error("read pod {pod}: {source}")]
    Api {
        /// The pod.
        pod: String,
        /// The API client's error.
        #[source]
        source: kube::Error,
    },
    /// The kubelet's answer is not a pod inspection of this version.
    #[error("inspect pod {pod} on node {node}: the kubelet answered something that is not a {POD_KIND} {API_VERSION}: {message}")]
    BadAnswer {
        /// The pod.
        pod: String,
        /// Its node.
        node: String,
        /// Why it could not be read.
        message: String,
    },
    /// The API has no such node.
    #[error("node {node} not found (kubectl get nodes lists the nodes)")]
    NodeNotFound {
        /// The node named.
        node: String,
    },
    /// No node was named and the cluster has more than one.
    #[error("{count} nodes in the cluster: name one (rkube inspect node NAME; kubectl get nodes lists them)")]
    WhichNode {
        /// How many nodes there are.
        count: usize,
    },
    /// The API has no such Service.
    #[error("service {service} not found (kubectl get services -n {ns} lists the services there)")]
    ServiceNotFound {
        /// The Service.
        service: String,
        /// Its namespace.
        ns: String,
    },
    /// No node was named and none is Ready to read the Service's proxy rules on.
    #[error("no Ready node to read service {service}'s proxy rules on: name one with --node")]
    NoReadyNode {
        /// The Service.
        service: String,
    },
    /// Reading a node or a Service from the API failed.
    #[error("inspect {what}: {source}")]
    ApiOf {
        /// `node <name>` or `service <ns/name>`.
        what: String,
        /// The API client's error.
        #[source]
        source: kube::Error,
    },
    /// The node's or the Service's inspection could not be fetched from the kubelet, or was not one.
    #[error("inspect {what} on node {node}: {message}")]
    Fetch {
        /// `node <name>` or `service <ns/name>`.
        what: String,
        /// The node asked.
        node: String,
        /// What went wrong.
        message: String,
    },
}

/// The path of the kubelet endpoint through the apiserver's node proxy.
pub fn proxy_path(node: &str, ns: &str, name: &str) -> String {
    format!("/api/v1/nodes/{node}/proxy/inspect/pods/{ns}/{name}")
}

/// The pod's node from the API, then the kubelet's inspection of it through the node proxy.
pub async fn fetch_pod(client: &kube::Client, ns: &str, name: &str) -> Result<PodInspection, InspectClientError> {
    let pod_ref = format!("{ns}/{name}");
    let pod = match Api::<Pod>::namespaced(client.clone(), ns).get_opt(name).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(InspectClientError::PodNotFound { pod: pod_ref, ns: ns.into() }),
        Err(source) => return Err(InspectClientError::Api { pod: pod_ref, source }),
    };
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".into());
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()) else {
        return Err(InspectClientError::NotScheduled { pod: pod_ref, phase });
    };
    let req = axum::http::Request::get(proxy_path(&node, ns, name))
        .body(Vec::new())
        .map_err(|e| InspectClientError::Kubelet { pod: pod_ref.clone(), node: node.clone(), message: e.to_string() })?;
    let text = match tokio::time::timeout(FETCH_TIMEOUT, client.request_text(req)).await {
        Err(_) => {
            return Err(InspectClientError::NodeUnreachable {
                pod: pod_ref,
                node,
                message: format!("no answer through the node proxy within {} s", FETCH_TIMEOUT.as_secs()),
            })
        }
        Ok(Ok(t)) => t,
        Ok(Err(kube::Error::Api(s))) => {
            let message = s.message.clone();
            return Err(match s.code {
                409 => InspectClientError::NotStarted { pod: pod_ref, node, message },
                404 if message.contains("is not running on node") => InspectClientError::NotStarted { pod: pod_ref, node, message },
                502..=504 => InspectClientError::NodeUnreachable { pod: pod_ref, node, message },
                _ => InspectClientError::Kubelet { pod: pod_ref, node, message: format!("{message} (HTTP {})", s.code) },
            });
        }
        Ok(Err(e)) => return Err(InspectClientError::NodeUnreachable { pod: pod_ref, node, message: e.to_string() }),
    };
    parse(&text).map_err(|message| InspectClientError::BadAnswer { pod: pod_ref, node, message })
}

/// The kubelet's answer, checked to be the version this client reads.
pub fn parse(text: &str) -> Result<PodInspection, String> {
    parse_kind(text, POD_KIND)
}

fn parse_kind<T: DeserializeOwned>(text: &str, kind: &str) -> Result<T, String> {
    let head: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if head["apiVersion"] != API_VERSION || head["kind"] != kind {
        return Err(format!("got {} {}, not {kind} {API_VERSION}", head["kind"].as_str().unwrap_or("?"), head["apiVersion"].as_str().unwrap_or("?")));
    }
    serde_json::from_value(head).map_err(|e| e.to_string())
}

/// GET `path` through the node proxy, with the same timeout and meaning of errors as for a pod.
async fn fetch_from_node<T: DeserializeOwned>(client: &kube::Client, node: &str, path: &str, what: &str, kind: &str) -> Result<T, InspectClientError> {
    let fetch = |message: String| InspectClientError::Fetch { what: what.into(), node: node.into(), message };
    let req = axum::http::Request::get(format!("/api/v1/nodes/{node}/proxy{path}")).body(Vec::new()).map_err(|e| fetch(e.to_string()))?;
    let text = match tokio::time::timeout(FETCH_TIMEOUT, client.request_text(req)).await {
        Err(_) => return Err(fetch(format!("node {node} is unreachable: no answer through the node proxy within {} s", FETCH_TIMEOUT.as_secs()))),
        Ok(Ok(t)) => t,
        Ok(Err(kube::Error::Api(s))) if (502..=504).contains(&s.code) => return Err(fetch(format!("node {node} is unreachable: {}", s.message))),
        Ok(Err(kube::Error::Api(s))) => return Err(fetch(format!("{} (HTTP {})", s.message, s.code))),
        Ok(Err(e)) => return Err(fetch(format!("node {node} is unreachable: {e}"))),
    };
    parse_kind(&text, kind).map_err(|m| fetch(format!("the kubelet answered something else: {m}")))
}

fn node_ready(n: &Node) -> bool {
    n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `rkube inspect node [NAME]`: the named node, or the only one.
pub async fn fetch_node(client: &kube::Client, name: Option<&str>) -> Result<NodeInspection, InspectClientError> {
    let api = Api::<Node>::all(client.clone());
    let api_err = |source| InspectClientError::ApiOf { what: format!("node {}", name.unwrap_or("")), source };
    let node = match name {
        Some(n) => api.get_opt(n).await.map_err(api_err)?.ok_or_else(|| InspectClientError::NodeNotFound { node: n.into() })?,
        None => {
            let mut all = api.list(&ListParams::default()).await.map_err(api_err)?.items;
            if all.len() != 1 {
                return Err(InspectClientError::WhichNode { count: all.len() });
            }
            all.remove(0)
        }
    };
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut doc: NodeInspection = fetch_from_node(client, &name, "/inspect/node", &format!("node {name}"), NODE_KIND).await?;
    doc.pod_cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.clone());
    Ok(doc)
}

/// `rkube inspect service NAME [-n NS] [--node N]`: the Service from the API, its proxy rules from node N's
/// kubelet (default: the first Ready node by name; every node's proxy holds the same Services).
pub async fn fetch_service(client: &kube::Client, ns: &str, name: &str, node: Option<&str>) -> Result<ServiceInspection, InspectClientError> {
    let what = format!("service {ns}/{name}");
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|source| InspectClientError::ApiOf { what: what.clone(), source })?
        .ok_or_else(|| InspectClientError::ServiceNotFound { service: format!("{ns}/{name}"), ns: ns.into() })?;
    let node = match node {
        Some(n) => n.to_string(),
        None => {
            let mut nodes = Api::<Node>::all(client.clone())
                .list(&ListParams::default())
                .await
                .map_err(|source| InspectClientError::ApiOf { what: what.clone(), source })?
                .items;
            nodes.retain(node_ready);
            nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            nodes.first().and_then(|n| n.metadata.name.clone()).ok_or(InspectClientError::NoReadyNode { service: format!("{ns}/{name}") })?
        }
    };
    let mut doc: ServiceInspection = fetch_from_node(client, &node, &format!("/inspect/services/{ns}/{name}"), &what, SERVICE_KIND).await?;
    let spec = svc.spec.unwrap_or_default();
    doc.service_type = Some(spec.type_.unwrap_or_else(|| "ClusterIP".into()));
    doc.cluster_ips = spec.cluster_ips.or_else(|| spec.cluster_ip.map(|ip| vec![ip])).unwrap_or_default();
    Ok(doc)
}

/// Output formats of `rkube inspect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The tree for people ([`super::render`]).
    Tree,
    /// The document as JSON.
    Json,
    /// The document as YAML.
    Yaml,
}

/// `doc` in `format` (colours only for a tree on a terminal, as the caller says).
pub fn format(doc: &PodInspection, format: Format, color: bool) -> String {
    format_with(doc, format, |d| super::render::tree(d, color))
}

/// Any inspection document in `format`, `tree` drawing it for people.
pub fn format_with<T: Serialize>(doc: &T, format: Format, tree: impl FnOnce(&T) -> String) -> String {
    match format {
        Format::Tree => tree(doc),
        Format::Json => serde_json::to_string_pretty(doc).map(|s| s + "\n").unwrap_or_default(),
        Format::Yaml => serde_yaml::to_string(doc).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_known_version_is_read() {
        let doc = PodInspection { api_version: API_VERSION.into(), kind: POD_KIND.into(), ..Default::default() };
        let json = format(&doc, Format::Json, false);
        assert_eq!(parse(&json).expect("parse"), doc);
        let yaml = format(&doc, Format::Yaml, false);
        assert!(yaml.starts_with("apiVersion: inspect.rkube.io/v1alpha1\nkind: PodInspection\n"), "{yaml}");
        let other = json.replace("v1alpha1", "v9");
        assert_eq!(parse(&other).expect_err("other version"), "got PodInspection inspect.rkube.io/v9, not PodInspection inspect.rkube.io/v1alpha1");
        let node = NodeInspection { api_version: API_VERSION.into(), kind: NODE_KIND.into(), ..Default::default() };
        let text = serde_json::to_string(&node).expect("json");
        assert_eq!(parse_kind::<NodeInspection>(&text, NODE_KIND).expect("node"), node);
        assert!(parse_kind::<ServiceInspection>(&text, SERVICE_KIND).expect_err("a node is no service").starts_with("got NodeInspection"));
        assert!(parse("404 page not found").is_err());
        assert_eq!(proxy_path("n1", "default", "web"), "/api/v1/nodes/n1/proxy/inspect/pods/default/web");
    }
}
