//! The service proxy for real: two "pods" (network namespaces on a test bridge) serve HTTP with busybox httpd, a
//! client namespace reaches them through a ClusterIP and a NodePort, and the service CIDR guard rejects a
//! ClusterIP with no endpoints. Every namespace, link, nft table and the ip_forward setting are restored on drop.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use rkube_kubelet::service_proxy::{nfnl, nft, Endpoint, Protocol, ProxyConfig, ServicePort, TrafficPolicy};
use rkube_testsupport::{poll_until, require_command, require_root, tcp_connect_in, unique_name, ChildGuard, ConnectOutcome};

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run command");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// ip_forward is host-wide: tests in this binary share one setting and restore the original when the last ends.
static FORWARD: Mutex<(usize, String)> = Mutex::new((0, String::new()));
const FORWARD_PATH: &str = "/proc/sys/net/ipv4/ip_forward";

struct Forwarding;
impl Forwarding {
    fn on() -> Forwarding {
        let mut g = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == 0 {
            g.1 = std::fs::read_to_string(FORWARD_PATH).expect("read ip_forward");
            std::fs::write(FORWARD_PATH, "1").expect("enable ip_forward");
        }
        g.0 += 1;
        Forwarding
    }
}
impl Drop for Forwarding {
    fn drop(&mut self) {
        let mut g = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            let _ = std::fs::write(FORWARD_PATH, g.1.trim());
        }
    }
}

/// A bridge with the "node" address .1 and namespaces hanging off it; all removed on drop.
struct Net {
    bridge: String,
    subnet: u8,
    netns: Vec<String>,
    table: ProxyConfig,
    servers: Vec<ChildGuard>,
    dirs: Vec<tempfile::TempDir>,
}

impl Net {
    fn new() -> Net {
        let bridge = unique_name("rkp");
        // A /24 of the pod CIDR 10.244.0.0/16, picked from the name so parallel tests differ (not 10.99.x:
        // that is inside the service CIDR 10.96.0.0/12, which the proxy guards).
        let hash = bridge.bytes().fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
        let subnet = (hash % 250) as u8 + 1;
        sh(&["ip", "link", "add", &bridge, "type", "bridge"]);
        let net = Net {
            table: ProxyConfig { table: format!("{bridge}-proxy"), ..ProxyConfig::default() },
            bridge,
            subnet,
            netns: vec![],
            servers: vec![],
            dirs: vec![],
        };
        sh(&["ip", "addr", "add", &format!("10.244.{}.1/24", net.subnet), "dev", &net.bridge]);
        sh(&["ip", "link", "set", &net.bridge, "up"]);
        net
    }

    fn node_ip(&self) -> String {
        format!("10.244.{}.1", self.subnet)
    }

    /// Adds a namespace at 10.244.<subnet>.<host> with a default route via the bridge.
    fn pod(&mut self, host: u8) -> (String, Ipv4Addr) {
        let ns = unique_name("rkpn");
        sh(&["ip", "netns", "add", &ns]);
        self.netns.push(ns.clone());
        let veth = unique_name("rkpv");
        let peer = format!("{veth}p");
        sh(&["ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        sh(&["ip", "link", "set", &veth, "master", &self.bridge, "up"]);
        // as the CNI bridge plugin does with hairpinMode (rkube's default network sets it): with br_netfilter a
        // pod's hairpin connection to its own Service leaves the bridge by the port it came in on
        std::fs::write(format!("/sys/class/net/{veth}/brport/hairpin_mode"), "1").expect("hairpin_mode on the bridge port");
        sh(&["ip", "link", "set", &peer, "netns", &ns]);
        let ip = Ipv4Addr::new(10, 244, self.subnet, host);
        sh(&["ip", "-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", &peer]);
        sh(&["ip", "-n", &ns, "link", "set", &peer, "up"]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &ns, "route", "add", "default", "via", &self.node_ip()]);
        (ns, ip)
    }

    /// busybox httpd in `ns` on `port`, serving `body` at /.
    fn serve(&mut self, ns: &str, port: u16, body: &str) {
        let dir = tempfile::tempdir().expect("httpd dir");
        std::fs::write(dir.path().join("index.html"), body).expect("write index");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "busybox", "httpd", "-f", "-p", &port.to_string(), "-h"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start httpd");
        self.servers.push(ChildGuard::new(child, "busybox httpd"));
        self.dirs.push(dir);
    }

    /// Two endpoint pods, .2 serving "from-a" and .3 "from-b" on 8080, and a client pod .4, returned once both
    /// answer the client.
    fn two_backends(&mut self) -> TwoBackends {
        let (pod_a, ip_a) = self.pod(2);
        let (pod_b, ip_b) = self.pod(3);
        let (client, _) = self.pod(4);
        self.serve(&pod_a, 8080, "from-a");
        self.serve(&pod_b, 8080, "from-b");
        poll_until("httpd in both pods", Duration::from_secs(10), || {
            (wget(&client, &format!("{ip_a}:8080")).is_ok() && wget(&client, &format!("{ip_b}:8080")).is_ok()).then_some(())
        });
        TwoBackends { pod_a, ip_a, ip_b, client }
    }
}

/// What every proxy test starts with: root, nft and curl present, forwarding on (held until the test ends, after
/// the net is gone), a fresh test net.
fn proxy_net() -> (Forwarding, Net) {
    require_root();
    require_command("nft", "nftables");
    require_command("curl", "curl");
    (Forwarding::on(), Net::new())
}

/// What `Net::two_backends` made: the first endpoint's netns and both endpoints' addresses, and the client's netns.
struct TwoBackends {
    pod_a: String,
    ip_a: Ipv4Addr,
    ip_b: Ipv4Addr,
    client: String,
}

impl Drop for Net {
    fn drop(&mut self) {
        self.servers.clear();
        let _ = nft::remove(&self.table);
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).status();
    }
}

