//! Trace context on created objects and the trace endpoint (issue 17, `docs/trace.md`).
//!
//! On create, a Pod or a workload that makes pods (Deployment, ReplicaSet, ReplicationController, StatefulSet,
//! DaemonSet, Job, CronJob) gets the annotation `rkube.io/traceparent`: the W3C trace context of the create
//! span. The trace is the annotation's own if the creator set one (a controller creating a pod carries its
//! owner's), else the request's `traceparent` header's, else a new one. The scheduler and the kubelet read it
//! from the pod and parent their spans to it.
//!
//! `GET /debug/rkube/traces/<trace id>` serves the spans this process recorded for a trace (the apiserver's,
//! and the scheduler's and controllers' when they run in this process, as under `rkube up` and `rkube server`);
//! `GET /debug/rkube/traces/pods/<namespace>/<name>` the latest trace id of a pod, kept after it is gone. Both
//! are non-resource paths, authorized as any (RBAC `nonResourceURLs`).

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use rkube_trace::context::{parse_trace_id, TraceId, HEADER};
use rkube_trace::{trace_span, TraceContext, TraceParent, ANNOTATION};
use serde_json::{json, Value};

use super::context::json_response;
use crate::object;
use crate::registry::ResourceInfo;
use crate::status::ApiError;

const TRACED_KINDS: &[&str] = &["Pod", "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet", "DaemonSet", "Job", "CronJob"];

/// The create span of `obj`, after setting its trace annotation; a disabled span for kinds that are not traced.
pub fn on_create(info: &ResourceInfo, mut obj: Value, headers: &HeaderMap, dry_run: bool) -> (Value, tracing::Span) {
    if dry_run || !TRACED_KINDS.contains(&info.kind) {
        return (obj, tracing::Span::none());
    }
    let from_object = obj.pointer("/metadata/annotations").and_then(|a| a.get(ANNOTATION)).and_then(Value::as_str).and_then(|v| TraceParent::parse(v).ok());
    let from_header = || headers.get(HEADER).and_then(|v| v.to_str().ok()).and_then(|v| TraceParent::parse(v).ok());
    let ctx = TraceContext::child_or_root(from_object.or_else(from_header));
    if from_object.is_none() {
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            let ann = meta.entry("annotations").or_insert_with(|| json!({}));
            if !ann.is_object() {
                *ann = json!({});
            }
            if let Some(a) = ann.as_object_mut() {
                a.insert(ANNOTATION.to_string(), Value::String(ctx.traceparent()));
            }
        }
    }
    let span = trace_span!(
        "apiserver.create",
        ctx,
        resource = info.resource,
        object = tracing::field::Empty,
        pod = tracing::field::Empty,
        rv = tracing::field::Empty
    );
    (obj, span)
}

/// Records what was stored on the create span.
pub fn created(span: &tracing::Span, obj: &Value, kind: &str) {
    if span.is_none() {
        return;
    }
    let key = format!("{}/{}", object::namespace(obj).unwrap_or_default(), object::name(obj));
    span.record("object", key.as_str());
    if kind == "Pod" {
        span.record("pod", key.as_str());
    }
    if let Some(rv) = obj.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
        span.record("rv", rv);
    }
}

/// `GET /debug/rkube/traces/...`.
pub fn serve(rest: &[&str], path: &str) -> Response {
    let store = rkube_trace::global();
    match rest {
        [id] => {
            let Some(trace_id) = parse_trace_id(id) else {
                return ApiError::bad_request(format!("{id:?} is not a trace id (32 hex digits)")).into_response();
            };
            match store.get(trace_id) {
                Some((records, dropped)) => {
                    json_response(StatusCode::OK, &json!({"traceId": TraceId(trace_id).to_string(), "dropped": dropped, "records": records}))
                }
                None => ApiError::new(404, "NotFound", format!("trace {id} is not kept here (unknown, or older than what is kept)"))
                    .into_response(),
            }
        }
        ["pods", ns, name] => match store.trace_of_pod(&format!("{ns}/{name}")) {
            Some(t) => json_response(StatusCode::OK, &json!({"namespace": ns, "name": name, "traceId": TraceId(t).to_string()})),
            None => ApiError::new(404, "NotFound", format!("no trace kept for pod {ns}/{name}")).into_response(),
        },
        _ => ApiError::path_not_found(path).into_response(),
    }
}
