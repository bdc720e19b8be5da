//! The scheduler: watches unbound pods and nodes, picks a node per pod (filters, then scores) and binds it
//! through `pods/binding`. Pods it cannot place get a FailedScheduling event with kube-scheduler's wording and
//! wait in the queue until nodes or pods change.
//!
//! One task owns the cache and the queue (no locks on the hot path); binds run concurrently and report back.
//! Must not: list pods or nodes per pod (the cache is fed by watches), or touch pods that have `nodeName`.

pub mod algorithm;
pub mod bind;
pub mod cache;
pub mod filters;
pub mod queue;
pub mod scores;
pub mod trace;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::algorithm::Algorithm;
use self::cache::{pod_key, Cache};
use self::queue::SchedulingQueue;

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Pods with this `spec.schedulerName` (or none) are ours.
    pub scheduler_name: String,
    /// percentageOfNodesToScore; None = adaptive.
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Record a "Scheduled" event per bound pod (one more API write per pod).
    pub record_scheduled_events: bool,
    /// Binds in flight at most.
    pub max_in_flight_binds: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            scheduler_name: "default-scheduler".into(),
            percentage_of_nodes_to_score: None,
            record_scheduled_events: true,
            max_in_flight_binds: 128,
        }
    }
}

/// Errors that stop the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A watch stream ended (client dropped); the caller decides whether to restart.
    #[error("{kind} watch stream ended")]
    WatchEnded {
        /// What was watched (`pods/nodes`).
        kind: &'static str,
    },
}

enum Input {
    Pod(watcher::Event<Pod>),
    Node(watcher::Event<Node>),
    Bound { key: String, node: String, result: Result<(), kube::Error> },
}

fn is_terminal(p: &Pod) -> bool {
    rkube_apimachinery::pod::is_terminal(p)
}

/// The scheduler's state, driven by [`run`]; public so the benchmark can drive it without an apiserver.
pub struct Scheduler {
    /// The nodes and the pods placed on them.
    pub cache: Cache,
    /// The pods waiting to be scheduled.
    pub queue: SchedulingQueue,
    /// The filter-and-score pass over the cache.
    pub algorithm: Algorithm<rand::rngs::StdRng>,
    config: SchedulerConfig,
    /// pods assumed on a node while their bind is in flight
    assumed: HashMap<String, String>,
    /// last FailedScheduling message recorded per pod (one event per distinct message)
    last_failure: HashMap<String, String>,
    pods_synced: bool,
    nodes_synced: bool,
    pod_init: HashSet<String>,
    node_init: HashSet<String>,
}

impl Scheduler {
    /// New scheduler state.
    pub fn new(config: SchedulerConfig) -> Self {
        let mut algorithm = Algorithm::new(rand::rngs::StdRng::from_os_rng());
        algorithm.percentage = config.percentage_of_nodes_to_score;
        Scheduler {
            cache: Cache::default(),
            queue: SchedulingQueue::default(),
            algorithm,
            config,
            assumed: HashMap::new(),
            last_failure: HashMap::new(),
            pods_synced: false,
            nodes_synced: false,
            pod_init: HashSet::new(),
            node_init: HashSet::new(),
        }
    }

