//! The kubelet process: registers the node, keeps its status and lease fresh, watches the pods bound to it,
//! runs one [`PodWorker`] thread per pod, and sends statuses and events to the apiserver. On start it adopts
//! what a previous kubelet left running; pods that are gone from the API are torn down.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Event, EventSource, ObjectReference, Pod, PodStatus, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;

use crate::config::KubeletConfig;
use crate::container::env::EnvSources;
use crate::image::{ImageService, RegistryConfig};
use crate::node::eviction::{self, Candidate, PressureTracker, Signal, Thresholds};
use crate::node::register::{self, NodeConfig};
use crate::node::status::NodeInputs;
use crate::pod::events::{EventType, PodSink};
use crate::pod::network::PodNetwork;
use crate::runtime_client::{RuntimeCli, RuntimeClient};
use crate::pod::worker::{NodeContext, PodUpdate, PodWorker};

mod pod_api;
mod pod_sync;

use pod_api::{ApiOp, PodApi};
use pod_sync::{Decision, PodSync};

/// Why the kubelet could not start (or `rkube down` could not tear down); once running, failures are per pod.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The image store at `path` could not be opened.
    #[error("kubelet: open image store {path}: {message}")]
    Images {
        /// The store's root.
        path: std::path::PathBuf,
        /// The cause, as text.
        message: String,
    },
    /// The kubelet's root dir could not be made, or is not ours, or could not be restricted to 0750.
    #[error("kubelet: root dir: {0}")]
    RootDir(#[from] crate::image::secure_fs::SecureFsError),
    /// The Node could not be registered with the apiserver.
    #[error(transparent)]
    Register(#[from] register::RegisterError),
    /// rkube's default CNI config could not be written to `path`.
    #[error("kubelet: default network {path}: {message}")]
    DefaultNetwork {
        /// The conflist being written.
        path: std::path::PathBuf,
        /// The cause, as text.
        message: String,
    },
    /// The service proxy or the cluster DNS could not be set up.
    #[error("kubelet: {0}")]
    NodeServices(#[from] crate::node_services::NodeServicesError),
    /// The kubelet API could not listen on `addr`, or its TLS config is invalid.
    #[error("kubelet: serve the kubelet API on {addr}: {source}")]
    Serve {
        /// The address the API was to listen on.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The pod workers' connection to the API.
struct ApiSink {
    client: kube::Client,
    tokio: tokio::runtime::Handle,
    ops: tokio::sync::mpsc::UnboundedSender<ApiOp>,
    /// Latest status of each static pod, re-sent when its mirror pod is (re)created.
    static_status: Arc<Mutex<HashMap<String, (Pod, PodStatus)>>>,
}

impl PodSink for ApiSink {
    fn event(&self, pod: &Pod, container: Option<&str>, t: EventType, reason: &str, message: String) {
        crate::trace::event(container, t, reason, &message);
        let _ = self.ops.send(ApiOp::Event(pod.clone(), container.map(str::to_string), t, reason.into(), message));
    }
    fn status(&self, pod: &Pod, status: PodStatus) {
        crate::trace::status(&status);
        if crate::static_pods::is_static(pod) {
            if let (Ok(mut m), Some(uid)) = (self.static_status.lock(), pod.metadata.uid.clone()) {
                m.insert(uid, (pod.clone(), status.clone()));
            }
        }
        let _ = self.ops.send(ApiOp::Status(pod.clone(), status));
    }
    fn finalized(&self, pod: &Pod) {
        let _ = self.ops.send(ApiOp::Delete(pod.clone()));
    }
    fn sources(&self, pod: &Pod, services: bool) -> EnvSources {
        let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let client = self.client.clone();
        // each object the pod names, read by name: a kubelet with its own node identity may read only those
        // (the Node authorizer), never list the namespace's
        let (wanted_cms, wanted_secrets) = referenced_objects(pod);
        let wanted_tokens = crate::volume::projected::wanted_tokens(pod);
        let pod = pod.clone();
        self.tokio.block_on(async move {
            let mut src = EnvSources::default();
            let cms = Api::<ConfigMap>::namespaced(client.clone(), &ns);
            for name in wanted_cms {
                if let Ok(Some(c)) = cms.get_opt(&name).await {
                    src.config_maps.insert(name, c);
                }
            }
            let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
            for name in wanted_secrets {
                if let Ok(Some(c)) = secrets.get_opt(&name).await {
                    src.secrets.insert(name, c);
                }
            }
            if services {
                if let Ok(l) = Api::<Service>::namespaced(client.clone(), &ns).list(&ListParams::default()).await {
                    src.services = l.items;
                }
                if ns != "default" {
                    if let Ok(Some(k)) = Api::<Service>::namespaced(client.clone(), "default").get_opt("kubernetes").await {
                        src.services.push(k);
                    }
                }
            }
            for (audience, expiration) in wanted_tokens {
                let token = request_token(&client, &pod, &audience, expiration).await;
                src.tokens.insert((audience, expiration), token);
            }
            src
        })
    }
}

/// The ConfigMaps and Secrets `pod` names (env, envFrom, volumes, projected sources, imagePullSecrets), as
/// the apiserver's Node authorizer finds them.
fn referenced_objects(pod: &Pod) -> (std::collections::BTreeSet<String>, std::collections::BTreeSet<String>) {
    use serde_json::Value;
    let spec = serde_json::to_value(&pod.spec).unwrap_or_default();
    let (mut cms, mut secrets) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    let name = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let list = |v: &Value, k: &str| v.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
    secrets.extend(list(&spec, "imagePullSecrets").iter().filter_map(|s| name(s, "/name")));
    for c in ["initContainers", "containers", "ephemeralContainers"].iter().flat_map(|k| list(&spec, k)) {
        for e in list(&c, "envFrom").iter().chain(list(&c, "env").iter()) {
            cms.extend(name(e, "/configMapRef/name").into_iter().chain(name(e, "/valueFrom/configMapKeyRef/name")));
            secrets.extend(name(e, "/secretRef/name").into_iter().chain(name(e, "/valueFrom/secretKeyRef/name")));
        }
    }
    for v in list(&spec, "volumes") {
        cms.extend(name(&v, "/configMap/name"));
        secrets.extend(name(&v, "/secret/secretName"));
        for s in v.pointer("/projected/sources").and_then(Value::as_array).into_iter().flatten() {
            cms.extend(name(s, "/configMap/name"));
            secrets.extend(name(s, "/secret/name"));
        }
    }
    (cms, secrets)
}

/// What the node status is built from: addresses, the images in the store, and the pressure conditions
/// (None at registration, before anything is measured).
fn node_inputs(cfg: &KubeletConfig, images: &ImageService, pressure: Option<(bool, bool)>) -> NodeInputs {
    NodeInputs {
        node_ip: cfg.node_ip.clone(),
        hostname: cfg.node_name.clone(),
        images: images
            .store()
            .list()
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.repo_tags.iter().chain(r.repo_digests.iter()).cloned().collect(), r.size))
            .collect(),
        ready: true,
        not_ready_message: String::new(),
        pressure,
    }
}

/// A service account token for `pod` (its service account, bound to the pod so it dies with it) through the
/// TokenRequest API; `audience` empty means the API server's own.
async fn request_token(client: &kube::Client, pod: &Pod, audience: &str, expiration: i64) -> Result<String, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let sa = pod.spec.as_ref().and_then(|s| s.service_account_name.as_deref()).filter(|s| !s.is_empty()).unwrap_or("default");
    let audiences: Vec<&str> = if audience.is_empty() { vec![] } else { vec![audience] };
    let request = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": audiences,
            "expirationSeconds": expiration,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod.metadata.name, "uid": pod.metadata.uid},
        },
    });
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), ns);
    let answer: k8s_openapi::api::authentication::v1::TokenRequest = api
        .create_subresource("token", sa, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("serviceaccount {ns}/{sa}: {e}"))?;
    answer.status.map(|s| s.token).ok_or_else(|| format!("serviceaccount {ns}/{sa}: the TokenRequest came back without a token"))
}

