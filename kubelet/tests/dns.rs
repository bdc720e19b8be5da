//! Cluster DNS answered for real: the server listens on a loopback address and busybox's nslookup (a real
//! resolver client, as in a pod) asks it for Services, headless pods and SRV records; names outside the cluster
//! domain are relayed to an upstream, here a second server that owns another domain.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_kubelet::dns::{DnsServer, Zone};
use serde_json::json;

/// A loopback address of our own (127.0.0.0/8 is all local), so port 53 is free whatever else runs here.
fn loopback() -> Ipv4Addr {
    let pid = std::process::id();
    Ipv4Addr::new(127, 77, (pid % 250) as u8, ((pid / 250) % 250) as u8 + 2)
}

fn nslookup(name: &str, server: Ipv4Addr) -> (bool, String) {
    let out = Command::new("busybox").args(["nslookup", name, &server.to_string()]).output().expect("run nslookup");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn start(server: DnsServer, ip: Ipv4Addr, port: u16) -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind((ip, port)).await.expect("bind dns socket");
    let addr = sock.local_addr().expect("local addr");
    tokio::spawn(async move { server.serve(sock).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_headless_pods_and_upstream_names_resolve() {
    let services: Vec<Service> = serde_json::from_value(json!([
        {"metadata": {"name": "web", "namespace": "default"},
         "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}},
        {"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "None"}},
    ]))
    .unwrap();
    let slices: Vec<EndpointSlice> = serde_json::from_value(json!([
        {"metadata": {"name": "db-x", "namespace": "shop", "labels": {"kubernetes.io/service-name": "db"}},
         "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.3.4"], "hostname": "db-0"}]}
    ]))
    .unwrap();

    // The upstream owns example.test; nslookup talks to port 53, the upstream may sit on any port.
    let upstream = DnsServer::new("example.test", None);
    let up_svc: Vec<Service> = serde_json::from_value(json!([
        {"metadata": {"name": "www", "namespace": "ns"}, "spec": {"clusterIP": "10.100.0.1"}}])).unwrap();
    upstream.set_zone(Zone::build("example.test", &up_svc, &[]));
    let ip = loopback();
    let up_addr = start(upstream, ip, 0).await;

    let server = DnsServer::new("cluster.local", Some(up_addr));
    server.set_zone(Zone::build("cluster.local", &services, &slices));
    start(server, ip, 53).await;

    let results = tokio::task::spawn_blocking(move || {
        [
            nslookup("web.default.svc.cluster.local", ip),
            nslookup("db-0.db.shop.svc.cluster.local", ip),
            nslookup("nope.default.svc.cluster.local", ip),
            nslookup("www.ns.svc.example.test", ip),
        ]
    })
    .await
    .unwrap();
    let [(ok, out), (ok0, out0), (nx_ok, nx), (up_ok, up)] = results;
    assert!(ok && out.contains("10.96.0.20"), "ClusterIP answer: {out}");
    assert!(ok0 && out0.contains("10.244.3.4"), "headless pod hostname answer: {out0}");
    assert!(!nx_ok && nx.to_ascii_uppercase().contains("NXDOMAIN"), "missing service is NXDOMAIN: {nx}");
    assert!(up_ok && up.contains("10.100.0.1"), "relayed to upstream: {up}");
}

#[tokio::test]
async fn foreign_names_are_refused_without_upstream() {
    use hickory_proto::op::{Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};
    let server = DnsServer::new("cluster.local", None);
    let addr = start(server, Ipv4Addr::LOCALHOST, 0).await;
    let mut q = Message::query();
    q.add_query(Query::query(Name::from_ascii("example.org.").unwrap(), RecordType::A));
    let sock = tokio::net::UdpSocket::bind((IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).await.unwrap();
    sock.send_to(&q.to_vec().unwrap(), addr).await.unwrap();
    let mut buf = vec![0u8; 1500];
    let (n, _) = tokio::time::timeout(std::time::Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("an answer, not silence")
        .unwrap();
    let resp = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(resp.metadata.id, q.metadata.id);
    assert_eq!(resp.metadata.response_code, ResponseCode::Refused);
}
