//! The acting half of the node and service views: `ip -j` for the bridge, the host-gw routes and the DNS link,
//! `nft -j` for the proxy's tables (all its shard tables: [`read_proxy_tables`]), the pods' records for the pod list, and the runtime (through
//! [`RuntimeClient`]) for the QoS and pod cgroups' memory and CPU. The parsing is [`super::assemble`]'s and
//! [`super::proxy_table`]'s; a fact that cannot be read is left empty.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::gather::{json_of, read_json, InspectEnv};
use super::schema::{self, Dns, NodeInspection, NodePod, NodeRef, QosCgroup, QosTree, ServiceInspection, ServiceRef, ServiceRules};
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
            Some(t) => proxy_table::summary_of(t, &read_proxy_tables(t, &nft_command)),
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
    inspect_service_with(env, ns, name, &nft_command)
}

/// [`inspect_service`] reading nftables through `nft`: `table` is the proxy's table that holds the Service's
/// chains, looked for in [`proxy_table::search_order`] (one table read for most Services); the proxy's own
/// table, with no ports, when no table has them.
pub fn inspect_service_with(env: &InspectEnv, ns: &str, name: &str, nft: Nft<'_>) -> ServiceInspection {
    let (table, ports) = match &env.proxy_table {
        Some(t) => {
            proxy_table::search_order(&proxy_table_names(t, nft), ns, name)
                .into_iter()
                .find_map(|shard| {
                    let ports = proxy_table::service_ports(&nft(&["-j", "list", "table", "ip", shard])?, ns, name);
                    (!ports.is_empty()).then(|| (Some(shard.to_string()), ports))
                })
                .unwrap_or_else(|| (Some(t.clone()), Vec::new()))
        }
        None => (None, Vec::new()),
    };
    ServiceInspection {
        api_version: schema::API_VERSION.into(),
        kind: schema::SERVICE_KIND.into(),
        metadata: ServiceRef { namespace: ns.into(), name: name.into(), node: env.node_name.clone() },
        table,
        ports,
        ..Default::default()
    }
}

/// How the proxy's tables are read: `nft` run with these arguments (`-j list ...`), its output parsed as JSON;
/// None when it fails. [`nft_command`] on a node, a fake listing in tests.
pub type Nft<'a> = &'a dyn Fn(&[&str]) -> Option<Value>;

/// The [`Nft`] of a node: the `nft` command.
pub fn nft_command(args: &[&str]) -> Option<Value> {
    json_of("nft", args)
}

/// The proxy's tables on this node with their listings (`nft -j list table ip <t>`), shard 0 (`table`) first:
/// every shard table there is ([`proxy_table::shard_tables`]). Empty when `table` is not there.
pub fn read_proxy_tables(table: &str, nft: Nft<'_>) -> Vec<(String, Value)> {
    proxy_table_names(table, nft).into_iter().filter_map(|t| nft(&["-j", "list", "table", "ip", &t]).map(|v| (t, v))).collect()
}

/// The names of the proxy's tables on this node (`nft -j list tables`), shard 0 (`table`) first; empty when
/// `table` is not there.
fn proxy_table_names(table: &str, nft: Nft<'_>) -> Vec<String> {
    nft(&["-j", "list", "tables"]).map(|l| proxy_table::shard_tables(table, &l)).unwrap_or_default()
}

