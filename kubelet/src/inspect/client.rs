//! The client half of `rkube inspect pod`: find the pod's node from the API, fetch the kubelet's
//! `/inspect/pods/<ns>/<name>` through the apiserver's node proxy (`/api/v1/nodes/<node>/proxy/...`), and
//! format the answer. Every way it can fail is an [`InspectClientError`] naming the pod and what to do; nothing
//! partial is returned as if whole.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

use super::schema::{PodInspection, API_VERSION, POD_KIND};

/// How long the kubelet (through the node proxy) may take before the node is called unreachable.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum InspectClientError {
    #[error("pod {pod} not found (kubectl get pods -n {ns} lists the pods there)")]
    PodNotFound { pod: String, ns: String },
    #[error("pod {pod} is {phase} and not scheduled to a node yet: there is nothing to inspect until it starts (kubectl describe pod shows why)")]
    NotScheduled { pod: String, phase: String },
    #[error("pod {pod} has not started on node {node} yet: {message}")]
    NotStarted { pod: String, node: String, message: String },
    #[error("node {node} of pod {pod} is unreachable: {message}")]
    NodeUnreachable { pod: String, node: String, message: String },
    #[error("inspect pod {pod} on node {node}: {message}")]
    Kubelet { pod: String, node: String, message: String },
    #[error("read pod {pod}: {source}")]
    Api {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("inspect pod {pod} on node {node}: the kubelet answered something that is not a {POD_KIND} {API_VERSION}: {message}")]
    BadAnswer { pod: String, node: String, message: String },
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
    let doc: PodInspection = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if doc.api_version != API_VERSION || doc.kind != POD_KIND {
        return Err(format!("got {} {}", doc.kind, doc.api_version));
    }
    Ok(doc)
}

/// Output formats of `rkube inspect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Tree,
    Json,
    Yaml,
}

/// `doc` in `format` (colours only for a tree on a terminal, as the caller says).
pub fn format(doc: &PodInspection, format: Format, color: bool) -> String {
    match format {
        Format::Tree => super::render::tree(doc, color),
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
        assert_eq!(parse(&other).expect_err("other version"), "got PodInspection inspect.rkube.io/v9");
        assert!(parse("404 page not found").is_err());
        assert_eq!(proxy_path("n1", "default", "web"), "/api/v1/nodes/n1/proxy/inspect/pods/default/web");
    }
}