    fn responsible(&self, p: &Pod) -> bool {
        let name = p.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()).unwrap_or("default-scheduler");
        name == self.config.scheduler_name
    }

    /// Apply a pod add/update from the watch.
    pub fn on_pod(&mut self, p: Pod, now: Instant) {
        let key = pod_key(&p);
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty());
        match node {
            Some(n) => {
                self.queue.delete(&key);
                self.assumed.remove(&key);
                self.last_failure.remove(&key);
                if is_terminal(&p) {
                    self.cache.remove_pod_key(&key);
                    self.queue.move_all_to_active(now);
                } else {
                    self.cache.add_pod(&p, &n);
                }
            }
            None => {
                if self.assumed.contains_key(&key) {
                    return;
                }
                if !self.responsible(&p) || p.metadata.deletion_timestamp.is_some() || is_terminal(&p) {
                    self.queue.delete(&key);
                    return;
                }
                self.queue.add_or_update(&key, Arc::new(p), now);
            }
        }
    }

    /// Apply a pod deletion from the watch.
    pub fn on_pod_deleted(&mut self, p: &Pod, now: Instant) {
        let key = pod_key(p);
        self.queue.delete(&key);
        self.assumed.remove(&key);
        self.last_failure.remove(&key);
        if self.cache.has_pod(&key) {
            self.cache.remove_pod_key(&key);
            self.queue.move_all_to_active(now);
        }
    }

    /// Apply a node add/update.
    pub fn on_node(&mut self, n: &Node, now: Instant) {
        self.cache.upsert_node(n);
        self.queue.move_all_to_active(now);
    }

    fn handle_pod_event(&mut self, ev: watcher::Event<Pod>, now: Instant) {
        match ev {
            watcher::Event::Init => self.pod_init.clear(),
            watcher::Event::InitApply(p) => {
                self.pod_init.insert(pod_key(&p));
                self.on_pod(p, now);
            }
            watcher::Event::InitDone => {
                // forget pods that vanished while we were not watching
                let gone: Vec<String> = self.cache.pods().map(|e| format!("{}/{}", e.namespace, e.name)).filter(|k| !self.pod_init.contains(k) && !self.assumed.contains_key(k)).collect();
                for k in gone {
                    self.cache.remove_pod_key(&k);
                    self.queue.delete(&k);
                }
                self.pod_init.clear();
                self.pods_synced = true;
            }
            watcher::Event::Apply(p) => self.on_pod(p, now),
            watcher::Event::Delete(p) => self.on_pod_deleted(&p, now),
        }
    }

    fn handle_node_event(&mut self, ev: watcher::Event<Node>, now: Instant) {
        match ev {
            watcher::Event::Init => self.node_init.clear(),
            watcher::Event::InitApply(n) => {
                self.node_init.insert(n.metadata.name.clone().unwrap_or_default());
                self.on_node(&n, now);
            }
            watcher::Event::InitDone => {
                let gone: Vec<String> = self.cache.nodes.iter().map(|n| n.name.clone()).filter(|n| !self.node_init.contains(n)).collect();
                for n in gone {
                    self.cache.remove_node(&n);
                }
                self.node_init.clear();
                self.nodes_synced = true;
            }
            watcher::Event::Apply(n) => self.on_node(&n, now),
            watcher::Event::Delete(n) => {
                if let Some(name) = &n.metadata.name {
                    self.cache.remove_node(name);
                }
            }
        }
    }

    /// Try the next queued pod: Ok(Some((key, pod, node))) to bind, Ok(None) when the queue is empty,
    /// Err((pod, message)) when it fits nowhere (already parked).
    #[allow(clippy::type_complexity)]
    pub fn schedule_next(&mut self, now: Instant) -> Option<Result<(String, Arc<Pod>, String), (Arc<Pod>, String)>> {
        let (key, pod) = self.queue.pop()?;
        let span = trace::schedule_span(&pod, &key);
        let chosen = span.in_scope(|| self.algorithm.schedule(&self.cache, &pod));
        match &chosen {
            Ok(node) => span.record("node", node.as_str()),
            Err(e) => span.record("error", tracing::field::display(e)),
        };
        match chosen {
            Ok(node) => {
                self.cache.add_pod(&pod, &node);
                self.assumed.insert(key.clone(), node.clone());
                Some(Ok((key, pod, node)))
            }
            Err(e) => {
                self.queue.unschedulable(&key, now);
                Some(Err((pod, e.to_string())))
            }
        }
    }

    /// A bind finished.
    pub fn on_bound(&mut self, key: &str, result: &Result<(), kube::Error>, now: Instant) {
        match result {
            Ok(()) => {
                self.queue.delete(key);
            }
            Err(e) => {
                self.assumed.remove(key);
                self.cache.remove_pod_key(key);
                if crate::context::is_conflict(e) || crate::context::is_not_found(e) {
                    // bound by someone else, or gone: the watch tells us the rest
                    self.queue.delete(key);
                } else {
                    self.queue.retry_later(key, now);
                }
            }
        }
    }

    /// Whether the initial lists of pods and nodes are in.
    pub fn synced(&self) -> bool {
        self.pods_synced && self.nodes_synced
    }
}

