//! One watch of Services and EndpointSlices (kube-rs reflectors) shared by everything on the node that follows
//! them: the service proxy and the cluster DNS. Namespaces are watched too: cluster DNS answers NXDOMAIN for a
//! namespace that does not exist and NODATA for one that does. After each burst of changes every consumer gets
//! the full state.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Client};

/// How long to let changes pile up before consumers run (a rollout touches many slices at once).
const DEBOUNCE: Duration = Duration::from_millis(50);

/// The Services, EndpointSlices and Namespaces of the whole cluster at one moment.
#[derive(Debug, Clone, Default)]
pub struct ServiceState {
    pub services: Vec<Service>,
    pub slices: Vec<EndpointSlice>,
    pub namespaces: Vec<Namespace>,
}

/// Something that reacts to the service state; errors are logged and the watch goes on.
pub type Consumer = Box<dyn FnMut(&ServiceState) + Send>;

#[derive(Debug, thiserror::Error)]
pub enum ServiceWatchError {
    #[error("watch of services, endpointslices and namespaces failed before the first list: {0}")]
    Initial(String),
    #[error("watch of services and endpointslices ended")]
    Ended,
}

/// Watches until the streams end. Consumers run once both caches are filled, then after every change.
pub async fn run(client: Client, mut consumers: Vec<Consumer>) -> Result<(), ServiceWatchError> {
    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (slice_store, slice_writer) = reflector::store::<EndpointSlice>();
    let (ns_store, ns_writer) = reflector::store::<Namespace>();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);

    let svc_stream = reflector(svc_writer, watcher(Api::<Service>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let slice_stream =
        reflector(slice_writer, watcher(Api::<EndpointSlice>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .touched_objects();
    let ns_stream = reflector(ns_writer, watcher(Api::<Namespace>::all(client), watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let svc_tx = tx.clone();
    let svc_task = tokio::spawn(async move {
        let mut s = std::pin::pin!(svc_stream);
        while s.next().await.is_some() {
            let _ = svc_tx.try_send(());
        }
    });
    let slice_tx = tx.clone();
    let slice_task = tokio::spawn(async move {
        let mut s = std::pin::pin!(slice_stream);
        while s.next().await.is_some() {
            let _ = slice_tx.try_send(());
        }
    });
    let ns_task = tokio::spawn(async move {
        let mut s = std::pin::pin!(ns_stream);
        while s.next().await.is_some() {
            let _ = tx.try_send(());
        }
    });

    svc_store.wait_until_ready().await.map_err(|e| ServiceWatchError::Initial(e.to_string()))?;
    slice_store.wait_until_ready().await.map_err(|e| ServiceWatchError::Initial(e.to_string()))?;
    ns_store.wait_until_ready().await.map_err(|e| ServiceWatchError::Initial(e.to_string()))?;
    loop {
        let state = ServiceState {
            services: svc_store.state().iter().map(|s| (**s).clone()).collect(),
            slices: slice_store.state().iter().map(|s| (**s).clone()).collect(),
            namespaces: ns_store.state().iter().map(|n| (**n).clone()).collect(),
        };
        for consume in consumers.iter_mut() {
            consume(&state);
        }
        if rx.recv().await.is_none() {
            break;
        }
        tokio::time::sleep(DEBOUNCE).await;
        while rx.try_recv().is_ok() {}
    }
    svc_task.abort();
    slice_task.abort();
    ns_task.abort();
    Err(ServiceWatchError::Ended)
}
