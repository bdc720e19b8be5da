//! Several apiservers on one store, in-process (plain HTTP, every request privileged): what one server does must
//! hold when another writes to the same store at the same time.
//! - the `kubernetes` EndpointSlice lists every live server (the lease endpoint reconciler), drops a server
//!   that stops renewing after the TTL and one that stops cleanly at once.

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
