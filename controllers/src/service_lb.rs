//! The built-in load balancer (k3s ServiceLB / MetalLB L2 mode): gives every `type: LoadBalancer` Service without
//! a `loadBalancerClass` an address and writes it to `status.loadBalancer.ingress`.
//!
//! - With a pool (`--lb-pool CIDR`): one free address of the pool per Service, kept across restarts (the
//!   Service's own status is the record). The Service is announced by one Ready node, named in the annotation
//!   [`LB_NODE_ANNOTATION`]; that node's kubelet puts the address on its link in the pool's subnet (so it answers
//!   ARP for it, `ip addr` shows it) and its proxy DNATs it. A full pool leaves the Service `<pending>` with an
//!   `AllocationFailed` event worded as MetalLB's.
//! - Without a pool: the Ready nodes' InternalIPs, as ServiceLB does.
//!
//! A Service that stops being ours (another type, a `loadBalancerClass`) or is deleted releases its address:
//! allocation is recomputed from the Services that exist. [`plan`] is pure and unit-tested; [`run`] only
//! watches and writes what it decided.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, Node, ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_apimachinery::time::from_chrono;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::context::Fanout;

/// The node announcing a pool address (read by the kubelet's proxy, which spells the same string).
pub const LB_NODE_ANNOTATION: &str = "rkube.io/loadbalancer-node";
const COMPONENT: &str = "service-lb-controller";

/// An IPv4 address pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// The network address (host bits cleared).
    pub net: Ipv4Addr,
    /// The prefix length.
    pub len: u8,
}

/// Why a `--lb-pool` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    /// Not an IPv4 CIDR (the text given).
    #[error("load balancer pool {0:?} is not an IPv4 CIDR; pass e.g. --lb-pool 192.168.1.240/28")]
    Parse(String),
}

impl std::str::FromStr for Pool {
    type Err = PoolError;
    fn from_str(s: &str) -> Result<Pool, PoolError> {
        let err = || PoolError::Parse(s.to_string());
        let (ip, len) = s.split_once('/').ok_or_else(err)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| err())?;
        let len: u8 = len.parse().map_err(|_| err())?;
        if len > 32 {
            return Err(err());
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        Ok(Pool { net: Ipv4Addr::from(u32::from(ip) & mask), len })
    }
}

impl Pool {
    /// The usable addresses in order: without the network and broadcast addresses when the prefix has them.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let base = u32::from(self.net);
        let size = 1u64 << (32 - u32::from(self.len));
        let (first, last) = if size > 2 { (1, size - 2) } else { (0, size - 1) };
        (first..=last).map(move |i| Ipv4Addr::from(base.wrapping_add(i as u32)))
    }

    /// Whether `ip` is inside the pool's network (an address left over from another pool is not).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.len == 0 { 0 } else { u32::MAX << (32 - self.len) };
        u32::from(ip) & mask == u32::from(self.net)
    }
}

/// What to write on one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Set the ingress addresses and the announcing node (None: no annotation).
    Assign {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        name: String,
        /// The pool addresses it gets (`status.loadBalancer.ingress`).
        ips: Vec<Ipv4Addr>,
        /// The node that answers for them, written to the `rkube.io/loadbalancer-node` annotation.
        node: Option<String>,
    },
    /// No address left: the Service stays pending.
    Pending {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        name: String,
    },
    /// No longer ours: clear what we wrote.
    Release {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        name: String,
    },
}

fn ours(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none())
}

fn ingress_ips(svc: &Service) -> Vec<Ipv4Addr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
        .collect()
}

fn annotation(svc: &Service) -> Option<&String> {
    svc.metadata.annotations.as_ref().and_then(|a| a.get(LB_NODE_ANNOTATION))
}

fn key(svc: &Service) -> (String, String) {
    (svc.metadata.namespace.clone().unwrap_or_default(), svc.metadata.name.clone().unwrap_or_default())
}

