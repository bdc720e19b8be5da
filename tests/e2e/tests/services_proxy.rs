//! The service proxy on `rkube up` with the real kubectl, as root, with traffic from a test network namespace
//! that plays an outside client: it holds the peer end of the node's test veth (10.244.n.2 beside the node's
//! 10.244.n.1) and routes the service CIDR through the node. Never the uplink: every address involved is on
//! links this test makes.
//!
//! Needs the binaries: `cargo build -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`, and curl.

mod common;
mod up_support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use rkube_testsupport::{poll_until, require_command, unique_name};
use up_support::Up;

fn jsonpath(up: &Up, args: &[&str]) -> String {
    up.kubectl(args).trim().to_string()
}

/// A netns holding the peer end of the node's veth at 10.244.n.2, the service CIDR routed via the node; deleted
/// on drop.
struct ClientNs {
    name: String,
    ip: String,
}

impl ClientNs {
    fn new(up: &Up) -> ClientNs {
        let ns = ClientNs { name: unique_name("rkc"), ip: up.node_ip.trim_end_matches(".1").to_string() + ".2" };
        let peer = format!("{}p", up.net.veth);
        for args in [
            vec!["netns", "add", &ns.name],
            vec!["link", "set", &peer, "netns", &ns.name],
            vec!["-n", &ns.name, "addr", "add", &format!("{}/24", ns.ip), "dev", &peer],
            vec!["-n", &ns.name, "link", "set", &peer, "up"],
            vec!["-n", &ns.name, "link", "set", "lo", "up"],
            vec!["-n", &ns.name, "route", "add", "10.96.0.0/12", "via", &up.node_ip],
        ] {
            assert!(Command::new("ip").args(&args).status().expect("ip").success(), "ip {args:?}");
        }
        ns
    }

    /// GET `url` from inside the netns: the body, or None on failure.
    fn get(&self, url: &str) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "curl", "-sS", "--max-time", "3", url])
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `n` GETs of `url` that must all succeed.
    fn gets(&self, url: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| self.get(url).unwrap_or_else(|| panic!("GET {i} of {url} from {} failed", self.name))).collect()
    }
}

impl Drop for ClientNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Two busybox httpd pods answering `served-by-<pod name>` on 8080, behind `services` (YAML appended).
fn web(replicas: u32, services: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www; echo served-by-$(hostname) > /www/index.html; httpd -f -p 8080 -h /www"]
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          tcpSocket: {{port: 8080}}
          periodSeconds: 1
{services}"#
    )
}

#[test]
fn client_ip_affinity_pins_an_outside_client_and_expires() {
    require_command("curl", "curl");
    let up = Up::start();
    let services = r#"---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 4}}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: spread}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"#;
    up.kubectl_ok(&["apply", "-f", "-"], Some(&web(2, services)));
    up.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"], None);
    let sticky = format!("http://{}/", jsonpath(&up, &["get", "svc", "sticky", "-o", "jsonpath={.spec.clusterIP}"]));
    let spread = format!("http://{}/", jsonpath(&up, &["get", "svc", "spread", "-o", "jsonpath={.spec.clusterIP}"]));
    let client = ClientNs::new(&up);
    poll_until("the ClusterIP answers the outside client", Duration::from_secs(60), || client.get(&sticky));
    poll_until("both endpoints behind the unpinned Service", Duration::from_secs(60), || {
        let seen: BTreeSet<String> = client.gets(&spread, 20).into_iter().collect();
        (seen.len() == 2).then_some(())
    });

    // pinned: 50 requests in a row, one endpoint (random balancing does that with probability 2^-49)
    let got = client.gets(&sticky, 50);
    assert!(got.iter().all(|b| *b == got[0]) && got[0].starts_with("served-by-web-"), "ClientIP affinity: {got:?}");
    // while the same client is spread over both by the Service without affinity
    let seen: BTreeSet<String> = client.gets(&spread, 40).into_iter().collect();
    assert_eq!(seen.len(), 2, "sessionAffinity None spreads: {seen:?}");

    // the table shows the client's address in an affinity set with the Service's timeout
    let table = Command::new("nft").args(["list", "table", "ip", &up.net.proxy_table]).output().expect("nft list");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("timeout 4s") && table.contains(&format!("elements = {{ {} ", client.ip)), "{table}");

    // the kubelet's /metrics (through the apiserver's nodes/proxy) carries kube-proxy's sync metrics
    let node = jsonpath(&up, &["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let metrics = up.kubectl(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/metrics")]);
    let value = |prefix: &str| -> f64 {
        metrics.lines().find_map(|l| l.strip_prefix(prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("{prefix} in\n{metrics}"))
    };
    assert!(value("kubeproxy_sync_proxy_rules_duration_seconds_count ") >= 2.0, "a full sync and partial ones");
    assert!(value("kubeproxy_sync_proxy_rules_last_timestamp_seconds ") > 1.6e9);
    assert!(value(&format!("kubeproxy_sync_proxy_rules_nftables_total{{table=\"{}\"}} ", up.net.proxy_table)) >= 10.0, "{metrics}");

    // the pin lapses once timeoutSeconds pass without a request: the client then lands on the other endpoint
    poll_until("the pin expired and the client reached the other endpoint", Duration::from_secs(90), || {
        std::thread::sleep(Duration::from_millis(4500)); // the timeout itself, with no request refreshing it
        client.get(&sticky).filter(|b| *b != got[0])
    });
}