/// GET http://addr/ from inside `ns` with a short timeout; the body or the error text.
fn wget(ns: &str, addr: &str) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sS", "--max-time", "2", &format!("http://{addr}/")])
        .output()
        .expect("run wget");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

fn service(vip: Ipv4Addr, endpoints: &[Ipv4Addr], node_port: Option<u16>) -> ServicePort {
    let eps: Vec<Endpoint> = endpoints.iter().map(|ip| Endpoint { ip: *ip, port: 8080 }).collect();
    // one Service per address: a service port's chains are named after namespace/name/protocol/port
    let name = format!("web-{}", vip.to_string().replace('.', "-"));
    let mut p = ServicePort::new("default", &name, "", Protocol::Tcp, vip, 80).with_endpoints(&eps, false);
    p.node_port = node_port;
    p
}

#[test]
fn clusterip_and_nodeport_reach_both_endpoints_and_empty_service_is_rejected() {
    require_command("python3", "python3");
    let (_fwd, mut net) = proxy_net();
    let TwoBackends { pod_a, ip_a, ip_b, client } = net.two_backends();

    let vip = Ipv4Addr::new(10, 111, net.subnet, 10);
    let empty_vip = Ipv4Addr::new(10, 111, net.subnet, 11);
    let node_port = 30000 + u16::from(net.subnet);
    nft::apply(&net.table, &[service(vip, &[ip_a, ip_b], Some(node_port)), service(empty_vip, &[], None)])
        .expect("apply proxy rules");

    // ClusterIP: random balancing reaches both endpoints within a bounded number of tries.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..64 {
        seen.insert(wget(&client, &format!("{vip}:80")).expect("GET through the ClusterIP"));
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["from-a", "from-b"]);

    // NodePort on the node's address.
    let body = wget(&client, &format!("{}:{node_port}", net.node_ip())).expect("GET through the NodePort");
    assert!(body == "from-a" || body == "from-b", "{body}");

    // Hairpin: pod a reaches its own Service.
    let body = wget(&pod_a, &format!("{vip}:80")).expect("GET through the ClusterIP from an endpoint");
    assert!(body == "from-a" || body == "from-b", "{body}");

    // No endpoints: rejected (the client's connect fails with ECONNREFUSED), not dropped to time out or routed
    // off the node. The outcome, not the time it took, tells a reject from a drop.
    assert_eq!(
        tcp_connect_in(&client, &empty_vip.to_string(), 80, Duration::from_secs(10)),
        ConnectOutcome::Refused,
        "a Service with no endpoints is refused"
    );

    // The table is there under its name, and goes away with remove().
    let listed = Command::new("nft").args(["list", "table", "ip", &net.table.table]).output().expect("nft list");
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&format!("dnat to {ip_a}:8080")));
    nft::remove(&net.table).expect("remove proxy table");
    let listed = Command::new("nft").args(["list", "table", "ip", &net.table.table]).output().expect("nft list");
    assert!(!listed.status.success(), "table should be gone");
}

#[test]
fn reapplying_replaces_the_rules_atomically() {
    require_command("python3", "python3");
    let (_fwd, mut net) = proxy_net();
    let (pod_a, ip_a) = net.pod(2);
    let (client, _) = net.pod(3);
    net.serve(&pod_a, 8080, "only-a");
    poll_until("httpd", Duration::from_secs(10), || wget(&client, &format!("{ip_a}:8080")).ok());
    let vip = Ipv4Addr::new(10, 111, net.subnet, 20);

    let refused = |what: &str| assert_eq!(tcp_connect_in(&client, &vip.to_string(), 80, Duration::from_secs(10)), ConnectOutcome::Refused, "{what}");
    nft::apply(&net.table, &[service(vip, &[], None)]).expect("apply without endpoints");
    refused("a Service without endpoints is refused");
    nft::apply(&net.table, &[service(vip, &[ip_a], None)]).expect("apply with an endpoint");
    assert_eq!(wget(&client, &format!("{vip}:80")).expect("GET after the endpoint appeared"), "only-a");
    nft::apply(&net.table, &[]).expect("apply with the Service gone");
    refused("a removed Service is refused by the service CIDR guard");
}

/// The bodies of `n` GETs of `addr` from `ns`.
fn bodies(ns: &str, addr: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| wget(ns, addr).unwrap_or_else(|e| panic!("GET {i} of {addr} from {ns}: {e}"))).collect()
}

