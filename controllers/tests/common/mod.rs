//! Test cluster: rkube's apiserver in-process on 127.0.0.1 (memory store), the controller manager and the
//! scheduler from this crate, and a KWOK-like fake kubelet that registers simulated Nodes, renews their
//! Leases, marks bound pods Running/Ready (Succeeded/Failed for images named "succeed"/"fail", Running but not Ready for "unready") and finishes
//! graceful deletions. Everything is stopped when the `Cluster` is dropped.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use rkube_apiserver::memory_store::MemoryStore;
use rkube_apiserver::{ApiServer, ServerConfig};
use rkube_controllers::{Config, SchedulerConfig};
use serde_json::json;
use tokio::task::JoinHandle;

pub struct Cluster {
    pub server: Option<ApiServer>,
    pub client: Client,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    pub controllers: Option<JoinHandle<()>>,
    pub scheduler: Option<JoinHandle<()>>,
    pub kubelet: FakeKubelet,
    pub config: Config,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for h in [self.controllers.take(), self.scheduler.take()].into_iter().flatten() {
            h.abort();
        }
        self.kubelet.stop();
        // the server aborts its task on drop
        self.server.take();
    }
}

pub fn test_config() -> Config {
    let mut c = Config::default();
    c.gc_period = Duration::from_millis(300);
    c.node_monitor_period = Duration::from_millis(500);
    c
}

impl Cluster {
    /// Apiserver + fake kubelet with `nodes` nodes (each 4 cpu / 8Gi / 110 pods), controllers and scheduler.
    pub async fn start(nodes: usize) -> Cluster {
        Self::start_with(nodes, test_config()).await
    }

    pub async fn start_with(nodes: usize, config: Config) -> Cluster {
        let _ = tracing_subscriber_init();
        let store = Arc::new(MemoryStore::new());
        let server = ApiServer::start(store, ServerConfig::new("127.0.0.1:0".parse().expect("addr")))
            .await
            .expect("start apiserver");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).expect("write kubeconfig");
        let kc = kube::Config::new(server.url().parse().expect("url"));
        let client = Client::try_from(kc).expect("client");
        let kubelet = FakeKubelet::start(client.clone());
        for i in 0..nodes {
            kubelet.add_node(&format!("node-{i}"), "4", "8Gi").await;
        }
        let mut c = Cluster {
            server: Some(server),
            client,
            kubeconfig,
            _dir: dir,
            controllers: None,
            scheduler: None,
            kubelet,
            config,
        };
        c.start_controllers();
        c.start_scheduler();
        c
    }

    pub fn start_controllers(&mut self) {
        let client = self.client.clone();
        let config = self.config.clone();
        self.controllers = Some(tokio::spawn(async move {
            if let Err(e) = rkube_controllers::run_all(client, config).await {
                eprintln!("controllers stopped: {e}");
            }
        }));
    }

    /// Kill the controller manager (as a crash would: no cleanup).
    pub fn kill_controllers(&mut self) {
        if let Some(h) = self.controllers.take() {
            h.abort();
        }
    }

    pub fn start_scheduler(&mut self) {
        let client = self.client.clone();
        self.scheduler = Some(tokio::spawn(async move {
            let cfg = SchedulerConfig { record_scheduled_events: false, ..Default::default() };
            if let Err(e) = rkube_controllers::run_scheduler(client, cfg).await {
                eprintln!("scheduler stopped: {e}");
            }
        }));
    }

    /// A fresh namespace for one test.
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = rkube_testsupport::unique_name(prefix);
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
        api.create(&PostParams::default(), &ns).await.expect("create namespace");
        name
    }

    /// Run kubectl against this cluster; returns (success, stdout+stderr). A run past a minute is killed and
    /// fails the test with what it printed.
    pub fn kubectl(&self, args: &[&str]) -> (bool, String) {
        run_kubectl(&self.kubeconfig, args)
    }

    pub async fn kubectl_async(&self, args: &[&str]) -> (bool, String) {
        let kc = self.kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || run_kubectl(&kc, &args.iter().map(String::as_str).collect::<Vec<_>>()))
            .await
            .expect("kubectl task")
    }
}

fn run_kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut cmd = std::process::Command::new(kubectl_bin());
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    let out = rkube_testsupport::output_within(&mut cmd, None, std::time::Duration::from_secs(60), &format!("kubectl {args:?}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The kubectl the tests drive: $RKUBE_TEST_KUBECTL, else kubectl 1.33 from the Cloud SDK when installed (the
/// newest client the project supports), else `kubectl` on PATH.
pub fn kubectl_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RKUBE_TEST_KUBECTL") {
        return PathBuf::from(p);
    }
    let v133 = PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl.1.33");
    if v133.exists() {
        v133
    } else {
        PathBuf::from("kubectl")
    }
}

