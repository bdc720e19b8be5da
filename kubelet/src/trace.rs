//! The kubelet's trace spans (issue 17, `docs/trace.md`). Each pod worker runs inside a `kubelet.pod` span
//! parented to the pod's `rkube.io/traceparent`, so what the worker does is recorded under the pod's trace: the
//! sandbox and CNI step timings, the image pull (layers, bytes), each container's steps, the pod's Kubernetes
//! Events (Pulling, Pulled, Created, Started, Unhealthy, Killing...) and each status change (phase, Ready).
//! `GET /debug/rkube/traces/<trace id>` on the kubelet API serves what this process recorded; it is authorized
//! as every kubelet path (`nodes/proxy`) and reachable through the apiserver's node proxy.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use rkube_trace::context::{parse_trace_id, TraceId};
use rkube_trace::{trace_event, trace_span, TraceContext, TraceParent};

use crate::pod::events::EventType;

/// The span a pod's worker runs in (disabled for a pod without trace context).
pub fn pod_span(pod: &Pod, node: &str) -> tracing::Span {
    let Some(parent) = TraceParent::from_annotations(pod.metadata.annotations.as_ref()) else {
        return tracing::Span::none();
    };
    let key = format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or_default());
    let span = trace_span!("kubelet.pod", TraceContext::child_of(parent), pod = key.as_str(), node = node);
    span.in_scope(|| trace_event!(node = node, "kubelet saw the pod"));
    span
}

/// A Kubernetes Event the worker records, as a step of the current pod's trace.
pub fn event(container: Option<&str>, t: EventType, reason: &str, message: &str) {
    trace_event!(container, kind = ?t, detail = message, "{reason}");
}

/// A status the worker reports, as a step of the current pod's trace.
pub fn status(status: &PodStatus) {
    let ready = status.conditions.as_ref().and_then(|cs| cs.iter().find(|c| c.type_ == "Ready")).map(|c| c.status.as_str());
    trace_event!(phase = status.phase.as_deref(), ready, "status");
}

/// `GET /debug/rkube/traces/{trace_id}`.
pub async fn serve(Path(id): Path<String>) -> Response {
    let Some(trace_id) = parse_trace_id(&id) else {
        return (StatusCode::BAD_REQUEST, format!("{id:?} is not a trace id (32 hex digits)")).into_response();
    };
    match rkube_trace::global().get(trace_id) {
        Some((records, dropped)) => {
            let body = serde_json::json!({"traceId": TraceId(trace_id).to_string(), "dropped": dropped, "records": records});
            ([("content-type", "application/json")], body.to_string()).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("trace {id} is not kept on this node")).into_response(),
    }
}
