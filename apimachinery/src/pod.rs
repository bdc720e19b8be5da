//! Facts about a pod that the controllers, the scheduler, the kubelet and the apiserver ask (upstream's
//! `pkg/api/v1/pod`): its phase, whether it is active, terminal, ready or available, what it requests and which
//! host ports it takes. Pure functions over k8s-openapi Pods.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use crate::quantity;

/// Phase of the pod, `Pending` if unset.
pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

/// Whether a phase is final: `Succeeded` or `Failed`. Nothing runs in the pod again.
pub fn phase_is_terminal(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed")
}

/// The pod has finished: its phase is `Succeeded` or `Failed`.
pub fn is_terminal(pod: &Pod) -> bool {
    phase_is_terminal(phase(pod))
}

/// A pod still counts toward its controller: not terminal and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's Ready condition last turned True, if it is True now (`Some(None)`: True, time unknown).
pub fn ready_since(pod: &Pod) -> Option<Option<DateTime<Utc>>> {
    let conds = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conds.iter().find(|c| c.type_ == "Ready")?;
    if c.status == "True" {
        Some(c.last_transition_time.as_ref().map(crate::time::to_chrono))
    } else {
        None
    }
}

/// Ready condition is True (and the pod is not being deleted).
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some() && pod.metadata.deletion_timestamp.is_none()
}

/// Ready for at least `min_ready_seconds` at `now` (upstream's `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => pod.metadata.deletion_timestamp.is_none(),
        Some(None) => false,
        Some(Some(t)) => {
            pod.metadata.deletion_timestamp.is_none() && t + chrono::Duration::seconds(i64::from(min_ready_seconds)) <= now
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

/// Effective requests: the sum over containers, at least the largest init container, plus the pod overhead.
/// An amount that is not a quantity counts as zero (the apiserver refuses such pods).
pub fn requests(spec: &PodSpec) -> Requests {
    let get = |c: &Container| {
        let r = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        Requests {
            cpu: r.and_then(|r| r.get("cpu")).map(|q| quantity::milli_value(q).unwrap_or(0)).unwrap_or(0),
            memory: r.and_then(|r| r.get("memory")).map(|q| quantity::value(q).unwrap_or(0)).unwrap_or(0),
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
        sum.cpu += o.get("cpu").map(|q| quantity::milli_value(q).unwrap_or(0)).unwrap_or(0);
        sum.memory += o.get("memory").map(|q| quantity::value(q).unwrap_or(0)).unwrap_or(0);
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
    use k8s_openapi::api::core::v1::{ContainerPort, PodCondition, PodStatus, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn container(cpu: &str, mem: &str) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some([("cpu".to_string(), Quantity(cpu.into())), ("memory".to_string(), Quantity(mem.into()))].into()),
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
            overhead: Some([("cpu".to_string(), Quantity("10m".into()))].into()),
            ..Default::default()
        };
        assert_eq!(requests(&spec), Requests { cpu: 510, memory: 128 << 20 });
        let bad = PodSpec { containers: vec![container("lots", "64Mi")], ..Default::default() };
        assert_eq!(requests(&bad), Requests { cpu: 0, memory: 64 << 20 });
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now = Utc::now();
        let mut pod = Pod {
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(crate::time::from_chrono(now - chrono::Duration::seconds(5))),
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
        assert!(!is_terminal(&pod));
        pod.status.as_mut().expect("status").phase = Some("Failed".into());
        assert!(is_terminal(&pod) && !is_active(&pod));
        assert_eq!(phase(&Pod::default()), "Pending");
    }

    #[test]
    fn host_ports_default_protocol_and_address() {
        let spec = PodSpec {
            containers: vec![Container {
                name: "c".into(),
                ports: Some(vec![
                    ContainerPort { container_port: 80, host_port: Some(8080), ..Default::default() },
                    ContainerPort { container_port: 53, host_port: Some(53), protocol: Some("UDP".into()), host_ip: Some("127.0.0.1".into()), ..Default::default() },
                    ContainerPort { container_port: 9090, ..Default::default() },
                ]),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            host_ports(&spec),
            vec![("TCP".into(), "0.0.0.0".into(), 8080), ("UDP".into(), "127.0.0.1".into(), 53)]
        );
    }
}
