//! What the dashboard's tables show of each object: one row per object, in the columns `kubectl get` prints.
//! Pure functions of the API objects, so the page gets small documents and the tests need no cluster.

use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use kube::ResourceExt;
use serde::Serialize;

/// A row of the pods table: `kubectl get pods -A -o wide`'s columns.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodRow {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// `kubectl get pods`' READY: ready containers / containers
    pub ready: String,
    /// the phase, or `Terminating` once deletion has begun
    pub status: String,
    /// The sum of its containers' restart counts.
    pub restarts: i32,
    /// `spec.nodeName`; null while unscheduled.
    pub node: Option<String>,
    /// `status.podIP`.
    pub pod_ip: Option<String>,
    /// `metadata.creationTimestamp`, for the AGE column.
    pub created: Option<String>,
}

/// A row of the nodes table, with the conditions and addresses the node's page shows.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    /// The node's name.
    pub name: String,
    /// the Ready condition's status (True, False, Unknown), and SchedulingDisabled when cordoned
    pub status: String,
    /// `spec.podCIDR`.
    pub pod_cidr: Option<String>,
    /// The `InternalIP` address.
    pub internal_ip: Option<String>,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet_version: Option<String>,
    /// `metadata.creationTimestamp`, for the AGE column.
    pub created: Option<String>,
    /// Every condition, as `kubectl describe node` lists them (the node's page shows them)
    pub conditions: Vec<NodeCondition>,
    /// Every address: `InternalIP 10.0.0.2`, `Hostname n1`
    pub addresses: Vec<NodeAddress>,
}

/// One of a node's `status.conditions`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition {
    /// `Ready`, `MemoryPressure`, `DiskPressure`, `PIDPressure`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The condition's reason, a CamelCase word.
    pub reason: Option<String>,
    /// The condition's message for people.
    pub message: Option<String>,
    /// `lastHeartbeatTime`: when the kubelet last said so.
    pub last_heartbeat: Option<String>,
}

/// One of a node's `status.addresses`.
#[derive(Debug, Serialize, PartialEq)]
pub struct NodeAddress {
    /// `InternalIP`, `ExternalIP` or `Hostname`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The address or host name.
    pub address: String,
}

/// A row of the services table: `kubectl get services -A -o wide`'s columns.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRow {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// `spec.type`: `ClusterIP`, `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `spec.clusterIP` (`None` for a headless Service).
    pub cluster_ip: Option<String>,
    /// as `kubectl get services` prints them: `80/TCP`, `80:30080/TCP`
    pub ports: String,
    /// `app=web,tier=front`, empty without a selector
    pub selector: String,
    /// `metadata.creationTimestamp`, for the AGE column.
    pub created: Option<String>,
}

/// A row of the events table: `kubectl get events -A`'s columns.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    /// The Event's namespace.
    pub namespace: String,
    /// The Event's name.
    pub name: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// The reason, a CamelCase word (`Scheduled`, `Pulled`, `Started`, ...).
    pub reason: Option<String>,
    /// `Pod/web`
    pub object: String,
    /// The message for people.
    pub message: Option<String>,
    /// How many times it happened (`count`).
    pub count: Option<i32>,
    /// lastTimestamp, else eventTime, else firstTimestamp, else creation
    pub last_seen: Option<String>,
}

fn created<K: kube::Resource>(o: &K) -> Option<String> {
    o.meta().creation_timestamp.as_ref().map(|t| t.0.to_string())
}

/// The pods table's row of `p`.
pub fn pod_row(p: &Pod) -> PodRow {
    let statuses = p.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    let containers = p.spec.as_ref().map(|s| s.containers.len()).unwrap_or(0);
    let ready = statuses.iter().filter(|c| c.ready).count();
    let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".into());
    PodRow {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        ready: format!("{ready}/{containers}"),
        status: if p.metadata.deletion_timestamp.is_some() { "Terminating".into() } else { phase },
        restarts: statuses.iter().map(|c| c.restart_count).sum(),
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
        pod_ip: p.status.as_ref().and_then(|s| s.pod_ip.clone()),
        created: created(p),
    }
}

/// The nodes table's row of `n`.
pub fn node_row(n: &Node) -> NodeRow {
    let status = n.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| if c.status == "True" { "Ready".to_string() } else { format!("NotReady ({})", c.status) })
        .unwrap_or_else(|| "Unknown".into());
    let cordoned = n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    NodeRow {
        name: n.name_any(),
        status: if cordoned { format!("{ready},SchedulingDisabled") } else { ready },
        pod_cidr: n.spec.as_ref().and_then(|s| s.pod_cidr.clone()),
        internal_ip: status
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone()),
        kubelet_version: status.and_then(|s| s.node_info.as_ref()).map(|i| i.kubelet_version.clone()),
        created: created(n),
        conditions: status
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| NodeCondition {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                        last_heartbeat: c.last_heartbeat_time.as_ref().map(|t| t.0.to_string()),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        addresses: status
            .and_then(|s| s.addresses.as_ref())
            .map(|a| a.iter().map(|a| NodeAddress { type_: a.type_.clone(), address: a.address.clone() }).collect())
            .unwrap_or_default(),
    }
}

