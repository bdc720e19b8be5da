//! Several apiservers on one store, in-process (plain HTTP, every request privileged): what one server does must
//! hold when another writes to the same store at the same time.
//! - the `kubernetes` EndpointSlice lists every live server (the lease endpoint reconciler), drops a server
//!   that stops renewing after the TTL and one that stops cleanly at once;
//! - Services created at once through both servers never share a ClusterIP or node port, on the memory store
//!   and on a real etcd (two clients, as two processes would have), and deleting them frees their values.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_apiserver::config::EndpointLeases;
use rkube_apiserver::storage::Store;
use rkube_apiserver::{ApiServer, ServerConfig};
use serde_json::Value;

async fn start(store: &Arc<dyn Store>, advertise: Option<&str>, leases: EndpointLeases) -> ApiServer {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    config.advertise_address = advertise.map(|a| a.parse::<IpAddr>().expect("ip"));
    config.endpoint_leases = leases;
    ApiServer::start(store.clone(), config).await.expect("start apiserver")
}

async fn get(url: &str) -> Option<Value> {
    let r = reqwest::Client::new().get(url).send().await.expect("request");
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    Some(r.json().await.expect("json"))
}

/// Polls `check` every 50 ms until it returns Some, failing after `timeout` with the last value seen.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn endpoint_addresses(base: &str) -> Vec<String> {
    let Some(slice) = get(&format!("{base}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes")).await else {
        return Vec::new();
    };
    let mut out: Vec<String> = slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