fn tracing_subscriber_init() -> Option<()> {
    // tests log only when RUST_LOG is set; init once per process
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var("RUST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
        }
    });
    Some(())
}

/// Poll `check` until it returns Some, or panic naming `what` after `timeout`. Polling, not sleeping, decides
/// readiness: each round re-reads the state.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The simulated kubelet for all test nodes.
pub struct FakeKubelet {
    client: Client,
    pub nodes: Arc<Mutex<Vec<String>>>,
    /// nodes that stopped (no lease renewals, pods untouched)
    pub dead: Arc<Mutex<HashSet<String>>>,
    /// images whose pods are left Pending (see `hold`)
    held: Arc<Mutex<HashSet<String>>>,
    ips: Arc<AtomicU32>,
    tasks: Vec<JoinHandle<()>>,
}

fn image_of_pod(p: &Pod) -> String {
    p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone()).unwrap_or_default()
}

/// What a kubelet does with one pod it is shown: finish a graceful deletion, or start a bound pod of one of
/// our live nodes (phase and readiness from its image name).
async fn step_pod(client: &Client, nodes: &Mutex<Vec<String>>, dead: &Mutex<HashSet<String>>, ips: &AtomicU32, p: &Pod) {
    let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else { return };
    let ours = nodes.lock().map(|n| n.contains(&node)).unwrap_or(false);
    let is_dead = dead.lock().map(|d| d.contains(&node)).unwrap_or(false);
    if !ours || is_dead {
        return;
    }
    let ns = p.namespace().unwrap_or_default();
    let papi: Api<Pod> = Api::namespaced(client.clone(), &ns);
    if p.metadata.deletion_timestamp.is_some() {
        let _ = papi.delete(&p.name_any(), &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await;
        return;
    }
    let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    if phase == "Running" || phase == "Succeeded" || phase == "Failed" {
        return;
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let n = ips.fetch_add(1, Ordering::Relaxed) + 1;
    let ip = format!("10.244.{}.{}", (n / 250) % 250, n % 250 + 2);
    let (phase, ready) = match image_of_pod(p).as_str() {
        "succeed" => ("Succeeded", "False"),
        "unready" => ("Running", "False"),
        "fail" => ("Failed", "False"),
        _ => ("Running", "True"),
    };
    let status = json!({"status": {
        "phase": phase,
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "hostIP": "127.0.0.1",
        "startTime": now,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
            {"type": "Ready", "status": ready, "lastTransitionTime": now},
        ],
    }});
    let _ = papi.patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await;
}

impl FakeKubelet {
    pub fn start(client: Client) -> FakeKubelet {
        let nodes: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let dead: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
        let held: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
        let ips = Arc::new(AtomicU32::new(2));
        let mut tasks = Vec::new();
        // pods
        {
            let client = client.clone();
            let (nodes, dead, held, ips) = (nodes.clone(), dead.clone(), held.clone(), ips.clone());
            tasks.push(tokio::spawn(async move {
                let api: Api<Pod> = Api::all(client.clone());
                let mut s = watcher(api, watcher::Config::default()).boxed();
                while let Some(ev) = s.next().await {
                    let p = match ev {
                        Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => p,
                        _ => continue,
                    };
                    let is_held = held.lock().map(|h| h.contains(&image_of_pod(&p))).unwrap_or(false);
                    if p.metadata.deletion_timestamp.is_none() && is_held {
                        continue;
                    }
                    step_pod(&client, &nodes, &dead, &ips, &p).await;
                }
            }));
        }
        // leases
        {
            let client = client.clone();
            let nodes = nodes.clone();
            let dead = dead.clone();
            tasks.push(tokio::spawn(async move {
                let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
                let napi: Api<Node> = Api::all(client.clone());
                loop {
                    let alive: Vec<String> = {
                        let n = nodes.lock().map(|n| n.clone()).unwrap_or_default();
                        let d = dead.lock().map(|d| d.clone()).unwrap_or_default();
                        n.into_iter().filter(|n| !d.contains(n)).collect()
                    };
                    for n in alive {
                        renew_lease(&api, &n).await;
                        // like a kubelet's status loop: a Ready condition someone else overwrote is set back
                        report_ready(&napi, &n).await;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }));
        }
        FakeKubelet { client, nodes, dead, held, ips, tasks }
    }

    /// Pods whose first container runs `image` stay Pending (not started) until `release(image)`.
    pub fn hold(&self, image: &str) {
        if let Ok(mut h) = self.held.lock() {
            h.insert(image.to_string());
        }
    }

    /// Start the pods `hold` kept Pending, and every later one.
    pub async fn release(&self, image: &str) {
        if let Ok(mut h) = self.held.lock() {
            h.remove(image);
        }
        let api: Api<Pod> = Api::all(self.client.clone());
        for p in api.list(&Default::default()).await.expect("list pods").items {
            if image_of_pod(&p) == image {
                step_pod(&self.client, &self.nodes, &self.dead, &self.ips, &p).await;
            }
        }
    }

    /// Register a Ready node.
    pub async fn add_node(&self, name: &str, cpu: &str, memory: &str) {
        self.add_node_with_labels(name, cpu, memory, BTreeMap::new()).await
    }

    pub async fn add_node_with_labels(&self, name: &str, cpu: &str, memory: &str, mut labels: BTreeMap<String, String>) {
        labels.insert("kubernetes.io/hostname".into(), name.into());
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "status": {
                "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "fake kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}],
            }
        }))
        .expect("node json");
        // known to the pod loop before the Node exists, so a pod bound at once is not skipped as someone else's
        if let Ok(mut n) = self.nodes.lock() {
            n.push(name.to_string());
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let created = api.create(&PostParams::default(), &node).await.expect("create node");
        // status is a subresource: make sure it sticks even if create drops it
        let st = json!({"status": node.status});
        let _ = api.patch_status(&created.name_any(), &PatchParams::default(), &Patch::Merge(&st)).await;
        let lapi: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        renew_lease(&lapi, name).await;
    }

    /// Simulate the node dying: its lease is no longer renewed and its pods are left as they are.
    pub fn kill_node(&self, name: &str) {
        if let Ok(mut d) = self.dead.lock() {
            d.insert(name.to_string());
        }
    }

    /// The node comes back: Lease renewals and Ready status resume.
    pub fn revive_node(&self, name: &str) {
        if let Ok(mut d) = self.dead.lock() {
            d.remove(name);
        }
    }

    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

