//! Endpoints and EndpointSlices for Services with a selector: one address per pod with an IP, ready pods in
//! `addresses`, others in `notReadyAddresses` (slices: `conditions.ready`), ports resolved from the Service's
//! `targetPort` (number, or a container port name looked up per pod). [`compute`] is pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort as SlicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use rkube_apimachinery::labels::equality_selector_matches;
use rkube_apimachinery::pod as podutil;

/// Label tying an EndpointSlice to its Service.
pub const SLICE_SERVICE_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const SLICE_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// The [`SLICE_MANAGED_BY`] value of the slices this controller makes (upstream's controller's name, so
/// clients treat them alike).
pub const MANAGED_BY_US: &str = "endpointslice-controller.k8s.io";

/// The computed endpoints of one Service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Computed {
    /// The Endpoints object's subsets (ready and not-ready addresses per port set).
    pub subsets: Vec<EndpointSubset>,
    /// The EndpointSlice's endpoints, with their ready/serving/terminating conditions.
    pub slice_endpoints: Vec<Endpoint>,
    /// The EndpointSlice's ports.
    pub slice_ports: Vec<SlicePort>,
}

fn resolve_port(target: Option<&IntOrString>, port: i32, pod: &Pod) -> Option<i32> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(i)) => Some(*i),
        Some(IntOrString::String(name)) => pod.spec.as_ref()?.containers.iter().find_map(|c| {
            c.ports.as_ref()?.iter().find(|p| p.name.as_deref() == Some(name)).map(|p| p.container_port)
        }),
    }
}

