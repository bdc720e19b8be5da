//! The ingress proxy alone, without a cluster, for profiling its request path: one Ingress rule (Host
//! `bench.example`, path `/` Prefix) to one endpoint, compiled as the controller compiles it, served on a plain
//! HTTP listener by the same worker threads `rkube up` runs ([`Workers`]).
//!
//!   cargo run --release -p rkube-ingress --example proxy_alone -- LISTEN_ADDR ENDPOINT_ADDR [WORKERS]
//!   ab -n 3000 -c 8 -H 'Host: bench.example' http://LISTEN_ADDR/
//!
//! WORKERS: the proxy's worker threads (default: one per core, as `rkube up`).

use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use rkube_ingress::compile::{compile, Snapshot};
use rkube_ingress::{live::Live, proxy::Workers, tls};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(endpoint)) = (args.get(1), args.get(2)) else {
        return Err("usage: proxy_alone LISTEN_ADDR ENDPOINT_ADDR [WORKERS]".into());
    };
    let listen: SocketAddr = listen.parse()?;
    let endpoint: SocketAddr = endpoint.parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ingress: Ingress = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"ingressClassName": "rkube", "rules": [{"host": "bench.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "bench", "port": {"number": 80}}}}]}}]}
    }))?;
    let class: IngressClass = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "rkube"}, "spec": {"controller": rkube_ingress::compile::CONTROLLER}
    }))?;
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"ports": [{"port": 80, "targetPort": endpoint.port()}]}
    }))?;
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bench-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "bench"}},
        "addressType": "IPv4",
        "ports": [{"port": endpoint.port()}],
        "endpoints": [{"addresses": [endpoint.ip().to_string()], "conditions": {"ready": true}}]
    }))?;
    let compiled = compile(Snapshot {
        ingresses: &[ingress],
        classes: &[class],
        services: &[service],
        slices: &[slice],
        secrets: &[],
    });
    let live = Arc::new(Live::new(tls::default_certificate()?));
    live.swap(compiled);
    let _guard = rt.enter();
    let http = rkube_ingress::listen(listen, "http")?;
    let https = rkube_ingress::listen(SocketAddr::new(listen.ip(), 0), "https")?;
    let tls = tls::server_config(live.clone())?;
    let n = match args.get(3) {
        Some(w) => w.parse()?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let _workers = Workers::start(n, live, http, https, tls)?;
    eprintln!("proxy_alone: {listen} -> {endpoint}, {n} workers");
    rt.block_on(std::future::pending::<()>());
    Ok(())
}
