//! Cluster DNS answered for real: the server listens on loopback (UDP and TCP on one port) and real resolver
//! clients ask it: busybox's nslookup (as in a pod) and dig (dnsutils), which shows every section, flag and TTL.
//! What is checked is what CoreDNS's kubernetes plugin answers: flags `qr aa rd`, TTL 5, SRV with the target's
//! address in the additional section, PTR, NXDOMAIN and NODATA with the SOA, ExternalName CNAMEs completed by
//! the upstream, EDNS echoed, and a large answer truncated over UDP (TC) and whole over TCP. Names outside the
//! cluster domain are relayed to an upstream, here a second server that owns another domain.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use rkube_kubelet::dns::{DnsServer, Zone};
use rkube_kubelet::service_watch::ServiceState;
use rkube_testsupport::require_command;
use serde_json::{json, Value};

/// A loopback address of our own (127.0.0.0/8 is all local), so port 53 is free whatever else runs here.
fn loopback() -> Ipv4Addr {
    let pid = std::process::id();
    Ipv4Addr::new(127, 77, (pid % 250) as u8, ((pid / 250) % 250) as u8 + 2)
}

fn state(namespaces: &[&str], services: Value, slices: Value) -> ServiceState {
    fn shared<T>(v: Vec<T>) -> Vec<std::sync::Arc<T>> {
        v.into_iter().map(std::sync::Arc::new).collect()
    }
    ServiceState {
        namespaces: namespaces.iter().map(|n| serde_json::from_value(json!({"metadata": {"name": n}})).map(std::sync::Arc::new).expect("namespace")).collect(),
        services: shared(serde_json::from_value(services).expect("services")),
        slices: shared(serde_json::from_value(slices).expect("slices")),
    }
}