/// busybox httpd pods that answer `/cgi-bin/ip` with the client address they saw (CGI's REMOTE_ADDR).
fn echo_ip(replicas: u32, services: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www/cgi-bin; printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip; chmod +x /www/cgi-bin/ip; httpd -f -p 8080 -h /www"]
        readinessProbe:
          tcpSocket: {{port: 8080}}
          periodSeconds: 1
{services}"#
    )
}

/// REMOTE_ADDR as busybox httpd (listening dual-stack) prints an IPv4 client: `[::ffff:10.0.0.2]` → `10.0.0.2`.
fn v4(remote_addr: &str) -> String {
    remote_addr.trim_start_matches('[').trim_end_matches(']').trim_start_matches("::ffff:").to_string()
}

/// The third octet of the node's test subnet (10.244.n.0/24), unique per running test.
fn subnet_octet(up: &Up) -> u8 {
    up.node_ip.split('.').nth(2).and_then(|o| o.parse().ok()).expect("node ip octet")
}

#[test]
fn external_ips_and_external_traffic_policy_local_keep_the_client_address() {
    require_command("curl", "curl");
    let up = Up::start();
    let n = subnet_octet(&up);
    // an externalIP routed to the node by the client (TEST-NET-2, unique per test); the health check node port
    // is the apiserver's to allocate
    let ext_ip = format!("198.51.100.{n}");
    let services = format!(
        r#"---
apiVersion: v1
kind: Service
metadata: {{name: local}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  externalIPs: ["{ext_ip}"]
  selector: {{app: echo}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: cluster}}
spec:
  type: NodePort
  selector: {{app: echo}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    );
    up.kubectl_ok(&["apply", "-f", "-"], Some(&echo_ip(1, &services)));
    up.kubectl_ok(&["rollout", "status", "deployment/echo", "--timeout=120s"], None);
    let client = ClientNs::new(&up);
    let route = Command::new("ip").args(["-n", &client.name, "route", "add", &format!("{ext_ip}/32"), "via", &up.node_ip]).status().expect("ip route");
    assert!(route.success(), "route to the externalIP through the node");
    let local_np = jsonpath(&up, &["get", "svc", "local", "-o", "jsonpath={.spec.ports[0].nodePort}"]);
    let cluster_np = jsonpath(&up, &["get", "svc", "cluster", "-o", "jsonpath={.spec.ports[0].nodePort}"]);

    // externalTrafficPolicy Local: the pod sees the outside client's own address, through the externalIP and
    // through the NodePort
    for url in [format!("http://{ext_ip}/cgi-bin/ip"), format!("http://{}:{local_np}/cgi-bin/ip", up.node_ip)] {
        let seen = poll_until(&format!("{url} from the client netns"), Duration::from_secs(60), || client.get(&url));
        assert_eq!(v4(&seen), client.ip, "{url}: the client address is kept (no SNAT)");
    }
    // externalTrafficPolicy Cluster: masqueraded, the pod sees a node address
    let url = format!("http://{}:{cluster_np}/cgi-bin/ip", up.node_ip);
    let seen = poll_until(&url, Duration::from_secs(60), || client.get(&url));
    assert!(v4(&seen).starts_with("10.244.") && v4(&seen) != client.ip, "Cluster policy SNATs to the node: {seen}");

    // healthCheckNodePort: allocated by the apiserver from the node port range, apart from the node port
    let hc_port: u16 = jsonpath(&up, &["get", "svc", "local", "-o", "jsonpath={.spec.healthCheckNodePort}"]).parse().expect("healthCheckNodePort allocated");
    assert!((30000..=32767).contains(&hc_port) && hc_port.to_string() != local_np, "{hc_port} (node port {local_np})");
    // upstream's answer, 200 with one local endpoint
    let hc = format!("http://{}:{hc_port}/healthz", up.node_ip);
    let body = poll_until("health check node port answers", Duration::from_secs(60), || client.get(&hc));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
    assert_eq!((v["service"]["namespace"].as_str(), v["service"]["name"].as_str(), v["localEndpoints"].as_u64()), (Some("default"), Some("local"), Some(1)), "{body}");
    // no endpoint on the node: 503 and localEndpoints 0
    up.kubectl_ok(&["scale", "deployment/echo", "--replicas=0"], None);
    poll_until("health check says no local endpoints (503)", Duration::from_secs(60), || {
        let out = Command::new("ip")
            .args(["netns", "exec", &client.name, "curl", "-s", "--max-time", "3", "-w", "\n%{http_code}", &hc])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.ends_with("\n503") && text.contains("\"localEndpoints\": 0")).then_some(())
    });
    // the policy back to Cluster releases the port: gone from the spec, and the proxy stops serving it
    up.kubectl_ok(&["patch", "svc", "local", "-p", r#"{"spec":{"externalTrafficPolicy":"Cluster"}}"#], None);
    assert_eq!(jsonpath(&up, &["get", "svc", "local", "-o", "jsonpath={.spec.healthCheckNodePort}"]), "");
    poll_until("health check node port no longer served", Duration::from_secs(60), || {
        let out = Command::new("ip").args(["netns", "exec", &client.name, "curl", "-s", "--max-time", "3", &hc]).output().ok()?;
        (!out.status.success()).then_some(())
    });
}

const LOCAL_LB: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: NAME}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\nHC  selector: {app: x}\n  ports: [{port: 80}]\n";

fn local_lb(name: &str, hc: Option<u16>) -> String {
    LOCAL_LB.replace("NAME", name).replace("HC", &hc.map(|p| format!("  healthCheckNodePort: {p}\n")).unwrap_or_default())
}

/// healthCheckNodePort on the apiserver alone, with the real kubectl, as upstream allocates it: from the node
/// port range for a LoadBalancer Service with externalTrafficPolicy Local, a given value validated and kept,
/// refused when taken, out of range or on a Service that does not need it, unchangeable while needed, and
/// released on delete and on a type change.
#[test]
fn health_check_node_port_is_allocated_kept_and_released() {
    let server = common::TestServer::start();
    let k = "1.33";
    let apply = |yaml: &str| server.kubectl_stdin(k, &["apply", "-f", "-"], yaml);
    let hc_of = |name: &str| server.ok(k, &["get", "svc", name, "-o", "jsonpath={.spec.healthCheckNodePort}"]);
    let stderr = |out: std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();

    assert!(apply(&local_lb("auto", None)).status.success());
    let auto: u16 = hc_of("auto").parse().expect("allocated");
    let node_port = server.ok(k, &["get", "svc", "auto", "-o", "jsonpath={.spec.ports[0].nodePort}"]);
    assert!((30000..=32767).contains(&auto) && auto.to_string() != node_port, "{auto} {node_port}");

    // a given value is kept; the same value again is taken; one outside the range is refused
    let given = if auto == 32767 { 32766 } else { 32767 };
    assert!(apply(&local_lb("given", Some(given))).status.success());
    assert_eq!(hc_of("given"), given.to_string());
    let err = stderr(apply(&local_lb("again", Some(given))));
    assert!(err.contains(&format!("failed to allocate requested HealthCheck NodePort {given}: provided port is already allocated")), "{err}");
    let err = stderr(apply(&local_lb("low", Some(8080))));
    assert!(err.contains("provided port is not in the valid range. The range of valid ports is 30000-32767"), "{err}");
    // a Service that does not need one may not set it (upstream's validation words)
    let cluster = "apiVersion: v1\nkind: Service\nmetadata: {name: cluster}\nspec:\n  type: NodePort\n  healthCheckNodePort: 31111\n  ports: [{port: 80}]\n";
    let err = stderr(apply(cluster));
    assert!(err.contains("spec.healthCheckNodePort: Invalid value: 31111: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"), "{err}");

    // kept across an update that does not name it (apply of the same manifest, a label), unchangeable
    server.ok(k, &["label", "svc", "auto", "touched=yes"]);
    assert_eq!(hc_of("auto"), auto.to_string());
    let other = if given == 32767 { 32765 } else { 32764 };
    let out = server.kubectl(k, &["patch", "svc", "auto", "-p", &format!(r#"{{"spec":{{"healthCheckNodePort":{other}}}}}"#)]);
    let err = stderr(out);
    assert!(err.contains("cannot change healthCheckNodePort on loadBalancer service with externalTraffic=Local during update"), "{err}");

    // released on delete: the value can be given again
    server.ok(k, &["delete", "svc", "given"]);
    assert!(apply(&local_lb("again", Some(given))).status.success());
    assert_eq!(hc_of("again"), given.to_string());
    // released on a type change, and the node ports with it
    server.ok(k, &["patch", "svc", "again", "-p", r#"{"spec":{"type":"ClusterIP","externalTrafficPolicy":null}}"#]);
    assert_eq!(hc_of("again"), "");
    assert_eq!(server.ok(k, &["get", "svc", "again", "-o", "jsonpath={.spec.ports[0].nodePort}"]), "");
    assert!(apply(&local_lb("third", Some(given))).status.success(), "the released port is free");
    // a type change to LoadBalancer with Local allocates one
    server.ok(k, &["patch", "svc", "again", "-p", r#"{"spec":{"type":"LoadBalancer","externalTrafficPolicy":"Local"}}"#]);
    let p: u16 = hc_of("again").parse().expect("allocated on the type change");
    assert!(p != given && p != auto, "{p}");
}

/// A LAN for the load balancer pool: a veth pair, the node's end at 10.250.x.1/24, the other end in a client
/// netns at 10.250.x.2 (x unique per test); removed on drop.
struct Lan {
    link: String,
    ns: String,
    x: u8,
}

impl Lan {
    fn new() -> Lan {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let x = ((std::process::id() * 13 + k * 37) % 250) as u8 + 1;
        let lan = Lan { link: unique_name("rkl"), ns: unique_name("rklc"), x };
        let peer = format!("{}p", lan.link);
        for args in [
            vec!["netns", "add", &lan.ns],
            vec!["link", "add", &lan.link, "type", "veth", "peer", "name", &peer],
            vec!["addr", "add", &format!("10.250.{x}.1/24"), "dev", &lan.link],
            vec!["link", "set", &lan.link, "up"],
            vec!["link", "set", &peer, "netns", &lan.ns],
            vec!["-n", &lan.ns, "addr", "add", &format!("10.250.{x}.2/24"), "dev", &peer],
            vec!["-n", &lan.ns, "link", "set", &peer, "up"],
            vec!["-n", &lan.ns, "link", "set", "lo", "up"],
        ] {
            assert!(Command::new("ip").args(&args).status().expect("ip").success(), "ip {args:?}");
        }
        lan
    }

    fn get(&self, url: &str) -> Option<String> {
        let out = Command::new("ip").args(["netns", "exec", &self.ns, "curl", "-sS", "--max-time", "3", url]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The node's IPv4 addresses on the LAN link (`ip -o -4 addr show dev`).
    fn node_addrs(&self) -> String {
        let out = Command::new("ip").args(["-o", "-4", "addr", "show", "dev", &self.link]).output().expect("ip addr");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The client's neighbour entry for `ip`: the node's link MAC once ARP was answered.
    fn neighbour(&self, ip: &str) -> String {
        let out = Command::new("ip").args(["-n", &self.ns, "neigh", "show", ip]).output().expect("ip neigh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.link]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn load_balancer_gets_a_pool_address_answered_on_the_lan_and_released() {
    require_command("curl", "curl");
    let lan = Lan::new();
    // two addresses: 10.250.x.240/30 → .241 and .242
    let pool = format!("10.250.{}.240/30", lan.x);
    let up = Up::start_with(&["--lb-pool", &pool]);
    let lb = |name: &str| {
        format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: LoadBalancer\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: http}}]\n")
    };
    up.kubectl_ok(&["apply", "-f", "-"], Some(&web(1, &format!("{}{}", lb("lb1"), lb("lb2")))));
    up.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"], None);
    let ingress = |name: &str| up.kubectl_try(&["get", "svc", name, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]).filter(|s| !s.is_empty());
    let ip1 = poll_until("lb1 gets a pool address", Duration::from_secs(60), || ingress("lb1"));
    let ip2 = poll_until("lb2 gets a pool address", Duration::from_secs(60), || ingress("lb2"));
    let pool_ips = [format!("10.250.{}.241", lan.x), format!("10.250.{}.242", lan.x)];
    assert!(pool_ips.contains(&ip1) && pool_ips.contains(&ip2) && ip1 != ip2, "{ip1} {ip2} from {pool}");
    // kubectl's EXTERNAL-IP column
    let table = up.kubectl(&["get", "svc", "lb1"]);
    assert!(table.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(3) == Some(ip1.as_str())), "{table}");

    // the node holds the address on the LAN link, answers ARP for it, and the proxy serves it
    poll_until("lb1's address on the node's LAN link", Duration::from_secs(30), || lan.node_addrs().contains(&format!("inet {ip1}/32")).then_some(()));
    let url = format!("http://{ip1}/");
    let body = poll_until("the client on the LAN reaches the LB address", Duration::from_secs(60), || lan.get(&url));
    assert!(body.starts_with("served-by-web-"), "{body}");
    let mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", lan.link)).expect("link mac");
    assert!(lan.neighbour(&ip1).contains(mac.trim()), "ARP for {ip1} answered by the node's link {}: {}", mac.trim(), lan.neighbour(&ip1));

    // the pool is full: a third Service stays <pending> with an event
    up.kubectl_ok(&["apply", "-f", "-"], Some(&lb("lb3")));
    poll_until("AllocationFailed event for lb3", Duration::from_secs(60), || {
        let ev = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=lb3", "-o", "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}"]);
        ev.contains("AllocationFailed: Failed to allocate IP for \"default/lb3\": no available IPs").then_some(())
    });
    let table = up.kubectl(&["get", "svc", "lb3"]);
    assert!(table.contains("<pending>"), "{table}");
    // deleting lb1 releases its address: lb3 gets it and answers there
    up.kubectl_ok(&["delete", "svc", "lb1"], None);
    let ip3 = poll_until("lb3 gets the released address", Duration::from_secs(60), || ingress("lb3"));
    assert_eq!(ip3, ip1);
    let body = poll_until("lb3 answers on the address", Duration::from_secs(60), || lan.get(&url));
    assert!(body.starts_with("served-by-web-"), "{body}");
    // a type change releases too: lb2 becomes ClusterIP, its address leaves the status and the link
    up.kubectl_ok(&["patch", "svc", "lb2", "-p", r#"{"spec":{"type":"ClusterIP"}}"#], None);
    poll_until("lb2's address released from status and link", Duration::from_secs(60), || {
        let status = up.kubectl(&["get", "svc", "lb2", "-o", "jsonpath={.status.loadBalancer.ingress}"]);
        (status.trim().is_empty() && !lan.node_addrs().contains(&format!("inet {ip2}/32"))).then_some(())
    });
}

/// A load balancer address the node announced stays on the LAN link when `rkube up` is killed (SIGKILL: nothing
/// of it runs to remove it); `rkube down` finds it by the node's mark (the address metric from its proxy table)
/// and removes it, and leaves alone an address on the same link that is not ours.
#[test]
fn load_balancer_addresses_left_by_a_killed_node_are_removed_by_down() {
    let lan = Lan::new();
    let pool = format!("10.250.{}.240/30", lan.x);
    // an address someone else put on the link: not ours, must stay
    let foreign = format!("10.250.{}.250", lan.x);
    let added = Command::new("ip").args(["addr", "add", &format!("{foreign}/32"), "dev", &lan.link]).status().expect("ip addr");
    assert!(added.success());
    let mut up = Up::start_with(&["--lb-pool", &pool]);
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec:\n  type: LoadBalancer\n  selector: {app: web}\n  ports: [{port: 80}]\n";
    up.kubectl_ok(&["apply", "-f", "-"], Some(svc));
    let ip = poll_until("lb gets a pool address", Duration::from_secs(60), || {
        up.kubectl_try(&["get", "svc", "lb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]).filter(|s| !s.is_empty())
    });
    poll_until("the address on the node's LAN link", Duration::from_secs(30), || lan.node_addrs().contains(&format!("inet {ip}/32")).then_some(()));
    assert!(lan.node_addrs().contains(&format!("inet {ip}/32 metric ")), "announced with the node's mark: {}", lan.node_addrs());

    up.kill9();
    assert!(lan.node_addrs().contains(&format!("inet {ip}/32")), "a killed node removes nothing: {}", lan.node_addrs());
    let down = Command::new(up_support::bin("rkube")).args(["down", "--data-dir"]).arg(up.data.path()).output().expect("rkube down");
    assert!(down.status.success(), "rkube down: {}", String::from_utf8_lossy(&down.stderr));
    let addrs = lan.node_addrs();
    assert!(!addrs.contains(&format!("inet {ip}/32")), "rkube down removed the load balancer address: {addrs}");
    assert!(!addrs.contains(" metric "), "nothing of ours is left on the link: {addrs}");
    assert!(addrs.contains(&format!("inet {foreign}/32")), "an address not ours stays: {addrs}");
    assert!(addrs.contains(&format!("inet 10.250.{}.1/24", lan.x)), "{addrs}");
}
