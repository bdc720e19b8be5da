//! From Services and EndpointSlices to what the proxy programs for each service port: the addresses it answers on
//! (ClusterIP, NodePort, externalIPs, LoadBalancer ingress), its traffic policies and session affinity, and the
//! endpoints each kind of traffic may use, chosen as upstream kube-proxy's `CategorizeEndpoints` chooses them.
//! Pure: no I/O, unit-tested below.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `sessionAffinityConfig.clientIP.timeoutSeconds` when unset (upstream's `DefaultClientIPServiceAffinitySeconds`).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;
/// The longest affinity timeout the API accepts (upstream's `MaxClientIPServiceAffinitySeconds`).
pub const MAX_AFFINITY_TIMEOUT: u32 = 86400;

/// The annotation in which rkube's LoadBalancer controller names the node that answers (ARP) for a Service's
/// pool address. Written by `rkube_controllers::service_lb` (which spells the same string).
pub const LB_NODE_ANNOTATION: &str = "rkube.io/loadbalancer-node";

/// A service port's protocol (SCTP is not proxied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP
    Tcp,
    /// UDP
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

    /// The protocol as nft writes it (`tcp`, `udp`).
    pub fn as_nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One backend of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The endpoint's (pod's) address.
    pub ip: Ipv4Addr,
    /// The port traffic is sent to (the target port).
    pub port: u16,
}

/// `internalTrafficPolicy` / `externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficPolicy {
    /// Every ready endpoint of the cluster.
    #[default]
    Cluster,
    /// Only this node's endpoints; for external traffic the client's address is kept (no SNAT).
    Local,
}

impl TrafficPolicy {
    fn parse(s: Option<&str>) -> TrafficPolicy {
        if s == Some("Local") {
            TrafficPolicy::Local
        } else {
            TrafficPolicy::Cluster
        }
    }
}

/// One port of one Service, with everything the rules for it depend on. Two equal values render equal rules, so
/// the proxy rewrites a port's chains only when this changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The port's name in the Service ("" for a single unnamed port).
    pub port_name: String,
    /// The port's protocol.
    pub protocol: Protocol,
    /// The Service's ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// The port on the ClusterIP (and the external and load balancer addresses).
    pub port: u16,
    /// The NodePort, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip` of a LoadBalancer Service.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `sessionAffinity: ClientIP`: the timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `internalTrafficPolicy`: which endpoints the ClusterIP reaches.
    pub internal_policy: TrafficPolicy,
    /// `externalTrafficPolicy`: which endpoints the NodePort, external and load balancer addresses reach.
    pub external_policy: TrafficPolicy,
    /// A LoadBalancer Service with externalTrafficPolicy Local: the port its health check is served on.
    pub health_check_node_port: Option<u16>,
    /// Endpoints for the Cluster policies: the ready ones; none ready: the serving and terminating ones. Sorted.
    pub cluster_endpoints: Vec<Endpoint>,
    /// This node's endpoints, picked the same way; filled only when a Local policy is in force. Sorted.
    pub local_endpoints: Vec<Endpoint>,
    /// Some endpoint anywhere could take traffic (false: the port is rejected, not dropped).
    pub has_endpoints: bool,
}

impl ServicePort {
    /// A ClusterIP port with no endpoints; the fields are public for the rest.
    pub fn new(namespace: &str, service: &str, port_name: &str, protocol: Protocol, cluster_ip: Ipv4Addr, port: u16) -> ServicePort {
        ServicePort {
            namespace: namespace.into(),
            service: service.into(),
            port_name: port_name.into(),
            protocol,
            cluster_ip,
            port,
            node_port: None,
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            affinity_timeout: None,
            internal_policy: TrafficPolicy::Cluster,
            external_policy: TrafficPolicy::Cluster,
            health_check_node_port: None,
            cluster_endpoints: Vec::new(),
            local_endpoints: Vec::new(),
            has_endpoints: false,
        }
    }