async fn wait_for_endpoints(base: &str, want: &[&str], timeout: Duration) {
    poll(&format!("kubernetes endpoints {want:?}"), timeout, || async {
        let have = endpoint_addresses(base).await;
        if have == want { Ok(()) } else { Err(format!("{have:?}")) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_endpoints_list_every_live_apiserver() {
    let store: Arc<dyn Store> = Arc::new(rkube_apiserver::memory_store::MemoryStore::new());
    let leases = EndpointLeases { ttl: Duration::from_secs(2), interval: Duration::from_millis(200) };
    let a = start(&store, Some("127.0.0.2"), leases).await;
    let b = start(&store, Some("127.0.0.3"), leases).await;
    let base = a.url();
    // both listed, whichever wrote last (before: the last server to start replaced the other)
    wait_for_endpoints(&base, &["127.0.0.2", "127.0.0.3"], Duration::from_secs(5)).await;
    let leases_list = get(&format!("{base}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases?labelSelector=apiserver.kubernetes.io/identity%3Dkube-apiserver"))
        .await
        .expect("lease list");
    assert_eq!(leases_list["items"].as_array().map(Vec::len), Some(2), "one identity Lease per server: {leases_list}");

    // b dies without a goodbye (its tasks end, its Lease stays): it drops out once the Lease expires
    drop(b);
    let gone = Instant::now();
    wait_for_endpoints(&base, &["127.0.0.2"], Duration::from_secs(10)).await;
    assert!(gone.elapsed() >= Duration::from_millis(1000), "dropped before its Lease expired: {:?}", gone.elapsed());

    // a third joins; then a stops cleanly and is removed at once, by itself
    let c = start(&store, Some("127.0.0.4"), leases).await;
    wait_for_endpoints(&c.url(), &["127.0.0.2", "127.0.0.4"], Duration::from_secs(5)).await;
    a.shutdown().await;
    assert_eq!(endpoint_addresses(&c.url()).await, ["127.0.0.4"], "a clean stop removes the server's address");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_cluster_dns_makes_the_kube_dns_service_once() {
    let store: Arc<dyn Store> = Arc::new(rkube_apiserver::memory_store::MemoryStore::new());
    let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    config.cluster_dns = Some("10.96.0.10".parse().expect("ip"));
    let a = ApiServer::start(store.clone(), config.clone()).await.expect("start");
    let svc = get(&format!("{}/api/v1/namespaces/kube-system/services/kube-dns", a.url())).await.expect("kube-dns made");
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
    let ports: Vec<(String, i64)> = svc["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| (p["protocol"].as_str().unwrap_or_default().to_string(), p["port"].as_i64().unwrap_or_default()))
        .collect();
    assert_eq!(ports, [("UDP".to_string(), 53), ("TCP".to_string(), 53)]);
    // no advertised address: no endpoints are published
    assert_eq!(endpoint_addresses(&a.url()).await, Vec::<String>::new());
    // a second server on the same store (another IP asked for) leaves it as it is
    config.cluster_dns = Some("10.96.0.11".parse().expect("ip"));
    let b = ApiServer::start(store.clone(), config).await.expect("second server starts with kube-dns existing");
    let again = get(&format!("{}/api/v1/namespaces/kube-system/services/kube-dns", b.url())).await.expect("kube-dns");
    assert_eq!(again["metadata"]["uid"], svc["metadata"]["uid"]);
    assert_eq!(again["spec"]["clusterIP"], "10.96.0.10");
    b.shutdown().await;
    a.shutdown().await;
}

async fn send(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let r = req.send().await.expect("request");
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

fn service(name: &str, node_port: bool, asked_node_port: Option<i64>, asked_ip: Option<&str>) -> Value {
    let mut svc = serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}]}});
    if node_port {
        svc["spec"]["type"] = "NodePort".into();
    }
    if let Some(p) = asked_node_port {
        svc["spec"]["ports"][0]["nodePort"] = p.into();
    }
    if let Some(ip) = asked_ip {
        svc["spec"]["clusterIP"] = ip.into();
    }
    svc
}

/// Creates `svcs` at once, alternating between the servers; the status code and body of each.
async fn create_at_once(bases: &[String], svcs: Vec<Value>) -> Vec<(u16, Value)> {
    let tasks: Vec<_> = svcs
        .into_iter()
        .enumerate()
        .map(|(i, svc)| {
            let url = format!("{}/api/v1/namespaces/default/services", bases[i % bases.len()]);
            tokio::spawn(async move { send(reqwest::Method::POST, &url, Some(svc)).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("create task"));
    }
    out
}

/// Two servers on the stores given (one store for both, or one client each to the same etcd): concurrent
/// creates get distinct values, a value asked for by many is given to one, deletion frees values.
async fn no_value_is_handed_out_twice(store_a: Arc<dyn Store>, store_b: Arc<dyn Store>) {
    let config = || {
        let mut c = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
        // 62 usable addresses (one is the `kubernetes` Service's): random picks collide often
        c.service_network = std::net::Ipv4Addr::new(10, 96, 0, 0);
        c.service_prefix = 26;
        c
    };
    let a = ApiServer::start(store_a, config()).await.expect("start a");
    let b = ApiServer::start(store_b, config()).await.expect("start b");
    let bases = [a.url(), b.url()];

    // 48 Services at once, through both servers, half of them NodePort
    let svcs: Vec<Value> = (0..48).map(|i| service(&format!("s{i}"), i % 2 == 0, None, None)).collect();
    let results = create_at_once(&bases, svcs).await;
    let mut ips = std::collections::BTreeMap::new();
    let mut node_ports = std::collections::BTreeMap::new();
    for (code, svc) in &results {
        assert_eq!(*code, 201, "every create succeeds: {svc}");
        let name = svc["metadata"]["name"].as_str().expect("name").to_string();
        let ip = svc["spec"]["clusterIP"].as_str().expect("clusterIP").to_string();
        if let Some(other) = ips.insert(ip.clone(), name.clone()) {
            panic!("cluster IP {ip} given to both {other} and {name}");
        }
        if let Some(p) = svc["spec"]["ports"][0]["nodePort"].as_i64() {
            if let Some(other) = node_ports.insert(p, name.clone()) {
                panic!("node port {p} given to both {other} and {name}");
            }
        }
    }
    assert_eq!((ips.len(), node_ports.len()), (48, 24));

    // one node port and one cluster IP asked for by 12 creates at once: one wins each, the rest are refused
    let asked: Vec<Value> = (0..12).map(|i| service(&format!("p{i}"), true, Some(30500), None)).collect();
    let won: Vec<_> = create_at_once(&bases, asked).await.into_iter().filter(|(c, _)| *c == 201).collect();
    assert_eq!(won.len(), 1, "exactly one create gets node port 30500: {won:?}");
    let won_ip = won[0].1["spec"]["clusterIP"].as_str().expect("clusterIP").to_string();
    // by its real name: the delete below frees the first address in `ips`, which may be this one
    let won_name = won[0].1["metadata"]["name"].as_str().expect("name").to_string();
    assert!(ips.insert(won_ip.clone(), won_name).is_none(), "cluster IP {won_ip} given twice");
    let free_ip = (2..63).map(|n| format!("10.96.0.{n}")).find(|ip| !ips.contains_key(ip)).expect("a free address");
    let asked: Vec<Value> = (0..12).map(|i| service(&format!("q{i}"), false, None, Some(&free_ip))).collect();
    let results = create_at_once(&bases, asked).await;
    let won: Vec<_> = results.iter().filter(|(c, _)| *c == 201).collect();
    assert_eq!(won.len(), 1, "exactly one create gets cluster IP {free_ip}: {results:?}");
    let refused = results.iter().find(|(c, _)| *c == 422).expect("the others refused");
    assert!(refused.1["message"].as_str().unwrap_or_default().contains("provided IP is already allocated"), "{}", refused.1);

    // deleting frees: the deleted Service's IP and node port can be asked for again at once
    let winner = won[0].1["metadata"]["name"].as_str().expect("name").to_string();
    let (first_ip, first) = ips.iter().next().map(|(ip, n)| (ip.clone(), n.clone())).expect("one");
    let (first_port, port_holder) = node_ports.iter().next().map(|(p, n)| (*p, n.clone())).expect("one");
    for name in [&first, &port_holder, &winner] {
        let (code, body) = send(reqwest::Method::DELETE, &format!("{}/api/v1/namespaces/default/services/{name}", bases[1]), None).await;
        assert!(code == 200 || code == 404, "delete {name}: {code} {body}");
    }
    let again = service("again", true, Some(first_port), Some(&first_ip));
    let (code, body) = send(reqwest::Method::POST, &format!("{}/api/v1/namespaces/default/services", bases[0]), Some(again)).await;
    assert_eq!(code, 201, "the freed IP {first_ip} and node port {first_port}: {body}");
    let again = service("again-ip", false, None, Some(&free_ip));
    let (code, body) = send(reqwest::Method::POST, &format!("{}/api/v1/namespaces/default/services", bases[1]), Some(again)).await;
    assert_eq!(code, 201, "the freed IP {free_ip}: {body}");
    // an update that drops the node ports (type back to ClusterIP) frees them too
    let url = format!("{}/api/v1/namespaces/default/services/again", bases[0]);
    let patch = reqwest::Client::new()
        .patch(&url)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"spec":{"type":"ClusterIP","ports":[{"port":80,"protocol":"TCP"}]}}"#)
        .send()
        .await
        .expect("patch");
    assert!(patch.status().is_success(), "patch to ClusterIP: {}", patch.text().await.unwrap_or_default());
    let reuse = service("reuse-port", true, Some(first_port), None);
    let (code, body) = send(reqwest::Method::POST, &format!("{}/api/v1/namespaces/default/services", bases[1]), Some(reuse)).await;
    assert_eq!(code, 201, "node port {first_port}, dropped by the update: {body}");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_created_through_two_servers_on_one_store_never_share_a_value() {
    let store: Arc<dyn Store> = Arc::new(rkube_apiserver::memory_store::MemoryStore::new());
    no_value_is_handed_out_twice(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_created_through_two_servers_on_one_etcd_never_share_a_value() {
    let etcd = rkube_testsupport::etcd::EtcdCluster::start(1);
    let prefix = format!("/{}", rkube_testsupport::unique_name("alloc"));
    let backend = rkube_apiserver::server::Backend::Etcd { endpoints: etcd.endpoints.clone(), prefix };
    let a = rkube_apiserver::server::open_backend(&backend).await.expect("etcd client a");
    let b = rkube_apiserver::server::open_backend(&backend).await.expect("etcd client b");
    no_value_is_handed_out_twice(a.store.clone(), b.store.clone()).await;
}