#[test]
fn client_ip_affinity_pins_a_client_until_the_timeout_and_others_spread() {
    let (_fwd, mut net) = proxy_net();
    let TwoBackends { ip_a, ip_b, client, .. } = net.two_backends();
    let sticky_vip = Ipv4Addr::new(10, 111, net.subnet, 30);
    let spread_vip = Ipv4Addr::new(10, 111, net.subnet, 31);
    let mut sticky = service(sticky_vip, &[ip_a, ip_b], None);
    sticky.affinity_timeout = Some(3);
    nft::apply(&net.table, &[sticky, service(spread_vip, &[ip_a, ip_b], None)]).expect("apply proxy rules");

    // one client, 20 requests: one endpoint (the chance that random balancing does this is 2 in 2^20)
    let got = bodies(&client, &format!("{sticky_vip}:80"), 20);
    assert!(got.iter().all(|b| *b == got[0]), "ClientIP affinity: one endpoint for every request: {got:?}");
    // the set holds the client's address with its timeout
    let listed = Command::new("nft").args(["list", "table", "ip", &net.table.table]).output().expect("nft list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("flags dynamic,timeout") && listed.contains("timeout 3s"), "{listed}");
    assert!(listed.contains(&format!("elements = {{ 10.244.{}.4 ", net.subnet)), "the client's address in an affinity set:\n{listed}");
    // the same client without affinity is spread
    let spread: std::collections::BTreeSet<String> = bodies(&client, &format!("{spread_vip}:80"), 40).into_iter().collect();
    assert_eq!(spread.into_iter().collect::<Vec<_>>(), ["from-a", "from-b"], "no affinity: both endpoints");
    // after the timeout the pin expires: polled until the client lands on the other endpoint at least once
    let other = if got[0] == "from-a" { "from-b" } else { "from-a" };
    poll_until("the pin expired and the client reached the other endpoint", Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(3200)); // the timeout must pass with no request refreshing it
        bodies(&client, &format!("{sticky_vip}:80"), 1).contains(&other.to_string()).then_some(())
    });
}