    /// Sets the endpoints as if all were ready and (with `local`) on this node.
    pub fn with_endpoints(mut self, endpoints: &[Endpoint], local: bool) -> ServicePort {
        let mut eps = endpoints.to_vec();
        eps.sort();
        eps.dedup();
        self.has_endpoints = !eps.is_empty();
        if local {
            self.local_endpoints = eps.clone();
        }
        self.cluster_endpoints = eps;
        self
    }

    /// `namespace/service:port_name`, as kube-proxy names a service port in its logs.
    pub fn id(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.service)
        } else {
            format!("{}/{}:{}", self.namespace, self.service, self.port_name)
        }
    }

    /// Reachable from outside the cluster: a NodePort, an externalIP or a load balancer address.
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.load_balancer_ips.is_empty()
    }

    /// Upstream's `UsesClusterEndpoints`: even with externalTrafficPolicy Local, traffic from pods and from the
    /// node itself to an external address goes to any endpoint (short-circuit).
    fn uses_cluster_endpoints(&self) -> bool {
        self.internal_policy == TrafficPolicy::Cluster || self.externally_accessible()
    }

    fn uses_local_endpoints(&self) -> bool {
        self.internal_policy == TrafficPolicy::Local
            || (self.externally_accessible() && self.external_policy == TrafficPolicy::Local)
    }
}

/// An endpoint as an EndpointSlice lists it, with its conditions as kube-proxy reads them: a missing `ready` or
/// `serving` is true, a missing `terminating` is false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// Address and port.
    pub endpoint: Endpoint,
    /// `conditions.ready`.
    pub ready: bool,
    /// `conditions.serving`.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// On this node (`nodeName` is this node's).
    pub local: bool,
}

/// Upstream's `CategorizeEndpoints` (pkg/proxy/topology.go, without topology hints): cluster endpoints are the
/// ready ones or, when none is ready, the serving-and-terminating ones; local endpoints the same among this
/// node's. Returns (cluster, local, has_any).
pub fn categorize(port: &ServicePort, endpoints: &[SliceEndpoint]) -> (Vec<Endpoint>, Vec<Endpoint>, bool) {
    let pick = |f: &dyn Fn(&SliceEndpoint) -> bool| -> Vec<Endpoint> {
        let mut v: Vec<Endpoint> = endpoints.iter().filter(|e| f(e)).map(|e| e.endpoint).collect();
        v.sort();
        v.dedup();
        v
    };
    let fallback = |e: &SliceEndpoint| e.serving && e.terminating;
    let mut has_any = false;
    let mut cluster = Vec::new();
    if port.uses_cluster_endpoints() {
        cluster = pick(&|e| e.ready);
        if cluster.is_empty() {
            cluster = pick(&fallback);
        }
        has_any = !cluster.is_empty();
    }
    if !port.uses_local_endpoints() {
        return (cluster, Vec::new(), has_any);
    }
    has_any = has_any || endpoints.iter().any(|e| e.ready || fallback(e));
    let mut local = pick(&|e| e.local && e.ready);
    if local.is_empty() {
        local = pick(&|e| e.local && fallback(e));
    }
    (cluster, local, has_any)
}

/// (namespace, service) -> (port name, protocol) -> endpoints, from the IPv4 slices.
type SliceIndex = BTreeMap<(String, String), BTreeMap<(String, Protocol), Vec<SliceEndpoint>>>;