/// Compute Endpoints subsets and EndpointSlice content for `svc` over the pods of its namespace.
pub fn compute(svc: &Service, pods: &[&Pod]) -> Computed {
    let Some(spec) = svc.spec.as_ref() else { return Computed::default() };
    let Some(selector) = spec.selector.as_ref() else { return Computed::default() };
    let svc_ports = spec.ports.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    // group addresses by their resolved port set, as Kubernetes does
    let mut groups: BTreeMap<Vec<(String, i32, String)>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> = BTreeMap::new();
    let mut slice_endpoints = Vec::new();
    let mut slice_ports: BTreeMap<String, SlicePort> = BTreeMap::new();
    let mut sorted: Vec<&&Pod> = pods.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for pod in sorted {
        if !equality_selector_matches(selector, pod.metadata.labels.as_ref()) {
            continue;
        }
        let phase = podutil::phase(pod);
        if pod.metadata.deletion_timestamp.is_some() && !publish_not_ready || phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).filter(|ip| !ip.is_empty()) else { continue };
        let ready = podutil::is_ready(pod) || publish_not_ready;
        let mut ports = Vec::new();
        for sp in &svc_ports {
            if let Some(p) = resolve_port(sp.target_port.as_ref(), sp.port, pod) {
                let name = sp.name.clone().unwrap_or_default();
                let proto = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
                ports.push((name.clone(), p, proto.clone()));
                slice_ports.entry(name.clone()).or_insert(SlicePort {
                    name: Some(name),
                    port: Some(p),
                    protocol: Some(proto),
                    app_protocol: sp.app_protocol.clone(),
                });
            }
        }
        if ports.is_empty() && !svc_ports.is_empty() {
            continue;
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let target = ObjectReference {
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        };
        // a pod's DNS name under the Service (`web-0.web.ns.svc...`): upstream sets it when the pod's subdomain
        // is this Service, in the same namespace
        let hostname = pod.spec.as_ref().and_then(|s| match (&s.hostname, &s.subdomain) {
            (Some(h), Some(sub)) if !h.is_empty() && Some(sub) == svc.metadata.name.as_ref() && pod.metadata.namespace == svc.metadata.namespace => {
                Some(h.clone())
            }
            _ => None,
        });
        let addr = EndpointAddress { ip: ip.clone(), node_name: node.clone(), target_ref: Some(target.clone()), hostname: hostname.clone() };
        let g = groups.entry(ports).or_default();
        if ready {
            g.0.push(addr);
        } else {
            g.1.push(addr);
        }
        slice_endpoints.push(Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(podutil::ready_since(pod).is_some() || publish_not_ready),
                terminating: Some(pod.metadata.deletion_timestamp.is_some()),
            }),
            node_name: node,
            target_ref: Some(target),
            hostname,
            ..Default::default()
        });
    }
    let subsets = groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: if ready.is_empty() { None } else { Some(ready) },
            not_ready_addresses: if not_ready.is_empty() { None } else { Some(not_ready) },
            ports: if ports.is_empty() {
                None
            } else {
                Some(
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: if name.is_empty() { None } else { Some(name) },
                            port,
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect(),
                )
            },
        })
        .collect();
    Computed { subsets, slice_endpoints, slice_ports: slice_ports.into_values().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, ip: Option<&str>, ready: bool, app: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: 8080, ..Default::default() }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: ip.map(String::from),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn ready_and_not_ready_addresses_with_named_target_port() {
        let svc = Service {
            spec: Some(ServiceSpec {
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(vec![ServicePort {
                    name: Some("web".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("http".into())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (a, b, c, d) = (
            pod("a", Some("10.244.1.2"), true, "web"),
            pod("b", Some("10.244.1.3"), false, "web"),
            pod("c", None, true, "web"),
            pod("d", Some("10.244.1.4"), true, "db"),
        );
        let got = compute(&svc, &[&a, &b, &c, &d]);
        assert_eq!(got.subsets.len(), 1);
        let s = &got.subsets[0];
        let ips = |v: &Option<Vec<EndpointAddress>>| v.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>();
        assert_eq!(ips(&s.addresses), vec!["10.244.1.2"]);
        assert_eq!(ips(&s.not_ready_addresses), vec!["10.244.1.3"]);
        assert_eq!(s.ports.as_ref().map(|p| p[0].port), Some(8080));
        assert_eq!(got.slice_endpoints.len(), 2);
        assert_eq!(got.slice_endpoints[1].conditions.as_ref().and_then(|c| c.ready), Some(false));
        assert_eq!(got.slice_ports[0].port, Some(8080));
    }

    #[test]
    fn hostname_set_only_for_pods_whose_subdomain_is_the_service() {
        let svc = Service {
            metadata: ObjectMeta { name: Some("web".into()), namespace: Some("default".into()), ..Default::default() },
            spec: Some(ServiceSpec { selector: Some([("app".to_string(), "web".to_string())].into()), ..Default::default() }),
            ..Default::default()
        };
        let named = |name: &str, ip: &str, subdomain: &str| {
            let mut p = pod(name, Some(ip), true, "web");
            let spec = p.spec.as_mut().expect("spec");
            spec.hostname = Some(name.into());
            spec.subdomain = Some(subdomain.into());
            p
        };
        let (a, b, c) = (named("web-0", "10.244.1.2", "web"), named("web-1", "10.244.1.3", "other"), pod("x", Some("10.244.1.4"), true, "web"));
        let got = compute(&svc, &[&a, &b, &c]);
        let hostnames: Vec<Option<&str>> = got.slice_endpoints.iter().map(|e| e.hostname.as_deref()).collect();
        assert_eq!(hostnames, [Some("web-0"), None, None]);
        let addresses = got.subsets[0].addresses.as_ref().expect("ready addresses");
        assert_eq!(addresses[0].hostname.as_deref(), Some("web-0"));
    }
}

// ---------------------------------------------------------------------------------------------------------
// kube-rs wiring
// ---------------------------------------------------------------------------------------------------------

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};

use crate::context::{is_conflict, is_not_found, ReconcileError, Shared};
use crate::util::owner::new_controller_ref;

/// Name of the EndpointSlice this controller keeps for a Service.
pub fn slice_name(svc: &str) -> String {
    let h = crate::deployment::history::safe_encode(&crate::deployment::history::fnv32a(svc.as_bytes()).to_string());
    format!("{svc}-{}", &h[..5.min(h.len())])
}

async fn upsert<K>(api: &Api<K>, name: &str, mut desired: K, same: impl Fn(&K, &K) -> bool) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.get(name).await {
        Ok(existing) => {
            if same(&existing, &desired) {
                return Ok(());
            }
            desired.meta_mut().resource_version = existing.meta().resource_version.clone();
            api.replace(name, &PostParams::default(), &desired).await.map(|_| ())
        }
        Err(e) if is_not_found(&e) => match api.create(&PostParams::default(), &desired).await {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()), // created concurrently; next reconcile compares
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Reconcile the Endpoints and EndpointSlice of one Service.
pub async fn reconcile(svc: Arc<Service>, ctx: Arc<Shared>) -> Result<Requeue, ReconcileError> {
    let ns = svc.namespace().unwrap_or_else(|| "default".into());
    let name = svc.name_any();
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    // Services without a selector have user-managed endpoints
    if svc.spec.as_ref().and_then(|s| s.selector.as_ref()).is_none_or(|s| s.is_empty()) {
        return Ok(Requeue::await_change());
    }
    let all = ctx.pods_in(&ns);
    let pods: Vec<&Pod> = all.iter().map(|p| p.as_ref()).collect();
    let c = compute(&svc, &pods);
    let owner = new_controller_ref("v1", "Service", &svc.metadata);
    let ep = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: svc.metadata.labels.clone(),
            ..Default::default()
        },
        subsets: if c.subsets.is_empty() { None } else { Some(c.subsets.clone()) },
    };
    let ep_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    upsert(&ep_api, &name, ep, |a, b| a.subsets == b.subsets)
        .await
        .map_err(ReconcileError::api(format!("write endpoints {ns}/{name}")))?;
    let sname = slice_name(&name);
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SLICE_SERVICE_LABEL.into(), name.clone());
    labels.insert(SLICE_MANAGED_BY.into(), MANAGED_BY_US.into());
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some(sname.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: c.slice_endpoints.clone(),
        ports: Some(c.slice_ports.clone()),
    };
    let slice_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    upsert(&slice_api, &sname, slice, |a, b| a.endpoints == b.endpoints && a.ports == b.ports)
        .await
        .map_err(ReconcileError::api(format!("write endpointslice {ns}/{sname}")))?;
    Ok(Requeue::requeue(Duration::from_secs(300)))
}
