//! A [`PodInspection`] as a tree for people (`rkube inspect pod NAME`): the pod, its sandbox, network, containers
//! and the service rules that reach it, each branch a kernel object. Colours (ANSI) only when asked, which the
//! command does on a terminal. Pure: tested on a fixture.

use std::fmt::Write as _;

use super::schema::{Container, Link, Namespace, NodeInspection, PodInspection, ServiceInspection, Sharing};

struct Node {
    label: String,
    children: Vec<Node>,
}

fn node(label: impl Into<String>, children: Vec<Node>) -> Node {
    Node { label: label.into(), children }
}

fn leaf(label: impl Into<String>) -> Node {
    node(label, Vec::new())
}

struct Style {
    color: bool,
}

impl Style {
    fn head(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[1;36m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn dim(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[2m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// cgroup v1's "no limit" is the largest page-aligned i64.
fn memory_limit(l: Option<u64>) -> String {
    match l {
        Some(l) if l < (1 << 62) => bytes(l),
        _ => "unlimited".into(),
    }
}

fn namespaces(ns: &[Namespace]) -> String {
    ns.iter()
        .map(|n| {
            let whose = match n.shared {
                Sharing::Pod => "pod",
                Sharing::Host => "host",
                Sharing::Own => "own",
            };
            format!("{} {} ({whose})", n.kind, n.inode)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn link(l: &Link) -> String {
    let addrs = if l.addresses.is_empty() { String::new() } else { format!(" {}", l.addresses.join(" ")) };
    format!("{} ifindex {} mac {}{addrs}", l.name, l.ifindex, l.mac)
}

fn container(c: &Container, st: &Style) -> Node {
    let pid = c.pid.map(|p| format!("pid {p}")).unwrap_or_else(|| "no process".into());
    let mut kids = Vec::new();
    if !c.namespaces.is_empty() {
        kids.push(leaf(format!("namespaces: {}", namespaces(&c.namespaces))));
    }
    if let Some(cg) = &c.cgroup {
        let cpu = match (cg.cpu.quota_micros, cg.cpu.period_micros) {
            (Some(q), Some(p)) => format!("quota {q}/{p} µs"),
            _ => "no quota".into(),
        };
        let shares = cg.cpu.shares.map(|s| format!(", shares {s}")).or_else(|| cg.cpu.weight.map(|w| format!(", weight {w}"))).unwrap_or_default();
        let used = cg.cpu.usage_nanos.map(|n| format!(", used {:.3} s", n as f64 / 1e9)).unwrap_or_default();
        let mem_used = cg.memory.usage_bytes.map(bytes).unwrap_or_else(|| "?".into());
        let pids = format!(
            "{} / {}",
            cg.pids.current.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
            cg.pids.limit.map(|p| p.to_string()).unwrap_or_else(|| "max".into())
        );
        kids.push(node(
            format!("cgroup {}", cg.path),
            vec![
                leaf(format!("cpu: {cpu}{shares}{used}")),
                leaf(format!("memory: {mem_used} of {}{}", memory_limit(cg.memory.limit_bytes), if cg.memory.oom_kills > 0 { format!(", {} OOM kills", cg.memory.oom_kills) } else { String::new() })),
                leaf(format!("pids: {pids}")),
            ],
        ));
    }
    if let Some(r) = &c.rootfs {
        let mut rk: Vec<Node> = r
            .lower_layers
            .iter()
            .map(|l| leaf(format!("lower {}", l.digest.clone().unwrap_or_else(|| l.dir.clone()))))
            .collect();
        if let Some(u) = &r.upper_dir {
            rk.push(leaf(format!("upper {u}")));
        }
        kids.push(node(format!("rootfs {}", r.fs_type), rk));
    }
    if !c.mounts.is_empty() {
        let mk = c
            .mounts
            .iter()
            .map(|m| {
                let what = m.volume.as_ref().map(|v| format!("{v} ({})", m.kind)).unwrap_or_else(|| m.kind.clone());
                let k = m.kernel.as_ref().map(|k| format!(" [{}{}]", k.fs_type, if k.read_only { ", ro" } else { "" })).unwrap_or_else(|| " [not mounted]".into());
                leaf(format!("{} ← {what} {}{k}", m.mount_path, m.host_source))
            })
            .collect();
        kids.push(node("mounts", mk));
    }
    let mon = c.monitor.pid.map(|p| format!("pid {p}")).unwrap_or_else(|| "exited".into());
    kids.push(leaf(format!("monitor {mon}, log {}", c.monitor.log_file.display())));
    node(format!("{} {} {pid} {} restarts {}", st.head(&c.name), st.dim(&c.id), c.state, c.restart_count), kids)
}

/// The tree text of `p`.
pub fn tree(p: &PodInspection, color: bool) -> String {
    let st = Style { color };
    let sb = &p.sandbox;
    let mut top = Vec::new();
    top.push(node(
        format!("{} {} pid {}: {}", st.head("sandbox"), sb.id, sb.pid, sb.command.join(" ")),
        vec![leaf(format!("namespaces: {}", namespaces(&sb.namespaces)))],
    ));
    let n = &p.network;
    let mut net = Vec::new();
    if n.host_network {
        net.push(leaf("host network"));
    }
    if let Some(pi) = &n.pod_interface {
        net.push(leaf(format!("pod end: {}", link(pi))));
    }
    if let Some(h) = &n.host_veth {
        net.push(leaf(format!("host end: {} (peer ifindex {})", link(h), h.peer_ifindex.map(|i| i.to_string()).unwrap_or_else(|| "?".into()))));
    }
    if let Some(b) = &n.bridge {
        net.push(leaf(format!("bridge: {}", link(b))));
    }
    if !n.routes.is_empty() {
        net.push(node(
            "routes",
            n.routes
                .iter()
                .map(|r| {
                    let via = r.gateway.as_ref().map(|g| format!(" via {g}")).unwrap_or_default();
                    let dev = r.dev.as_ref().map(|d| format!(" dev {d}")).unwrap_or_default();
                    leaf(format!("{}{via}{dev}", r.dst))
                })
                .collect(),
        ));
    }
    let file = |name: &str, text: &str| node(name.to_string(), text.lines().filter(|l| !l.trim().is_empty()).map(leaf).collect());
    net.push(file("/etc/hosts", &n.hosts));
    net.push(file("/etc/resolv.conf", &n.resolv_conf));
    top.push(node(format!("{} {}", st.head("network"), n.pod_ip.clone().unwrap_or_default()), net));
    top.push(node(st.head("containers"), p.containers.iter().map(|c| container(c, &st)).collect()));
    let svc: Vec<Node> = p
        .service_rules
        .endpoints
        .iter()
        .map(|e| {
            // a shard table other than the proxy's own is named: `nft list chain ip <table> <chain>` needs it
            let shard = Some(&e.table).filter(|t| !t.is_empty() && p.service_rules.table.as_ref() != Some(*t));
            let mut k = vec![leaf(format!("chain {}{}", e.endpoint_chain, shard.map(|t| format!(" (table ip {t})")).unwrap_or_default()))];
            k.extend(e.via_chains.iter().map(|c| leaf(format!("from chain {c}"))));
            k.extend(e.service_ips.iter().map(|i| leaf(format!("from {i}"))));
            k.extend(e.node_ports.iter().map(|i| leaf(format!("from NodePort {i}"))));
            node(format!("{} {} → {}", e.service, e.port, e.endpoint), k)
        })
        .collect();
    let table = p.service_rules.table.as_ref().map(|t| format!(" (table ip {t})")).unwrap_or_else(|| " (no service proxy)".into());
    top.push(node(format!("{}{table}", st.head("services")), svc));
    let root = node(
        format!("pod {}/{} {} on node {}, QoS {}", p.metadata.namespace, p.metadata.name, st.dim(&p.metadata.uid), p.metadata.node, p.qos_class),
        top,
    );
    write_tree(&root)
}

fn write_tree(root: &Node) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", root.label);
    write_children(&mut out, &root.children, "");
    out
}

/// The tree text of a node's inspection.
pub fn node_tree(n: &NodeInspection, color: bool) -> String {
    let st = Style { color };
    let mut top = Vec::new();
    let mut net = Vec::new();
    if let Some(c) = &n.pod_cidr {
        net.push(leaf(format!("pod CIDR {c}")));
    }
    net.push(leaf(match &n.bridge {
        Some(b) => format!("bridge: {}", link(b)),
        None => "no pod bridge".into(),
    }));
    net.push(node(
        format!("routes to other nodes' pods ({})", n.pod_routes.len()),
        n.pod_routes
            .iter()
            .map(|r| leaf(format!("{}{}{}", r.dst, r.gateway.as_ref().map(|g| format!(" via {g}")).unwrap_or_default(), r.dev.as_ref().map(|d| format!(" dev {d}")).unwrap_or_default())))
            .collect(),
    ));
    top.push(node(st.head("network"), net));
    let p = &n.proxy;
    // with several shard tables the counts are their sums
    let shards = match p.tables.as_slice() {
        [_, one] => format!(" and shard table {one}"),
        [_, first, .., last] => format!(" and {} shard tables ({first} to {last})", p.tables.len() - 1),
        _ => String::new(),
    };
    top.push(leaf(match &p.table {
        Some(t) => format!(
            "{} table ip {t}{shards}: {} chains, {} rules, {} service ports, {} endpoints, {} service IPs, {} NodePorts",
            st.head("service proxy"),
            p.chains,
            p.rules,
            p.service_ports,
            p.endpoints,
            p.service_ips,
            p.node_ports
        ),
        None => format!("{} none on this node", st.head("service proxy")),
    }));
    top.push(leaf(match (&n.dns.address, &n.dns.link) {
        (Some(a), Some(l)) => format!("{} {a} on {l} ({})", st.head("cluster DNS"), n.dns.link_addresses.join(" ")),
        (Some(a), None) => format!("{} {a}", st.head("cluster DNS")),
        _ => format!("{} none", st.head("cluster DNS")),
    }));
    let pods_in = |path: &str| -> Vec<Node> {
        n.pods
            .iter()
            .filter(|p| p.cgroup.rsplit_once('/').map(|(parent, _)| parent) == Some(path))
            .map(|p| {
                let sb = match (&p.sandbox_id, p.sandbox_pid) {
                    (Some(id), Some(pid)) => format!("sandbox {id} pid {pid}"),
                    (Some(id), None) => format!("sandbox {id} (no process)"),
                    _ => "no sandbox".into(),
                };
                let ip = p.pod_ip.as_ref().map(|i| format!(" {i}")).unwrap_or_default();
                leaf(format!("{}/{} {sb}{ip}, {}{} ({})", p.namespace, p.name, bytes(p.memory_working_set_bytes), cpu(p.cpu_usage_nanos, p.cpu_millicores), st.dim(&p.cgroup)))
            })
            .collect()
    };
    top.push(node(
        match n.cgroups.cpu_sample_millis {
            0 => format!("{} {}", st.head("cgroups"), n.cgroups.root),
            ms => format!("{} {} (CPU now: over {ms} ms)", st.head("cgroups"), n.cgroups.root),
        },
        n.cgroups
            .classes
            .iter()
            .map(|c| node(format!("{} {}: {} in use{}", c.qos_class, c.path, bytes(c.memory_working_set_bytes), cpu(c.cpu_usage_nanos, c.cpu_millicores)), pods_in(&c.path)))
            .collect(),
    ));
    write_tree(&node(format!("node {} ({} pods)", n.metadata.name, n.pods.len()), top))
}

/// `, CPU 1.25 s used, 50m now` of a cgroup (the parts known; nothing when neither is).
fn cpu(usage_nanos: Option<u64>, millicores: Option<u64>) -> String {
    let mut out = String::new();
    if let Some(ns) = usage_nanos {
        let _ = write!(out, ", CPU {:.2} s used", ns as f64 / 1e9);
    }
    if let Some(m) = millicores {
        let _ = write!(out, "{} {m}m now", if usage_nanos.is_some() { "," } else { ", CPU" });
    }
    out
}

/// The tree text of a Service's proxy rules on one node.
pub fn service_tree(s: &ServiceInspection, color: bool) -> String {
    let st = Style { color };
    let ports = s
        .ports
        .iter()
        .map(|p| {
            let mut k = Vec::new();
            k.extend(p.service_ips.iter().map(|i| leaf(format!("from {i}"))));
            k.extend(p.node_ports.iter().map(|i| leaf(format!("from NodePort {i}"))));
            k.extend(p.other_chains.iter().map(|c| leaf(format!("chain {c}"))));
            let picks = p
                .endpoints
                .iter()
                .map(|e| leaf(format!("{}{} ({})", e.slot.map(|s| format!("{s}: ")).unwrap_or_default(), e.endpoint, st.dim(&e.chain))))
                .collect();
            let picker = p.service_chain.clone().unwrap_or_else(|| "no service chain".into());
            k.push(node(format!("chain {picker} picks 1 of {}", p.endpoints.len()), picks));
            node(format!("{} {}", st.head("port"), p.port), k)
        })
        .collect::<Vec<_>>();
    let table = s.table.as_ref().map(|t| format!("table ip {t}")).unwrap_or_else(|| "no service proxy".into());
    let vip = if s.cluster_ips.is_empty() { "no cluster IP".to_string() } else { s.cluster_ips.join(",") };
    let kind = s.service_type.clone().unwrap_or_default();
    let mut root = node(format!("service {}/{} {kind} {vip} on node {} ({table})", s.metadata.namespace, s.metadata.name, s.metadata.node), ports);
    if root.children.is_empty() {
        root.children.push(leaf("no rules for it in the table (no ready endpoints, or not synced yet)"));
    }
    write_tree(&root)
}

fn write_children(out: &mut String, kids: &[Node], prefix: &str) {
    for (i, k) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        let _ = writeln!(out, "{prefix}{}{}", if last { "└─ " } else { "├─ " }, k.label);
        write_children(out, &k.children, &format!("{prefix}{}", if last { "   " } else { "│  " }));
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::*;
    use super::*;

    pub fn fixture() -> PodInspection {
        PodInspection {
            api_version: API_VERSION.into(),
            kind: POD_KIND.into(),
            metadata: PodRef { namespace: "default".into(), name: "web".into(), uid: "u1".into(), node: "n1".into() },
            qos_class: "Burstable".into(),
            sandbox: Sandbox {
                id: "sb-u1".into(),
                pid: 100,
                command: vec!["rkube-runtime".into(), "pause".into()],
                namespaces: vec![Namespace { kind: "net".into(), inode: 11, shared: Sharing::Pod }],
            },
            containers: vec![Container {
                name: "app".into(),
                id: "u1-app-0".into(),
                state: "running".into(),
                pid: Some(200),
                namespaces: vec![Namespace { kind: "net".into(), inode: 11, shared: Sharing::Pod }, Namespace { kind: "pid".into(), inode: 24, shared: Sharing::Own }],
                cgroup: Some(Cgroup {
                    path: "/kubepods/burstable/podu1/u1-app-0".into(),
                    cpu: CpuFacts { quota_micros: Some(50000), period_micros: Some(100000), shares: Some(512), usage_nanos: Some(1_500_000_000), ..Default::default() },
                    memory: MemoryFacts { limit_bytes: Some(64 << 20), usage_bytes: Some(3 << 20), oom_kills: 0 },
                    pids: PidsFacts { limit: None, current: Some(1) },
                    ..Default::default()
                }),
                rootfs: Some(Rootfs { fs_type: "overlay".into(), lower_layers: vec![Layer { digest: Some("sha256:aa".into()), dir: "/l/aa".into() }], upper_dir: Some("/c/upper".into()), work_dir: None }),
                mounts: vec![Mount {
                    volume: Some("scratch".into()),
                    kind: "emptyDir".into(),
                    mount_path: "/data".into(),
                    host_source: "/pods/u1/volumes/kubernetes.io~empty-dir/scratch".into(),
                    kernel: Some(KernelMount { fs_type: "ext4".into(), ..Default::default() }),
                }],
                monitor: Monitor { pid: Some(199), log_file: "/logs/app/0.log".into() },
                ..Default::default()
            }],
            network: Network {
                pod_ip: Some("10.244.21.5".into()),
                pod_interface: Some(Link { name: "eth0".into(), ifindex: 2, peer_ifindex: Some(40), mac: "0a:58".into(), master: None, addresses: vec!["10.244.21.5/24".into()] }),
                host_veth: Some(Link { name: "veth1".into(), ifindex: 40, peer_ifindex: Some(2), mac: "aa:02".into(), master: Some("rkb1".into()), addresses: vec![] }),
                bridge: Some(Link { name: "rkb1".into(), ifindex: 30, mac: "bb:bb".into(), ..Default::default() }),
                routes: vec![Route { dst: "default".into(), gateway: Some("10.244.21.1".into()), dev: Some("eth0".into()), prefsrc: None }],
                hosts: "127.0.0.1\tlocalhost\n".into(),
                resolv_conf: "nameserver 10.96.0.10\n".into(),
                ..Default::default()
            },
            service_rules: ServiceRules {
                table: Some("rkube-proxy".into()),
                endpoints: vec![EndpointRules {
                    service: "default/web".into(),
                    port: "tcp/80".into(),
                    endpoint: "10.244.21.5:8080".into(),
                    table: "rkube-proxy".into(),
                    endpoint_chain: "ep-x".into(),
                    via_chains: vec!["svc-x".into()],
                    service_ips: vec!["10.96.0.20:80/tcp".into()],
                    node_ports: vec![],
                }],
            },
        }
    }

    #[test]
    fn the_tree_names_every_kernel_object_and_colours_only_when_asked() {
        let t = tree(&fixture(), false);
        assert!(t.starts_with("pod default/web u1 on node n1, QoS Burstable\n"), "{t}");
        for want in [
            "├─ sandbox sb-u1 pid 100: rkube-runtime pause",
            "│  └─ namespaces: net 11 (pod)",
            "pod end: eth0 ifindex 2 mac 0a:58 10.244.21.5/24",
            "host end: veth1 ifindex 40 mac aa:02 (peer ifindex 2)",
            "bridge: rkb1 ifindex 30 mac bb:bb",
            "default via 10.244.21.1 dev eth0",
            "nameserver 10.96.0.10",
            "app u1-app-0 pid 200 running restarts 0",
            "namespaces: net 11 (pod), pid 24 (own)",
            "cpu: quota 50000/100000 µs, shares 512, used 1.500 s",
            "memory: 3.0 MiB of 64.0 MiB",
            "pids: 1 / max",
            "lower sha256:aa",
            "/data ← scratch (emptyDir) /pods/u1/volumes/kubernetes.io~empty-dir/scratch [ext4]",
            "monitor pid 199, log /logs/app/0.log",
            "└─ services (table ip rkube-proxy)",
            "default/web tcp/80 → 10.244.21.5:8080",
            "from 10.96.0.20:80/tcp",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        assert!(!t.contains('\x1b'), "no colour unless asked");
        assert!(tree(&fixture(), true).contains("\x1b[1;36msandbox\x1b[0m"));
        assert_eq!(memory_limit(Some(9223372036854771712)), "unlimited");
    }

    #[test]
    fn the_node_tree_puts_each_pod_under_its_qos_cgroup() {
        let pod = |name: &str, cgroup: &str, pid: Option<i32>| NodePod {
            namespace: "default".into(),
            name: name.into(),
            cgroup: cgroup.into(),
            memory_working_set_bytes: 2 << 20,
            sandbox_id: Some(format!("sb-{name}")),
            sandbox_pid: pid,
            pod_ip: Some("10.244.1.5".into()),
            cpu_usage_nanos: pid.is_none().then_some(4_000_000),
            cpu_millicores: pid.is_none().then_some(3),
            ..Default::default()
        };
        let n = NodeInspection {
            metadata: NodeRef { name: "n1".into() },
            pod_cidr: Some("10.244.1.0/24".into()),
            bridge: Some(Link { name: "rkube0".into(), ifindex: 3, mac: "bb:bb".into(), addresses: vec!["10.244.1.1/24".into()], ..Default::default() }),
            pod_routes: vec![Route { dst: "10.244.2.0/24".into(), gateway: Some("192.168.1.12".into()), dev: Some("eth0".into()), prefsrc: None }],
            proxy: ProxySummary {
                table: Some("rkube-proxy".into()),
                tables: vec!["rkube-proxy".into()],
                chains: 8,
                rules: 11,
                service_ports: 2,
                endpoints: 3,
                service_ips: 3,
                node_ports: 1,
            },
            dns: Dns { address: Some("10.96.0.10".into()), link: Some("rkube-dns".into()), link_addresses: vec!["10.96.0.10/32".into()] },
            cgroups: QosTree {
                root: "kubepods".into(),
                classes: vec![
                    QosCgroup { qos_class: "Guaranteed".into(), path: "kubepods".into(), memory_working_set_bytes: 10 << 20, ..Default::default() },
                    QosCgroup {
                        qos_class: "Burstable".into(),
                        path: "kubepods/burstable".into(),
                        memory_working_set_bytes: 4 << 20,
                        cpu_usage_nanos: Some(1_250_000_000),
                        cpu_millicores: Some(50),
                    },
                ],
                cpu_sample_millis: 100,
            },
            pods: vec![pod("g", "kubepods/podu1", Some(42)), pod("b", "kubepods/burstable/podu2", None)],
            ..Default::default()
        };
        let t = node_tree(&n, false);
        for want in [
            "node n1 (2 pods)\n",
            "pod CIDR 10.244.1.0/24",
            "bridge: rkube0 ifindex 3 mac bb:bb 10.244.1.1/24",
            "routes to other nodes' pods (1)",
            "10.244.2.0/24 via 192.168.1.12 dev eth0",
            "table ip rkube-proxy: 8 chains, 11 rules, 2 service ports, 3 endpoints, 3 service IPs, 1 NodePorts",
            "cluster DNS 10.96.0.10 on rkube-dns (10.96.0.10/32)",
            "Guaranteed kubepods: 10.0 MiB in use\n   │  └─ default/g sandbox sb-g pid 42 10.244.1.5, 2.0 MiB (kubepods/podu1)",
            "cgroups kubepods (CPU now: over 100 ms)\n",
            "Burstable kubepods/burstable: 4.0 MiB in use, CPU 1.25 s used, 50m now\n      └─ default/b sandbox sb-b (no process) 10.244.1.5, 2.0 MiB, CPU 0.00 s used, 3m now (kubepods/burstable/podu2)",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        assert!(!t.contains('\x1b'));
        // shard tables: named, the counts their sums
        let mut sharded = n.clone();
        sharded.proxy.tables = (0..4).map(|i| crate::service_proxy::shard::table_name("rkube-proxy", i)).collect();
        let t = node_tree(&sharded, false);
        assert!(t.contains("table ip rkube-proxy and 3 shard tables (rkube-proxy-1 to rkube-proxy-3): 8 chains"), "{t}");
        sharded.proxy.tables.truncate(2);
        assert!(node_tree(&sharded, false).contains("table ip rkube-proxy and shard table rkube-proxy-1: 8 chains"));
    }

    #[test]
    fn the_service_tree_shows_what_leads_to_each_port_and_its_picks() {
        let s = ServiceInspection {
            metadata: ServiceRef { namespace: "default".into(), name: "web".into(), node: "n1".into() },
            service_type: Some("NodePort".into()),
            cluster_ips: vec!["10.96.0.20".into()],
            table: Some("rkube-proxy".into()),
            ports: vec![ServicePortRules {
                port: "tcp/80".into(),
                service_chain: Some("svc-default/web/tcp/80".into()),
                other_chains: vec!["ext-default/web/tcp/80".into()],
                service_ips: vec!["10.96.0.20:80/tcp".into()],
                node_ports: vec!["30080/tcp".into()],
                endpoints: vec![EndpointPick { slot: Some(0), chain: "ep-a".into(), endpoint: "10.244.1.5:8080".into() }],
            }],
            ..Default::default()
        };
        let t = service_tree(&s, false);
        for want in [
            "service default/web NodePort 10.96.0.20 on node n1 (table ip rkube-proxy)\n",
            "port tcp/80",
            "from 10.96.0.20:80/tcp",
            "from NodePort 30080/tcp",
            "chain ext-default/web/tcp/80",
            "chain svc-default/web/tcp/80 picks 1 of 1\n      └─ 0: 10.244.1.5:8080 (ep-a)",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        let empty = service_tree(&ServiceInspection { ports: vec![], ..s }, false);
        assert!(empty.contains("no rules for it in the table"), "{empty}");
    }
}
