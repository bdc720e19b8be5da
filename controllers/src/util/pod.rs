//! Pod facts controllers and the scheduler ask about: active, ready, available, resource requests, host ports.
//! Pure functions over `k8s_openapi` Pods.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Pod, PodSpec};

use super::quantity;

/// A pod still counts toward its controller: not Succeeded/Failed and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded") | Some("Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// Phase of the pod, "Pending" if unset.
pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

/// When the pod's Ready condition last turned True, if it is True now.
pub fn ready_since(pod: &Pod) -> Option<Option<DateTime<Utc>>> {
    let conds = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conds.iter().find(|c| c.type_ == "Ready")?;
    if c.status == "True" {
        Some(c.last_transition_time.as_ref().map(super::time::to_chrono))
    } else {
        None
    }
}

/// Ready condition is True (and the pod is not being deleted).
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some() && pod.metadata.deletion_timestamp.is_none()
}

/// Ready for at least `min_ready_seconds` at `now` (Kubernetes' `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => pod.metadata.deletion_timestamp.is_none(),
        Some(None) => false,
        Some(Some(t)) => {
            pod.metadata.deletion_timestamp.is_none()
                && t + chrono::Duration::seconds(i64::from(min_ready_seconds)) <= now
        }
    }
}

/// Resource requests of a pod spec, the way the scheduler counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    /// millicores
    pub cpu: i64,
    /// bytes
    pub memory: i64,
}

/// Effective requests: sum over containers, at least the largest init container, plus pod overhead.
pub fn requests(spec: &PodSpec) -> Requests {
    let get = |c: &k8s_openapi::api::core::v1::Container| {
        let r = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        Requests {
            cpu: r.and_then(|r| r.get("cpu")).map(quantity::milli).unwrap_or(0),
            memory: r.and_then(|r| r.get("memory")).map(quantity::value).unwrap_or(0),
        }
    };
    let mut sum = Requests::default();
    for c in &spec.containers {
        let r = get(c);
        sum.cpu += r.cpu;
        sum.memory += r.memory;
    }
    for c in spec.init_containers.as_deref().unwrap_or_default() {
        let r = get(c);
        sum.cpu = sum.cpu.max(r.cpu);
        sum.memory = sum.memory.max(r.memory);
    }
    if let Some(o) = &spec.overhead {
        sum.cpu += o.get("cpu").map(quantity::milli).unwrap_or(0);
        sum.memory += o.get("memory").map(quantity::value).unwrap_or(0);
    }
    sum
}

/// (protocol, hostIP, hostPort) triples the pod asks for.
pub fn host_ports(spec: &PodSpec) -> Vec<(String, String, i32)> {
    let mut out = Vec::new();
    for c in &spec.containers {
        for p in c.ports.as_deref().unwrap_or_default() {
            if let Some(hp) = p.host_port.filter(|hp| *hp > 0) {
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                let ip = p.host_ip.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "0.0.0.0".into());
                out.push((proto, ip, hp));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodCondition, PodStatus, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn container(cpu: &str, mem: &str) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(
                    [("cpu".to_string(), Quantity(cpu.into())), ("memory".to_string(), Quantity(mem.into()))].into(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn requests_sum_containers_and_take_max_of_init() {
        let spec = PodSpec {
            containers: vec![container("100m", "64Mi"), container("200m", "64Mi")],
            init_containers: Some(vec![container("500m", "1Mi")]),
            ..Default::default()
        };
        assert_eq!(requests(&spec), Requests { cpu: 500, memory: 128 << 20 });
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now = Utc::now();
        let pod = Pod {
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(crate::util::time::from_chrono(now - chrono::Duration::seconds(5))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(is_ready(&pod));
        assert!(is_available(&pod, 0, now));
        assert!(is_available(&pod, 5, now));
        assert!(!is_available(&pod, 10, now));
        assert!(is_active(&pod));
    }
}

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
    Fixed(&'a str),
    Generate(&'a str),
}
