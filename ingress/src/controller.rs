//! The controller side: watches Ingresses, IngressClasses, Services, EndpointSlices, Secrets and Nodes (kube-rs
//! reflectors), recompiles after every burst of changes and swaps the result into [`Live`]; then, off the
//! routing path, tells the API what it did: `status.loadBalancer.ingress` of each Ingress it serves (the
//! addresses of every node whose ingress is listening, from the Node annotation [`ADDRESS_ANNOTATION`]), a
//! Warning event per problem (once while it lasts) and a Normal `Sync` event per Ingress generation, as
//! ingress-nginx does. At start it makes the IngressClass `rkube` (the cluster's default) if it is missing.
//!
//! Must not: let a slow or failing API write hold up a routing change (reports run in their own task and only
//! the latest state is reported); write a status that is already there (every node's controller writes the
//! same value, so nodes never fight over it).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, Node, ObjectReference, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Client};
use serde_json::json;

use crate::compile::{
    compile, IngressKey, Problem, Snapshot, CONTROLLER, DEFAULT_CLASS_ANNOTATION,
};
use crate::live::Live;

/// The Node annotation that says this node's ingress listens, and on which address.
pub const ADDRESS_ANNOTATION: &str = "ingress.rkube.io/address";
/// Events carry this as their source.
pub const COMPONENT: &str = "rkube-ingress-controller";
/// How long changes pile up before a recompile (a rollout touches many slices at once).
const DEBOUNCE: Duration = Duration::from_millis(10);

/// Who this controller is.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This node's name: the Node whose address annotation the controller writes.
    pub node_name: String,
    /// The address the listeners are bound to (what goes into the Ingress status).
    pub address: IpAddr,
    /// The IngressClass made at start when missing.
    pub class_name: String,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Every watch task ended (the channel they wake the compile through closed); the kinds that were watched.
    #[error("ingress controller: the watch of {0} ended")]
    WatchEnded(&'static str),
}

/// A served Ingress: key, uid, generation, and the status.loadBalancer.ingress IPs it carries now.
type Served = (IngressKey, Option<String>, Option<i64>, Vec<String>);

/// What the reporter writes back: the Ingresses served with their current status, the problems, the addresses.
#[derive(Default, Clone)]
struct Report {
    /// Served Ingresses: key, uid, generation, and the status.loadBalancer.ingress IPs they carry now.
    served: Vec<Served>,
    problems: Vec<Problem>,
    addresses: Vec<String>,
}

fn watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    tx: tokio::sync::mpsc::Sender<()>,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let stream = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while let Some(item) = s.next().await {
            if let Err(e) = item {
                tracing::debug!(error = %e, "ingress controller: watch error (retrying)");
            }
            let _ = tx.try_send(());
        }
    })
}

fn items<K>(store: &Store<K>) -> Vec<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state().iter().map(|o| (**o).clone()).collect()
}

