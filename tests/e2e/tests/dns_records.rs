//! Cluster DNS on `rkube up` with the real kubectl, as root, asked from inside a pod: busybox's nslookup through
//! `kubectl exec` (the ExternalName's CNAME and its target's address from the upstream resolver), and dig run on
//! the host inside the pod's network namespace
//! (`nsenter --net=<the pod's netns>`, so the query takes the pod's own route to the cluster DNS address) for
//! what CoreDNS's kubernetes plugin answers: SRV for a ClusterIP and a headless Service's named port, a
//! StatefulSet pod's `web-0.web-hl.default.svc` name, PTR for ClusterIPs and for the named pod, NXDOMAIN vs
//! NODATA with the SOA (TTL 5), and a headless Service of 45 endpoints whose A answer is truncated over UDP
//! (TC) and whole over TCP. One cluster serves every check, to keep the run short.
//!
//! The node gets an address on a veth pair this test creates (never the uplink's). The node's upstream resolver
//! is a stand-in on 127.0.0.1 that this test runs (`--dns-upstream 127.0.0.1:PORT`): it knows one name, so the
//! ExternalName's target resolves offline and nothing is relayed off the machine. Needs the binaries: `cargo build -p rkube -p rkube-kubelet
//! -p rkube-runtime -p rkube-cni --bins`, and dig (`apt-get install dnsutils`).

mod up_support;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rkube_testsupport::{output_within, poll_until, require_command};
use serde_json::Value;
use up_support::Up;

/// The ExternalName's target, and its address at the stand-in upstream (TEST-NET-1: DNS only, no traffic).
const EXTERNAL: &str = "www.example.test";
const EXTERNAL_IP: [u8; 4] = [192, 0, 2, 77];

/// A stand-in for the node's upstream resolver, on 127.0.0.1 (UDP): A for [`EXTERNAL`] is [`EXTERNAL_IP`] with TTL
/// 30; any other question gets NOERROR with no records. Each query's name and type is recorded. Stops on drop.
struct TestUpstream {
    addr: SocketAddr,
    asked: Arc<std::sync::Mutex<Vec<(String, u16)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestUpstream {
    fn start() -> TestUpstream {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the stand-in upstream");
        sock.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
        let addr = sock.local_addr().expect("its address");
        let stop = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop2, asked2) = (stop.clone(), asked.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                if let Some((reply, name, qtype)) = Self::answer(&buf[..n]) {
                    asked2.lock().expect("asked").push((name, qtype));
                    let _ = sock.send_to(&reply, from);
                }
            }
        });
        TestUpstream { addr, asked, stop, thread: Some(thread) }
    }

    /// The reply to one query: (packet, the question's name, its type); None for what is not a query.
    fn answer(q: &[u8]) -> Option<(Vec<u8>, String, u16)> {
        if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
            return None;
        }
        let mut i = 12;
        let mut labels = Vec::new();
        while *q.get(i)? != 0 {
            let len = usize::from(q[i]);
            labels.push(String::from_utf8_lossy(q.get(i + 1..i + 1 + len)?).to_ascii_lowercase());
            i += 1 + len;
        }
        let end = i + 5; // the root label, then type and class
        let qtype = u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]);
        let name = labels.join(".");
        let hit = name == EXTERNAL && qtype == 1;
        // id, QR + the query's opcode and RD, RA; one question, one answer or none, no other section (no EDNS)
        let mut r = vec![q[0], q[1], 0x80 | (q[2] & 0x79), 0x80, 0, 1, 0, u8::from(hit), 0, 0, 0, 0];
        r.extend_from_slice(q.get(12..end)?);
        if hit {
            // the name by a pointer to the question's, A IN, TTL 30, 4 bytes of address
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
            r.extend_from_slice(&EXTERNAL_IP);
        }
        Some((r, name, qtype))
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The 45 endpoints of `big` (TEST-NET-1 addresses: DNS only, no traffic goes there).
const BIG: usize = 45;