async fn send_status(client: kube::Client, pod: Pod, status: PodStatus) {
    let (Some(name), ns) = (pod.metadata.name.clone(), pod.metadata.namespace.clone().unwrap_or_else(|| "default".into())) else { return };
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let phase = status.phase.clone().unwrap_or_default();
    let patch = serde_json::json!({"status": status});
    let t = std::time::Instant::now();
    match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => tracing::debug!(pod = %name, %phase, ms = t.elapsed().as_secs_f64() * 1000.0, "pod status written"),
        Err(e) => tracing::debug!(pod = %name, error = %e, "update pod status"),
    }
}

async fn send_event(client: kube::Client, node: String, pod: Pod, container: Option<String>, t: EventType, reason: String, message: String) {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = chrono::Utc::now();
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.timestamp_nanos_opt().unwrap_or(0))),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            uid: pod.metadata.uid.clone(),
            field_path: container.map(|c| format!("spec.containers{{{c}}}")),
            ..Default::default()
        },
        reason: Some(reason),
        message: Some(message),
        type_: Some(t.as_str().into()),
        source: Some(EventSource { component: Some("kubelet".into()), host: Some(node.clone()) }),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(node),
        first_timestamp: Some(crate::time::to_k8s(now)),
        last_timestamp: Some(crate::time::to_k8s(now)),
        count: Some(1),
        ..Default::default()
    };
    if let Err(e) = Api::<Event>::namespaced(client, &ns).create(&PostParams::default(), &ev).await {
        tracing::debug!(pod = %name, error = %e, "record event");
    }
}

async fn send_delete(client: kube::Client, pod: Pod) {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let Some(name) = pod.metadata.name.clone() else { return };
    // a static pod's API object is its mirror, whose uid the apiserver chose
    let precondition = if crate::static_pods::is_static(&pod) { None } else { pod.metadata.uid.clone() };
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: precondition.map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
        ..Default::default()
    };
    match Api::<Pod>::namespaced(client, &ns).delete(&name, &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(pod = %name, error = %e, "remove deleted pod from the API"),
    }
}

/// The API server, as the workers' writes reach it.
#[derive(Clone)]
struct KubePodApi {
    client: kube::Client,
    node: String,
}

impl PodApi for KubePodApi {
    fn write_status(&self, pod: Pod, status: PodStatus) -> impl std::future::Future<Output = ()> + Send {
        send_status(self.client.clone(), pod, status)
    }
    fn record_event(
        &self,
        pod: Pod,
        container: Option<String>,
        t: EventType,
        reason: String,
        message: String,
    ) -> impl std::future::Future<Output = ()> + Send {
        send_event(self.client.clone(), self.node.clone(), pod, container, t, reason, message)
    }
    fn remove(&self, pod: Pod) -> impl std::future::Future<Output = ()> + Send {
        send_delete(self.client.clone(), pod)
    }
}

/// A running worker thread, and the latest version of its pod (for the eviction manager).
struct WorkerHandle {
    tx: Sender<PodUpdate>,
    thread: std::thread::JoinHandle<()>,
    pod: Pod,
}

fn spawn_worker(ctx: &Arc<NodeContext>, pod: Pod) -> WorkerHandle {
    let (tx, rx) = std::sync::mpsc::channel();
    let ctx = ctx.clone();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let kept = pod.clone();
    let span = crate::trace::pod_span(&pod, &ctx.config.node_name);
    let thread = std::thread::Builder::new()
        .name(format!("pod-{}", name.chars().take(10).collect::<String>()))
        .stack_size(2 << 20)
        .spawn(move || span.in_scope(|| PodWorker::new(ctx, pod).run(rx)))
        .expect("spawn a pod worker thread");
    WorkerHandle { tx, thread, pod: kept }
}

/// Total memory and CPUs of this machine (for resourceFieldRef defaults and oom_score_adj).
fn machine_totals() -> (i64, i64) {
    let f = crate::node::machine::read(std::path::Path::new("/"), std::path::Path::new("/"));
    (f.memory_total_bytes as i64, f.cpus as i64 * 1000)
}