fn forward<K, S>(stream: S, tx: mpsc::Sender<Input>, wrap: fn(watcher::Event<K>) -> Input, kind: &'static str) -> tokio::task::JoinHandle<()>
where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while let Some(ev) = s.next().await {
            match ev {
                Ok(ev) => {
                    if tx.send(wrap(ev)).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(kind, error = %e, "scheduler watch failed, retrying"),
            }
        }
    })
}

/// Run the scheduler against the cluster `client` points at, until the client's watches end.
///
/// Boxed here so the scheduler's loop is compiled once, in this crate, not in every caller (see `run_all`).
pub fn run(client: Client, config: SchedulerConfig) -> futures::future::BoxFuture<'static, Result<(), SchedulerError>> {
    Box::pin(run_loop(client, config))
}

async fn run_loop(client: Client, config: SchedulerConfig) -> Result<(), SchedulerError> {
    let (tx, mut rx) = mpsc::channel::<Input>(4096);
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let pod_task = forward(watcher(pods, watcher::Config::default()).default_backoff(), tx.clone(), Input::Pod, "pods");
    let node_task = forward(watcher(nodes, watcher::Config::default()).default_backoff(), tx.clone(), Input::Node, "nodes");
    let mut s = Scheduler::new(config.clone());
    let mut in_flight = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(scheduler = %config.scheduler_name, "scheduler started");
    loop {
        let can_schedule = s.synced() && in_flight < config.max_in_flight_binds && s.queue.active_len() > 0;
        tokio::select! {
            biased;
            input = rx.recv() => {
                let Some(input) = input else { break };
                let now = Instant::now();
                match input {
                    Input::Pod(ev) => s.handle_pod_event(ev, now),
                    Input::Node(ev) => s.handle_node_event(ev, now),
                    Input::Bound { key, node, result } => {
                        in_flight -= 1;
                        if let Err(e) = &result {
                            tracing::warn!(pod = %key, node = %node, error = %e, "bind failed");
                        }
                        s.on_bound(&key, &result, now);
                    }
                }
            }
            _ = tick.tick() => s.queue.flush(Instant::now()),
            _ = std::future::ready(()), if can_schedule => {
                let now = Instant::now();
                // a batch, then back to the events
                for _ in 0..64 {
                    if in_flight >= config.max_in_flight_binds {
                        break;
                    }
                    let Some(r) = s.schedule_next(now) else { break };
                    match r {
                        Ok((key, pod, node)) => {
                            in_flight += 1;
                            let client = client.clone();
                            let tx = tx.clone();
                            let record = config.record_scheduled_events;
                            let span = trace::bind_span(&pod, &key, &node);
                            tokio::spawn(tracing::Instrument::instrument(async move {
                                let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
                                let name = pod.metadata.name.clone().unwrap_or_default();
                                let result = bind::bind(&client, &ns, &name, &node).await;
                                if result.is_ok() && record {
                                    let msg = format!("Successfully assigned {ns}/{name} to {node}");
                                    if let Err(e) = bind::record_event(&client, &pod, "Normal", "Scheduled", &msg).await {
                                        tracing::debug!(pod = %name, error = %e, "recording Scheduled event failed");
                                    }
                                }
                                let _ = tx.send(Input::Bound { key, node, result }).await;
                            }, span));
                        }
                        Err((pod, message)) => {
                            let key = pod_key(&pod);
                            if s.last_failure.get(&key) != Some(&message) {
                                s.last_failure.insert(key.clone(), message.clone());
                                tracing::info!(pod = %key, reason = %message, "pod unschedulable");
                                let client = client.clone();
                                tokio::spawn(async move {
                                    if let Err(e) = bind::record_event(&client, &pod, "Warning", "FailedScheduling", &message).await {
                                        tracing::debug!(pod = %key, error = %e, "recording FailedScheduling event failed");
                                    }
                                    if let Err(e) = bind::mark_unschedulable(&client, &pod, &message).await {
                                        tracing::debug!(pod = %key, error = %e, "marking pod unschedulable failed");
                                    }
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    pod_task.abort();
    node_task.abort();
    Err(SchedulerError::WatchEnded { kind: "pods/nodes" })
}
