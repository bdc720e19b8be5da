//! `rkube cluster up --nodes 2 --lan routed --pod-network vxlan` with the real kubectl: the nodes on two
//! different subnets (a /28 each) joined only by the router namespace, so they share no L2 segment. Each node's
//! VXLAN device as `ip -d link` shows it (VNI 1, local = its LAN address, dstport 8472, nolearning, MTU the LAN
//! link's minus 50, the pods' bridge and eth0 at the same MTU), the VTEP MAC published on each Node, and in a
//! node's namespace the route to the other node's podCIDR via its VTEP address onlink over the device (no
//! host-gw route), the ARP entry VTEP address -> MAC and the fdb entry MAC -> the other node's address; pod to
//! pod across the router by pod IP in both directions with the receiver seeing the sender's pod IP (no NAT),
//! and a node reaching a pod on the other node; a Node removed -> its route, ARP and fdb entries go; `rkube down`
//! of that node removes its device.
//!
//! And on the same routed LAN with `--pod-network host-gw`: the kubelet adds no route to the other node's pods
//! and says why (its InternalIP is behind a router) and what to do (vxlan), in a Warning event on its Node.
//!
//! The guards run `rkube cluster down` on drop and check nothing is left: network namespaces, the host link,
//! the data dir.

mod local_cluster;
mod up_support;

use std::process::Command;
use std::time::Duration;

use rkube_testsupport::{poll_until, require_command, require_root};
use local_cluster::LocalCluster;
use up_support::{import_busybox, kubectl_ok_with, kubectl_try_with};

struct VxlanCluster(LocalCluster);

impl std::ops::Deref for VxlanCluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.0
    }
}

fn run(prog: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(prog).args(args).env("RKUBE_LOG", "info,kube=warn").output().unwrap_or_else(|e| panic!("run {prog}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

impl VxlanCluster {
    fn new() -> VxlanCluster {
        require_root();
        require_command("ip", "iproute2");
        require_command("bridge", "iproute2");
        require_command("nft", "nftables");
        require_command("kubectl", "kubectl");
        // a LAN of this test's own: 172.26.<100..199>.0/24 (cluster.rs takes 172.28.x, join_vm.rs 172.27.x)
        VxlanCluster(LocalCluster::new("v", [172, 26, 100 + (std::process::id() % 100) as u8]).routed())
    }

    /// `ip -n <node i's namespace> args...` (or `bridge`), its output.
    fn in_node(&self, i: usize, prog: &str, args: &[&str]) -> String {
        let ns = self.netns(i);
        let mut a = vec!["-n", ns.as_str()];
        a.extend_from_slice(args);
        let (ok, text) = run(prog, &a);
        assert!(ok, "{prog} {a:?}: {text}");
        text
    }

    /// Ready pods of app=echo: (name, node, pod IP).
    fn echo_pods(&self) -> Vec<(String, String, String)> {
        let out = kubectl_try_with(
            &self.kubeconfig(),
            &["get", "pods", "-l", "app=echo", "-o", "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}"],
        )
        .unwrap_or_default();
        out.lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.len() == 4 && w[3] == "True").then(|| (w[0].to_string(), w[1].to_string(), w[2].to_string()))
            })
            .collect()
    }
}

/// Two pods, one per node (required anti-affinity), each answering on 8080 with its own view of its TCP
/// connections (the client's address included).
const ECHO: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: 2
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector: {matchLabels: {app: echo}}
      containers:
      - name: c
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "while true; do nc -l -p 8080 -e netstat -tn; done"]
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
"#;

