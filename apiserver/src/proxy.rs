//! Subresources served by the kubelet: `pods/log` is proxied to the kubelet of the pod's node
//! (`GET http://<node InternalIP>:<kubelet port>/containerLogs/<ns>/<pod>/<container>?follow=...`), streaming
//! the response back. The kubelet port comes from the Node's `status.daemonEndpoints.kubeletEndpoint.Port`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use http::{header, StatusCode};
use serde_json::Value;

use crate::handlers::{read_object, Ctx};
use crate::registry;
use crate::status::ApiError;

/// Default kubelet port when the node does not report one.
pub const DEFAULT_KUBELET_PORT: i64 = 10250;

/// The kubelet base URL (`http://ip:port`) of a node object.
pub fn kubelet_url(node: &Value) -> Option<String> {
    let addrs = node.pointer("/status/addresses").and_then(Value::as_array)?;
    let ip = ["InternalIP", "ExternalIP", "Hostname"].iter().find_map(|t| {
        addrs
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(t))
            .and_then(|a| a.get("address").and_then(Value::as_str))
    })?;
    let port = node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port").and_then(Value::as_i64).unwrap_or(DEFAULT_KUBELET_PORT);
    Some(format!("http://{ip}:{port}"))
}

pub async fn pod_log(ctx: &Ctx, pod: &Value) -> Result<Response, ApiError> {
    let pods = ctx.info();
    let name = ctx.name();
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let container = match ctx.query.get("container") {
        Some(c) if !c.is_empty() => c.to_string(),
        _ if containers.len() == 1 => containers[0].clone(),
        _ => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!("container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating")));
    }
    let nodes = registry::find("", "v1", "nodes").expect("nodes are in the table");
    let Some((node_obj, _)) = read_object(&ctx.state, nodes, &nodes.key(None, node), node).await? else {
        return Err(ApiError::not_found(nodes, node));
    };
    let base = kubelet_url(&node_obj).ok_or_else(|| ApiError::internal(format!("node {node} reports no address")))?;
    let mut url = format!("{base}/containerLogs/{}/{name}/{container}", ctx.target.ns().unwrap_or_default());
    let passthrough: Vec<String> = ctx
        .query
        .raw
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "follow" | "tailLines" | "sinceSeconds" | "sinceTime" | "timestamps" | "previous" | "limitBytes"))
        .map(|(k, v)| format!("{k}={}", form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()))
        .collect();
    if !passthrough.is_empty() {
        url.push('?');
        url.push_str(&passthrough.join("&"));
    }
    let resp = reqwest::Client::new()
        .get(&url)
        .send()
        .await
        .map_err(|e| ApiError::internal(format!("get logs of pod {name} from kubelet {base}: {e}")))?;
    if !resp.status().is_success() {
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let _ = pods;
        return Err(ApiError::new(if code == 404 { 404 } else { 500 }, if code == 404 { "NotFound" } else { "InternalError" }, text.trim().to_string()));
    }
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], Body::from_stream(stream)).into_response())
}