/// Ready nodes by name, with their InternalIP.
fn ready_nodes(nodes: &[Node]) -> BTreeMap<String, Option<Ipv4Addr>> {
    nodes
        .iter()
        .filter(|n| {
            n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .map(|n| {
            let ip = n.status.as_ref().and_then(|s| s.addresses.as_ref()).and_then(|a| {
                a.iter().find(|a| a.type_ == "InternalIP").and_then(|a| a.address.parse().ok())
            });
            (n.metadata.name.clone().unwrap_or_default(), ip)
        })
        .collect()
}

/// What every Service should carry. Services keep a valid address they hold (oldest first on a conflict);
/// the rest get the lowest free address, in creation order.
pub fn plan(services: &[Service], nodes: &[Node], pool: Option<&Pool>) -> Vec<Decision> {
    let nodes = ready_nodes(nodes);
    let mut svcs: Vec<&Service> = services.iter().collect();
    svcs.sort_by(|a, b| {
        let t = |s: &Service| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (t(a), key(a)).cmp(&(t(b), key(b)))
    });
    let mut out = Vec::new();
    for svc in &svcs {
        if !ours(svc) && (annotation(svc).is_some() || (!ingress_ips(svc).is_empty() && svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer"))) {
            let (namespace, name) = key(svc);
            out.push(Decision::Release { namespace, name });
        }
    }
    let mine: Vec<&&Service> = svcs.iter().filter(|s| ours(s)).collect();
    let Some(pool) = pool else {
        let ips: Vec<Ipv4Addr> = nodes.values().flatten().copied().collect::<BTreeSet<_>>().into_iter().collect();
        for svc in mine {
            if ingress_ips(svc) != ips || annotation(svc).is_some() {
                let (namespace, name) = key(svc);
                out.push(Decision::Assign { namespace, name, ips: ips.clone(), node: None });
            }
        }
        return out;
    };
    let mut taken: HashSet<Ipv4Addr> = HashSet::new();
    let mut kept: BTreeMap<(String, String), Ipv4Addr> = BTreeMap::new();
    for svc in &mine {
        if let Some(ip) = ingress_ips(svc).into_iter().find(|ip| pool.contains(*ip)) {
            if taken.insert(ip) {
                kept.insert(key(svc), ip);
            }
        }
    }
    for svc in mine {
        let k = key(svc);
        let ip = match kept.get(&k) {
            Some(ip) => Some(*ip),
            None => pool.addresses().find(|ip| !taken.contains(ip)).inspect(|ip| {
                taken.insert(*ip);
            }),
        };
        let Some(ip) = ip else {
            out.push(Decision::Pending { namespace: k.0, name: k.1 });
            continue;
        };
        // the announcing node: kept while Ready, else the Ready node the Service's name hashes to
        let node = match annotation(svc) {
            Some(n) if nodes.contains_key(n) => Some(n.clone()),
            _ if nodes.is_empty() => None,
            _ => {
                let h = format!("{}/{}", k.0, k.1).bytes().fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
                nodes.keys().nth(h as usize % nodes.len()).cloned()
            }
        };
        if ingress_ips(svc) != [ip] || annotation(svc) != node.as_ref() {
            out.push(Decision::Assign { namespace: k.0, name: k.1, ips: vec![ip], node });
        }
    }
    out
}

async fn record_event(client: &Client, svc: Option<&Service>, namespace: &str, name: &str, type_: &str, reason: &str, message: &str) {
    let now = chrono::Utc::now();
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.timestamp_nanos_opt().unwrap_or_default())),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: svc.and_then(|s| s.metadata.uid.clone()),
            resource_version: svc.and_then(|s| s.metadata.resource_version.clone()),
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
    if let Err(e) = Api::<Event>::namespaced(client.clone(), namespace).create(&PostParams::default(), &ev).await {
        tracing::warn!(service = %format!("{namespace}/{name}"), error = %e, "event not recorded");
    }
}

async fn write(client: &Client, services: &[Service], d: &Decision, pending: &mut HashSet<(String, String)>) -> Result<(), kube::Error> {
    let pp = PatchParams::default();
    match d {
        Decision::Assign { namespace, name, ips, node } => {
            let api: Api<Service> = Api::namespaced(client.clone(), namespace);
            api.patch(name, &pp, &Patch::Merge(json!({"metadata": {"annotations": {LB_NODE_ANNOTATION: node}}}))).await?;
            let ingress: Vec<_> = ips.iter().map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"})).collect();
            api.patch_status(name, &pp, &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": ingress}}}))).await?;
            pending.remove(&(namespace.clone(), name.clone()));
            let svc = services.iter().find(|s| key(s) == (namespace.clone(), name.clone()));
            let list = ips.iter().map(|ip| format!("{:?}", ip.to_string())).collect::<Vec<_>>().join(", ");
            record_event(client, svc, namespace, name, "Normal", "IPAllocated", &format!("Assigned IP [{list}]")).await;
            tracing::info!(service = %format!("{namespace}/{name}"), ips = ?ips, node = ?node, "load balancer address assigned");
        }
        Decision::Pending { namespace, name } => {
            // once per Service until it gets an address: the event says why it stays <pending>
            if pending.insert((namespace.clone(), name.clone())) {
                let svc = services.iter().find(|s| key(s) == (namespace.clone(), name.clone()));
                let msg = format!("Failed to allocate IP for \"{namespace}/{name}\": no available IPs");
                record_event(client, svc, namespace, name, "Warning", "AllocationFailed", &msg).await;
                tracing::warn!(service = %format!("{namespace}/{name}"), "load balancer pool exhausted");
            }
        }
        Decision::Release { namespace, name } => {
            let api: Api<Service> = Api::namespaced(client.clone(), namespace);
            api.patch(name, &pp, &Patch::Merge(json!({"metadata": {"annotations": {LB_NODE_ANNOTATION: null}}}))).await?;
            api.patch_status(name, &pp, &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": null}}}))).await?;
            tracing::info!(service = %format!("{namespace}/{name}"), "load balancer address released");
        }
    }
    Ok(())
}

/// Keeps every LoadBalancer Service's address current until the watches end (they retry on their own).
pub async fn run(client: Client, pool: Option<Pool>) -> &'static str {
    let services = Fanout::start(Api::<Service>::all(client.clone()));
    let nodes = Fanout::start(Api::<Node>::all(client.clone()));
    let _ = services.store.wait_until_ready().await;
    let _ = nodes.store.wait_until_ready().await;
    let mut changes = futures::stream::select(services.subscribe().map(|_| ()), nodes.subscribe().map(|_| ()));
    let mut pending = HashSet::new();
    loop {
        let svcs: Vec<Service> = services.store.state().iter().map(|s| (**s).clone()).collect();
        let ns: Vec<Node> = nodes.store.state().iter().map(|n| (**n).clone()).collect();
        for d in plan(&svcs, &ns, pool.as_ref()) {
            if let Err(e) = write(&client, &svcs, &d, &mut pending).await {
                tracing::warn!(decision = ?d, error = %e, "load balancer update failed; retried");
            }
        }
        // a change, or a periodic pass that retries failed writes
        tokio::select! {
            next = changes.next() => if next.is_none() { return "service-lb" },
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, created: &str, extra: serde_json::Value) -> Service {
        let mut v = json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        merge(&mut v, extra);
        serde_json::from_value(v).expect("service")
    }
    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }
    fn node(name: &str, ip: &str, ready: bool) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "addresses": [{"type": "InternalIP", "address": ip}]}}))
        .expect("node")
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn pool_parses_and_skips_network_and_broadcast() {
        let p: Pool = "10.0.0.9/30".parse().unwrap();
        assert_eq!(p.net, ip("10.0.0.8"));
        assert_eq!(p.addresses().collect::<Vec<_>>(), [ip("10.0.0.9"), ip("10.0.0.10")]);
        let one: Pool = "10.0.0.7/32".parse().unwrap();
        assert_eq!(one.addresses().collect::<Vec<_>>(), [ip("10.0.0.7")]);
        assert_eq!("10.0.0.0".parse::<Pool>(), Err(PoolError::Parse("10.0.0.0".into())));
        assert!("10.0.0.0/33".parse::<Pool>().is_err());
    }

    #[test]
    fn allocates_in_creation_order_keeps_held_addresses_and_leaves_the_rest_pending() {
        let pool: Pool = "10.0.0.8/30".parse().unwrap(); // .9 and .10
        let nodes = [node("n1", "10.1.0.1", true)];
        let held = svc("b", "2024-01-02T00:00:00Z", json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.10"}]}},
            "metadata": {"annotations": {LB_NODE_ANNOTATION: "n1"}}}));
        let first = svc("a", "2024-01-01T00:00:00Z", json!({}));
        let late = svc("c", "2024-01-03T00:00:00Z", json!({}));
        let other_class = svc("d", "2024-01-01T00:00:00Z", json!({"spec": {"loadBalancerClass": "example.com/lb"}}));
        let d = plan(&[late, held, first, other_class], &nodes, Some(&pool));
        assert_eq!(
            d,
            [
                Decision::Assign { namespace: "default".into(), name: "a".into(), ips: vec![ip("10.0.0.9")], node: Some("n1".into()) },
                Decision::Pending { namespace: "default".into(), name: "c".into() },
            ],
            "b keeps .10 (nothing to write), a gets .9, c waits, d (another class) is left alone"
        );
    }

    #[test]
    fn released_on_type_change_and_reused_after_delete() {
        let pool: Pool = "10.0.0.9/32".parse().unwrap();
        let nodes = [node("n1", "10.1.0.1", true), node("n2", "10.1.0.2", false)];
        let was = svc("a", "2024-01-01T00:00:00Z", json!({"spec": {"type": "ClusterIP"},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}}, "metadata": {"annotations": {LB_NODE_ANNOTATION: "n1"}}}));
        let waiting = svc("b", "2024-01-02T00:00:00Z", json!({}));
        let d = plan(&[was, waiting], &nodes, Some(&pool));
        assert_eq!(
            d,
            [
                Decision::Release { namespace: "default".into(), name: "a".into() },
                Decision::Assign { namespace: "default".into(), name: "b".into(), ips: vec![ip("10.0.0.9")], node: Some("n1".into()) },
            ],
            "a's address goes to b; the not-Ready n2 never announces"
        );
    }

    #[test]
    fn without_a_pool_the_ready_nodes_internal_ips_as_servicelb() {
        let nodes = [node("n2", "10.1.0.2", true), node("n1", "10.1.0.1", true), node("n3", "10.1.0.3", false)];
        let d = plan(&[svc("a", "2024-01-01T00:00:00Z", json!({}))], &nodes, None);
        assert_eq!(d, [Decision::Assign { namespace: "default".into(), name: "a".into(), ips: vec![ip("10.1.0.1"), ip("10.1.0.2")], node: None }]);
    }
}