fn index_slices<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>, node_name: &str) -> SliceIndex {
    let mut index: SliceIndex = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let ns = slice.metadata.namespace.clone().unwrap_or_default();
        let Some(svc) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else { continue };
        let by_port = index.entry((ns, svc.clone())).or_default();
        for port in slice.ports.iter().flatten() {
            let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else { continue };
            let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else { continue };
            let list = by_port.entry((port.name.clone().unwrap_or_default(), protocol)).or_default();
            for ep in &slice.endpoints {
                // kube-proxy uses an endpoint's first address only
                let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<Ipv4Addr>().ok()) else { continue };
                let c = ep.conditions.as_ref();
                let ready = c.and_then(|c| c.ready) != Some(false);
                list.push(SliceEndpoint {
                    endpoint: Endpoint { ip, port: number },
                    ready,
                    serving: c.and_then(|c| c.serving) != Some(false),
                    terminating: c.and_then(|c| c.terminating) == Some(true),
                    local: !node_name.is_empty() && ep.node_name.as_deref() == Some(node_name),
                });
            }
        }
    }
    index
}

/// Every proxied port of every Service, as seen from node `node_name` (which endpoints are local). Headless
/// Services (clusterIP None), ExternalName Services, non-IPv4 cluster IPs and SCTP ports are skipped, as
/// kube-proxy's IPv4 proxier skips them. Sorted by (ClusterIP, port, protocol).
pub fn service_ports(services: &[Service], slices: &[EndpointSlice], node_name: &str) -> Vec<ServicePort> {
    ports_of(services, slices, node_name)
}