/// The cluster of these tests: a ClusterIP Service with two named ports and one endpoint, a headless one with a
/// named pod, an ExternalName Service to the upstream's domain, and `big`: headless with 45 ready endpoints.
fn cluster() -> ServiceState {
    let big: Vec<Value> = (0..45).map(|i| json!({"addresses": [format!("10.244.7.{}", i + 10)]})).collect();
    state(
        &["default", "shop"],
        json!([
            {"metadata": {"name": "web", "namespace": "default"},
             "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}]}},
            {"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}},
            {"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "www.ns.svc.example.test"}},
            {"metadata": {"name": "big", "namespace": "default"}, "spec": {"clusterIP": "None"}},
        ]),
        json!([
            {"metadata": {"name": "db-x", "namespace": "shop", "labels": {"kubernetes.io/service-name": "db"}},
             "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
             "endpoints": [{"addresses": ["10.244.3.4"], "hostname": "db-0"}]},
            {"metadata": {"name": "web-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
             "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
             "endpoints": [{"addresses": ["10.244.3.9"], "conditions": {"ready": true}}]},
            {"metadata": {"name": "big-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "big"}},
             "addressType": "IPv4", "endpoints": big},
        ]),
    )
}

/// The upstream: a server that owns `example.test`, where `www.ns.svc.example.test` is 10.100.0.1.
fn upstream_server() -> DnsServer {
    let upstream = DnsServer::new("example.test", None);
    let s = state(&["ns"], json!([{"metadata": {"name": "www", "namespace": "ns"}, "spec": {"clusterIP": "10.100.0.1", "ports": [{"name": "http", "port": 80}]}}]), json!([]));
    upstream.set_zone(Zone::build("example.test", &s, 1));
    upstream
}

/// Serves `server` over UDP and TCP on one port of `ip` (0: any free one) from `rt`; returns the address.
fn start(rt: &tokio::runtime::Runtime, server: DnsServer, ip: Ipv4Addr, port: u16) -> SocketAddr {
    rt.block_on(async {
        for _ in 0..20 {
            let udp = tokio::net::UdpSocket::bind((ip, port)).await.expect("bind dns udp socket");
            let addr = udp.local_addr().expect("local addr");
            // the same port over TCP; another process may hold it there, then try another
            let Ok(tcp) = tokio::net::TcpListener::bind(addr).await else { continue };
            let (s1, s2) = (server.clone(), server.clone());
            tokio::spawn(async move { s1.serve(udp).await });
            tokio::spawn(async move { s2.serve_tcp(tcp).await });
            return addr;
        }
        panic!("no port of {ip} free over both UDP and TCP");
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
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
    edns: Option<String>,
    out: String,
}

impl Dig {
    fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
}

fn dig(server: SocketAddr, args: &[&str]) -> Dig {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=5", "+tries=1"])
        .args(args)
        .output()
        .expect("run dig");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut d = Dig { out: text.clone(), ..Dig::default() };
    let mut section: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            // a new response (dig prints the truncated UDP one before retrying over TCP in some versions)
            d = Dig { out: text.clone(), status: rest.split(',').next().unwrap_or_default().to_string(), ..Dig::default() };
        } else if let Some(rest) = line.strip_prefix(";; flags: ") {
            d.flags = rest.split(';').next().unwrap_or_default().split_whitespace().map(str::to_string).collect();
        } else if let Some(rest) = line.strip_prefix("; EDNS: ") {
            d.edns = Some(rest.to_string());
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

fn nslookup(name: &str, server: Ipv4Addr) -> (bool, String) {
    let out = Command::new("busybox").args(["nslookup", name, &server.to_string()]).output().expect("run nslookup");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn nslookup_resolves_services_headless_pods_external_names_and_upstream_names() {
    require_command("busybox", "busybox-static");
    let rt = runtime();
    let ip = loopback();
    let up_addr = start(&rt, upstream_server(), ip, 0);
    let server = DnsServer::new("cluster.local", Some(up_addr));
    server.set_zone(Zone::build("cluster.local", &cluster(), 1));
    // nslookup talks to port 53; the upstream may sit on any port
    start(&rt, server, ip, 53);

    let (ok, out) = nslookup("web.default.svc.cluster.local", ip);
    assert!(ok && out.contains("10.96.0.20"), "ClusterIP answer: {out}");
    let (ok, out) = nslookup("db-0.db.shop.svc.cluster.local", ip);
    assert!(ok && out.contains("10.244.3.4"), "headless pod hostname answer: {out}");
    let (ok, out) = nslookup("nope.default.svc.cluster.local", ip);
    assert!(!ok && out.to_ascii_uppercase().contains("NXDOMAIN"), "missing service is NXDOMAIN: {out}");
    let (ok, out) = nslookup("www.ns.svc.example.test", ip);
    assert!(ok && out.contains("10.100.0.1"), "relayed to upstream: {out}");
    let (_, out) = nslookup("ext.default.svc.cluster.local", ip);
    assert!(out.contains("canonical name = www.ns.svc.example.test"), "ExternalName CNAME: {out}");
    assert!(out.contains("10.100.0.1"), "and the target's address, resolved upstream: {out}");
}

#[test]
fn dig_sees_what_coredns_answers() {
    require_command("dig", "dnsutils");
    let rt = runtime();
    let server = DnsServer::new("cluster.local", None);
    server.set_zone(Zone::build("cluster.local", &cluster(), 1_700_000_000));
    let addr = start(&rt, server, Ipv4Addr::LOCALHOST, 0);
    let soa = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5";

    let d = dig(addr, &["web.default.svc.cluster.local", "A"]);
    assert_eq!(d.status, "NOERROR", "{}", d.out);
    assert_eq!(d.flags, ["qr", "aa", "rd"], "authoritative, no recursion offered: {}", d.out);
    assert_eq!(d.answer, ["web.default.svc.cluster.local. 5 IN A 10.96.0.20"], "{}", d.out);
    assert!(d.authority.is_empty(), "{}", d.out);
    // dig sends EDNS with a 1232-byte buffer: the answer carries an OPT back
    assert_eq!(d.edns.as_deref(), Some("version: 0, flags:; udp: 1232"), "{}", d.out);

    let d = dig(addr, &["_http._tcp.web.default.svc.cluster.local", "SRV"]);
    assert_eq!(d.answer, ["_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."], "{}", d.out);
    assert_eq!(d.additional, ["web.default.svc.cluster.local. 5 IN A 10.96.0.20"], "{}", d.out);
    let d = dig(addr, &["_pg._tcp.db.shop.svc.cluster.local", "SRV"]);
    assert_eq!(d.answer, ["_pg._tcp.db.shop.svc.cluster.local. 5 IN SRV 0 100 5432 db-0.db.shop.svc.cluster.local."], "{}", d.out);
    assert_eq!(d.additional, ["db-0.db.shop.svc.cluster.local. 5 IN A 10.244.3.4"], "{}", d.out);

    let d = dig(addr, &["-x", "10.96.0.20"]);
    assert_eq!(d.answer, ["20.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."], "{}", d.out);
    let d = dig(addr, &["-x", "10.244.3.4"]);
    assert_eq!(d.answer, ["4.3.244.10.in-addr.arpa. 5 IN PTR db-0.db.shop.svc.cluster.local."], "{}", d.out);
    // an endpoint without a hostname has no PTR here: the reverse name goes on, and with no upstream is refused
    assert_eq!(dig(addr, &["-x", "10.244.3.9"]).status, "REFUSED");

    let d = dig(addr, &["nope.default.svc.cluster.local", "A"]);
    assert_eq!((d.status.as_str(), d.answer.len()), ("NXDOMAIN", 0), "{}", d.out);
    assert_eq!(d.authority, [soa], "NXDOMAIN carries the SOA: {}", d.out);
    assert!(d.has_flag("aa"), "{}", d.out);
    for (name, qtype) in [("web.default.svc.cluster.local", "AAAA"), ("default.svc.cluster.local", "A"), ("ext.default.svc.cluster.local", "SRV")] {
        let d = dig(addr, &[name, qtype]);
        assert_eq!((d.status.as_str(), d.answer.len()), ("NOERROR", 0), "{name} {qtype} is NODATA: {}", d.out);
        assert_eq!(d.authority, [soa], "NODATA carries the SOA: {}", d.out);
    }
    let d = dig(addr, &["dns-version.cluster.local", "TXT"]);
    assert_eq!(d.answer, ["dns-version.cluster.local. 28800 IN TXT \"1.1.0\""], "{}", d.out);
    let d = dig(addr, &["cluster.local", "NS"]);
    assert_eq!(d.answer, ["cluster.local. 5 IN NS ns.dns.cluster.local."], "{}", d.out);
    assert_eq!(d.additional, ["ns.dns.cluster.local. 5 IN A 127.0.0.1"], "the glue is where the server listens: {}", d.out);

    // without EDNS, no OPT; an EDNS version above 0 is BADVERS
    assert_eq!(dig(addr, &["+noedns", "web.default.svc.cluster.local"]).edns, None);
    assert_eq!(dig(addr, &["+edns=1", "+noednsnegotiation", "web.default.svc.cluster.local"]).status, "BADVERS");
}

#[test]
fn large_answers_are_truncated_over_udp_and_whole_over_tcp() {
    require_command("dig", "dnsutils");
    let rt = runtime();
    let server = DnsServer::new("cluster.local", None);
    server.set_zone(Zone::build("cluster.local", &cluster(), 1));
    let addr = start(&rt, server, Ipv4Addr::LOCALHOST, 0);
    let name = "big.default.svc.cluster.local";

    // 45 A records do not fit in 512 bytes: the UDP answer keeps what fits, with TC
    let udp = dig(addr, &["+noedns", "+ignore", name]);
    assert!(udp.has_flag("tc"), "TC over UDP without EDNS: {}", udp.out);
    assert!(!udp.answer.is_empty() && udp.answer.len() < 45, "a partial answer: {} records", udp.answer.len());
    // the same with EDNS and a small buffer; a large one takes it all
    let small = dig(addr, &["+bufsize=600", "+ignore", name]);
    assert!(small.has_flag("tc") && small.answer.len() < 45, "{}", small.out);
    let large = dig(addr, &["+bufsize=4096", "+ignore", name]);
    assert!(!large.has_flag("tc"), "{}", large.out);
    assert_eq!(large.answer.len(), 45, "{}", large.out);

    // dig on its own does what a resolver does: retries over TCP, and gets all 45
    let retried = dig(addr, &["+noedns", name]);
    assert!(retried.out.contains("Truncated, retrying in TCP mode"), "{}", retried.out);
    assert_eq!(retried.answer.len(), 45, "{}", retried.out);
    assert!(!retried.has_flag("tc"), "{}", retried.out);
    let mut addrs: Vec<String> = retried.answer.iter().filter_map(|r| r.split(' ').nth(4).map(str::to_string)).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 45, "45 distinct endpoint addresses: {addrs:?}");
    let tcp = dig(addr, &["+tcp", name]);
    assert_eq!(tcp.answer.len(), 45, "{}", tcp.out);
}

#[test]
fn external_names_get_the_cname_and_the_upstream_records_of_the_target() {
    require_command("dig", "dnsutils");
    let rt = runtime();
    let up_addr = start(&rt, upstream_server(), Ipv4Addr::LOCALHOST, 0);
    let with_upstream = DnsServer::new("cluster.local", Some(up_addr));
    with_upstream.set_zone(Zone::build("cluster.local", &cluster(), 1));
    let addr = start(&rt, with_upstream, Ipv4Addr::LOCALHOST, 0);
    let cname = "ext.default.svc.cluster.local. 5 IN CNAME www.ns.svc.example.test.";

    let d = dig(addr, &["ext.default.svc.cluster.local", "A"]);
    assert_eq!(d.status, "NOERROR", "{}", d.out);
    assert_eq!(d.answer, [cname, "www.ns.svc.example.test. 5 IN A 10.100.0.1"], "{}", d.out);
    // the target has no AAAA upstream: the CNAME alone
    assert_eq!(dig(addr, &["ext.default.svc.cluster.local", "AAAA"]).answer, [cname]);
    assert_eq!(dig(addr, &["ext.default.svc.cluster.local", "CNAME"]).answer, [cname]);
    // the relay for names not ours, over UDP and over TCP
    assert_eq!(dig(addr, &["www.ns.svc.example.test"]).answer, ["www.ns.svc.example.test. 5 IN A 10.100.0.1"]);
    assert_eq!(dig(addr, &["+tcp", "www.ns.svc.example.test"]).answer, ["www.ns.svc.example.test. 5 IN A 10.100.0.1"]);

    // no upstream (`--dns-upstream none`), or one that never answers: the CNAME alone, NOERROR
    let none = DnsServer::new("cluster.local", None);
    none.set_zone(Zone::build("cluster.local", &cluster(), 1));
    let addr = start(&rt, none, Ipv4Addr::LOCALHOST, 0);
    let d = dig(addr, &["ext.default.svc.cluster.local", "A"]);
    assert_eq!((d.status.as_str(), d.answer.clone()), ("NOERROR", vec![cname.to_string()]), "{}", d.out);
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("a socket that never answers");
    let mute = DnsServer::new("cluster.local", Some(silent.local_addr().expect("addr")));
    mute.set_zone(Zone::build("cluster.local", &cluster(), 1));
    let addr = start(&rt, mute, Ipv4Addr::LOCALHOST, 0);
    let d = dig(addr, &["ext.default.svc.cluster.local", "A"]);
    assert_eq!((d.status.as_str(), d.answer.clone()), ("NOERROR", vec![cname.to_string()]), "{}", d.out);
}

/// Sends `packet` over UDP to `addr` and returns the reply, or None after two seconds of silence.
fn udp_exchange(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let sock = std::net::UdpSocket::bind((IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).expect("client socket");
    sock.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    sock.send_to(packet, addr).expect("send");
    let mut buf = vec![0u8; 1500];
    sock.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
}

#[test]
fn foreign_names_are_refused_without_upstream_and_bad_requests_get_an_error() {
    let rt = runtime();
    let server = DnsServer::new("cluster.local", None);
    let addr = start(&rt, server, Ipv4Addr::LOCALHOST, 0);
    let mut q = Message::query();
    q.add_query(Query::query(Name::from_ascii("example.org.").expect("name"), RecordType::A));
    let resp = Message::from_vec(&udp_exchange(addr, &q.to_vec().expect("encode")).expect("an answer, not silence")).expect("decode");
    assert_eq!(resp.metadata.id, q.metadata.id);
    assert_eq!(resp.metadata.response_code, ResponseCode::Refused);

    // before the first zone from the API, a cluster name that is not there is SERVFAIL, not NXDOMAIN
    let mut q = Message::query();
    q.add_query(Query::query(Name::from_ascii("web.default.svc.cluster.local.").expect("name"), RecordType::A));
    let resp = Message::from_vec(&udp_exchange(addr, &q.to_vec().expect("encode")).expect("answer")).expect("decode");
    assert_eq!(resp.metadata.response_code, ResponseCode::ServFail);

    // two questions: FORMERR, header only; an UPDATE: NOTIMP; a response: no answer at all
    let mut two = q.clone();
    two.add_query(Query::query(Name::from_ascii("a.cluster.local.").expect("name"), RecordType::A));
    let resp = udp_exchange(addr, &two.to_vec().expect("encode")).expect("answer");
    assert_eq!((resp.len(), resp[3] & 0x0f), (12, 1), "FORMERR: {resp:?}");
    let mut update = q.to_vec().expect("encode");
    update[2] |= 5 << 3;
    let resp = udp_exchange(addr, &update).expect("answer");
    assert_eq!(resp[3] & 0x0f, 4, "NOTIMP: {resp:?}");
    let mut response = q.to_vec().expect("encode");
    response[2] |= 0x80;
    assert_eq!(udp_exchange(addr, &response), None, "a response is never answered");
}