/// The services table's row of `s`.
pub fn service_row(s: &Service) -> ServiceRow {
    let spec = s.spec.as_ref();
    let ports = spec
        .and_then(|s| s.ports.as_ref())
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let proto = p.protocol.as_deref().unwrap_or("TCP");
                    match p.node_port {
                        Some(np) => format!("{}:{np}/{proto}", p.port),
                        None => format!("{}/{proto}", p.port),
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let selector = spec
        .and_then(|s| s.selector.as_ref())
        .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    ServiceRow {
        namespace: s.namespace().unwrap_or_default(),
        name: s.name_any(),
        type_: spec.and_then(|s| s.type_.clone()).unwrap_or_else(|| "ClusterIP".into()),
        cluster_ip: spec.and_then(|s| s.cluster_ip.clone()),
        ports,
        selector,
        created: created(s),
    }
}

/// The events table's row of `e`.
pub fn event_row(e: &Event) -> EventRow {
    let last_seen = e
        .last_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0.to_string()))
        .or_else(|| created(e));
    EventRow {
        namespace: e.namespace().unwrap_or_default(),
        name: e.name_any(),
        type_: e.type_.clone(),
        reason: e.reason.clone(),
        object: format!("{}/{}", e.involved_object.kind.as_deref().unwrap_or("?"), e.involved_object.name.as_deref().unwrap_or("?")),
        message: e.message.clone(),
        count: e.count,
        last_seen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("a valid object")
    }

    #[test]
    fn a_pods_row_counts_ready_containers_and_restarts() {
        let p: Pod = from(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-02T03:04:05Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "image": "x", "imageID": ""},
                {"name": "b", "ready": false, "restartCount": 1, "image": "x", "imageID": ""}]}
        }));
        let r = pod_row(&p);
        assert_eq!((r.ready.as_str(), r.status.as_str(), r.restarts), ("1/2", "Running", 3));
        assert_eq!(r.node.as_deref(), Some("n1"));
        assert_eq!(r.pod_ip.as_deref(), Some("10.244.0.5"));
        assert_eq!(r.created.as_deref(), Some("2026-01-02T03:04:05Z"));
    }

    #[test]
    fn a_deleted_pod_is_terminating_and_an_unscheduled_one_pending() {
        let p: Pod = from(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "deletionTimestamp": "2026-01-02T03:04:05Z"},
            "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running"}}));
        assert_eq!(pod_row(&p).status, "Terminating");
        let p: Pod = from(serde_json::json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a"}]}}));
        let r = pod_row(&p);
        assert_eq!((r.status.as_str(), r.ready.as_str(), r.node), ("Pending", "0/1", None));
    }

    #[test]
    fn a_nodes_row_reads_ready_and_cordon() {
        let n: Node = from(serde_json::json!({
            "metadata": {"name": "n1"},
            "spec": {"podCIDR": "10.244.0.0/24", "unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "Hostname", "address": "h"}, {"type": "InternalIP", "address": "10.0.0.2"}]}}));
        let r = node_row(&n);
        assert_eq!(r.status, "Ready,SchedulingDisabled");
        assert_eq!(r.internal_ip.as_deref(), Some("10.0.0.2"));
        assert_eq!(r.addresses.iter().map(|a| format!("{} {}", a.type_, a.address)).collect::<Vec<_>>(), ["Hostname h", "InternalIP 10.0.0.2"]);
        assert_eq!((r.conditions.len(), r.conditions[0].type_.as_str(), r.conditions[0].status.as_str()), (1, "Ready", "True"));
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!((&v["conditions"][0]["type"], &v["addresses"][1]["type"]), (&serde_json::json!("Ready"), &serde_json::json!("InternalIP")));
        let n: Node = from(serde_json::json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}));
        assert_eq!(node_row(&n).status, "NotReady (Unknown)");
    }

    #[test]
    fn a_services_ports_read_as_kubectl_prints_them() {
        let s: Service = from(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}}));
        let r = service_row(&s);
        assert_eq!(r.ports, "80:30080/TCP,53/UDP");
        assert_eq!((r.type_.as_str(), r.selector.as_str()), ("NodePort", "app=web"));
    }

    #[test]
    fn an_events_row_names_its_object_and_latest_time() {
        let e: Event = from(serde_json::json!({
            "metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web"},
            "reason": "Scheduled", "type": "Normal", "message": "assigned", "count": 1,
            "firstTimestamp": "2026-01-02T03:04:05Z", "lastTimestamp": "2026-01-02T03:04:09Z"}));
        let r = event_row(&e);
        assert_eq!(r.object, "Pod/web");
        assert_eq!(r.last_seen.as_deref(), Some("2026-01-02T03:04:09Z"));
    }
}