#[test]
fn two_nodes_over_vxlan() {
    let c = VxlanCluster::new();
    let started = std::time::Instant::now();
    let out = c.up(&[
        "--nodes",
        "2",
        "--pod-network",
        "vxlan",
        "--timeout",
        "180",
        // this machine's disk may be fuller than the default nodefs threshold: pressure would taint every node
        "--kubelet-arg=--eviction-hard=memory.available<1Mi,nodefs.available<1%",
    ]);
    eprintln!("{out}");
    eprintln!("cluster up: {:.1} s", started.elapsed().as_secs_f64());
    let (n1, n2) = (c.node(1), c.node(2));

    // 0. the underlay is routed: each node reaches the other only through the router, never on-link
    for (i, other) in [(1, 2), (2, 1)] {
        let path = c.in_node(i, "ip", &["-o", "route", "get", &c.node_ip(other)]);
        let router = format!("via {}", c.node_ip(i).rsplit_once('.').map(|(net, last)| format!("{net}.{}", last.parse::<u8>().expect("octet") - 1)).expect("dotted"));
        assert!(path.contains(&router), "node {i} reaches node {other} ({}) through its router ({router}): {path}", c.node_ip(other));
        let neigh = c.in_node(i, "ip", &["neigh", "show", "dev", "eth0"]);
        assert!(!neigh.contains(&format!("{} ", c.node_ip(other))), "node {other} is never a neighbour of node {i}: {neigh}");
    }

    // 1. the device on each node, as `ip -d link` shows it, at the LAN link's MTU minus 50
    for i in 1..=2 {
        let lan = c.in_node(i, "ip", &["-o", "link", "show", "eth0"]);
        let lan_mtu: u32 = lan.split_whitespace().skip_while(|w| *w != "mtu").nth(1).and_then(|m| m.parse().ok()).unwrap_or_else(|| panic!("eth0's mtu in {lan}"));
        let want_mtu = lan_mtu - 50;
        let dev = poll_until(&format!("rkube.vxlan on node {i}"), Duration::from_secs(30), || {
            let (ok, text) = run("ip", &["-n", &c.netns(i), "-d", "link", "show", "rkube.vxlan"]);
            ok.then_some(text)
        });
        eprintln!("node {i}: ip -d link show rkube.vxlan\n{dev}");
        for want in [format!("mtu {want_mtu}"), format!("vxlan id 1 local {} dev eth0", c.node_ip(i)), "dstport 8472".into(), "nolearning".into()] {
            assert!(dev.contains(&want), "{want:?} in node {i}'s device: {dev}");
        }
    }

    // 2. the VTEP MACs on the Nodes, and node 1's entries for node 2
    let mac = |n: &str| {
        poll_until(&format!("{n}'s rkube.io/vtep-mac"), Duration::from_secs(30), || {
            let m = c.kubectl(&["get", "node", n, "-o", "jsonpath={.metadata.annotations.rkube\\.io/vtep-mac}"]);
            (!m.trim().is_empty()).then(|| m.trim().to_string())
        })
    };
    let mac2 = mac(&n2);
    let dev2 = c.in_node(2, "ip", &["link", "show", "rkube.vxlan"]);
    assert!(dev2.contains(&format!("link/ether {mac2}")), "{n2}'s annotation is its device's MAC: {mac2} vs {dev2}");
    let cidr2 = c.kubectl(&["get", "node", &n2, "-o", "jsonpath={.spec.podCIDR}"]).trim().to_string();
    let vtep2 = cidr2.split('/').next().expect("cidr").to_string();
    let route = format!("{cidr2} via {vtep2} dev rkube.vxlan proto 82 onlink");
    let neigh = format!("{vtep2} lladdr {mac2} PERMANENT");
    let fdb = format!("{mac2} dst {} self permanent", c.node_ip(2));
    poll_until("node 1's route, ARP and fdb entries for node 2", Duration::from_secs(30), || {
        let r = c.in_node(1, "ip", &["route"]);
        let n = c.in_node(1, "ip", &["neigh", "show", "dev", "rkube.vxlan"]);
        let f = c.in_node(1, "bridge", &["fdb", "show", "dev", "rkube.vxlan"]);
        (r.contains(&route) && n.contains(&neigh) && f.contains(&fdb)).then_some(())
    });
    let routes = c.in_node(1, "ip", &["route"]);
    eprintln!("node 1: ip route\n{routes}\nnode 1: ip neigh show dev rkube.vxlan\n{}\nnode 1: bridge fdb show dev rkube.vxlan\n{}", c.in_node(1, "ip", &["neigh", "show", "dev", "rkube.vxlan"]), c.in_node(1, "bridge", &["fdb", "show", "dev", "rkube.vxlan"]));
    assert!(!routes.contains(&format!("{cidr2} via {}", c.node_ip(2))), "no host-gw route under vxlan: {routes}");

    // 3. pods across the router, by pod IP, both ways; each receiver sees the sender's pod IP
    for i in 1..=2 {
        import_busybox(&c.data.join(c.node(i)));
    }
    kubectl_ok_with(&c.kubeconfig(), &["apply", "-f", "-"], Some(ECHO));
    let pods = poll_until("an echo pod ready on each node", Duration::from_secs(120), || {
        let p = c.echo_pods();
        (p.len() == 2 && p[0].1 != p[1].1).then_some(p)
    });
    eprintln!("pods: {pods:?}");
    for (from, to) in [(&pods[0], &pods[1]), (&pods[1], &pods[0])] {
        let seen = poll_until(&format!("{} -> {}", from.1, to.1), Duration::from_secs(30), || {
            kubectl_try_with(&c.kubeconfig(), &["exec", &from.0, "--", "sh", "-c", &format!("nc -w 5 {} 8080 </dev/null", to.2)]).filter(|s| s.contains(":8080"))
        });
        let line = seen.lines().find(|l| l.contains(&format!("{}:8080", to.2))).unwrap_or_default().to_string();
        let foreign = line.split_whitespace().nth(4).unwrap_or_default();
        assert!(foreign.trim_start_matches("::ffff:").starts_with(&format!("{}:", from.2)), "{} sees {}'s pod IP {}: {seen}", to.1, from.1, from.2);
        // the pod's eth0 has the tunnel's MTU
        let mtu = c.kubectl(&["exec", &from.0, "--", "cat", "/sys/class/net/eth0/mtu"]);
        let dev = c.in_node(if from.1 == n1 { 1 } else { 2 }, "ip", &["-o", "link", "show", "rkube.vxlan"]);
        assert!(dev.contains(&format!("mtu {} ", mtu.trim())), "{}'s eth0 MTU {} is its node's vxlan MTU: {dev}", from.0, mtu.trim());
    }
    // a node reaches a pod on the other node (its packets leave from its VTEP address)
    let on2 = pods.iter().find(|p| p.1 == n2).expect("a pod on node 2");
    let (ok, text) = run("ip", &["netns", "exec", &c.netns(1), "timeout", "10", "bash", "-c", &format!("exec 3<>/dev/tcp/{}/8080; cat <&3", on2.2)]);
    assert!(ok && text.contains(&format!("{}:8080", on2.2)), "node 1 reaches {} on node 2: {text}", on2.2);

    // 4. node 2 removed: node 1 drops its route, ARP and fdb entries
    c.cluster(&["node", "stop", &n2]);
    c.kubectl(&["delete", "node", &n2]);
    poll_until("node 1's entries for the removed node 2 gone", Duration::from_secs(30), || {
        let r = c.in_node(1, "ip", &["route"]);
        let n = c.in_node(1, "ip", &["neigh", "show", "dev", "rkube.vxlan"]);
        let f = c.in_node(1, "bridge", &["fdb", "show", "dev", "rkube.vxlan"]);
        (!r.contains(&cidr2) && !n.contains(&vtep2) && !f.contains(&mac2)).then_some(())
    });
    // the device and node 1's own address stay
    let dev1 = c.in_node(1, "ip", &["-o", "addr", "show", "rkube.vxlan"]);
    let cidr1 = c.kubectl(&["get", "node", &n1, "-o", "jsonpath={.spec.podCIDR}"]).trim().to_string();
    assert!(dev1.contains(&format!("{}/32", cidr1.split('/').next().expect("cidr"))), "node 1's VTEP address is its podCIDR's first: {dev1}");

    // 5. `rkube down` of node 2 (in its namespace, as on a host of its own) removes its device, with its entries,
    // and leaves the namespace's LAN link alone
    let dir = c.data.join(&n2).display().to_string();
    let root = format!("rkc-{}/n2", c.name);
    let (ok, text) = run(&up_support::bin("rkube").display().to_string(), &["down", "--netns", &c.netns(2), "--data-dir", &dir, "--cgroup-root", &root]);
    assert!(ok, "rkube down of node 2: {text}");
    assert!(text.contains("removed the vxlan pod network's device rkube.vxlan"), "down says it removed the device: {text}");
    let (there, links) = run("ip", &["-n", &c.netns(2), "link", "show", "rkube.vxlan"]);
    assert!(!there, "node 2's rkube.vxlan is gone after down: {links}");
    let routes = c.in_node(2, "ip", &["route"]);
    assert!(!routes.contains("rkube.vxlan") && !routes.contains(" proto 82"), "no vxlan route left on node 2: {routes}");
    assert!(c.in_node(2, "ip", &["-o", "addr", "show", "eth0"]).contains(&c.node_ip(2)), "the LAN link is not the node's to remove");
    // node 1's device is its own, in its own namespace: untouched
    c.in_node(1, "ip", &["link", "show", "rkube.vxlan"]);
    eprintln!("test body: {:.1} s", started.elapsed().as_secs_f64());
}

