//! From Services and EndpointSlices to the (ClusterIP, port) → endpoints table the proxy programs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None, // SCTP: not proxied
        }
    }

    pub fn as_nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One ready backend of a service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// One port of one Service, with the endpoints traffic to it may go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub service: String,
    /// The port's name in the Service ("" for a single unnamed port).
    pub port_name: String,
    pub protocol: Protocol,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: Option<u16>,
    /// Ready endpoints, sorted so the same state always renders the same rules.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `namespace/service:port_name`, as kube-proxy names a service port in its logs.
    pub fn id(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.service)
        } else {
            format!("{}/{}:{}", self.namespace, self.service, self.port_name)
        }
    }
}

/// Every proxied port of every Service, with its ready endpoints. Headless Services (clusterIP None), ExternalName
/// Services, non-IPv4 cluster IPs and SCTP ports are skipped, as kube-proxy's IPv4 proxier skips them.
pub fn service_ports(services: &[Service], slices: &[EndpointSlice]) -> Vec<ServicePort> {
    // (namespace, service) -> port name -> (protocol, port) -> endpoint IPs
    let mut ready: BTreeMap<(String, String), BTreeMap<String, Vec<Endpoint>>> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        let Some(svc) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else { continue };
        let by_port = ready.entry((ns, svc.clone())).or_default();
        for port in slice.ports.iter().flatten() {
            let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else { continue };
            let list = by_port.entry(port.name.clone().unwrap_or_default()).or_default();
            for ep in &slice.endpoints {
                // A missing `ready` condition means ready (EndpointSlice API semantics).
                if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                for addr in &ep.addresses {
                    if let Ok(ip) = addr.parse::<Ipv4Addr>() {
                        list.push(Endpoint { ip, port: number });
                    }
                }
            }
        }
    }

    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(cluster_ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else {
            continue; // None (headless), empty (not allocated yet) or IPv6
        };
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let by_port = ready.get(&(ns.clone(), name.clone()));
        let node_ports = matches!(spec.type_.as_deref(), Some("NodePort") | Some("LoadBalancer"));
        for p in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(p.protocol.as_deref()) else { continue };
            let Ok(port) = u16::try_from(p.port) else { continue };
            let port_name = p.name.clone().unwrap_or_default();
            let mut endpoints = by_port.and_then(|m| m.get(&port_name)).cloned().unwrap_or_default();
            endpoints.sort();
            endpoints.dedup();
            out.push(ServicePort {
                namespace: ns.clone(),
                service: name.clone(),
                port_name,
                protocol,
                cluster_ip,
                port,
                node_port: if node_ports { p.node_port.and_then(|n| u16::try_from(n).ok()) } else { None },
                endpoints,
            });
        }
    }
    out.sort_by(|a, b| (a.cluster_ip, a.port, a.protocol).cmp(&(b.cluster_ip, b.port, b.protocol)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).expect("service json")
    }
    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).expect("slice json")
    }

    fn web_slice(ready_b: Option<bool>) -> EndpointSlice {
        slice(json!({
            "metadata": {"name": "web-abc", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.5"], "conditions": {"ready": true}},
                {"addresses": ["10.244.0.4"], "conditions": {"ready": ready_b}},
            ]
        }))
    }

    #[test]
    fn clusterip_port_gets_ready_endpoints_sorted() {
        let s = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}));
        let ports = service_ports(&[s], &[web_slice(None)]);
        assert_eq!(ports.len(), 1);
        let p = &ports[0];
        assert_eq!((p.cluster_ip, p.port, p.protocol, p.node_port), ("10.96.0.20".parse().unwrap(), 80, Protocol::Tcp, None));
        let ips: Vec<String> = p.endpoints.iter().map(|e| format!("{}:{}", e.ip, e.port)).collect();
        assert_eq!(ips, ["10.244.0.4:8080", "10.244.0.5:8080"], "missing ready condition counts as ready");
        assert_eq!(p.id(), "default/web:http");
    }

    #[test]
    fn not_ready_endpoints_are_left_out() {
        let s = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}));
        let ports = service_ports(&[s], &[web_slice(Some(false))]);
        assert_eq!(ports[0].endpoints, vec![Endpoint { ip: "10.244.0.5".parse().unwrap(), port: 8080 }]);
    }

    #[test]
    fn nodeport_only_for_nodeport_services_and_slices_match_by_namespace() {
        let np = svc(json!({"metadata": {"name": "web", "namespace": "other"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.21", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}));
        let ports = service_ports(&[np], &[web_slice(None)]);
        assert_eq!(ports[0].node_port, Some(30080));
        assert!(ports[0].endpoints.is_empty(), "a slice in namespace default must not feed other/web");
    }

    #[test]
    fn headless_externalname_unallocated_and_sctp_are_skipped() {
        let headless = svc(json!({"metadata": {"name": "h", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}));
        let ext = svc(json!({"metadata": {"name": "e", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.invalid"}}));
        let pending = svc(json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}}));
        let sctp = svc(json!({"metadata": {"name": "s", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.30", "ports": [{"port": 80, "protocol": "SCTP"}, {"port": 53, "protocol": "UDP"}]}}));
        let ports = service_ports(&[headless, ext, pending, sctp], &[]);
        assert_eq!(ports.len(), 1);
        assert_eq!((ports[0].port, ports[0].protocol), (53, Protocol::Udp));
    }
}