/// Runs the controller until a watch ends: every change is compiled and swapped into `live`.
pub async fn run(
    client: Client,
    cfg: ControllerConfig,
    live: Arc<Live>,
) -> Result<(), ControllerError> {
    tokio::spawn(ensure_class(client.clone(), cfg.class_name.clone()));
    tokio::spawn(annotate_node(
        client.clone(),
        cfg.node_name.clone(),
        Some(cfg.address.to_string()),
    ));

    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let (ing_store, w) = reflector::store::<Ingress>();
    let mut tasks = vec![watch(Api::<Ingress>::all(client.clone()), w, tx.clone())];
    let (class_store, w) = reflector::store::<IngressClass>();
    tasks.push(watch(
        Api::<IngressClass>::all(client.clone()),
        w,
        tx.clone(),
    ));
    let (svc_store, w) = reflector::store::<Service>();
    tasks.push(watch(Api::<Service>::all(client.clone()), w, tx.clone()));
    let (slice_store, w) = reflector::store::<EndpointSlice>();
    tasks.push(watch(
        Api::<EndpointSlice>::all(client.clone()),
        w,
        tx.clone(),
    ));
    let (secret_store, w) = reflector::store::<Secret>();
    tasks.push(watch(Api::<Secret>::all(client.clone()), w, tx.clone()));
    let (node_store, w) = reflector::store::<Node>();
    tasks.push(watch(Api::<Node>::all(client.clone()), w, tx));

    let (report_tx, report_rx) = tokio::sync::watch::channel(Report::default());
    tasks.push(tokio::spawn(report(client, report_rx)));

    // the first compile waits for every cache, so no Ingress is served half resolved
    let _ = ing_store.wait_until_ready().await;
    let _ = class_store.wait_until_ready().await;
    let _ = svc_store.wait_until_ready().await;
    let _ = slice_store.wait_until_ready().await;
    let _ = secret_store.wait_until_ready().await;
    let _ = node_store.wait_until_ready().await;
    tracing::info!(node = %cfg.node_name, address = %cfg.address, "ingress controller: caches filled, serving");
    loop {
        let ingresses = items(&ing_store);
        let classes = items(&class_store);
        let services = items(&svc_store);
        let slices = items(&slice_store);
        let secrets = items(&secret_store);
        let started = std::time::Instant::now();
        let compiled = compile(Snapshot {
            ingresses: &ingresses,
            classes: &classes,
            services: &services,
            slices: &slices,
            secrets: &secrets,
        });
        let by_key: HashMap<IngressKey, &Ingress> = ingresses
            .iter()
            .map(|i| {
                (
                    IngressKey {
                        namespace: i.metadata.namespace.clone().unwrap_or_default(),
                        name: i.metadata.name.clone().unwrap_or_default(),
                    },
                    i,
                )
            })
            .collect();
        let served = compiled
            .ours
            .iter()
            .filter_map(|k| {
                let i = by_key.get(k)?;
                Some((
                    k.clone(),
                    i.metadata.uid.clone(),
                    i.metadata.generation,
                    status_ips(i),
                ))
            })
            .collect();
        let problems = compiled.problems.clone();
        live.swap(compiled);
        tracing::debug!(ingresses = ingresses.len(), took = ?started.elapsed(), "ingress controller: routing table swapped");
        let mut addresses: Vec<String> = items(&node_store)
            .iter()
            .filter_map(|n| {
                n.metadata
                    .annotations
                    .as_ref()?
                    .get(ADDRESS_ANNOTATION)
                    .cloned()
            })
            .collect();
        if addresses.is_empty() {
            // our own Node is not annotated yet
            addresses.push(cfg.address.to_string());
        }
        addresses.sort();
        addresses.dedup();
        let _ = report_tx.send(Report {
            served,
            problems,
            addresses,
        });

        if rx.recv().await.is_none() {
            break;
        }
        tokio::time::sleep(DEBOUNCE).await;
        while rx.try_recv().is_ok() {}
    }
    for t in tasks {
        t.abort();
    }
    Err(ControllerError::WatchEnded(
        "ingresses, services, endpointslices, secrets and nodes",
    ))
}

fn status_ips(i: &Ingress) -> Vec<String> {
    let lb = i
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref());
    lb.into_iter()
        .flatten()
        .filter_map(|e| e.ip.clone().or_else(|| e.hostname.clone()))
        .collect()
}

