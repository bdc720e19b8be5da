//! What every reconciler shares: the client, the configuration, one pod watch cache for all controllers,
//! the error type, and small API helpers (create/patch/delete with errors that name the object).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::replicaset::Expectations;

/// Errors of a reconcile; each names the object it failed on.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done (`create pod default/web-1`).
        what: String,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
    /// The object cannot be acted on as written.
    #[error("{what}: {problem}")]
    Invalid {
        /// The object.
        what: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl ReconcileError {
    /// Wrap a kube error with what we were doing.
    pub fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ReconcileError {
        let what = what.into();
        move |source| ReconcileError::Api { what, source }
    }
}

/// True for a 404 from the apiserver.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// True for a 409 AlreadyExists/Conflict.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Tunables of the controller manager.
#[derive(Debug, Clone)]
pub struct Config {
    /// Node lifecycle: lease grace period, default tolerationSeconds, cluster CIDR.
    pub lifecycle: crate::node_lifecycle::LifecycleConfig,
    /// How often the node lifecycle controller re-checks every node.
    pub node_monitor_period: Duration,
    /// How often the garbage collector re-plans.
    pub gc_period: Duration,
    /// Field manager name on writes.
    pub manager: String,
    /// The CronJob controller's time (the system clock unless a test injects one).
    pub clock: crate::cronjob::Clock,
    /// The cluster CA the CSR signer issues with (None: CSRs are approved but not signed).
    pub csr_signing: Option<crate::certificates::SigningCa>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lifecycle: Default::default(),
            node_monitor_period: crate::node_lifecycle::DEFAULT_NODE_MONITOR_PERIOD,
            gc_period: Duration::from_secs(2),
            manager: "rkube-controller-manager".into(),
            clock: Default::default(),
            csr_signing: None,
        }
    }
}

/// State shared by the reconcilers of one controller manager.
pub struct Shared {
    /// The client every API call goes through.
    pub client: Client,
    /// The controller manager's settings.
    pub config: Config,
    /// All pods, from one watch.
    pub pods: Store<Pod>,
    /// Outstanding creates/deletes per owner ("Kind/ns/name").
    pub expectations: Mutex<Expectations>,
}

impl Shared {
    /// Active and inactive pods of a namespace.
    pub fn pods_in(&self, ns: &str) -> Vec<Arc<Pod>> {
        self.pods.state().into_iter().filter(|p| p.metadata.namespace.as_deref() == Some(ns)).collect()
    }

    /// Whether the pod cache holds `ns/name`: (exists, terminating).
    pub fn pod_presence(&self, ns: &str, name: &str) -> (bool, bool) {
        let r = reflector::ObjectRef::<Pod>::new(name).within(ns);
        match self.pods.get(&r) {
            Some(p) => (true, p.metadata.deletion_timestamp.is_some()),
            None => (false, false),
        }
    }
}

/// Fan one watch out to several consumers: the store gets every event, each subscriber gets the touched
/// objects (for `Controller::owns_stream` / `watches_stream`).
pub struct Fanout<K: Resource<DynamicType = ()> + Clone + 'static> {
    /// The cache the watch keeps, read by every consumer.
    pub store: Store<K>,
    senders: Arc<Mutex<Vec<mpsc::UnboundedSender<Result<K, watcher::Error>>>>>,
}

impl<K> Fanout<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    /// Start watching `api` in the background.
    pub fn start(api: Api<K>) -> Self {
        let (store, writer) = reflector::store();
        let senders: Arc<Mutex<Vec<mpsc::UnboundedSender<Result<K, watcher::Error>>>>> = Arc::new(Mutex::new(Vec::new()));
        let out = senders.clone();
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer).touched_objects().boxed();
            while let Some(item) = stream.next().await {
                let item = match item {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::warn!(error = %e, kind = %K::kind(&()), "watch failed, retrying");
                        continue;
                    }
                };
                if let Ok(mut subs) = out.lock() {
                    subs.retain(|s| s.unbounded_send(Ok(item.clone())).is_ok());
                }
            }
        });
        Fanout { store, senders }
    }

    /// A stream of touched objects for one consumer.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Result<K, watcher::Error>> {
        let (tx, rx) = mpsc::unbounded();
        if let Ok(mut s) = self.senders.lock() {
            s.push(tx);
        }
        rx
    }
}

/// JSON merge patch with our field manager.
pub async fn merge_patch<K>(api: &Api<K>, name: &str, manager: &str, patch: serde_json::Value) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let pp = PatchParams { field_manager: Some(manager.to_string()), ..Default::default() };
    api.patch(name, &pp, &Patch::Merge(&patch)).await
}

/// JSON merge patch of the status subresource.
pub async fn merge_patch_status<K>(api: &Api<K>, name: &str, patch: serde_json::Value) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await
}

/// Delete, treating NotFound as done.
pub async fn delete_quiet<K>(api: &Api<K>, name: &str, dp: &DeleteParams) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// "ns/name" of an object for logs and expectations.
pub fn key_of<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}