#[test]
fn partial_sync_rewrites_one_service_and_leaves_the_other_serving() {
    let (_fwd, mut net) = proxy_net();
    let TwoBackends { ip_a, ip_b, client, .. } = net.two_backends();
    let vip1 = Ipv4Addr::new(10, 111, net.subnet, 40);
    let vip2 = Ipv4Addr::new(10, 111, net.subnet, 41);
    let before = nft::render(&net.table, &[service(vip1, &[ip_a], None), service(vip2, &[ip_b], None)]);
    nft::apply_script(&net.table, &nft::full_script(&net.table, &before)).expect("full sync");
    assert_eq!(wget(&client, &format!("{vip1}:80")).expect("vip1"), "from-a");

    // vip1 moves to b, with affinity; vip2 is untouched by the transaction
    let mut moved = service(vip1, &[ip_b], None);
    moved.affinity_timeout = Some(60);
    let after = nft::render(&net.table, &[moved, service(vip2, &[ip_b], None)]);
    let script = nft::partial_script(&net.table, &before, &after);
    assert!(!script.contains(&vip2.to_string().replace('.', "-")), "vip2's Service is not in the partial sync:\n{script}");
    nft::apply_script(&net.table, &script).expect("partial sync accepted by nft");
    assert_eq!(wget(&client, &format!("{vip1}:80")).expect("vip1 after"), "from-b");
    assert_eq!(wget(&client, &format!("{vip2}:80")).expect("vip2 after"), "from-b");
    let listed = Command::new("nft").args(["list", "table", "ip", &net.table.table]).output().expect("nft list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(!listed.contains(&format!("dnat to {ip_a}:8080")), "a's endpoint chain is gone:\n{listed}");

    // the Service removed: its chains and elements go, the other still serves
    let gone = nft::render(&net.table, &[service(vip2, &[ip_b], None)]);
    nft::apply_script(&net.table, &nft::partial_script(&net.table, &after, &gone)).expect("removal");
    assert_eq!(tcp_connect_in(&client, &vip1.to_string(), 80, Duration::from_secs(10)), ConnectOutcome::Refused);
    assert_eq!(wget(&client, &format!("{vip2}:80")).expect("vip2 after removal"), "from-b");
}

/// `nft list` of one object of `table`, with the table's name taken out so two tables can be compared.
fn listed(table: &str, kind: &str, name: &str) -> String {
    let out = Command::new("nft").args(["list", kind, "ip", table, name]).output().expect("nft list");
    assert!(out.status.success(), "nft list {kind} {name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).replace(table, "T")
}

/// Removes an extra nft table on drop.
struct TableGuard(ProxyConfig);
impl Drop for TableGuard {
    fn drop(&mut self) {
        let _ = nft::remove(&self.0);
    }
}

/// The partial sync's netlink writer (nfnl) leaves the same rules `nft -f` would: a table taken from `before` to
/// `after` over netlink lists, chain by chain, set by set and map by map, exactly as a table written from `after`
/// by nft; every rule kind is in it (affinity sets and lookups, numgen vmaps, hairpin marks, dnat, the external
/// chain with the bridge and node short-circuits, drop). Traffic then follows the new rules, the untouched
/// Service still serves, and an op the kernel refuses fails the whole batch with the op named.
#[test]
fn partial_sync_over_netlink_writes_what_nft_would_and_traffic_follows() {
    let (_fwd, mut net) = proxy_net();
    net.table.pod_bridge = Some(net.bridge.clone());
    let TwoBackends { ip_a, ip_b, client, .. } = net.two_backends();
    let vip1 = Ipv4Addr::new(10, 111, net.subnet, 70);
    let vip2 = Ipv4Addr::new(10, 111, net.subnet, 71);
    let external = Ipv4Addr::new(10, 111, net.subnet, 72);
    let cfg = net.table.clone();
    let before = nft::render(&cfg, &[service(vip1, &[ip_a], Some(30000 + u16::from(net.subnet))), service(vip2, &[ip_b], None)]);
    nft::apply_script(&cfg, &nft::full_script(&cfg, &before)).expect("full sync");
    assert_eq!(wget(&client, &format!("{vip1}:80")).expect("vip1"), "from-a");

    // vip1: both endpoints, affinity, an external IP with externalTrafficPolicy Local (a local endpoint), a UDP
    // port too; vip2 unchanged
    let mut moved = service(vip1, &[ip_a, ip_b], Some(30000 + u16::from(net.subnet)));
    moved.affinity_timeout = Some(60);
    moved.external_ips = vec![external];
    moved.external_policy = TrafficPolicy::Local;
    moved.local_endpoints = vec![Endpoint { ip: ip_b, port: 8080 }];
    let mut dns = service(vip1, &[ip_a], None);
    dns.protocol = Protocol::Udp;
    dns.port = 53;
    let after_ports = [moved, dns, service(vip2, &[ip_b], None)];
    let after = nft::render(&cfg, &after_ports);
    let ops = nft::partial_ops(&before, &after);
    assert!(ops.iter().all(|op| !format!("{op:?}").contains(&format!("web-{}", vip2.to_string().replace('.', "-")))), "vip2 untouched: {ops:?}");
    nfnl::apply(&cfg.table, &ops).expect("partial sync over netlink");

    // the reference: the same state written by nft -f in a table of its own
    let reference = ProxyConfig { table: format!("{}-ref", cfg.table), ..cfg.clone() };
    let _ref_guard = TableGuard(reference.clone());
    nft::apply_script(&reference, &nft::full_script(&reference, &nft::render(&reference, &after_ports))).expect("reference table");
    let mut compared = 0;
    for objs in after.values() {
        for (chain, rules) in &objs.chains {
            let (ours, theirs) = (listed(&cfg.table, "chain", chain), listed(&reference.table, "chain", chain));
            assert_eq!(ours, theirs, "chain {chain} over netlink vs nft -f");
            assert_eq!(ours.lines().filter(|l| l.starts_with("\t\t")).count(), rules.len(), "{ours}");
            compared += 1;
        }
        for (set, _) in &objs.sets {
            assert_eq!(listed(&cfg.table, "set", set), listed(&reference.table, "set", set), "set {set}");
        }
    }
    assert!(compared >= 6, "svc-, local-, ext- and the endpoint chains compared");
    let all = listed(&cfg.table, "table", "");
    for needle in ["numgen random mod 2 vmap", "update @aff-", "iifname", "fib saddr type local", "dnat to", "udp dnat to"] {
        assert!(all.contains(needle), "{needle:?} in\n{all}");
    }
    for map in [nft::SERVICE_IPS_MAP, nft::NODEPORTS_MAP] {
        let lines = |t: &str| -> Vec<String> {
            let l = listed(t, "map", map);
            let mut v: Vec<String> = l.split(['{', '}', ',']).map(|x| x.trim().to_string()).filter(|x| x.contains(" : goto ")).collect();
            v.sort();
            v
        };
        let ours = lines(&cfg.table);
        assert_eq!(ours, lines(&reference.table), "map {map}");
        assert!(!ours.is_empty(), "map {map} has elements");
    }
    drop(_ref_guard); // the reference table also hooks prerouting: gone before any traffic

    // traffic follows: vip1 now reaches b as well as a, and sticks to one of them (affinity); vip2 still b
    let first = wget(&client, &format!("{vip1}:80")).expect("vip1 after");
    for _ in 0..10 {
        assert_eq!(wget(&client, &format!("{vip1}:80")).expect("vip1 again"), first, "ClientIP affinity pins the client");
    }
    assert_eq!(wget(&client, &format!("{vip2}:80")).expect("vip2 after"), "from-b");

    // a batch the kernel refuses (a rule in a chain that does not exist) changes nothing and names the op
    let bad = nft::Rule::Drop;
    let err = nfnl::apply(&cfg.table, &[nft::Op::FlushChain(&format!("svc-default/web-{}/tcp/80", vip2.to_string().replace('.', "-"))), nft::Op::AddRule("no-such-chain", &bad)])
        .expect_err("a rule in a missing chain is refused");
    let msg = err.to_string();
    assert!(msg.contains("add rule ip") && msg.contains("no-such-chain"), "{msg}");
    assert_eq!(wget(&client, &format!("{vip2}:80")).expect("vip2 after the refused batch"), "from-b", "the flush in the refused batch was not applied");
}

/// externalTrafficPolicy Local, upstream's short-circuit: with no endpoint on this node, a client outside the
/// node reaching the external IP is dropped (only local endpoints serve outside traffic), while a pod on the
/// node's pod bridge reaching the same address is sent to the endpoint elsewhere with its own address kept. The
/// outside client is a namespace on a veth of its own (not the bridge); the external IP lies in that veth's
/// subnet, so a packet the rules miss stays on the test's links.
#[test]
fn external_local_short_circuits_pods_on_the_node_and_drops_outside_clients_without_a_local_endpoint() {
    require_command("python3", "python3");
    let (_fwd, mut net) = proxy_net();
    net.table.pod_bridge = Some(net.bridge.clone());
    let (pod_b, ip_b) = net.pod(3);
    let (client, client_ip) = net.pod(4);
    // the endpoint logs who connected, so the test sees the source address the pod received
    let seen_by_b = tempfile::NamedTempFile::new().expect("log file");
    let server = Command::new("ip")
        .args(["netns", "exec", &pod_b, "python3", "-c", SOURCE_LOGGING_SERVER])
        .arg(seen_by_b.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the endpoint");
    net.servers.push(ChildGuard::new(server, "source-logging server"));
    poll_until("the endpoint serves", Duration::from_secs(10), || wget(&client, &format!("{ip_b}:8080")).ok());

    // the outside client: 10.245.<subnet>.2 behind the host's 10.245.<subnet>.1, a route to the external IP via
    // the host (the external IP is in the same /24 but held by no one)
    let outside = unique_name("rkpo");
    sh(&["ip", "netns", "add", &outside]);
    net.netns.push(outside.clone());
    let veth = unique_name("rkpx");
    let peer = format!("{veth}p");
    let (host_ip, out_ip) = (format!("10.245.{}.1", net.subnet), format!("10.245.{}.2", net.subnet));
    let external = Ipv4Addr::new(10, 245, net.subnet, 50);
    sh(&["ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer]);
    sh(&["ip", "link", "set", &peer, "netns", &outside]);
    sh(&["ip", "addr", "add", &format!("{host_ip}/24"), "dev", &veth]);
    sh(&["ip", "link", "set", &veth, "up"]);
    sh(&["ip", "-n", &outside, "addr", "add", &format!("{out_ip}/24"), "dev", &peer]);
    sh(&["ip", "-n", &outside, "link", "set", &peer, "up"]);
    sh(&["ip", "-n", &outside, "route", "add", &format!("{external}/32"), "via", &host_ip]);
    sh(&["ip", "-n", &outside, "route", "add", "default", "via", &host_ip]);

    let vip = Ipv4Addr::new(10, 111, net.subnet, 60);
    let mut p = service(vip, &[ip_b], None);
    p.external_ips = vec![external];
    p.external_policy = TrafficPolicy::Local; // b's endpoint is on another node: local_endpoints stays empty
    nft::apply(&net.table, &[p.clone()]).expect("apply proxy rules");

    // outside: no local endpoint, dropped (no answer at all, not a refusal)
    assert_eq!(
        tcp_connect_in(&outside, &external.to_string(), 80, Duration::from_secs(3)),
        ConnectOutcome::TimedOut,
        "an outside client of an externalTrafficPolicy Local address with no local endpoint is dropped"
    );
    // a pod on the node: short-circuited to the endpoint elsewhere, its own address kept (no masquerade)
    let body = wget(&client, &format!("{external}:80")).expect("GET of the external IP from a pod on the node");
    assert_eq!(body, "served");
    let seen = std::fs::read_to_string(seen_by_b.path()).expect("read the endpoint's log");
    assert_eq!(seen.lines().last(), Some(client_ip.to_string().as_str()), "the pod's own address reached the endpoint: {seen}");

    // the control: with b's endpoint local, the outside client is served too, its address kept
    p.local_endpoints = p.cluster_endpoints.clone();
    nft::apply(&net.table, &[p]).expect("apply with a local endpoint");
    assert_eq!(wget(&outside, &format!("{external}:80")).expect("GET from outside with a local endpoint"), "served");
    let seen = std::fs::read_to_string(seen_by_b.path()).expect("read the endpoint's log");
    assert_eq!(seen.lines().last(), Some(out_ip.as_str()), "the outside client's address reached the endpoint: {seen}");
}

/// An HTTP server on :8080 answering `served` and appending each client's address to the file in argv[1].
const SOURCE_LOGGING_SERVER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[1], "a") as f:
            f.write(self.client_address[0] + "\n")
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"served")
    def log_message(self, *a):
        pass
http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
"#;

/// A Service `name` at `vip` with one port 80 "http" (ClientIP affinity with `affinity`), as the API returns it.
fn api_service(name: &str, vip: Ipv4Addr, affinity: bool, rv: u64) -> k8s_openapi::api::core::v1::Service {
    let mut spec = serde_json::json!({"clusterIP": vip.to_string(), "ports": [{"name": "http", "port": 80}]});
    if affinity {
        spec["sessionAffinity"] = "ClientIP".into();
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "resourceVersion": rv.to_string()},
        "spec": spec
    }))
    .expect("service json")
}