/// The proxy rules that lead to a pod at `pod_ip` (None: no IP, or the host's network): those of every shard
/// table of the proxy's `table` (None: this kubelet runs no proxy), since any Service may select the pod.
pub fn pod_service_rules(table: Option<&str>, pod_ip: Option<&str>, nft: Nft<'_>) -> ServiceRules {
    let endpoints = match (table, pod_ip) {
        (Some(t), Some(ip)) => read_proxy_tables(t, nft).iter().flat_map(|(_, v)| assemble::service_rules(v, ip)).collect(),
        _ => Vec::new(),
    };
    ServiceRules { table: table.map(str::to_string), endpoints }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::service_proxy::shard::{shard_of, table_name};

    const TABLE: &str = "rkube-proxy";

    /// The fixture table (`default/web` and `default/<other>`) spread over two shard tables as the proxy places
    /// Services: `web` in its hash's table ([`shard_of`]), `<other>` (renamed from `other` so that its hash
    /// picks the same table) in the other one, as when its hash's table was full when it came. Each table has
    /// its Service's chains, rules and map elements, and the entry chains. Returns `<other>` and the tables.
    fn two_shards() -> (String, BTreeMap<String, Value>) {
        let web = shard_of("default", "web", 2);
        let other = (0..).map(|i| format!("other-{i}")).find(|n| shard_of("default", n, 2) == web).expect("a name with web's hash shard");
        let text = include_str!("fixtures/nft-table.json").replace("default/other/", &format!("default/{other}/"));
        let fixture: Value = serde_json::from_str(&text).expect("fixture");
        let shard_of_text = |t: &str| {
            if t.contains("default/web/") {
                Some(web)
            } else if t.contains(&format!("default/{other}/")) {
                Some(1 - web)
            } else {
                None
            }
        };
        let mut tables = BTreeMap::new();
        for shard in 0..2 {
            let name = table_name(TABLE, shard);
            let mut out = Vec::new();
            for it in fixture["nftables"].as_array().expect("items") {
                let mut it = it.clone();
                if let Some(t) = it.get_mut("table").filter(|t| t.is_object()) {
                    t["name"] = json!(name);
                } else if let Some(m) = it.get_mut("map") {
                    m["table"] = json!(name);
                    if let Some(elems) = m.get_mut("elem").and_then(Value::as_array_mut) {
                        elems.retain(|e| shard_of_text(&e.to_string()) == Some(shard));
                    }
                } else if let Some(kind) = ["chain", "rule"].into_iter().find(|k| it.get(*k).is_some()) {
                    let o = &mut it[kind];
                    o["table"] = json!(name);
                    if shard_of_text(&o.to_string()).is_some_and(|s| s != shard) {
                        continue;
                    }
                }
                out.push(it);
            }
            tables.insert(name, json!({ "nftables": out }));
        }
        (other, tables)
    }

    /// `nft -j list tables` and `nft -j list table ip <t>` over `tables`, beside an `inet` table named as a shard
    /// (not the proxy's: its tables are `ip`).
    fn fake_nft(tables: &BTreeMap<String, Value>) -> impl Fn(&[&str]) -> Option<Value> + '_ {
        move |args: &[&str]| match args {
            ["-j", "list", "tables"] => {
                let mut listed: Vec<Value> = tables.keys().map(|n| json!({"table": {"family": "ip", "name": n, "handle": 1}})).collect();
                listed.push(json!({"table": {"family": "inet", "name": table_name(TABLE, 2), "handle": 2}}));
                Some(json!({ "nftables": listed }))
            }
            ["-j", "list", "table", "ip", t] => tables.get(*t).cloned(),
            _ => None,
        }
    }

    fn env() -> InspectEnv {
        InspectEnv {
            node_name: "n1".into(),
            pods_dir: "/nonexistent/pods".into(),
            runtime_bin: "/bin/false".into(),
            runtime_root: "/nonexistent/rt".into(),
            proxy_table: Some(TABLE.into()),
            proc_root: "/nonexistent/proc".into(),
            cgroup_root: "kubepods".into(),
            bridge: None,
            cluster_dns: None,
            dns_link: None,
        }
    }

    #[test]
    fn services_in_every_shard_table_are_found_and_counted() {
        let (other, tables) = two_shards();
        let nft = fake_nft(&tables);
        let one_table: Value = serde_json::from_str(&include_str!("fixtures/nft-table.json").replace("default/other/", &format!("default/{other}/"))).expect("fixture");

        // the node summary: both shards read, every Service counted
        let read = read_proxy_tables(TABLE, &nft);
        assert_eq!(read.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ["rkube-proxy", "rkube-proxy-1"]);
        let sum = proxy_table::summary_of(TABLE, &read);
        let whole = proxy_table::summary(TABLE, &one_table);
        assert_eq!(sum.table.as_deref(), Some(TABLE));
        assert_eq!(sum.tables, ["rkube-proxy", "rkube-proxy-1"]);
        assert_eq!(
            (sum.service_ports, sum.endpoints, sum.service_ips, sum.node_ports),
            (whole.service_ports, whole.endpoints, whole.service_ips, whole.node_ports),
            "{sum:?}"
        );

        // each Service found in the shard table that holds it, with what one table would have shown of it
        let web_shard = shard_of("default", "web", 2);
        for (name, shard) in [("web", web_shard), (other.as_str(), 1 - web_shard)] {
            let s = inspect_service_with(&env(), "default", name, &nft);
            assert_eq!(s.table, Some(table_name(TABLE, shard)), "{name}");
            assert!(!s.ports.is_empty(), "{name}: no ports found");
            assert_eq!(s.ports, proxy_table::service_ports(&one_table, "default", name), "{name}");
        }

        // a pod's rules come from whichever shard holds the Service that selects it
        for (ip, name, shard) in [("10.244.21.5", "web", web_shard), ("10.244.21.7", other.as_str(), 1 - web_shard)] {
            let r = pod_service_rules(Some(TABLE), Some(ip), &nft);
            assert_eq!(r.endpoints.len(), 1, "{ip}: {r:?}");
            assert_eq!(r.endpoints[0].service, format!("default/{name}"));
            assert_eq!(r.endpoints[0].table, table_name(TABLE, shard));
        }
        assert!(pod_service_rules(Some(TABLE), None, &nft).endpoints.is_empty(), "no IP of its own: no rules");
    }

    #[test]
    fn without_the_proxy_table_nothing_is_read_or_counted() {
        let none = |_: &[&str]| -> Option<Value> { None };
        let sum = proxy_table::summary_of(TABLE, &read_proxy_tables(TABLE, &none));
        assert_eq!((sum.table.as_deref(), sum.tables.len(), sum.chains), (Some(TABLE), 0, 0));
        let s = inspect_service_with(&env(), "default", "web", &none);
        assert_eq!((s.table.as_deref(), s.ports.len()), (Some(TABLE), 0));
        let no_proxy = InspectEnv { proxy_table: None, ..env() };
        assert_eq!(inspect_service_with(&no_proxy, "default", "web", &none).table, None);
    }
}