/// Two nodes on the routed LAN with host-gw: node 1 gets no route to node 2's pods (node 2's address is behind
/// the router, not on-link) and says so, with what to do, in a Warning event on its Node.
#[test]
fn host_gw_refuses_a_node_behind_a_router() {
    require_root();
    require_command("ip", "iproute2");
    require_command("nft", "nftables");
    require_command("kubectl", "kubectl");
    // 172.26.<0..99>.0/24: apart from two_nodes_over_vxlan's 100..199
    let c = LocalCluster::new("g", [172, 26, (std::process::id() % 100) as u8]).routed();
    let started = std::time::Instant::now();
    c.up(&["--nodes", "2", "--pod-network", "host-gw", "--timeout", "180", "--kubelet-arg=--eviction-hard=memory.available<1Mi,nodefs.available<1%"]);
    let (n1, n2) = (c.node(1), c.node(2));
    let cidr2 = poll_until(&format!("{n2}'s podCIDR"), Duration::from_secs(30), || {
        let c2 = c.kubectl(&["get", "node", &n2, "-o", "jsonpath={.spec.podCIDR}"]);
        (!c2.trim().is_empty()).then(|| c2.trim().to_string())
    });
    let event = poll_until(&format!("a {} event on {n1}", "HostGwNotOnLink"), Duration::from_secs(60), || {
        let out = c.kubectl(&[
            "get",
            "events",
            "-n",
            "default",
            "--field-selector",
            &format!("involvedObject.name={n1},reason=HostGwNotOnLink"),
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.kind} {.type} {.message}{\"\\n\"}{end}",
        ]);
        out.lines().find(|l| l.contains(&cidr2)).map(str::to_string)
    });
    eprintln!("{n1}: {event}");
    for want in [
        "Node Warning ".to_string(),
        format!("node {n2}'s pods {cidr2}"),
        format!("its InternalIP {} is not on a link of this node", c.node_ip(2)),
        "--pod-network vxlan".to_string(),
    ] {
        assert!(event.contains(&want), "{want:?} in the event: {event}");
    }
    let ns1 = c.netns(1);
    let (ok, routes) = run("ip", &["-n", &ns1, "route"]);
    assert!(ok && !routes.contains(&cidr2), "no route to {n2}'s pods on {n1}: {routes}");
    let log = std::fs::read_to_string(c.data.join(format!("{n1}.log"))).unwrap_or_default();
    assert!(log.contains("is not on a link of this node"), "the kubelet's log says it too");
    eprintln!("test body: {:.1} s", started.elapsed().as_secs_f64());
}
