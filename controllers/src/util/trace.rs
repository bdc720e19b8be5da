//! A controller creating an object for its owner carries the owner's trace (issue 17, `docs/trace.md`): the
//! object (a Deployment's ReplicaSet, a ReplicaSet's pod) gets `rkube.io/traceparent` naming the owner's trace
//! and the controller's create span, and that span records which controller created what from which object.

use kube::Resource;
use rkube_trace::{trace_span, TraceContext, TraceParent, ANNOTATION};

/// The owner's trace context, from its annotation.
pub fn of_owner(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<TraceParent> {
    TraceParent::from_annotations(meta.annotations.as_ref())
}

/// `obj` with the trace annotation of a new create span under `owner`, and that span (what was created is
/// recorded once the apiserver named it: [`created`]). Without an owner context `obj` is returned as is (the
/// apiserver starts its trace) and the span is disabled.
pub fn create_child<K>(obj: &K, owner: Option<TraceParent>, controller: &'static str, owner_key: &str) -> (K, tracing::Span)
where
    K: Resource + Clone,
    K::DynamicType: Default,
{
    let Some(parent) = owner else { return (obj.clone(), tracing::Span::none()) };
    let ctx = TraceContext::child_of(parent);
    let mut o = obj.clone();
    o.meta_mut().annotations.get_or_insert_with(Default::default).insert(ANNOTATION.to_string(), ctx.traceparent());
    let kind = K::kind(&Default::default()).into_owned();
    let span = trace_span!(
        "controller.create",
        ctx,
        controller = controller,
        owner = owner_key,
        kind = kind.as_str(),
        object = tracing::field::Empty,
        pod = tracing::field::Empty
    );
    (o, span)
}

/// Records the created object's `namespace/name` on its create span (as `pod` too for a pod, which keeps the
/// span to that pod's timeline).
pub fn created<K>(span: &tracing::Span, obj: &K)
where
    K: Resource,
    K::DynamicType: Default,
{
    if span.is_none() {
        return;
    }
    let m = obj.meta();
    let key = format!("{}/{}", m.namespace.as_deref().unwrap_or_default(), m.name.as_deref().unwrap_or_default());
    span.record("object", key.as_str());
    if K::kind(&Default::default()) == "Pod" {
        span.record("pod", key.as_str());
    }
}
