//! Which field paths each kind supports in a `fieldSelector` (beyond `metadata.name` and `metadata.namespace`),
//! as upstream's per-resource field label conversions. Parsing and matching label and field selectors is
//! `rkube_apimachinery::{labels, fields}`, shared with the controllers.

/// Field paths Kubernetes supports in field selectors for a kind of an API group (beyond
/// metadata.name/namespace). events.k8s.io/v1 names the core Event's fields its own way (`regarding.*`,
/// `reportingController`), and only those names, as in Kubernetes.
pub fn supported_fields(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("events.k8s.io", "Event") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        (_, kind) => supported_core_fields(kind),
    }
}

fn supported_core_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Node" => &["spec.unschedulable"],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "ReplicationController" => &["status.replicas"],
        "ReplicaSet" => &["status.replicas"],
        "Job" => &["status.successful"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_events_and_unknown_kinds() {
        assert!(supported_fields("", "Pod").contains(&"spec.nodeName"));
        assert!(supported_fields("", "Event").contains(&"involvedObject.name"));
        assert!(!supported_fields("events.k8s.io", "Event").contains(&"involvedObject.name"));
        assert!(supported_fields("events.k8s.io", "Event").contains(&"regarding.name"));
        assert!(supported_fields("apps", "Deployment").is_empty());
    }
}
