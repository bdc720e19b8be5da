//! A controller creating an object for its owner carries the owner's trace (issue 17, `docs/trace.md`): the
//! object (a Deployment's ReplicaSet; the pods of a ReplicaSet, DaemonSet, StatefulSet or Job; a CronJob's Job)
//! gets `rkube.io/traceparent` naming the owner's trace
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn a_child_carries_its_owners_trace_and_an_orphan_is_left_alone() {
        let owner = TraceContext::root();
        let mut meta = ObjectMeta::default();
        meta.annotations = Some([(ANNOTATION.to_string(), owner.traceparent())].into());
        let parent = of_owner(&meta);
        assert_eq!(parent.map(|p| p.span_id), Some(owner.span_id));
        let pod = Pod { metadata: ObjectMeta { generate_name: Some("ds-".into()), ..Default::default() }, ..Default::default() };
        let (child, _span) = create_child(&pod, parent, "daemonset", "DaemonSet/default/ds");
        let tp = of_owner(&child.metadata).expect("the child carries trace context");
        assert_eq!(tp.trace_id, owner.trace_id, "the owner's trace");
        assert_ne!(tp.span_id, owner.span_id, "under the controller's own span");
        let (orphan, span) = create_child(&pod, of_owner(&pod.metadata), "daemonset", "DaemonSet/default/ds");
        assert!(orphan.metadata.annotations.is_none() && span.is_none(), "no owner context: the apiserver starts the trace");
    }
}