/// Writes statuses and events for the latest [`Report`]s, one at a time.
async fn report(client: Client, mut rx: tokio::sync::watch::Receiver<Report>) {
    let mut reported: HashSet<Problem> = HashSet::new();
    let mut synced: HashSet<(String, i64)> = HashSet::new();
    while rx.changed().await.is_ok() {
        let r = rx.borrow_and_update().clone();
        for (key, uid, generation, current) in &r.served {
            if *current != r.addresses {
                let api: Api<Ingress> = Api::namespaced(client.clone(), &key.namespace);
                let ips: Vec<_> = r.addresses.iter().map(|a| json!({"ip": a})).collect();
                let patch = json!({"status": {"loadBalancer": {"ingress": ips}}});
                if let Err(e) = api
                    .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::warn!(ingress = %format!("{}/{}", key.namespace, key.name), error = %e, "ingress controller: status update failed");
                }
            }
            if let (Some(uid), Some(g)) = (uid, generation) {
                if synced.insert((uid.clone(), *g)) {
                    event(
                        &client,
                        key,
                        Some(uid),
                        "Normal",
                        "Sync",
                        "Scheduled for sync",
                    )
                    .await;
                }
            }
        }
        let now: HashSet<Problem> = r.problems.iter().cloned().collect();
        let uids: HashMap<&IngressKey, &String> = r
            .served
            .iter()
            .filter_map(|(k, u, _, _)| Some((k, u.as_ref()?)))
            .collect();
        let mut fresh: Vec<&Problem> = now.difference(&reported).collect();
        fresh.sort();
        for p in fresh {
            tracing::warn!(ingress = %format!("{}/{}", p.ingress.namespace, p.ingress.name), reason = p.reason, "{}", p.message);
            event(
                &client,
                &p.ingress,
                uids.get(&p.ingress).map(|u| u.as_str()),
                "Warning",
                p.reason,
                &p.message,
            )
            .await;
        }
        // a problem that went away is reported again if it comes back
        reported = now;
        let live_uids: BTreeSet<&String> = uids.values().copied().collect();
        synced.retain(|(u, _)| live_uids.contains(u));
    }
}

async fn event(
    client: &Client,
    ing: &IngressKey,
    uid: Option<&str>,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let now = chrono::Utc::now();
    let stamp = k8s_openapi::jiff::Timestamp::now();
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                ing.name,
                now.timestamp_nanos_opt().unwrap_or_default()
            )),
            namespace: Some(ing.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("networking.k8s.io/v1".into()),
            kind: Some("Ingress".into()),
            name: Some(ing.name.clone()),
            namespace: Some(ing.namespace.clone()),
            uid: uid.map(str::to_string),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(COMPONENT.into()),
        first_timestamp: Some(Time(stamp)),
        last_timestamp: Some(Time(stamp)),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &ing.namespace);
    if let Err(e) = api.create(&PostParams::default(), &ev).await {
        tracing::debug!(error = %e, reason, "ingress controller: event not recorded");
    }
}

/// Makes the IngressClass `name` (ours, the default) unless it exists; retried until the API serves
/// networking.k8s.io.
async fn ensure_class(client: Client, name: String) {
    let api: Api<IngressClass> = Api::all(client);
    let class: IngressClass = match serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "spec": {"controller": CONTROLLER},
    })) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "ingress controller: IngressClass object");
            return;
        }
    };
    let mut delay = Duration::from_millis(200);
    loop {
        match api.get_opt(&name).await {
            Ok(Some(_)) => return,
            Ok(None) => match api.create(&PostParams::default(), &class).await {
                Ok(_) => {
                    tracing::info!(class = %name, "ingress controller: made IngressClass (the default class)");
                    return;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => return,
                Err(e) => {
                    tracing::debug!(error = %e, "ingress controller: create IngressClass (retrying)")
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "ingress controller: read IngressClass (retrying)")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Sets (or, with None, removes) this node's [`ADDRESS_ANNOTATION`]; retried until the Node is registered.
pub async fn annotate_node(client: Client, node: String, address: Option<String>) {
    let api: Api<Node> = Api::all(client);
    let patch = json!({"metadata": {"annotations": {ADDRESS_ANNOTATION: address}}});
    let mut delay = Duration::from_millis(200);
    loop {
        match api
            .patch(&node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 404 && address.is_none() => return,
            Err(e) => {
                tracing::debug!(node = %node, error = %e, "ingress controller: annotate the Node (retrying)")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
