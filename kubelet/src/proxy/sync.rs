//! Keeps the proxy's nftables table in step with the apiserver: watch Services and EndpointSlices through kube-rs
//! reflectors, and after each burst of changes render and apply the whole table again.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Client};

use super::model::service_ports;
use super::nft::{apply, ProxyConfig, ProxyError};

/// How long to let changes pile up before one apply (a Deployment rollout touches many slices at once).
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Runs until the watches end or fail. Applies the table once both caches are filled, then after every change.
pub async fn run(client: Client, cfg: ProxyConfig) -> Result<(), ProxyError> {
    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (slice_store, slice_writer) = reflector::store::<EndpointSlice>();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);

    let svc_stream = reflector(svc_writer, watcher(Api::<Service>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let slice_stream =
        reflector(slice_writer, watcher(Api::<EndpointSlice>::all(client), watcher::Config::default()))
            .default_backoff()
            .touched_objects();
    let tx2 = tx.clone();
    let svc_task = tokio::spawn(async move {
        let mut s = std::pin::pin!(svc_stream);
        while s.next().await.is_some() {
            let _ = tx2.try_send(());
        }
    });
    let slice_task = tokio::spawn(async move {
        let mut s = std::pin::pin!(slice_stream);
        while s.next().await.is_some() {
            let _ = tx.try_send(());
        }
    });

    svc_store.wait_until_ready().await.map_err(|e| ProxyError::Watch(e.to_string()))?;
    slice_store.wait_until_ready().await.map_err(|e| ProxyError::Watch(e.to_string()))?;
    let mut applied = None;
    loop {
        let services: Vec<Service> = svc_store.state().iter().map(|s| (**s).clone()).collect();
        let slices: Vec<EndpointSlice> = slice_store.state().iter().map(|s| (**s).clone()).collect();
        let ports = service_ports(&services, &slices);
        if applied.as_ref() != Some(&ports) {
            let cfg2 = cfg.clone();
            let ports2 = ports.clone();
            tokio::task::spawn_blocking(move || apply(&cfg2, &ports2))
                .await
                .map_err(|e| ProxyError::Watch(e.to_string()))??;
            tracing::info!(table = %cfg.table, service_ports = ports.len(), "service proxy rules applied");
            applied = Some(ports);
        }
        if rx.recv().await.is_none() {
            break;
        }
        tokio::time::sleep(DEBOUNCE).await;
        while rx.try_recv().is_ok() {}
    }
    svc_task.abort();
    slice_task.abort();
    Err(ProxyError::Watch("service and endpointslice watches ended".into()))
}