async fn report_ready(api: &Api<Node>, node: &str) {
    let Ok(n) = api.get(node).await else { return };
    let ready = n.status.and_then(|s| s.conditions).unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True");
    if ready {
        return;
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let st = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "fake kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    let _ = api.patch_status(node, &PatchParams::default(), &Patch::Merge(&st)).await;
}

async fn renew_lease(api: &Api<Lease>, node: &str) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let patch = json!({"spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now}});
    match api.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => {}
        Err(_) => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now}
            }))
            .expect("lease json");
            let _ = api.create(&PostParams::default(), &lease).await;
        }
    }
}

/// Pods of a namespace.
pub async fn pods(client: &Client, ns: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&Default::default()).await.map(|l| l.items).unwrap_or_default()
}

pub fn is_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Create any object from JSON in a namespace.
pub async fn create<K>(client: &Client, ns: &str, v: serde_json::Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(v).expect("object json");
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &obj).await.expect("create object")
}

/// Every change to the pods of one namespace in the order the apiserver made it: a watch opened (and its initial
/// list read) before the change under test, folded into the set of pods after each event, so an invariant is
/// checked at every state the cluster went through instead of sampled now and then.
pub struct PodWatch {
    stream: futures::stream::BoxStream<'static, Result<watcher::Event<Pod>, watcher::Error>>,
    pods: BTreeMap<String, Pod>,
    /// Changes seen since the initial list.
    pub changes: usize,
}

impl PodWatch {
    pub async fn start(client: &Client, ns: &str) -> PodWatch {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let mut w = PodWatch { stream: watcher(api, watcher::Config::default()).boxed(), pods: BTreeMap::new(), changes: 0 };
        loop {
            match w.stream.next().await.expect("pod watch ended").expect("pod watch") {
                watcher::Event::Init => {}
                watcher::Event::InitApply(p) => {
                    w.pods.insert(p.name_any(), p);
                }
                watcher::Event::InitDone => return w,
                other => panic!("pod watch: {other:?} before the initial list finished"),
            }
        }
    }

    /// Waits for the next change (a pod added, modified or deleted) until `deadline`; the pods after it.
    pub async fn next(&mut self, deadline: tokio::time::Instant) -> Vec<Pod> {
        let ev = tokio::time::timeout_at(deadline, self.stream.next())
            .await
            .unwrap_or_else(|_| panic!("no pod change before the deadline; pods now: {:?}", self.pods.keys().collect::<Vec<_>>()))
            .expect("pod watch ended")
            .expect("pod watch");
        match ev {
            watcher::Event::Apply(p) => {
                self.pods.insert(p.name_any(), p);
            }
            watcher::Event::Delete(p) => {
                self.pods.remove(&p.name_any());
            }
            // a relist would skip states in between: the invariant would have a gap
            other => panic!("pod watch restarted ({other:?}): some changes were not seen"),
        }
        self.changes += 1;
        self.pods.values().cloned().collect()
    }
}