fn manifest() -> String {
    let endpoints: String = (0..BIG).map(|i| format!("- addresses: [\"192.0.2.{}\"]\n  conditions: {{ready: true}}\n", i + 10)).collect();
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: ext}}
spec: {{type: ExternalName, externalName: www.example.test}}
---
apiVersion: v1
kind: Service
metadata: {{name: websvc}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-hl}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web}}
spec:
  serviceName: web-hl
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "sleep 3600"]
        ports: [{{name: http, containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: big}}
spec:
  clusterIP: None
  ports: [{{name: http, port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: big-manual
  labels: {{kubernetes.io/service-name: big}}
addressType: IPv4
ports: [{{name: http, port: 80, protocol: TCP}}]
endpoints:
{endpoints}---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "sleep 3600"]
"#
    )
}

/// What dig printed, taken apart: the last response's status and flags, and its sections with whitespace
/// squeezed (`name. 5 IN A 10.0.0.1`).
#[derive(Debug, Default)]
struct Dig {
    status: String,
    flags: Vec<String>,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
    out: String,
}

impl Dig {
    fn parse(text: &str) -> Dig {
        let mut d = Dig { out: text.to_string(), ..Dig::default() };
        let mut section: Option<&str> = None;
        for line in text.lines() {
            if let Some(rest) = line.split("status: ").nth(1) {
                // a new response: after "Truncated, retrying in TCP mode." the TCP one follows
                d = Dig { out: text.to_string(), status: rest.split(',').next().unwrap_or_default().to_string(), ..Dig::default() };
            } else if let Some(rest) = line.strip_prefix(";; flags: ") {
                d.flags = rest.split(';').next().unwrap_or_default().split_whitespace().map(str::to_string).collect();
            } else if line.starts_with(";; ") && line.ends_with(" SECTION:") {
                section = line.split_whitespace().nth(1);
            } else if line.trim().is_empty() {
                section = None;
            } else if !line.starts_with(';') {
                let rr = line.split_whitespace().collect::<Vec<_>>().join(" ");
                match section {
                    Some("ANSWER") => d.answer.push(rr),
                    Some("AUTHORITY") => d.authority.push(rr),
                    Some("ADDITIONAL") => d.additional.push(rr),
                    _ => {}
                }
            }
        }
        d
    }

    fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
}

/// dig run inside the network namespace at `netns`, asking `server`.
fn dig_in(netns: &str, server: &str, args: &[&str]) -> Dig {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={netns}")).args(["dig", &format!("@{server}"), "+time=3", "+tries=2"]).args(args);
    let out = output_within(&mut cmd, None, Duration::from_secs(30), &format!("dig {args:?} in {netns}"));
    Dig::parse(&format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The network namespace of pod `name` in namespace default, from the kubelet's sandbox record.
fn pod_netns(up: &Up, name: &str) -> Option<String> {
    for entry in std::fs::read_dir(up.data.path().join("kubelet").join("pods")).ok()?.flatten() {
        let read = |f: &str| std::fs::read(entry.path().join(f)).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let Some(pod) = read("pod.json") else { continue };
        if pod.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
            continue;
        }
        let netns = read("sandbox.json")?.get("netns")?.as_str()?.to_string();
        return PathBuf::from(&netns).exists().then_some(netns);
    }
    None
}

fn jsonpath(up: &Up, args: &[&str]) -> String {
    up.kubectl(args).trim().to_string()
}

#[test]
fn dns_records_as_coredns_answers_them_from_a_pod() {
    require_command("dig", "dnsutils");
    require_command("nsenter", "util-linux");
    let upstream = TestUpstream::start();
    let up = Up::start_with(&["--dns-upstream", &upstream.addr.to_string()]);
    let dns = up.net.cluster_dns.clone();
    up.kubectl_ok(&["apply", "-f", "-"], Some(&manifest()));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/client", "--timeout=90s"], None);
    up.kubectl_ok(&["rollout", "status", "statefulset/web", "--timeout=120s"], None);
    let netns = poll_until("the client pod's netns", Duration::from_secs(30), || pod_netns(&up, "client"));
    let web0_ip = jsonpath(&up, &["get", "pod", "web-0", "-o", "jsonpath={.status.podIP}"]);
    let web1_ip = jsonpath(&up, &["get", "pod", "web-1", "-o", "jsonpath={.status.podIP}"]);
    let websvc_ip = jsonpath(&up, &["get", "svc", "websvc", "-o", "jsonpath={.spec.clusterIP}"]);
    let dig = |args: &[&str]| dig_in(&netns, &dns, args);
    let soa_prefix = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. ";

    // ExternalName from a pod's nslookup: the CNAME, then the target's address as the node's upstream gave it
    let external_ip = std::net::Ipv4Addr::from(EXTERNAL_IP).to_string();
    let out = poll_until("nslookup of the ExternalName shows its CNAME", Duration::from_secs(30), || {
        let out = up.kubectl_output(&["exec", "client", "--", "nslookup", "ext.default.svc.cluster.local"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("canonical name = www.example.test").then_some(text)
    });
    assert!(out.contains("ext.default.svc.cluster.local"), "{out}");
    assert!(out.contains(&format!("Address: {external_ip}")), "the upstream's A record for the target: {out}");
    let d = dig(&["ext.default.svc.cluster.local", "A"]);
    assert_eq!(d.status, "NOERROR", "{}", d.out);
    let cname = "ext.default.svc.cluster.local. 5 IN CNAME www.example.test.";
    assert_eq!(d.answer, [cname.to_string(), format!("www.example.test. 30 IN A {external_ip}")], "{}", d.out);
    assert!(
        upstream.asked.lock().expect("asked").iter().any(|(n, t)| n == EXTERNAL && *t == 1),
        "the target was asked of the upstream as an A question"
    );
    // a type the upstream has no record of: the CNAME alone, NOERROR; a name not ours is relayed as it is
    let d = dig(&["ext.default.svc.cluster.local", "AAAA"]);
    assert_eq!((d.status.as_str(), d.answer.clone()), ("NOERROR", vec![cname.to_string()]), "{}", d.out);
    let d = dig(&[EXTERNAL, "A"]);
    assert_eq!(d.answer, [format!("www.example.test. 30 IN A {external_ip}")], "{}", d.out);

    // SRV for a ClusterIP Service's named port: the Service name as target, its address as glue
    let d = dig(&["_http._tcp.websvc.default.svc.cluster.local", "SRV"]);
    assert_eq!((d.status.as_str(), d.flags.clone()), ("NOERROR", vec!["qr".to_string(), "aa".into(), "rd".into()]), "{}", d.out);
    assert_eq!(d.answer, ["_http._tcp.websvc.default.svc.cluster.local. 5 IN SRV 0 100 80 websvc.default.svc.cluster.local."], "{}", d.out);
    assert_eq!(d.additional, [format!("websvc.default.svc.cluster.local. 5 IN A {websvc_ip}")], "{}", d.out);

    // the headless Service of the StatefulSet: one SRV per pod, named by its hostname, the pod's port; polled
    // until both pods' endpoints have reached the zone
    let d = poll_until("SRV for both StatefulSet pods", Duration::from_secs(30), || {
        let d = dig(&["_http._tcp.web-hl.default.svc.cluster.local", "SRV"]);
        (d.answer.len() == 2).then_some(d)
    });
    let mut srv = d.answer.clone();
    srv.sort();
    assert_eq!(
        srv,
        [
            "_http._tcp.web-hl.default.svc.cluster.local. 5 IN SRV 0 50 8080 web-0.web-hl.default.svc.cluster.local.",
            "_http._tcp.web-hl.default.svc.cluster.local. 5 IN SRV 0 50 8080 web-1.web-hl.default.svc.cluster.local.",
        ],
        "{}",
        d.out
    );
    let mut glue = d.additional.clone();
    glue.sort();
    assert_eq!(
        glue,
        [
            format!("web-0.web-hl.default.svc.cluster.local. 5 IN A {web0_ip}"),
            format!("web-1.web-hl.default.svc.cluster.local. 5 IN A {web1_ip}"),
        ],
        "{}",
        d.out
    );
    let d = dig(&["web-0.web-hl.default.svc.cluster.local", "A"]);
    assert_eq!(d.answer, [format!("web-0.web-hl.default.svc.cluster.local. 5 IN A {web0_ip}")], "{}", d.out);

    // PTR: ClusterIPs name their Service, a named pod its name under the headless Service
    let d = dig(&["-x", "10.96.0.1"]);
    assert_eq!(d.answer, ["1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local."], "{}", d.out);
    let d = dig(&["-x", &websvc_ip]);
    assert_eq!(d.answer.len(), 1, "{}", d.out);
    assert!(d.answer[0].ends_with(" 5 IN PTR websvc.default.svc.cluster.local."), "{}", d.out);
    let d = dig(&["-x", &web0_ip]);
    assert_eq!(d.answer.len(), 1, "{}", d.out);
    assert!(d.answer[0].ends_with(" 5 IN PTR web-0.web-hl.default.svc.cluster.local."), "{}", d.out);

    // NXDOMAIN: no such name; NODATA: the name, not that type. Both with the SOA, negative TTL 5
    let soa_ok = |d: &Dig| d.authority.len() == 1 && d.authority[0].starts_with(soa_prefix) && d.authority[0].ends_with(" 7200 1800 86400 5");
    let d = dig(&["nope.default.svc.cluster.local", "A"]);
    assert_eq!((d.status.as_str(), d.answer.len()), ("NXDOMAIN", 0), "{}", d.out);
    assert!(soa_ok(&d) && d.has_flag("aa"), "{}", d.out);
    let d = dig(&["nope.svc.cluster.local", "A"]);
    assert_eq!(d.status, "NXDOMAIN", "a namespace that does not exist: {}", d.out);
    for (name, qtype) in [("websvc.default.svc.cluster.local", "AAAA"), ("websvc.default.svc.cluster.local", "MX"), ("default.svc.cluster.local", "A")] {
        let d = dig(&[name, qtype]);
        assert_eq!((d.status.as_str(), d.answer.len()), ("NOERROR", 0), "{name} {qtype}: {}", d.out);
        assert!(soa_ok(&d), "{name} {qtype}: {}", d.out);
    }

    // 45 endpoints: over UDP without EDNS (512 bytes) the answer is cut, with TC; dig then retries over TCP
    // and gets them all, as a pod's resolver does
    let d = poll_until("all 45 endpoints of big in the zone", Duration::from_secs(30), || {
        let d = dig(&["+tcp", "big.default.svc.cluster.local", "A"]);
        (d.answer.len() == BIG).then_some(d)
    });
    assert!(d.answer.iter().all(|r| r.starts_with("big.default.svc.cluster.local. 5 IN A 192.0.2.")), "{}", d.out);
    let udp = dig(&["+noedns", "+ignore", "big.default.svc.cluster.local", "A"]);
    assert!(udp.has_flag("tc"), "TC over UDP: {}", udp.out);
    assert!(!udp.answer.is_empty() && udp.answer.len() < BIG, "a partial answer over UDP: {}", udp.out);
    let retried = dig(&["+noedns", "big.default.svc.cluster.local", "A"]);
    assert!(retried.out.contains("Truncated, retrying in TCP mode"), "{}", retried.out);
    assert_eq!(retried.answer.len(), BIG, "{}", retried.out);
    // an endpoint without a hostname is named by its address
    let d = dig(&["192-0-2-10.big.default.svc.cluster.local", "A"]);
    assert_eq!(d.answer, ["192-0-2-10.big.default.svc.cluster.local. 5 IN A 192.0.2.10"], "{}", d.out);

    up.kubectl_ok(&["delete", "pod", "client", "--timeout=60s"], None);
    up.kubectl_ok(&["delete", "statefulset", "web", "--timeout=90s"], None);
}