/// [`service_ports`] of some Services, given (at least) their slices: what a partial sync recomputes
/// ([`super::tracker`]). A slice of another Service is ignored.
pub fn ports_of<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node_name: &str,
) -> Vec<ServicePort> {
    let index = index_slices(slices, node_name);
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else { continue };
        let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
        if ty == "ExternalName" {
            continue;
        }
        let Some(cluster_ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else {
            continue; // None (headless), empty (not allocated yet) or IPv6
        };
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let by_port = index.get(&(ns.clone(), name.clone()));
        let node_ports = ty == "NodePort" || ty == "LoadBalancer";
        let external_ips: Vec<Ipv4Addr> = spec.external_ips.iter().flatten().filter_map(|ip| ip.parse().ok()).collect();
        let load_balancer_ips: Vec<Ipv4Addr> = if ty == "LoadBalancer" {
            svc.status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                // ipMode Proxy: the load balancer delivers to the node itself, not to the address
                .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
                .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
                .collect()
        } else {
            Vec::new()
        };
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| (1..=MAX_AFFINITY_TIMEOUT).contains(t))
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        });
        let external_policy = TrafficPolicy::parse(spec.external_traffic_policy.as_deref());
        let health_check_node_port = (ty == "LoadBalancer" && external_policy == TrafficPolicy::Local)
            .then(|| spec.health_check_node_port.and_then(|p| u16::try_from(p).ok()))
            .flatten();
        for p in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(p.protocol.as_deref()) else { continue };
            let Ok(port) = u16::try_from(p.port) else { continue };
            let port_name = p.name.clone().unwrap_or_default();
            let mut sp = ServicePort::new(&ns, &name, &port_name, protocol, cluster_ip, port);
            sp.node_port = if node_ports { p.node_port.and_then(|n| u16::try_from(n).ok()) } else { None };
            sp.external_ips = external_ips.clone();
            sp.load_balancer_ips = load_balancer_ips.clone();
            sp.affinity_timeout = affinity_timeout;
            sp.internal_policy = TrafficPolicy::parse(spec.internal_traffic_policy.as_deref());
            sp.external_policy = external_policy;
            sp.health_check_node_port = health_check_node_port;
            let eps = by_port.and_then(|m| m.get(&(port_name.clone(), protocol))).map(Vec::as_slice).unwrap_or_default();
            let (cluster, local, has_any) = categorize(&sp, eps);
            sp.cluster_endpoints = cluster;
            sp.local_endpoints = local;
            sp.has_endpoints = has_any;
            out.push(sp);
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
    fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint { ip: ip.parse().expect("ip"), port }
    }

    fn web_slice(ready_b: Option<bool>) -> EndpointSlice {
        slice(json!({
            "metadata": {"name": "web-abc", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.5"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.244.0.4"], "conditions": {"ready": ready_b}, "nodeName": "n2"},
            ]
        }))
    }

    #[test]
    fn clusterip_port_gets_ready_endpoints_sorted() {
        let s = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}));
        let ports = service_ports(&[s], &[web_slice(None)], "n1");
        assert_eq!(ports.len(), 1);
        let p = &ports[0];
        assert_eq!((p.cluster_ip, p.port, p.protocol, p.node_port), ("10.96.0.20".parse().unwrap(), 80, Protocol::Tcp, None));
        assert_eq!(p.cluster_endpoints, [ep("10.244.0.4", 8080), ep("10.244.0.5", 8080)], "missing ready condition counts as ready");
        assert!(p.local_endpoints.is_empty(), "no Local policy: local endpoints are not computed");
        assert!(p.has_endpoints);
        assert_eq!(p.affinity_timeout, None);
        assert_eq!(p.id(), "default/web:http");
    }

    #[test]
    fn not_ready_endpoints_are_left_out() {
        let s = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}));
        let ports = service_ports(&[s], &[web_slice(Some(false))], "n1");
        assert_eq!(ports[0].cluster_endpoints, [ep("10.244.0.5", 8080)]);
    }

    #[test]
    fn nodeport_only_for_nodeport_services_and_slices_match_by_namespace() {
        let np = svc(json!({"metadata": {"name": "web", "namespace": "other"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.21", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}));
        let ports = service_ports(&[np], &[web_slice(None)], "n1");
        assert_eq!(ports[0].node_port, Some(30080));
        assert!(ports[0].cluster_endpoints.is_empty(), "a slice in namespace default must not feed other/web");
        assert!(!ports[0].has_endpoints);
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
        let ports = service_ports(&[headless, ext, pending, sctp], &[], "n1");
        assert_eq!(ports.len(), 1);
        assert_eq!((ports[0].port, ports[0].protocol), (53, Protocol::Udp));
    }

    #[test]
    fn session_affinity_timeout_defaults_to_10800_and_is_read_when_set() {
        let mk = |cfg: serde_json::Value| {
            svc(json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.20", "sessionAffinity": "ClientIP", "sessionAffinityConfig": cfg,
                         "ports": [{"name": "http", "port": 80}]}}))
        };
        let none = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "sessionAffinity": "None", "ports": [{"name": "http", "port": 80}]}}));
        assert_eq!(service_ports(&[mk(json!({}))], &[], "n1")[0].affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert_eq!(service_ports(&[mk(json!({"clientIP": {"timeoutSeconds": 3}}))], &[], "n1")[0].affinity_timeout, Some(3));
        assert_eq!(service_ports(&[none], &[], "n1")[0].affinity_timeout, None);
    }

    #[test]
    fn external_addresses_and_policies() {
        let lb = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.20", "externalIPs": ["192.0.2.7", "2001:db8::1"],
                     "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}, {"ip": "198.51.100.10", "ipMode": "Proxy"}, {"hostname": "lb.example"}]}}}));
        let p = &service_ports(&[lb], &[web_slice(None)], "n1")[0];
        assert_eq!(p.external_ips, [Ipv4Addr::new(192, 0, 2, 7)]);
        assert_eq!(p.load_balancer_ips, [Ipv4Addr::new(198, 51, 100, 9)], "ipMode Proxy and hostnames are not VIPs");
        assert_eq!((p.internal_policy, p.external_policy), (TrafficPolicy::Local, TrafficPolicy::Local));
        assert_eq!(p.health_check_node_port, Some(32000));
        assert_eq!(p.local_endpoints, [ep("10.244.0.5", 8080)], "n1's endpoint only");
        assert_eq!(p.cluster_endpoints.len(), 2, "externally accessible: cluster endpoints for the short-circuit");
        // the same Service as NodePort: no LB addresses, no health check port
        let np = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}]}}}));
        let p = &service_ports(&[np], &[web_slice(None)], "n2")[0];
        assert!(p.load_balancer_ips.is_empty() && p.health_check_node_port.is_none());
        assert_eq!(p.local_endpoints, [ep("10.244.0.4", 8080)]);
    }

    #[test]
    fn internal_local_without_external_access_uses_no_cluster_endpoints() {
        let s = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "internalTrafficPolicy": "Local", "ports": [{"name": "http", "port": 80}]}}));
        let p = &service_ports(&[s.clone()], &[web_slice(None)], "n3")[0];
        assert!(p.cluster_endpoints.is_empty() && p.local_endpoints.is_empty());
        assert!(p.has_endpoints, "endpoints elsewhere: traffic is dropped, not rejected");
        let p = &service_ports(&[s], &[web_slice(None)], "n1")[0];
        assert_eq!(p.local_endpoints, [ep("10.244.0.5", 8080)]);
    }

    /// Upstream's rule, edge by edge: serving-and-terminating endpoints only when nothing is ready.
    #[test]
    fn terminating_endpoints_only_when_no_ready_one_is_left() {
        let e = |ip: &str, ready: bool, serving: bool, terminating: bool, local: bool| SliceEndpoint {
            endpoint: ep(ip, 80),
            ready,
            serving,
            terminating,
            local,
        };
        let mut p = ServicePort::new("d", "s", "", Protocol::Tcp, Ipv4Addr::new(10, 96, 0, 1), 80);
        // one ready, one serving+terminating: the ready one alone
        let (c, _, any) = categorize(&p, &[e("10.0.0.1", true, true, false, false), e("10.0.0.2", false, true, true, false)]);
        assert_eq!((c, any), (vec![ep("10.0.0.1", 80)], true));
        // none ready: the serving+terminating one, not the terminating one that stopped serving
        let (c, _, any) = categorize(&p, &[e("10.0.0.2", false, true, true, false), e("10.0.0.3", false, false, true, false)]);
        assert_eq!((c, any), (vec![ep("10.0.0.2", 80)], true));
        // not ready and not terminating (starting up): never
        let (c, _, any) = categorize(&p, &[e("10.0.0.4", false, true, false, false)]);
        assert_eq!((c.len(), any), (0, false));
        // Local policy: a local serving+terminating endpoint beats remote ready ones for local traffic
        p.internal_policy = TrafficPolicy::Local;
        let (c, l, any) = categorize(&p, &[e("10.0.0.1", true, true, false, false), e("10.0.0.2", false, true, true, true)]);
        assert_eq!((c.len(), l, any), (0, vec![ep("10.0.0.2", 80)], true));
        // ...but a local ready endpoint wins over it
        let (_, l, _) = categorize(&p, &[e("10.0.0.5", true, true, false, true), e("10.0.0.2", false, true, true, true)]);
        assert_eq!(l, vec![ep("10.0.0.5", 80)]);
    }

    #[test]
    fn named_ports_take_each_slices_own_number() {
        // targetPort "http" resolved per pod: two slices with different numbers for the same port name
        let s = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "web", "port": 80, "targetPort": "http"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}));
        let a = slice(json!({"metadata": {"name": "web-a", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4", "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [{"addresses": ["10.244.0.5"]}]}));
        let b = slice(json!({"metadata": {"name": "web-b", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4", "ports": [{"name": "web", "port": 9090, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.0.6"]}]}));
        let ports = service_ports(&[s], &[a, b], "n1");
        let web = ports.iter().find(|p| p.port_name == "web").expect("web port");
        assert_eq!(web.cluster_endpoints, [ep("10.244.0.5", 8080), ep("10.244.0.6", 9090)]);
        let dns = ports.iter().find(|p| p.port_name == "dns").expect("dns port");
        assert_eq!(dns.cluster_endpoints, [ep("10.244.0.5", 5353)], "a TCP slice port does not feed the UDP port");
    }
}