/// The EndpointSlice of Service `name` with `endpoints` ready on port 8080.
fn api_slice(name: &str, endpoints: &[Ipv4Addr], rv: u64) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    let eps: Vec<_> = endpoints.iter().map(|ip| serde_json::json!({"addresses": [ip.to_string()], "nodeName": "n1"})).collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{name}-1"), "namespace": "default", "uid": format!("uid-{name}-1"), "resourceVersion": rv.to_string(),
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps
    }))
    .expect("slice json")
}

/// The proxy's sync loop (`Proxier`) with its Services spread over 4 tables (one Service per shard allowed, so 3
/// Services take 4): each Service's chains are in its own shard's table alone and every ClusterIP answers; an
/// endpoint change is one partial sync into that shard; the periodic resync rewrites the shards one per sync, in
/// place: a rule added by hand is gone after it, and the ClientIP affinity set keeps its client (the client stays
/// pinned). A from-scratch sync with fewer Services drops the shard tables no longer needed.
#[test]
fn sharded_tables_serve_every_service_and_the_resync_keeps_affinity_and_repairs_rules() {
    use rkube_kubelet::service_proxy::shard::{shard_of, table_name};
    use rkube_kubelet::service_proxy::sync::{Proxier, SyncKind, FULL_SYNC_PERIOD};
    use rkube_kubelet::service_proxy::tracker::PortTracker;
    let (_fwd, mut net) = proxy_net();
    let TwoBackends { ip_a, ip_b, client, .. } = net.two_backends();
    let vips: Vec<Ipv4Addr> = (0..3).map(|i| Ipv4Addr::new(10, 111, net.subnet, 80 + i)).collect();
    let names = ["sticky", "only-a", "only-b"];
    let services = vec![api_service(names[0], vips[0], true, 1), api_service(names[1], vips[1], false, 1), api_service(names[2], vips[2], false, 1)];
    let mut slices = vec![api_slice(names[0], &[ip_a, ip_b], 1), api_slice(names[1], &[ip_a], 1), api_slice(names[2], &[ip_b], 1)];
    let table = net.table.table.clone();
    let tables: Vec<String> = (0..4).map(|s| table_name(&table, s)).collect();
    let list = |t: &str| {
        let out = Command::new("nft").args(["list", "table", "ip", t]).output().expect("nft list");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
    };

    let mut proxier = Proxier::new(net.table.clone()).with_services_per_shard(1);
    let mut tracker = PortTracker::new("n1");
    let t0 = std::time::Instant::now();
    assert!(proxier.recompute_due(t0));
    let changed = tracker.update(&services, &slices);
    assert_eq!(proxier.sync(&tracker, &changed, t0).expect("full sync").0, SyncKind::Full);
    assert_eq!(proxier.shards(), 4);
    for (name, vip) in names.iter().zip(&vips) {
        let home = shard_of("default", name, 4) as usize;
        for (i, t) in tables.iter().enumerate() {
            let (ok, text) = list(t);
            assert!(ok, "table {t} exists");
            assert_eq!(text.contains(&format!("chain svc-default/{name}/tcp/http ")), i == home, "{name}'s chain only in {}:\n{text}", tables[home]);
            assert_eq!(text.contains(&format!("{vip} . tcp . 80 : goto svc-default/{name}/tcp/http")), i == home, "{name}'s element only in its shard");
        }
    }
    let (_, main) = list(&table);
    assert!(main.contains("chain filter-forward") && main.contains("masquerade"), "the guard in the proxy's own table:\n{main}");
    let sticky = wget(&client, &format!("{}:80", vips[0])).expect("the sticky Service");
    assert_eq!(wget(&client, &format!("{}:80", vips[1])).expect("only-a"), "from-a");
    assert_eq!(wget(&client, &format!("{}:80", vips[2])).expect("only-b"), "from-b");

    // an endpoint change: one partial sync, only-a now reaches b
    slices[1] = api_slice(names[1], &[ip_b], 2);
    let changed = tracker.update(&services, &slices);
    assert!(!proxier.recompute_due(t0));
    assert_eq!(proxier.sync(&tracker, &changed, t0).expect("partial sync").0, SyncKind::Partial);
    assert_eq!(wget(&client, &format!("{}:80", vips[1])).expect("only-a after the change"), "from-b");

    // a rule added by hand to only-b's Service chain, ahead of the proxy's: only-b is dropped
    let only_b = table_name(&table, shard_of("default", names[2], 4));
    sh(&["nft", "insert", "rule", "ip", &only_b, "svc-default/only-b/tcp/http", "drop"]);
    assert!(wget(&client, &format!("{}:80", vips[2])).is_err(), "the hand-made drop rule is in effect");

    // the periodic resync: the tracker recomputed from scratch, then one shard per sync, in order
    let later = t0 + FULL_SYNC_PERIOD;
    assert!(proxier.recompute_due(later), "the resync is due after FULL_SYNC_PERIOD");
    // every Service answers between the steps
    resync_every_shard(&mut proxier, &mut tracker, (&services, &slices), 4, later, || {
        assert_eq!(wget(&client, &format!("{}:80", vips[1])).expect("only-a during the resync"), "from-b");
    });
    let none = std::collections::BTreeSet::new();
    assert_eq!(proxier.sync(&tracker, &none, later).expect("after the resync").0, SyncKind::Unchanged, "the resync is over");
    assert!(!proxier.recompute_due(later), "and the next one is FULL_SYNC_PERIOD away");
    assert_eq!(wget(&client, &format!("{}:80", vips[2])).expect("only-b after the resync"), "from-b", "the hand-made rule is gone");
    // the affinity set kept the client through the resync: the client still lands on its endpoint
    let sticky_shard = table_name(&table, shard_of("default", names[0], 4));
    let (_, text) = list(&sticky_shard);
    assert!(text.contains(&format!("elements = {{ 10.244.{}.4 ", net.subnet)), "the client still pinned after the resync:\n{text}");
    let got = bodies(&client, &format!("{}:80", vips[0]), 10);
    assert!(got.iter().all(|b| *b == sticky), "ClientIP affinity survives the resync: {got:?} (was {sticky})");

    // from scratch with one Service per shard still allowed but two Services: two tables, the others deleted
    let services = services[..2].to_vec();
    let slices = slices[..2].to_vec();
    let mut proxier = Proxier::new(net.table.clone()).with_services_per_shard(1);
    let mut tracker = PortTracker::new("n1");
    proxier.recompute_due(later);
    let changed = tracker.update(&services, &slices);
    assert_eq!(proxier.sync(&tracker, &changed, later).expect("full sync with 2 Services").0, SyncKind::Full);
    assert_eq!(proxier.shards(), 2);
    assert!(list(&tables[1]).0 && !list(&tables[2]).0 && !list(&tables[3]).0, "tables 2 and 3 deleted");
    refused_in(&client, vips[2]);
}