/// Writes rkube's default bridge network into the CNI config dir, on the given pod CIDR or, without one, on
/// the Node's spec.podCIDR once the node controller has assigned it.
async fn write_default_network(
    client: &kube::Client,
    cfg: &KubeletConfig,
    net: &crate::config::DefaultNetwork,
) -> Result<(), KubeletError> {
    let file = cfg.cni_conf_dir.join("10-rkube.conflist");
    let fail = |message: String| KubeletError::DefaultNetwork { path: file.clone(), message };
    let cidr = match &net.pod_cidr {
        Some(c) => c.clone(),
        None => {
            let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            loop {
                if let Ok(n) = nodes.get(&cfg.node_name).await {
                    if let Some(c) = register::pod_cidr(&n) {
                        break c;
                    }
                }
                if std::time::Instant::now() > deadline {
                    return Err(fail(format!(
                        "node {} got no spec.podCIDR within 120 s; are the controllers running (rkube server)? or pass --pod-cidr",
                        cfg.node_name
                    )));
                }
                tracing::info!(node = %cfg.node_name, "waiting for the node controller to assign a podCIDR");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    std::fs::create_dir_all(&cfg.cni_conf_dir).map_err(|e| fail(format!("create the directory: {e}")))?;
    std::fs::write(&file, crate::pod::network::default_conflist(&net.bridge, &net.bridge, &cidr, net.mtu))
        .map_err(|e| fail(format!("write: {e}")))?;
    tracing::info!(path = %file.display(), pod_cidr = %cidr, bridge = %net.bridge, "default pod network written");
    Ok(())
}

/// Runs the kubelet until `shutdown` resolves. Containers keep running after it returns.
///
/// Boxed here, so the kubelet's code is compiled once, in this crate, and not again in the binary that awaits it.
pub fn run(
    cfg: KubeletConfig,
    client: kube::Client,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> futures::future::BoxFuture<'static, Result<(), KubeletError>> {
    Box::pin(run_node(cfg, client, Box::pin(shutdown)))
}

async fn run_node(cfg: KubeletConfig, client: kube::Client, shutdown: futures::future::BoxFuture<'static, ()>) -> Result<(), KubeletError> {
    // Pods' bundles hold their mounted rootfs (setuid files, device nodes of the image): 0750 as upstream's
    // /var/lib/kubelet; the image store makes itself 0700. Looser modes are tightened, and logged.
    if let Some(was) = crate::image::secure_fs::ensure_private_dir(&cfg.root_dir, 0o750)? {
        tracing::warn!(path = %cfg.root_dir.display(), was = %format!("{was:04o}"), "kubelet root dir was open to other users; restricted it to 0750");
    }
    std::fs::create_dir_all(&cfg.log_dir).ok();
    let images = ImageService::new(&cfg.image_root, RegistryConfig { insecure_registries: cfg.insecure_registries.clone() })
        .map_err(|e| KubeletError::Images { path: cfg.image_root.clone(), message: e.to_string() })?
        .with_limits(cfg.image_limits);
    tracing::info!(path = %cfg.image_root.display(), mode = "0700", limits = ?cfg.image_limits, "image store open");
    let images = Arc::new(images);
    let node_cfg = NodeConfig { name: cfg.node_name.clone(), node_ip: cfg.node_ip.clone(), data_dir: cfg.root_dir.clone(), labels: Default::default() };
    // the Node is created with the eviction manager's view (thresholds, test hooks), not the host's raw one
    let mut pressure = PressureTracker::new(cfg.eviction_hard.clone(), cfg.eviction_pressure_transition);
    let first = pressure.observe(
        &eviction::read_signals(&cfg.root_dir, cfg.eviction_memory_signal_file.as_deref(), cfg.eviction_nodefs_signal_file.as_deref()),
        std::time::Instant::now(),
    );
    let node = register::register(&client, &node_cfg, &node_inputs(&cfg, &images, Some((first.memory_pressure, first.disk_pressure)))).await?;
    tracing::info!(node = %cfg.node_name, ip = %cfg.node_ip, "node registered");
    if let Some(net) = &cfg.default_network {
        write_default_network(&client, &cfg, net).await?;
    }
    let services = crate::node_services::start(&cfg, client.clone()).await?;
    // kubelet API
    let addr: std::net::SocketAddr = format!("{}:{}", cfg.node_ip, crate::node::status::KUBELET_PORT)
        .parse()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 10250)));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| KubeletError::Serve { addr, source })?;
    let api_state = crate::server::ServerState::from_config(&cfg);
    let api_tls = match &cfg.api_tls {
        Some(t) => Some(crate::server::tls::server_config(t).map_err(|e| KubeletError::Serve { addr, source: std::io::Error::other(e.to_string()) })?),
        None => None,
    };
    // over HTTPS every request needs a SubjectAccessReview's yes, asked of the apiserver as this kubelet
    let api_auth = crate::server::auth::Filter::new(client.clone(), cfg.node_name.clone());
    let api_task = tokio::spawn(async move {
        let app = crate::server::router(api_state);
        match api_tls {
            Some(tls) => crate::server::tls::serve(listener, app, tls, api_auth).await,
            None => {
                let _ = axum::serve(listener, app).await;
            }
        }
    });
    // The node is up: give back the clean pages of startup code (see rkube_monitor::resident). They stay in
    // the page cache and come back if touched again.
    tokio::task::spawn_blocking(rkube_monitor::resident::drop_executable_startup_text);
    // status + lease
    let workers: Arc<Mutex<HashMap<String, WorkerHandle>>> = Arc::new(Mutex::new(HashMap::new()));
    let runtime: Arc<dyn RuntimeClient> = Arc::new(RuntimeCli { bin: cfg.runtime_bin.clone(), root: cfg.runtime_root.clone() });
    // status + lease, and node-pressure eviction on the same 10 s beat
    let heartbeat = {
        let workers = workers.clone();
        let client = client.clone();
        let node_cfg = node_cfg.clone();
        let images = images.clone();
        let uid = node.metadata.uid.clone();
        let cfg2 = cfg.clone();
        let runtime = runtime.clone();
        tokio::spawn(async move {
            let mut prev = node.status.clone();
            let mut evicted: HashMap<String, std::time::Instant> = HashMap::new();
            loop {
                if let Err(e) = crate::node::lease::renew(&client, &node_cfg.name, uid.as_deref()).await {
                    tracing::warn!(node = %node_cfg.name, error = %e, "renew node lease");
                }
                // with the test hooks' files in place of the host's free memory and disk (see node::eviction)
                let facts = eviction::read_signals(&node_cfg.data_dir, cfg2.eviction_memory_signal_file.as_deref(), cfg2.eviction_nodefs_signal_file.as_deref());
                let seen = pressure.observe(&facts, std::time::Instant::now());
                if let Some(signal) = seen.signal() {
                    evict_one(&cfg2, runtime.as_ref(), &workers, &mut evicted, signal, &pressure.thresholds, &facts);
                }
                let inputs = node_inputs(&cfg2, &images, Some((seen.memory_pressure, seen.disk_pressure)));
                match register::update_status(&client, &node_cfg, &inputs, prev.as_ref()).await {
                    Ok(n) => prev = n.status,
                    Err(e) => tracing::warn!(node = %node_cfg.name, error = %e, "update node status"),
                }
                tokio::time::sleep(register::STATUS_PERIOD).await;
            }
        })
    };
    let (ops_tx, ops_rx) = tokio::sync::mpsc::unbounded_channel();
    let ops_task = tokio::spawn(pod_api::apply_ops(KubePodApi { client: client.clone(), node: cfg.node_name.clone() }, ops_rx));
    let (mem, cpu) = machine_totals();
    let static_status: Arc<Mutex<HashMap<String, (Pod, PodStatus)>>> = Arc::new(Mutex::new(HashMap::new()));
    let node_uid = node.metadata.uid.clone();
    let ctx = Arc::new(NodeContext {
        runtime: runtime.clone(),
        network: PodNetwork::new(cfg.cni_conf_dir.clone(), cfg.cni_bin_dirs.clone(), cfg.cni_cache_dir.clone()),
        images: images.clone(),
        tokio: tokio::runtime::Handle::current(),
        sink: Arc::new(ApiSink {
            client: client.clone(),
            tokio: tokio::runtime::Handle::current(),
            ops: ops_tx.clone(),
            static_status: static_status.clone(),
        }),
        node_memory_bytes: mem,
        node_cpu_millis: cpu,
        config: cfg.clone(),
    });
    let static_task = cfg.static_pod_dir.clone().map(|dir| {
        tokio::spawn(static_loop(dir, ctx.clone(), workers.clone(), client.clone(), node_uid.clone(), static_status.clone(), ops_tx.clone()))
    });
    let pods: Api<Pod> = Api::all(client.clone());
    let wc = watcher::Config::default().fields(&format!("spec.nodeName={}", cfg.node_name));
    let mut stream = watcher::watcher(pods, wc).boxed();
    let mut sync = PodSync::new(&cfg.node_name);
    let watch = async {
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(error = %e, "pod watch");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for d in sync.step(ev, chrono::Utc::now()) {
                carry_out(&ctx, &workers, d);
            }
        }
    };
    tokio::select! {
        _ = watch => {}
        _ = shutdown => {}
    }
    // detach: containers keep running; the next kubelet adopts them
    let handles: Vec<WorkerHandle> = workers.lock().map(|mut w| w.drain().map(|(_, h)| h).collect()).unwrap_or_default();
    for h in &handles {
        let _ = h.tx.send(PodUpdate::Detach);
    }
    for h in handles {
        let _ = tokio::task::spawn_blocking(move || h.thread.join()).await;
    }
    heartbeat.abort();
    services.abort();
    if let Some(t) = static_task {
        t.abort();
    }
    api_task.abort();
    ops_task.abort();
    Ok(())
}

