//! The acting half of the node and service views: `ip -j` for the bridge, the host-gw routes and the DNS link,
//! `nft -j` for the proxy table, the pods' records for the pod list, and the runtime (through
//! [`RuntimeClient`]) for the QoS and pod cgroups' memory and CPU. The parsing is [`super::assemble`]'s and
//! [`super::proxy_table`]'s; a fact that cannot be read is left empty.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::gather::{json_of, read_json, InspectEnv};
use super::schema::{self, Dns, NodeInspection, NodePod, NodeRef, QosCgroup, QosTree, ServiceInspection, ServiceRef};
use super::{assemble, proxy_table};
use crate::container::qos;
use crate::node::routes::RT_PROTO;
use crate::pod::worker::SandboxRecord;
use crate::runtime_client::RuntimeClient;

/// This node's inspection.
pub fn inspect_node(env: &InspectEnv) -> NodeInspection {
    let runtime = env.runtime();
    let link = |dev: &str| json_of("ip", &["-j", "addr", "show", "dev", dev]).and_then(|v| v.get(0).map(assemble::link_of));
    let root = env.cgroup_root.trim_matches('/').to_string();
    let mut classes: Vec<QosCgroup> = [("Guaranteed", root.clone()), ("Burstable", format!("{root}/burstable")), ("BestEffort", format!("{root}/besteffort"))]
        .into_iter()
        .map(|(class, path)| QosCgroup { qos_class: class.into(), memory_working_set_bytes: runtime.pod_memory_bytes(&path), path, ..Default::default() })
        .collect();
    let mut pods = pods(env, &runtime, &root);
    let cpu_sample_millis = cpu_use(&runtime, &mut classes, &mut pods);
    let dns_link = env.cluster_dns.as_ref().and(env.dns_link.clone());
    NodeInspection {
        api_version: schema::API_VERSION.into(),
        kind: schema::NODE_KIND.into(),
        metadata: NodeRef { name: env.node_name.clone() },
        pod_cidr: None,
        bridge: env.bridge.as_deref().and_then(link),
        pod_routes: json_of("ip", &["-j", "-4", "route", "show", "proto", RT_PROTO]).map(|v| assemble::routes_of(&v)).unwrap_or_default(),
        proxy: match &env.proxy_table {
            Some(t) => json_of("nft", &["-j", "list", "table", "ip", t]).map(|v| proxy_table::summary(t, &v)).unwrap_or_else(|| schema::ProxySummary {
                table: Some(t.clone()),
                ..Default::default()
            }),
            None => Default::default(),
        },
        dns: Dns {
            address: env.cluster_dns.clone(),
            link_addresses: dns_link.as_deref().and_then(link).map(|l| l.addresses).unwrap_or_default(),
            link: dns_link,
        },
        cgroups: QosTree { root: root.clone(), classes, cpu_sample_millis },
        pods,
    }
}

/// How long the runtime waits between its two reads of the cgroups' CPU time for a rate: short, as `top`'s
/// first screen, since the node view waits for it.
pub const CPU_SAMPLE: std::time::Duration = std::time::Duration::from_millis(100);

/// Fills in the CPU time and rate of every QoS class and pod cgroup from one runtime call; returns the interval
/// measured over (0 when the runtime could not answer: then every CPU figure stays null).
fn cpu_use(runtime: &dyn RuntimeClient, classes: &mut [QosCgroup], pods: &mut [NodePod]) -> u64 {
    let paths: Vec<String> = classes.iter().map(|c| c.path.clone()).chain(pods.iter().map(|p| p.cgroup.clone())).collect();
    let sample = match runtime.cgroup_cpu(&paths, CPU_SAMPLE) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "inspect node: cgroup cpu");
            return 0;
        }
    };
    let of = |path: &str| sample.cgroups.iter().find(|c| c.path == path);
    for c in classes.iter_mut() {
        if let Some(u) = of(&c.path) {
            (c.cpu_usage_nanos, c.cpu_millicores) = (u.usage_nanos, u.millicores);
        }
    }
    for p in pods.iter_mut() {
        if let Some(u) = of(&p.cgroup) {
            (p.cpu_usage_nanos, p.cpu_millicores) = (u.usage_nanos, u.millicores);
        }
    }
    sample.sample_millis
}

/// Every pod with a record under the pods dir, by namespace and name.
fn pods(env: &InspectEnv, runtime: &dyn RuntimeClient, root: &str) -> Vec<NodePod> {
    let mut out: Vec<NodePod> = std::fs::read_dir(&env.pods_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| node_pod(env, runtime, root, &e.path()))
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

fn node_pod(env: &InspectEnv, runtime: &dyn RuntimeClient, root: &str, dir: &Path) -> Option<NodePod> {
    let raw: Value = read_json(&dir.join("pod.json"))?;
    let pod: Pod = serde_json::from_value(raw.clone()).ok()?;
    let sandbox: Option<SandboxRecord> = read_json(&dir.join("sandbox.json"));
    let cgroup = qos::pod_cgroup_parent(root, &pod);
    Some(NodePod {
        namespace: pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        qos_class: qos::qos_class(&pod).as_str().into(),
        memory_working_set_bytes: runtime.pod_memory_bytes(&cgroup),
        cgroup,
        cpu_usage_nanos: None,
        cpu_millicores: None,
        sandbox_id: sandbox.as_ref().map(|s| s.id.clone()),
        sandbox_pid: sandbox.as_ref().map(|s| s.pid).filter(|p| crate::container_monitor::process_alive(*p) && env.proc_root.join(p.to_string()).exists()),
        pod_ip: sandbox.as_ref().and_then(|s| s.ip.clone()).or_else(|| raw.pointer("/status/podIP").and_then(Value::as_str).map(str::to_string)),
        host_network: sandbox.as_ref().map(|s| s.host_network).unwrap_or(false),
    })
}

/// Service `ns/name` as this node's proxy table has it (the API's fields are the client's to fill in).
pub fn inspect_service(env: &InspectEnv, ns: &str, name: &str) -> ServiceInspection {
    ServiceInspection {
        api_version: schema::API_VERSION.into(),
        kind: schema::SERVICE_KIND.into(),
        metadata: ServiceRef { namespace: ns.into(), name: name.into(), node: env.node_name.clone() },
        table: env.proxy_table.clone(),
        ports: env
            .proxy_table
            .as_ref()
            .and_then(|t| json_of("nft", &["-j", "list", "table", "ip", t]))
            .map(|v| proxy_table::service_ports(&v, ns, name))
            .unwrap_or_default(),
        ..Default::default()
    }
}
