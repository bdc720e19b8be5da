//! The Node's status from machine facts: capacity/allocatable, addresses, nodeInfo, the four conditions with
//! upstream's reasons, images, daemon endpoint. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::machine::MachineFacts;
use crate::time::to_k8s;

/// Version this kubelet reports.
pub const KUBELET_VERSION: &str = "v1.33.0-rkube";
/// Pods per node.
pub const MAX_PODS: u32 = 110;
/// The kubelet API port.
pub const KUBELET_PORT: i32 = 10250;
/// PIDPressure when more than this share of pid_max is in use.
pub const PID_MAX_PERCENT: u64 = 90;

/// Inputs beyond the machine.
#[derive(Clone, Debug, Default)]
pub struct NodeInputs {
    /// The InternalIP address; none is reported when empty.
    pub node_ip: String,
    /// The Hostname address.
    pub hostname: String,
    /// (names, size) of images in the store.
    pub images: Vec<(Vec<String>, u64)>,
    /// False while the runtime or network is not usable; Ready carries `not_ready_message` then.
    pub ready: bool,
    /// Why the node is not Ready, for the Ready condition's message.
    pub not_ready_message: String,
    /// MemoryPressure and DiskPressure as the eviction manager reports them (its thresholds and transition
    /// period); None: from the machine facts against the default thresholds.
    pub pressure: Option<(bool, bool)>,
}

fn condition(type_: &str, status: bool, reason: &str, message: &str, now: DateTime<Utc>, previous: Option<&NodeStatus>) -> NodeCondition {
    let s = if status { "True" } else { "False" };
    let transition = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == s)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| to_k8s(now));
    NodeCondition {
        type_: type_.into(),
        status: s.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(to_k8s(now)),
        last_transition_time: Some(transition),
    }
}