/// Growing past the tables' room adds a table and moves nobody: a client pinned by ClientIP affinity stays
/// pinned (its set element stays) while the Services grow from one table to four, one partial sync each, and
/// every Service answers. (Before, each growth rewrote every table from scratch and emptied the affinity sets.)
#[test]
fn a_client_pinned_by_affinity_stays_pinned_while_the_services_outgrow_their_tables() {
    use rkube_kubelet::service_proxy::shard::table_name;
    use rkube_kubelet::service_proxy::sync::{Proxier, SyncKind};
    use rkube_kubelet::service_proxy::tracker::PortTracker;
    let (_fwd, mut net) = proxy_net();
    let TwoBackends { ip_a, ip_b, client, .. } = net.two_backends();
    let table = net.table.table.clone();
    let vip = |i: u8| Ipv4Addr::new(10, 111, net.subnet, 90 + i);
    let mut services = vec![api_service("sticky", vip(0), true, 1)];
    let mut slices = vec![api_slice("sticky", &[ip_a, ip_b], 1)];
    let mut proxier = Proxier::new(net.table.clone()).with_services_per_shard(1);
    let mut tracker = PortTracker::new("n1");
    let t0 = std::time::Instant::now();
    assert!(proxier.recompute_due(t0));
    let changed = tracker.update(&services, &slices);
    assert_eq!(proxier.sync(&tracker, &changed, t0).expect("full sync").0, SyncKind::Full);
    assert_eq!((proxier.shards(), proxier.shard_of("default", "sticky")), (1, Some(0)));
    let pinned = wget(&client, &format!("{}:80", vip(0))).expect("the sticky Service");
    let pin = format!("elements = {{ 10.244.{}.4 ", net.subnet);
    let listed = |t: &str| String::from_utf8_lossy(&Command::new("nft").args(["list", "table", "ip", t]).output().expect("nft list").stdout).to_string();
    assert!(listed(&table).contains(&pin), "the client pinned:\n{}", listed(&table));

    for i in 1..4u8 {
        let name = format!("grow-{i}");
        services.push(api_service(&name, vip(i), false, 1));
        slices.push(api_slice(&name, &[if i % 2 == 0 { ip_a } else { ip_b }], 1));
        let changed = tracker.update(&services, &slices);
        assert!(!proxier.recompute_due(t0));
        assert_eq!(proxier.sync(&tracker, &changed, t0).expect("partial sync").0, SyncKind::Partial, "{name}: no rewrite of the tables");
        assert_eq!(proxier.shards(), u32::from(i) + 1, "one more table for {name}");
        assert_eq!(proxier.shard_of("default", &name), Some(u32::from(i)), "{name} in the new table");
        assert_eq!(proxier.shard_of("default", "sticky"), Some(0), "sticky did not move");
        assert!(listed(&table_name(&table, u32::from(i))).contains(&format!("chain svc-default/{name}/tcp/http ")));
        assert!(listed(&table).contains(&pin), "the client still pinned after {name}'s table was added:\n{}", listed(&table));
        assert_eq!(wget(&client, &format!("{}:80", vip(i))).expect("the new Service"), if i % 2 == 0 { "from-a" } else { "from-b" });
        let got = bodies(&client, &format!("{}:80", vip(0)), 5);
        assert!(got.iter().all(|b| *b == pinned), "still pinned to {pinned}: {got:?}");
    }
    // a Service deleted frees its place; the next one takes it, no new table
    services.retain(|s| s.metadata.name.as_deref() != Some("grow-2"));
    slices.retain(|s| s.metadata.name.as_deref() != Some("grow-2-1"));
    let changed = tracker.update(&services, &slices);
    assert_eq!(proxier.sync(&tracker, &changed, t0).expect("delete").0, SyncKind::Partial);
    refused_in(&client, vip(2));
    services.push(api_service("grow-4", vip(4), false, 1));
    slices.push(api_slice("grow-4", &[ip_a], 1));
    let changed = tracker.update(&services, &slices);
    assert_eq!(proxier.sync(&tracker, &changed, t0).expect("add into the freed place").0, SyncKind::Partial);
    assert_eq!((proxier.shards(), proxier.shard_of("default", "grow-4")), (4, Some(2)));
    assert_eq!(wget(&client, &format!("{}:80", vip(4))).expect("grow-4"), "from-a");
    assert!(listed(&table).contains(&pin), "the client still pinned:\n{}", listed(&table));
}

