//! Pods a controller creates: a pod from the controller's template, named or generated. The facts controllers
//! ask about pods (active, ready, available, requests) are shared with the apiserver and kubelet in
//! `rkube_apimachinery::pod`.

use k8s_openapi::api::core::v1::Pod;

/// A pod to create from a controller's template: template labels/annotations plus `extra_labels`, the
/// controller reference, and either a fixed name or `generateName`.
pub fn from_template(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    namespace: &str,
    name: PodName<'_>,
    owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    extra_labels: &[(&str, &str)],
) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    let mut labels = tm.labels.unwrap_or_default();
    for (k, v) in extra_labels {
        labels.insert((*k).to_string(), (*v).to_string());
    }
    let (name, generate_name) = match name {
        PodName::Fixed(n) => (Some(n.to_string()), None),
        PodName::Generate(prefix) => (None, Some(prefix.to_string())),
    };
    Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name,
            generate_name,
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// How a created pod is named.
pub enum PodName<'a> {
    /// This exact name (a StatefulSet's `<set>-<ordinal>`).
    Fixed(&'a str),
    /// `generateName` with this prefix: the apiserver adds a random suffix.
    Generate(&'a str),
}