/// Carries out one decision of the sync loop ([`PodSync::step`]) on this node's workers.
fn carry_out(ctx: &Arc<NodeContext>, workers: &Arc<Mutex<HashMap<String, WorkerHandle>>>, d: Decision) {
    match d {
        Decision::Dispatch { uid, pod } => dispatch(ctx, workers, uid, pod),
        Decision::AdoptOrphans { mut known } => {
            if let Some(dir) = &ctx.config.static_pod_dir {
                known.extend(crate::static_pods::load_dir(dir, &ctx.config.node_name).into_iter().filter_map(|p| p.metadata.uid));
            }
            adopt_orphans(ctx, workers, &known);
        }
    }
}

/// Removes the workers whose thread has ended: finalized pods, and workers that panicked, each logged as an
/// error naming its pod (its next update starts a new worker). Returns the uids of those that panicked.
fn reap_workers(w: &mut HashMap<String, WorkerHandle>) -> Vec<String> {
    let ended: Vec<String> = w.iter().filter(|(_, h)| h.thread.is_finished()).map(|(uid, _)| uid.clone()).collect();
    let mut panicked = Vec::new();
    for uid in ended {
        let Some(h) = w.remove(&uid) else { continue };
        if let Err(payload) = h.thread.join() {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(pod = ?h.pod.metadata.name, uid = %uid, panic = %message, "pod worker died; its next update starts a new one");
            panicked.push(uid);
        }
    }
    panicked
}

fn dispatch(ctx: &Arc<NodeContext>, workers: &Arc<Mutex<HashMap<String, WorkerHandle>>>, uid: String, pod: Pod) {
    let Ok(mut w) = workers.lock() else { return };
    reap_workers(&mut w);
    if let Some(h) = w.get_mut(&uid) {
        if h.tx.send(PodUpdate::Pod(Box::new(pod.clone()))).is_ok() {
            h.pod = pod;
            return;
        }
    }
    // terminal pods already cleaned up do not need a worker again
    w.insert(uid, spawn_worker(ctx, pod));
}

/// The eviction manager's step while a threshold is met: ranks the running pods by their use of the resource
/// against their requests ([`eviction::rank`]) and evicts one. Pods already evicted, terminating or finished,
/// static pods and critical ones are left alone.
fn evict_one(
    cfg: &KubeletConfig,
    runtime: &dyn RuntimeClient,
    workers: &Arc<Mutex<HashMap<String, WorkerHandle>>>,
    evicted: &mut HashMap<String, std::time::Instant>,
    signal: Signal,
    thresholds: &Thresholds,
    facts: &crate::node::machine::MachineFacts,
) {
    // As upstream's waitForPodsCleanup: no other eviction until the last evicted pod's resources are reclaimed
    // (its sandbox torn down: containers stopped, volumes unmounted, cgroup removed), for at most 30 s. Its
    // memory may not be back yet, and the next check would evict a pod for nothing.
    let now = std::time::Instant::now();
    let reclaiming = evicted.iter().find(|(uid, at)| {
        now.duration_since(**at) < eviction::POD_CLEANUP_TIMEOUT && crate::pod::worker::pod_dir(cfg, uid).join("sandbox.json").exists()
    });
    if let Some((uid, _)) = reclaiming {
        tracing::info!(pod_uid = %uid, signal = ?signal, "node under pressure: waiting for the evicted pod's cleanup before evicting another");
        return;
    }
    // Pick the eligible pods under the lock; measure them after, so a disk walk does not hold up dispatch.
    let eligible: Vec<(String, Pod, Sender<PodUpdate>)> = {
        let Ok(w) = workers.lock() else { return };
        evicted.retain(|uid, _| w.contains_key(uid));
        w.iter()
            .filter(|(uid, h)| {
                let pod = &h.pod;
                let source = pod.metadata.annotations.as_ref().and_then(|a| a.get(crate::static_pods::SOURCE_ANNOTATION));
                !(h.thread.is_finished()
                    || evicted.contains_key(*uid)
                    || pod.metadata.deletion_timestamp.is_some()
                    || source.is_some_and(|s| s != "api")
                    || rkube_apimachinery::pod::is_terminal(pod))
            })
            .map(|(uid, h)| (uid.clone(), h.pod.clone(), h.tx.clone()))
            .collect()
    };
    let mut cands: Vec<(Candidate, Sender<PodUpdate>)> = Vec::new();
    for (uid, pod, tx) in &eligible {
        let (usage, resource) = match signal {
            Signal::Memory => {
                let rel = crate::container::qos::pod_cgroup_parent(&cfg.cgroup_root, pod);
                (runtime.pod_memory_bytes(&rel), "memory")
            }
            Signal::Disk => {
                let (ns, name) = (pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or_default());
                let logs = cfg.log_dir.join(format!("{ns}_{name}_{uid}"));
                (eviction::pod_disk_bytes(&crate::pod::worker::pod_dir(cfg, uid), &logs), "ephemeral-storage")
            }
        };
        let request: i64 = pod
            .spec
            .as_ref()
            .map(|s| &s.containers)
            .into_iter()
            .flatten()
            .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get(resource))
            .filter_map(|q| rkube_apimachinery::quantity::value(q).ok())
            .sum();
        let c = Candidate {
            uid: uid.clone(),
            name: format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or_default()),
            priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
            usage,
            request: request.max(0) as u64,
        };
        cands.push((c, tx.clone()));
    }
    let list: Vec<Candidate> = cands.iter().map(|(c, _)| c.clone()).collect();
    let Some(i) = eviction::rank(&list) else {
        tracing::warn!(signal = ?signal, "node under pressure, and no pod to evict");
        return;
    };
    let (victim, tx) = &cands[i];
    let msg = eviction::message(signal, thresholds, facts, &container_uses(cfg, runtime, signal, &eligible[i].0, &eligible[i].1));
    tracing::warn!(pod = %victim.name, signal = ?signal, usage = victim.usage, request = victim.request, "node under pressure: evicting");
    if tx.send(PodUpdate::Evict(msg)).is_ok() {
        evicted.insert(victim.uid.clone(), std::time::Instant::now());
    }
}