/// The periodic resync repairs each table's own chains, not only the Services': a base chain deleted by hand
/// (`nat-prerouting` of one table: its ClusterIPs stop answering) and a rule added by hand to another's
/// `services` chain are undone when the resync (its period made short here) reaches their tables.
#[test]
fn the_resync_restores_a_deleted_base_chain_and_an_edited_one() {
    use rkube_kubelet::service_proxy::shard::table_name;
    use rkube_kubelet::service_proxy::sync::{Proxier, SyncKind};
    use rkube_kubelet::service_proxy::tracker::PortTracker;
    let (_fwd, mut net) = proxy_net();
    let TwoBackends { ip_a, ip_b, client, .. } = net.two_backends();
    let table = net.table.table.clone();
    let vips = [Ipv4Addr::new(10, 111, net.subnet, 100), Ipv4Addr::new(10, 111, net.subnet, 101)];
    let services = vec![api_service("x", vips[0], false, 1), api_service("y", vips[1], false, 1)];
    let slices = vec![api_slice("x", &[ip_a], 1), api_slice("y", &[ip_b], 1)];
    let period = Duration::from_secs(2);
    let mut proxier = Proxier::new(net.table.clone()).with_services_per_shard(1).with_full_sync_period(period);
    let mut tracker = PortTracker::new("n1");
    let t0 = std::time::Instant::now();
    assert!(proxier.recompute_due(t0));
    let changed = tracker.update(&services, &slices);
    assert_eq!(proxier.sync(&tracker, &changed, t0).expect("full sync").0, SyncKind::Full);
    assert_eq!(proxier.shards(), 2);
    let x_table = table_name(&table, proxier.shard_of("default", "x").expect("x placed"));
    let y_table = table_name(&table, proxier.shard_of("default", "y").expect("y placed"));
    assert_eq!(wget(&client, &format!("{}:80", vips[0])).expect("x"), "from-a");
    assert_eq!(wget(&client, &format!("{}:80", vips[1])).expect("y"), "from-b");

    sh(&["nft", "flush", "chain", "ip", &x_table, "nat-prerouting"]);
    sh(&["nft", "delete", "chain", "ip", &x_table, "nat-prerouting"]);
    sh(&["nft", "insert", "rule", "ip", &y_table, "services", "ip", "daddr", &vips[1].to_string(), "drop"]);
    refused_in(&client, vips[0]);
    assert!(wget(&client, &format!("{}:80", vips[1])).is_err(), "the hand-made drop in y's table");
    assert!(!proxier.recompute_due(t0), "not yet due");

    let later = t0 + period;
    assert!(proxier.recompute_due(later), "due after the configured period");
    resync_every_shard(&mut proxier, &mut tracker, (&services, &slices), 2, later, || {});
    let chain = Command::new("nft").args(["list", "chain", "ip", &x_table, "nat-prerouting"]).output().expect("nft list chain");
    let text = String::from_utf8_lossy(&chain.stdout);
    assert!(chain.status.success() && text.contains("hook prerouting") && text.contains("jump services"), "nat-prerouting back in {x_table}:\n{text}");
    let services_chain = Command::new("nft").args(["list", "chain", "ip", &y_table, "services"]).output().expect("nft list chain");
    assert!(!String::from_utf8_lossy(&services_chain.stdout).contains("drop"), "the hand-made rule gone from {y_table}");
    assert_eq!(wget(&client, &format!("{}:80", vips[0])).expect("x after the resync"), "from-a");
    assert_eq!(wget(&client, &format!("{}:80", vips[1])).expect("y after the resync"), "from-b");
}

/// The periodic resync as the watch loop carries it out once it is due: the tracker recomputed from scratch, then
/// one sync per shard, each rewriting shard 0, 1, ... `shards - 1` in turn; `between` runs after each step.
fn resync_every_shard(
    proxier: &mut rkube_kubelet::service_proxy::sync::Proxier,
    tracker: &mut rkube_kubelet::service_proxy::tracker::PortTracker,
    (services, slices): (&[k8s_openapi::api::core::v1::Service], &[k8s_openapi::api::discovery::v1::EndpointSlice]),
    shards: u32,
    at: std::time::Instant,
    mut between: impl FnMut(),
) {
    use rkube_kubelet::service_proxy::sync::SyncKind;
    tracker.reset();
    let mut changed = tracker.update(services, slices);
    for shard in 0..shards {
        assert_eq!(proxier.sync(tracker, &changed, at).expect("resync step").0, SyncKind::Resync(shard));
        changed.clear();
        between();
    }
}

/// A ClusterIP with no rule: refused by the service CIDR guard.
fn refused_in(client: &str, vip: Ipv4Addr) {
    assert_eq!(tcp_connect_in(client, &vip.to_string(), 80, Duration::from_secs(10)), ConnectOutcome::Refused, "{vip} refused");
}