/// Builds the status; `previous` keeps condition transition times.
pub fn node_status(m: &MachineFacts, i: &NodeInputs, previous: Option<&NodeStatus>, now: DateTime<Utc>) -> NodeStatus {
    let mut capacity = BTreeMap::new();
    capacity.insert("cpu".to_string(), Quantity(m.cpus.to_string()));
    capacity.insert("memory".to_string(), Quantity(format!("{}Ki", m.memory_total_bytes / 1024)));
    capacity.insert("pods".to_string(), Quantity(MAX_PODS.to_string()));
    capacity.insert("ephemeral-storage".to_string(), Quantity(format!("{}Ki", m.disk_total_bytes / 1024)));
    let allocatable = capacity.clone();
    let (mem_pressure, disk_pressure) = i.pressure.unwrap_or_else(|| {
        let o = super::eviction::PressureTracker::new(Default::default(), Default::default()).observe(m, std::time::Instant::now());
        (o.memory_pressure, o.disk_pressure)
    });
    let pid_pressure = m.pid_max > 0 && m.pids_running * 100 / m.pid_max > PID_MAX_PERCENT;
    let conditions = vec![
        if mem_pressure {
            condition("MemoryPressure", true, "KubeletHasInsufficientMemory", "kubelet has insufficient memory available", now, previous)
        } else {
            condition("MemoryPressure", false, "KubeletHasSufficientMemory", "kubelet has sufficient memory available", now, previous)
        },
        if disk_pressure {
            condition("DiskPressure", true, "KubeletHasDiskPressure", "kubelet has disk pressure", now, previous)
        } else {
            condition("DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure", now, previous)
        },
        if pid_pressure {
            condition("PIDPressure", true, "KubeletHasInsufficientPID", "kubelet has insufficient PID available", now, previous)
        } else {
            condition("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available", now, previous)
        },
        if i.ready {
            condition("Ready", true, "KubeletReady", "kubelet is posting ready status", now, previous)
        } else {
            condition("Ready", false, "KubeletNotReady", &i.not_ready_message, now, previous)
        },
    ];
    let mut addresses = Vec::new();
    if !i.node_ip.is_empty() {
        addresses.push(NodeAddress { type_: "InternalIP".into(), address: i.node_ip.clone() });
    }
    addresses.push(NodeAddress { type_: "Hostname".into(), address: i.hostname.clone() });
    let images = i
        .images
        .iter()
        .map(|(names, size)| ContainerImage { names: Some(names.clone()), size_bytes: Some(*size as i64) })
        .collect();
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        conditions: Some(conditions),
        addresses: Some(addresses),
        daemon_endpoints: Some(NodeDaemonEndpoints { kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }) }),
        node_info: Some(NodeSystemInfo {
            machine_id: m.machine_id.clone(),
            system_uuid: m.machine_id.clone(),
            boot_id: m.boot_id.clone(),
            kernel_version: m.kernel_version.clone(),
            os_image: m.os_image.clone(),
            container_runtime_version: format!("rkube://{}", env!("CARGO_PKG_VERSION")),
            kubelet_version: KUBELET_VERSION.into(),
            kube_proxy_version: KUBELET_VERSION.into(),
            operating_system: "linux".into(),
            architecture: "amd64".into(),
            ..Default::default()
        }),
        images: Some(images),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> MachineFacts {
        MachineFacts {
            cpus: 2,
            memory_total_bytes: 24 << 30,
            memory_available_bytes: 20 << 30,
            disk_total_bytes: 100 << 30,
            disk_free_bytes: 50 << 30,
            pids_running: 300,
            pid_max: 32768,
            machine_id: "m".into(),
            boot_id: "b".into(),
            kernel_version: "6.18".into(),
            os_image: "Debian".into(),
            hostname: "h".into(),
        }
    }

    fn cond<'a>(s: &'a NodeStatus, t: &str) -> &'a NodeCondition {
        s.conditions.as_ref().and_then(|c| c.iter().find(|c| c.type_ == t)).expect("condition")
    }

    #[test]
    fn healthy_node() {
        let i = NodeInputs { node_ip: "10.200.0.1".into(), hostname: "h".into(), images: vec![(vec!["busybox:1".into()], 1000)], ready: true, ..Default::default() };
        let s = node_status(&facts(), &i, None, Utc::now());
        let cap = s.capacity.as_ref().expect("capacity");
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(cap["memory"].0, format!("{}Ki", (24u64 << 30) / 1024));
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("KubeletReady"));
        for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            assert_eq!(cond(&s, t).status, "False", "{t}");
        }
        let addrs = s.addresses.as_ref().expect("addresses");
        assert_eq!(addrs[0].type_, "InternalIP");
        assert_eq!(addrs[0].address, "10.200.0.1");
        assert_eq!(s.images.as_ref().expect("images").len(), 1);
        assert_eq!(s.node_info.as_ref().expect("info").kernel_version, "6.18");
    }

    #[test]
    fn pressure_conditions_and_stable_transitions() {
        let mut f = facts();
        f.memory_available_bytes = 50 << 20;
        f.disk_free_bytes = 5 << 30;
        f.pids_running = 32000;
        let i = NodeInputs { ready: false, not_ready_message: "runtime down".into(), ..Default::default() };
        let t0 = Utc::now();
        let s = node_status(&f, &i, None, t0);
        assert_eq!(cond(&s, "MemoryPressure").status, "True");
        assert_eq!(cond(&s, "DiskPressure").status, "True");
        assert_eq!(cond(&s, "PIDPressure").status, "True");
        assert_eq!(cond(&s, "Ready").message.as_deref(), Some("runtime down"));
        let s2 = node_status(&f, &i, Some(&s), t0 + chrono::Duration::seconds(10));
        assert_eq!(cond(&s2, "Ready").last_transition_time, cond(&s, "Ready").last_transition_time);
        assert_ne!(cond(&s2, "Ready").last_heartbeat_time, cond(&s, "Ready").last_heartbeat_time);
    }
}