/// The evicted pod's containers for upstream's message: each one's use of the resource (memory: its cgroup's
/// working set; disk: its writable layer and logs, as upstream counts a container's ephemeral storage) and its
/// request as the spec wrote it.
fn container_uses(cfg: &KubeletConfig, runtime: &dyn RuntimeClient, signal: Signal, uid: &str, pod: &Pod) -> Vec<eviction::ContainerUse> {
    let short = crate::pod::worker::short_uid(uid);
    let usage: std::collections::BTreeMap<String, u64> = match signal {
        Signal::Memory => {
            let rel = crate::container::qos::pod_cgroup_parent(&cfg.cgroup_root, pod);
            runtime.container_memory_bytes(&rel, &short)
        }
        Signal::Disk => {
            let (ns, name) = (pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or_default());
            let logs = cfg.log_dir.join(format!("{ns}_{name}_{uid}"));
            let layers = cfg.image_root.join("containers");
            eviction::newest_container_ids(&layers, &short)
                .into_iter()
                .map(|(c, id)| {
                    let used = crate::volume::empty_dir::usage_bytes(&layers.join(&id).join("upper")) + crate::volume::empty_dir::usage_bytes(&logs.join(&c));
                    (c, used)
                })
                .collect()
        }
    };
    pod.spec
        .as_ref()
        .map(|s| &s.containers)
        .into_iter()
        .flatten()
        .map(|c| eviction::ContainerUse {
            name: c.name.clone(),
            usage: usage.get(&c.name).copied().unwrap_or(0),
            request: c.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get(signal.resource())).map(|q| q.0.clone()),
        })
        .collect()
}

/// Pod directories of pods the API no longer has (not in `known`): tear them down.
fn adopt_orphans(ctx: &Arc<NodeContext>, workers: &Arc<Mutex<HashMap<String, WorkerHandle>>>, known: &[String]) {
    let Ok(rd) = std::fs::read_dir(ctx.config.root_dir.join("pods")) else { return };
    let on_disk: Vec<(String, Pod)> = rd
        .flatten()
        .filter_map(|e| {
            let uid = e.file_name().to_string_lossy().into_owned();
            let pod = std::fs::read(e.path().join("pod.json")).ok().and_then(|b| serde_json::from_slice::<Pod>(&b).ok())?;
            Some((uid, pod))
        })
        .collect();
    for (uid, pod) in pod_sync::orphans(known, on_disk, chrono::Utc::now()) {
        tracing::info!(pod = ?pod.metadata.name, uid = %uid, "tearing down a pod the API no longer has");
        dispatch(ctx, workers, uid, pod);
    }
}

/// A sink for teardown without an apiserver (`rkube down`): drops statuses and events.
struct NullSink;

impl PodSink for NullSink {
    fn event(&self, _: &Pod, _: Option<&str>, _: EventType, reason: &str, message: String) {
        tracing::debug!(reason, %message, "event during teardown");
    }
    fn status(&self, _: &Pod, _: PodStatus) {}
    fn finalized(&self, _: &Pod) {}
    fn sources(&self, _: &Pod, _: bool) -> EnvSources {
        EnvSources::default()
    }
}

/// Stops and removes every pod recorded under the kubelet's root (containers, sandboxes, CNI attachments,
/// volumes, cgroups, rootfs mounts, logs), then whatever the runtime still holds under its root. For
/// `rkube down`; needs no apiserver. Returns how many pods were torn down.
pub fn teardown_all(cfg: &KubeletConfig, tokio: tokio::runtime::Handle) -> Result<usize, KubeletError> {
    let images = ImageService::new(&cfg.image_root, RegistryConfig::default())
        .map_err(|e| KubeletError::Images { path: cfg.image_root.clone(), message: e.to_string() })?;
    let ctx = Arc::new(NodeContext {
        runtime: Arc::new(RuntimeCli { bin: cfg.runtime_bin.clone(), root: cfg.runtime_root.clone() }),
        network: PodNetwork::new(cfg.cni_conf_dir.clone(), cfg.cni_bin_dirs.clone(), cfg.cni_cache_dir.clone()),
        images: Arc::new(images),
        tokio,
        sink: Arc::new(NullSink),
        node_memory_bytes: 0,
        node_cpu_millis: 0,
        config: cfg.clone(),
    });
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(cfg.root_dir.join("pods")) {
        for e in rd.flatten() {
            let Some(mut pod) = std::fs::read(e.path().join("pod.json")).ok().and_then(|b| serde_json::from_slice::<Pod>(&b).ok())
            else {
                let _ = crate::volume::teardown_all(&e.path());
                let _ = std::fs::remove_dir_all(e.path());
                continue;
            };
            pod.metadata.deletion_timestamp = Some(crate::time::to_k8s(chrono::Utc::now()));
            pod.metadata.deletion_grace_period_seconds = Some(0);
            let mut w = PodWorker::new(ctx.clone(), pod);
            for _ in 0..5 {
                w.sync();
                if w.is_finalized() {
                    break;
                }
            }
            n += 1;
        }
    }
    // anything the runtime still knows (a crash between create and record)
    if let Ok(rd) = std::fs::read_dir(&cfg.runtime_root) {
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let _ = ctx.runtime.kill(&id, "KILL");
            let _ = ctx.runtime.delete(&id);
        }
    }
    Ok(n)
}

