//! Talking back to the apiserver: bind a pod through `pods/binding`, record Scheduled / FailedScheduling
//! events, and mark an unschedulable pod's PodScheduled condition (what `kubectl describe pod` shows).

use k8s_openapi::api::core::v1::{Binding, Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

use rkube_apimachinery::time::from_chrono;

/// The name events carry as their source.
pub const COMPONENT: &str = "default-scheduler";

/// POST pods/{name}/binding.
pub async fn bind(client: &Client, ns: &str, pod: &str, node: &str) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = Binding {
        metadata: ObjectMeta { name: Some(pod.to_string()), namespace: Some(ns.to_string()), ..Default::default() },
        target: ObjectReference { api_version: Some("v1".into()), kind: Some("Node".into()), name: Some(node.into()), ..Default::default() },
    };
    let _: serde_json::Value = api.create_subresource("binding", pod, &PostParams::default(), &binding).await?;
    Ok(())
}

/// Create a core/v1 Event about a pod.
pub async fn record_event(client: &Client, pod: &Pod, type_: &str, reason: &str, message: &str) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = chrono::Utc::now();
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.timestamp_nanos_opt().unwrap_or_default())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name),
            namespace: Some(ns.clone()),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(type_.into()),
        source: Some(EventSource { component: Some(COMPONENT.into()), host: None }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(COMPONENT.into()),
        first_timestamp: Some(from_chrono(now)),
        last_timestamp: Some(from_chrono(now)),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &ev).await?;
    Ok(())
}

/// Set PodScheduled=False/Unschedulable with the message on the pod's status.
pub async fn mark_unschedulable(client: &Client, pod: &Pod, message: &str) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut conds: Vec<serde_json::Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|c| c.iter().filter(|c| c.type_ != "PodScheduled").filter_map(|c| serde_json::to_value(c).ok()).collect())
        .unwrap_or_default();
    conds.push(json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastTransitionTime": from_chrono(chrono::Utc::now()),
    }));
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    crate::context::merge_patch_status(&api, &name, json!({"status": {"conditions": conds}})).await?;
    Ok(())
}