/// Runs the static pods of `dir` and keeps their mirror pods in the API, every 2 s.
async fn static_loop(
    dir: std::path::PathBuf,
    ctx: Arc<NodeContext>,
    workers: Arc<Mutex<HashMap<String, WorkerHandle>>>,
    client: kube::Client,
    node_uid: Option<String>,
    statuses: Arc<Mutex<HashMap<String, (Pod, PodStatus)>>>,
    ops: tokio::sync::mpsc::UnboundedSender<ApiOp>,
) {
    let node = ctx.config.node_name.clone();
    let mut running: HashMap<String, Pod> = HashMap::new();
    loop {
        let pods = crate::static_pods::load_dir(&dir, &node);
        let now: HashMap<String, Pod> = pods.into_iter().filter_map(|p| Some((p.metadata.uid.clone()?, p))).collect();
        for (uid, pod) in &now {
            if running.get(uid) != Some(pod) {
                dispatch(&ctx, &workers, uid.clone(), pod.clone());
            }
            let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            if let Ok(None) = crate::static_pods::current_mirror(&api, pod).await {
                let m = crate::static_pods::mirror(pod, &node, node_uid.as_deref());
                match api.create(&PostParams::default(), &m).await {
                    Ok(_) => {
                        tracing::info!(pod = %name, "created mirror pod");
                        let last = statuses.lock().ok().and_then(|s| s.get(uid).cloned());
                        if let Some((p, st)) = last {
                            let _ = ops.send(ApiOp::Status(p, st));
                        }
                    }
                    Err(e) => tracing::warn!(pod = %name, error = %e, "create mirror pod"),
                }
            }
        }
        for (uid, pod) in &running {
            if !now.contains_key(uid) {
                let mut p = pod.clone();
                p.metadata.deletion_timestamp = Some(crate::time::to_k8s(chrono::Utc::now()));
                p.metadata.deletion_grace_period_seconds = p.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).or(Some(30));
                dispatch(&ctx, &workers, uid.clone(), p);
                if let Ok(mut s) = statuses.lock() {
                    s.remove(uid);
                }
            }
        }
        running = now;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::store::{ImageRecord, LayerRecord};
    use crate::runtime_client::fake::{Call, FakeRuntime};
    use std::time::Duration;

    /// The API side of the workers: every status, event and removal, by pod name. With `panic_on_status`, the
    /// first status of that pod panics (a worker that dies).
    #[derive(Default)]
    struct RecordingSink {
        statuses: Mutex<Vec<(String, PodStatus)>>,
        events: Mutex<Vec<(String, String)>>,
        finalized: Mutex<Vec<String>>,
        panic_on_status: Mutex<Option<String>>,
    }

    fn name(pod: &Pod) -> String {
        pod.metadata.name.clone().unwrap_or_default()
    }

    impl PodSink for RecordingSink {
        fn event(&self, pod: &Pod, _: Option<&str>, _: EventType, reason: &str, _: String) {
            self.events.lock().expect("events").push((name(pod), reason.to_string()));
        }
        fn status(&self, pod: &Pod, status: PodStatus) {
            let boom = {
                let mut p = self.panic_on_status.lock().expect("panic_on_status");
                if p.as_deref() == Some(name(pod).as_str()) { p.take() } else { None }
            };
            if let Some(n) = boom {
                panic!("injected by the test: status of {n}");
            }
            self.statuses.lock().expect("statuses").push((name(pod), status));
        }
        fn finalized(&self, pod: &Pod) {
            self.finalized.lock().expect("finalized").push(name(pod));
        }
        fn sources(&self, _: &Pod, _: bool) -> EnvSources {
            EnvSources::default()
        }
    }

    const IMAGE: &str = "example.test/app:1";
    const IMAGE_ID: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const DIFF_ID: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const WAIT: Duration = Duration::from_secs(20);

    /// A node n1 of the sync loop: the fake runtime, the recording sink, real worker threads. Its monitor is a
    /// script with `monitor_body`.
    struct Node {
        _dir: tempfile::TempDir,
        _tokio: tokio::runtime::Runtime,
        runtime: Arc<FakeRuntime>,
        sink: Arc<RecordingSink>,
        ctx: Arc<NodeContext>,
        workers: Arc<Mutex<HashMap<String, WorkerHandle>>>,
        sync: PodSync,
    }

    fn node(monitor_body: &str) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = Arc::new(RecordingSink::default());
        let (tokio, runtime, ctx) = crate::pod::worker::tests::node_context(dir.path(), monitor_body, sink.clone());
        Node { _dir: dir, _tokio: tokio, runtime, sink, ctx, workers: Arc::new(Mutex::new(HashMap::new())), sync: PodSync::new("n1") }
    }

    /// Pod `name` (uid `uid`) bound to `node`: host network (no CNI), one container `app` of `image`, never
    /// pulled.
    fn pod(name: &str, uid: &str, node: &str, image: &str) -> Pod {
        let mut p = pod_sync::tests::bound(name, uid, node);
        let spec = p.spec.as_mut().expect("spec");
        spec.host_network = Some(true);
        spec.containers[0].image = Some(image.into());
        spec.containers[0].image_pull_policy = Some("Never".into());
        p
    }

    impl Node {
        /// One watch event through the sync loop, as `run` handles it.
        fn watch(&mut self, ev: watcher::Event<Pod>) {
            for d in self.sync.step(ev, chrono::Utc::now()) {
                carry_out(&self.ctx, &self.workers, d);
            }
        }

        fn pod_dir(&self, uid: &str) -> std::path::PathBuf {
            crate::pod::worker::pod_dir(&self.ctx.config, uid)
        }

        fn worker_uids(&self) -> Vec<String> {
            let mut v: Vec<String> = self.workers.lock().expect("workers").keys().cloned().collect();
            v.sort();
            v
        }

        fn worker_thread(&self, uid: &str) -> Option<std::thread::ThreadId> {
            self.workers.lock().expect("workers").get(uid).map(|h| h.thread.thread().id())
        }

        fn sandboxes_made(&self, id: &str) -> usize {
            self.runtime.calls().iter().filter(|c| **c == Call::Sandbox(id.into())).count()
        }

        /// The reason and message of container `app` waiting, in the latest status of pod `name`.
        fn waiting(&self, name: &str) -> Option<(String, String)> {
            self.sink.statuses.lock().expect("statuses").iter().rev().find(|(n, _)| n == name).and_then(|(_, st)| {
                let w = st.container_statuses.as_ref()?.iter().find(|c| c.name == "app")?.state.as_ref()?.waiting.clone()?;
                Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
            })
        }

        /// Waits for a status of pod `name` whose container `app` waits with `reason`; returns its message.
        fn wait_for_waiting(&self, name: &str, reason: &str) -> String {
            rkube_testsupport::poll_until(&format!("pod {name}: app waiting with {reason}"), WAIT, || {
                self.waiting(name).filter(|(r, _)| r == reason).map(|(_, m)| m)
            })
        }

        fn wait_finalized(&self, name: &str) {
            rkube_testsupport::poll_until(&format!("pod {name} finalized"), WAIT, || {
                self.sink.finalized.lock().expect("finalized").iter().any(|n| n == name).then_some(())
            });
        }

        /// The image in the local store, its one layer unpacked.
        fn add_image(&self) {
            let store = self.ctx.images.store();
            let d = store.layer_dir(DIFF_ID).expect("layer dir");
            std::fs::create_dir_all(d.join("bin")).expect("mkdir layer");
            std::fs::write(d.join("bin").join("app"), b"#!/bin/sh\n").expect("write layer file");
            store
                .add_image(ImageRecord {
                    id: IMAGE_ID.into(),
                    manifest_digest: IMAGE_ID.into(),
                    repo_tags: vec![IMAGE.into()],
                    repo_digests: vec![],
                    layers: vec![LayerRecord { digest: DIFF_ID.into(), diff_id: DIFF_ID.into(), size: 1, media_type: String::new() }],
                    size: 1,
                    created: 0,
                    last_used: 0,
                })
                .expect("add image");
        }
    }

    impl Drop for Node {
        /// Stops the workers still running (a failing test's), as the kubelet does on shutdown, before the
        /// tempdir goes.
        fn drop(&mut self) {
            let handles: Vec<WorkerHandle> = self.workers.lock().map(|mut w| w.drain().map(|(_, h)| h).collect()).unwrap_or_default();
            for h in &handles {
                let _ = h.tx.send(PodUpdate::Detach);
            }
            for h in handles {
                let _ = h.thread.join();
            }
        }
    }

    /// A pod bound here gets a worker that makes its sandbox; with its image missing (pull policy Never) that is
    /// reported and nothing of the container is made. Deleted (a force delete: no grace), the worker removes
    /// the sandbox, the pod's directory and cgroup, reports it finalized and ends.
    #[test]
    fn a_pod_bound_here_runs_and_its_deletion_removes_everything() {
        let mut n = node("echo ok $$");
        let p = pod("web", "u1", "n1", IMAGE);
        n.watch(watcher::Event::Apply(p.clone()));
        assert_eq!(n.worker_uids(), ["u1"]);
        let msg = n.wait_for_waiting("web", "ErrImageNeverPull");
        assert_eq!(msg, format!("Container image \"{IMAGE}\" is not present with pull policy of Never"));
        assert_eq!(n.runtime.containers(), ["sb-u1"], "the sandbox only: the missing image made no container");
        assert!(!n.pod_dir("u1").join("containers/app/meta.json").exists(), "no container record");
        assert!(n.pod_dir("u1").join("sandbox.json").exists());
        assert!(n.sink.events.lock().expect("events").contains(&("web".into(), "ErrImageNeverPull".into())));

        n.watch(watcher::Event::Delete(p));
        n.wait_finalized("web");
        rkube_testsupport::poll_until("the worker ends", WAIT, || {
            n.workers.lock().expect("workers").get("u1").is_none_or(|h| h.thread.is_finished()).then_some(())
        });
        assert_eq!(n.runtime.containers(), Vec::<String>::new(), "the sandbox is gone from the runtime");
        let calls = n.runtime.calls();
        assert!(calls.contains(&Call::Kill("sb-u1".into(), "KILL".into())) && calls.contains(&Call::Delete("sb-u1".into())), "{calls:?}");
        assert!(calls.iter().any(|c| matches!(c, Call::RemovePodCgroup(_))), "the pod's cgroup is removed: {calls:?}");
        assert!(!n.pod_dir("u1").exists(), "the pod's directory is removed");
    }

    /// The watch's field selector keeps other nodes' pods out; one that gets through anyway starts nothing.
    #[test]
    fn a_pod_bound_to_another_node_is_ignored() {
        let mut n = node("echo ok $$");
        n.watch(watcher::Event::Apply(pod("web", "u1", "n2", IMAGE)));
        n.watch(watcher::Event::Delete(pod("web", "u1", "n2", IMAGE)));
        assert_eq!(n.worker_uids(), Vec::<String>::new());
        assert_eq!(n.runtime.calls(), vec![], "the runtime was never asked");
        assert!(!n.pod_dir("u1").exists());
    }

    /// A new version of the pod goes to its running worker (no second worker, no second sandbox), which starts
    /// its container from the new spec. A pod deleted and made again under the same name is another pod (another
    /// uid): the old worker tears its pod down, a new one starts.
    #[test]
    fn a_changed_pod_reaches_its_worker_and_a_recreated_one_gets_a_new_worker() {
        let mut n = node("echo ok $$");
        let v1 = pod("web", "u1", "n1", IMAGE);
        n.watch(watcher::Event::Apply(v1.clone()));
        n.wait_for_waiting("web", "ErrImageNeverPull");
        let thread = n.worker_thread("u1");
        let v2 = pod("web", "u1", "n1", "example.test/app:2");
        n.watch(watcher::Event::Apply(v2.clone()));
        rkube_testsupport::poll_until("the worker retries with the new image", WAIT, || {
            n.waiting("web").filter(|(_, m)| m.contains("\"example.test/app:2\" is not present")).map(|_| ())
        });
        assert_eq!(n.worker_thread("u1"), thread, "the same worker");
        assert_eq!(n.workers.lock().expect("workers").get("u1").map(|h| h.pod.clone()), Some(v2.clone()), "holding the new version");
        assert_eq!(n.sandboxes_made("sb-u1"), 1, "the sandbox is kept");

        // deleted and made again: uid u2
        n.watch(watcher::Event::Delete(v2));
        n.watch(watcher::Event::Apply(pod("web", "u2", "n1", IMAGE)));
        n.wait_finalized("web");
        rkube_testsupport::poll_until("the new pod's sandbox", WAIT, || (n.runtime.containers() == ["sb-u2"]).then_some(()));
        assert!(!n.pod_dir("u1").exists() && n.pod_dir("u2").exists());
        assert_eq!(n.sandboxes_made("sb-u2"), 1);
    }

    /// A worker that dies (here: a panic while reporting its first status) is reaped and reported by the next
    /// dispatch; the pod's next update starts a new worker, which runs the pod.
    #[test]
    fn a_worker_that_dies_is_reported_and_replaced() {
        let mut n = node("echo ok $$");
        *n.sink.panic_on_status.lock().expect("panic_on_status") = Some("web".into());
        let p = pod("web", "u1", "n1", IMAGE);
        n.watch(watcher::Event::Apply(p.clone()));
        rkube_testsupport::poll_until("the worker dies", WAIT, || {
            n.workers.lock().expect("workers").get("u1").is_some_and(|h| h.thread.is_finished()).then_some(())
        });
        assert_eq!(reap_workers(&mut n.workers.lock().expect("workers")), ["u1"], "reported as died");
        assert_eq!(n.worker_uids(), Vec::<String>::new());
        n.watch(watcher::Event::Apply(p));
        assert_eq!(n.worker_uids(), ["u1"]);
        n.wait_for_waiting("web", "ErrImageNeverPull");
        assert_eq!(n.runtime.containers(), ["sb-u1"]);
        // a worker that ended normally (finalized) is reaped without a report
        n.watch(watcher::Event::Delete(pod("web", "u1", "n1", IMAGE)));
        n.wait_finalized("web");
        rkube_testsupport::poll_until("the worker ends", WAIT, || {
            n.workers.lock().expect("workers").get("u1").is_some_and(|h| h.thread.is_finished()).then_some(())
        });
        assert_eq!(reap_workers(&mut n.workers.lock().expect("workers")), Vec::<String>::new());
    }

    /// After a restart, the first complete list decides: pods on disk the API no longer has are torn down
    /// (their sandbox removed from the runtime), the listed ones are adopted and kept.
    #[test]
    fn pods_the_api_no_longer_has_are_torn_down_after_the_list() {
        let mut n = node("echo ok $$");
        let kept = pod("kept", "u1", "n1", IMAGE);
        let gone = pod("gone", "u9", "n1", IMAGE);
        // what a previous kubelet left: both pods' records, and their sandboxes in the runtime
        for (p, uid) in [(&kept, "u1"), (&gone, "u9")] {
            let dir = n.pod_dir(uid);
            std::fs::create_dir_all(&dir).expect("pod dir");
            std::fs::write(dir.join("pod.json"), serde_json::to_vec(p).expect("pod json")).expect("write pod.json");
            let sb = crate::pod::worker::SandboxRecord {
                id: format!("sb-{uid}"),
                pid: std::process::id() as i32,
                netns: None,
                ipc: None,
                uts: None,
                ip: Some("127.0.0.1".into()),
                host_network: true,
                cni_conf_dir: None,
            };
            std::fs::write(dir.join("sandbox.json"), serde_json::to_vec(&sb).expect("sandbox json")).expect("write sandbox.json");
            n.runtime.add_container(&format!("sb-{uid}"), "running");
        }
        n.watch(watcher::Event::Init);
        n.watch(watcher::Event::InitApply(kept.clone()));
        n.watch(watcher::Event::InitDone);
        n.wait_finalized("gone");
        rkube_testsupport::poll_until("the orphan's sandbox is removed", WAIT, || (n.runtime.containers() == ["sb-u1"]).then_some(()));
        assert!(!n.pod_dir("u9").exists(), "the orphan's directory is removed");
        n.wait_for_waiting("kept", "ErrImageNeverPull");
        assert_eq!(n.sandboxes_made("sb-u1"), 0, "the adopted pod keeps the sandbox it had");
        assert!(n.pod_dir("u1").join("sandbox.json").exists());
    }

    /// Unmounts a rootfs a failing test left mounted, so its tempdir can go.
    struct Unmount(std::path::PathBuf);

    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    /// A container whose start fails after the runtime made it (the monitor dies before reporting) is reported
    /// and leaves nothing in the runtime but the sandbox; the pod's deletion then removes that too. Mounts the
    /// image's overlay rootfs: needs root.
    #[test]
    fn a_monitor_that_dies_is_reported_and_leaves_nothing() {
        rkube_testsupport::require_root();
        let mut n = node("exit 3");
        n.add_image();
        let _unmount = Unmount(n.pod_dir("u1").join("containers/app/bundle/rootfs"));
        let mut p = pod("web", "u1", "n1", IMAGE);
        p.spec.as_mut().expect("spec").containers[0].image_pull_policy = Some("IfNotPresent".into());
        n.watch(watcher::Event::Apply(p.clone()));
        n.wait_for_waiting("web", "CreateContainerError");
        assert!(n.runtime.calls().contains(&Call::Delete("u1-app-0".into())), "{:?}", n.runtime.calls());
        assert_eq!(n.runtime.containers(), ["sb-u1"]);
        n.watch(watcher::Event::Delete(p));
        n.wait_finalized("web");
        rkube_testsupport::poll_until("the sandbox is removed", WAIT, || n.runtime.containers().is_empty().then_some(()));
        assert!(!n.pod_dir("u1").exists());
        let layers: Vec<_> = std::fs::read_dir(n.ctx.images.store().containers_dir())
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(layers, Vec::<std::ffi::OsString>::new(), "no container's writable layer left in the image store");
    }

    #[test]
    fn a_pod_names_the_configmaps_and_secrets_it_reads() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "imagePullSecrets": [{"name": "pull"}],
                "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "init-cm"}}]}],
                "containers": [{"name": "c",
                    "envFrom": [{"secretRef": {"name": "all"}}],
                    "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "one-cm", "key": "k"}}},
                            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "one", "key": "k"}}},
                            {"name": "C", "value": "plain"}]}],
                "volumes": [{"name": "a", "secret": {"secretName": "vol"}}, {"name": "b", "configMap": {"name": "vol-cm"}},
                            {"name": "c", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}, {"secret": {"name": "proj"}}, {"serviceAccountToken": {"path": "t"}}]}},
                            {"name": "d", "emptyDir": {}}]
            }
        }))
        .expect("a pod");
        let (cms, secrets) = referenced_objects(&pod);
        assert_eq!(cms.into_iter().collect::<Vec<_>>(), ["init-cm", "kube-root-ca.crt", "one-cm", "vol-cm"]);
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), ["all", "one", "proj", "pull", "vol"]);
    }
}
