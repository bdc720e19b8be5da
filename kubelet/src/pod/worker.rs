//! The pod worker: one thread per pod that observes the sandbox and containers, asks [`step`] what to do,
//! does it (sandbox + CNI, volumes, image, bundle, monitor, start, kill), and reports status and events.
//! Everything it makes is recorded under the pod directory, so a restarted kubelet adopts running pods
//! (sandbox and containers found alive are left alone, restart counts kept) instead of restarting them.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use serde::{Deserialize, Serialize};

use super::backoff::Backoff;
use super::events::{EventType, PodSink};
use super::lifecycle::{
    step, Action, ContainerState, Failure, FailureKind, KillReason, Observed, ObservedContainer, SandboxState,
};
use super::network::PodNetwork;
use super::status::{pod_status, NodeFacts};
use super::timing::Steps;
use crate::config::KubeletConfig;
use crate::container::spec::{oci_config, BindMount, ImageConfig, SandboxNamespaces, SpecInput};
use crate::container::{env, qos, security};
use crate::image::{ImageRecord, ImageService};
use crate::container_monitor;
use crate::probe::{ProbeKind, Prober};
use crate::runtime_client::RuntimeClient;
use crate::volume;

/// Shared by every pod worker.
pub struct NodeContext {
    /// The kubelet's configuration: its dirs, node name and IP, cgroup root.
    pub config: KubeletConfig,
    /// The container runtime sandboxes and containers are made with.
    pub runtime: Arc<dyn RuntimeClient>,
    /// The pod network (CNI) sandboxes are attached to.
    pub network: PodNetwork,
    /// Image pulls and the image store containers' root filesystems come from.
    pub images: Arc<ImageService>,
    /// The runtime the workers' async calls (API reads, pulls) run on; workers themselves are threads.
    pub tokio: tokio::runtime::Handle,
    /// Where statuses, events and a finished pod's removal go, and where env sources (ConfigMaps, Secrets,
    /// tokens, Services) are read.
    pub sink: Arc<dyn PodSink>,
    /// The machine's memory, bytes: a container's `limits.memory` in the downward API when it sets none, and the
    /// base of a Burstable container's oom_score_adj.
    pub node_memory_bytes: i64,
    /// The machine's CPUs, millicores: a container's `limits.cpu` in the downward API when it sets none.
    pub node_cpu_millis: i64,
}

/// A sandbox as recorded in `<pod dir>/sandbox.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SandboxRecord {
    /// The sandbox's id in the runtime.
    pub id: String,
    /// The sandbox process, whose life is the sandbox's.
    pub pid: i32,
    /// The network namespace's path, which CNI and the containers join; None with hostNetwork.
    pub netns: Option<String>,
    /// The IPC namespace's path, which the containers join.
    pub ipc: Option<String>,
    /// The UTS namespace's path (the pod's hostname); None with hostNetwork.
    pub uts: Option<String>,
    /// The pod IP, once the network is attached (the node IP with hostNetwork).
    pub ip: Option<String>,
    /// The pod uses the node's network namespace (no CNI).
    pub host_network: bool,
    /// The CNI config dir the sandbox was attached with (DEL must use the same network).
    #[serde(default)]
    pub cni_conf_dir: Option<PathBuf>,
}

/// A container instance as recorded in `<pod dir>/containers/<name>/meta.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ContainerRecord {
    /// The runtime's container id, `<short pod uid>-<name>-<restart count>`.
    pub id: String,
    /// Restarts before this instance.
    pub restart_count: i32,
    /// When it was started.
    pub started_at: DateTime<Utc>,
    /// The image it runs, as `<image>@<digest>`.
    pub image_id: String,
    /// Its overlay root filesystem's mount point, unmounted when the instance is removed.
    pub rootfs: PathBuf,
    /// Its cgroup, as the OCI config's `cgroupsPath` (under the pod's QoS cgroup).
    pub cgroups_path: String,
    /// Its CRI log file, `<log dir>/<ns>_<pod>_<uid>/<name>/<restart count>.log`.
    pub log_path: PathBuf,
    /// Set once the exit has been seen and the container removed from the runtime.
    #[serde(default)]
    pub exit: Option<RecordedExit>,
    /// The instance this one replaced, as it ended (the status's lastState, across kubelet restarts too).
    #[serde(default)]
    pub previous: Option<PreviousInstance>,
}

/// An earlier instance of a container and how it ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PreviousInstance {
    /// Its container id.
    pub id: String,
    /// When it was started.
    pub started_at: DateTime<Utc>,
    /// How it ended.
    pub exit: RecordedExit,
}

/// How a container instance ended, kept after the runtime forgets it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecordedExit {
    /// The exit code (128 + the signal's number when a signal killed it).
    pub exit_code: i32,
    /// When it exited.
    pub finished_at: DateTime<Utc>,
    /// The kernel's OOM killer ended it.
    pub oom_killed: bool,
    /// Its terminationMessagePath's contents, if any.
    pub message: Option<String>,
}

/// Messages to a worker.
pub enum PodUpdate {
    /// A new version of the pod (spec or deletion timestamp changed).
    Pod(Box<Pod>),
    /// Stop the worker thread without touching the pod (kubelet shutdown: containers keep running).
    Detach,
    /// The node is under pressure and this pod was chosen (the message says why): stop it, Failed/Evicted.
    Evict(String),
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(v).unwrap_or_default())?;
    fs::rename(tmp, path)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

fn alive(pid: i32) -> bool {
    container_monitor::process_alive(pid)
}

/// The directory of pod `uid`.
pub fn pod_dir(cfg: &KubeletConfig, uid: &str) -> PathBuf {
    cfg.root_dir.join("pods").join(uid)
}

/// Runs one pod.
pub struct PodWorker {
    ctx: Arc<NodeContext>,
    pod: Pod,
    dir: PathBuf,
    uid: String,
    backoff: Backoff,
    failures: HashMap<String, Failure>,
    sandbox: Option<SandboxRecord>,
    containers: HashMap<String, ContainerRecord>,
    last_status: Option<PodStatus>,
    backoff_reported: HashMap<String, DateTime<Utc>>,
    prober: Prober,
    finalized: bool,
    /// Set once the kubelet evicted this pod (the message); read back from `<pod dir>/evicted` on adoption.
    evicted: Option<String>,
    last_usage_check: Option<Instant>,
    /// When the pod's volumes were last written (a container start or a resync).
    volumes_synced_at: Option<Instant>,
}

/// How often a running pod's disk emptyDirs are measured against their sizeLimit.
const USAGE_CHECK_INTERVAL: Duration = Duration::from_secs(2);

impl PodWorker {
    /// A worker for `pod`, picking up whatever a previous kubelet left in the pod directory.
    pub fn new(ctx: Arc<NodeContext>, pod: Pod) -> Self {
        let uid = pod.metadata.uid.clone().unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
        let dir = pod_dir(&ctx.config, &uid);
        let sandbox = read_json(&dir.join("sandbox.json"));
        let mut containers = HashMap::new();
        if let Ok(rd) = fs::read_dir(dir.join("containers")) {
            for e in rd.flatten() {
                if let Some(rec) = read_json::<ContainerRecord>(&e.path().join("meta.json")) {
                    containers.insert(e.file_name().to_string_lossy().into_owned(), rec);
                }
            }
        }
        let last_status = pod.status.clone();
        let evicted = fs::read_to_string(dir.join("evicted")).ok();
        Self {
            ctx,
            pod,
            dir,
            uid,
            backoff: Backoff::new(),
            failures: HashMap::new(),
            sandbox,
            containers,
            last_status,
            backoff_reported: HashMap::new(),
            prober: Prober::default(),
            finalized: false,
            evicted,
            last_usage_check: None,
            volumes_synced_at: None,
        }
    }

    fn name(&self) -> String {
        self.pod.metadata.name.clone().unwrap_or_default()
    }

    fn namespace(&self) -> String {
        self.pod.metadata.namespace.clone().unwrap_or_else(|| "default".into())
    }

    fn host_network(&self) -> bool {
        self.pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
    }

    fn container_spec(&self, name: &str) -> Option<(Container, bool)> {
        let spec = self.pod.spec.as_ref()?;
        if let Some(c) = spec.init_containers.as_deref().unwrap_or(&[]).iter().find(|c| c.name == name) {
            return Some((c.clone(), true));
        }
        spec.containers.iter().find(|c| c.name == name).map(|c| (c.clone(), false))
    }

    fn event(&self, container: Option<&str>, t: EventType, reason: &str, message: String) {
        self.ctx.sink.event(&self.pod, container, t, reason, message);
    }

    /// Reads the world: sandbox liveness, container states from monitors and records.
    pub fn observe(&mut self) -> Observed {
        let sandbox = match &self.sandbox {
            None => SandboxState::None,
            Some(s) if alive(s.pid) => SandboxState::Ready { id: s.id.clone(), ip: s.ip.clone() },
            Some(s) => SandboxState::NotReady { id: s.id.clone() },
        };
        let mut containers = HashMap::new();
        let names: Vec<String> = self.containers.keys().cloned().collect();
        for name in names {
            let Some(rec) = self.containers.get(&name).cloned() else { continue };
            let mdir = self.dir.join("containers").join(&name).join("monitor");
            let exited = |x: RecordedExit| ContainerState::Exited {
                id: rec.id.clone(),
                exit_code: x.exit_code,
                started_at: Some(rec.started_at),
                finished_at: x.finished_at,
                oom_killed: x.oom_killed,
                message: x.message,
            };
            let state = match &rec.exit {
                Some(x) => exited(x.clone()),
                None => {
                    // Liveness first, the exit file after: the monitor writes the file before it exits, so a
                    // monitor found gone here has left its record for the read below (the other order lost exits
                    // that landed between the two reads and recorded them as kills). Only the monitor counts: a
                    // container that outlived its monitor has nobody to record its exit, keep its logs or serve
                    // attach, so it is not running as far as the pod goes.
                    let live = container_monitor::alive_monitor(&mdir).is_some();
                    match container_monitor::read_exit(&mdir) {
                        Some(exit) => exited(self.reap(&name, &rec, exit)),
                        None if live => ContainerState::Running { id: rec.id.clone(), started_at: rec.started_at },
                        // monitor gone without a record (node reboot, kill -9 of the monitor): treat as killed. As
                        // containerd does when a shim dies, a container still running without its monitor is
                        // stopped (reap's `delete --force`), so no orphan is left; restartPolicy decides the rest.
                        None => {
                            if container_monitor::container_pid(&mdir).is_some_and(alive) {
                                tracing::warn!(pod = %self.name(), container = %name, id = %rec.id, "container outlived its monitor: stopping it");
                            }
                            let lost = container_monitor::ExitRecord { exit_code: 137, signal: Some(9), finished_at: String::new() };
                            exited(RecordedExit { oom_killed: false, message: None, ..self.reap(&name, &rec, lost) })
                        }
                    }
                }
            };
            let running = matches!(state, ContainerState::Running { .. });
            let (ready, started, unhealthy) = if running {
                self.prober.results(&name, self.container_spec(&name).map(|c| c.0).as_ref())
            } else {
                (false, false, false)
            };
            containers.insert(
                name.clone(),
                ObservedContainer {
                    state,
                    restart_count: rec.restart_count,
                    ready,
                    started,
                    unhealthy,
                    image_id: rec.image_id.clone(),
                    last_exit: rec.previous.as_ref().map(|p| ContainerState::Exited {
                        id: p.id.clone(),
                        exit_code: p.exit.exit_code,
                        started_at: Some(p.started_at),
                        finished_at: p.exit.finished_at,
                        oom_killed: p.exit.oom_killed,
                        message: p.exit.message.clone(),
                    }),
                },
            );
        }
        self.check_empty_dir_limits(&sandbox);
        self.resync_volumes(&sandbox);
        Observed { sandbox, containers, failures: self.failures.clone(), evicted: self.evicted.clone() }
    }

    /// Upstream's periodic volume sync for a running pod, every `--sync-frequency`: configMap, secret,
    /// downwardAPI and projected volumes are written again from fresh sources (atomically, through `..data`),
    /// so ConfigMap and Secret updates reach the files and service account tokens are renewed. A failure keeps
    /// the files as they are and is logged.
    fn resync_volumes(&mut self, sandbox: &SandboxState) {
        let SandboxState::Ready { ip, .. } = sandbox else { return };
        if self.pod.metadata.deletion_timestamp.is_some() || self.evicted.is_some() {
            return;
        }
        let Some(at) = self.volumes_synced_at else { return };
        if at.elapsed() < self.ctx.config.sync_frequency {
            return;
        }
        self.volumes_synced_at = Some(Instant::now());
        let refreshable = self.pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default().iter().any(|v| {
            v.config_map.is_some() || v.secret.is_some() || v.downward_api.is_some() || v.projected.is_some()
        });
        if !refreshable {
            return;
        }
        // volumes only: no Services (they are for the environment)
        let sources = self.sources(ip.clone().unwrap_or_default(), false);
        match volume::setup_all(&self.pod, &self.dir, &sources, true) {
            Ok(_) => tracing::debug!(pod = %self.name(), "volumes resynced"),
            Err(e) => tracing::warn!(pod = %self.name(), error = %e, "volume resync failed; files left as they were"),
        }
    }

    /// What env values and volumes are built from: the API objects the pod refers to (with `services`, the
    /// Services its environment links) and this node's facts.
    fn sources(&self, pod_ip: String, services: bool) -> env::EnvSources {
        let mut sources = self.ctx.sink.sources(&self.pod, services);
        sources.node_name = self.ctx.config.node_name.clone();
        sources.host_ip = self.ctx.config.node_ip.clone();
        sources.pod_ip = pod_ip;
        sources.node_cpu_millis = self.ctx.node_cpu_millis;
        sources.node_memory_bytes = self.ctx.node_memory_bytes;
        sources
    }

    /// Upstream's eviction manager for local storage, per pod: every few seconds while the pod runs, a disk-backed
    /// emptyDir over its sizeLimit evicts the pod. The verdict is written to the pod directory, so a restarted
    /// kubelet keeps it.
    fn check_empty_dir_limits(&mut self, sandbox: &SandboxState) {
        if self.evicted.is_some() || !matches!(sandbox, SandboxState::Ready { .. }) || self.pod.metadata.deletion_timestamp.is_some() {
            return;
        }
        if self.last_usage_check.is_some_and(|t| t.elapsed() < USAGE_CHECK_INTERVAL) {
            return;
        }
        self.last_usage_check = Some(Instant::now());
        if let Some(msg) = volume::empty_dir_over_limit(&self.pod, &self.dir) {
            self.evict(msg);
        }
    }

    /// Evicts the pod (once): the verdict goes to the pod directory, so a restarted kubelet keeps it, and the
    /// next pass stops everything and reports Failed/Evicted with `msg`.
    fn evict(&mut self, msg: String) {
        if self.evicted.is_some() || self.finalized {
            return;
        }
        tracing::info!(pod = %self.name(), reason = %msg, "evicting pod");
        let _ = fs::write(self.dir.join("evicted"), &msg);
        self.event(None, EventType::Warning, "Evicted", msg.clone());
        self.evicted = Some(msg);
    }

    /// The container exited: note OOM and the termination message, remove it from the runtime, unmount.
    fn reap(&mut self, name: &str, rec: &ContainerRecord, exit: container_monitor::ExitRecord) -> RecordedExit {
        let oom = exit.exit_code == 137 && self.ctx.runtime.oom_killed(&rec.id);
        let cdir = self.dir.join("containers").join(name);
        let message = fs::read_to_string(cdir.join("termination-log")).ok().filter(|s| !s.is_empty()).map(|s| {
            let mut s = s;
            s.truncate(4096);
            s
        });
        let message = message.or_else(|| {
            let fallback = self
                .container_spec(name)
                .and_then(|(c, _)| c.termination_message_policy)
                .filter(|p| p == "FallbackToLogsOnError")
                .is_some();
            (fallback && exit.exit_code != 0).then(|| {
                let lines = crate::logs::read::read_all(&rec.log_path);
                let start = lines.len().saturating_sub(80);
                String::from_utf8_lossy(&crate::logs::read::render(&lines[start..], &Default::default())).into_owned()
            })
        });
        let finished_at = DateTime::parse_from_rfc3339(&exit.finished_at).map(|t| t.with_timezone(&Utc)).unwrap_or_else(|_| Utc::now());
        if let Err(e) = self.ctx.runtime.delete(&rec.id) {
            tracing::warn!(pod = %self.name(), container = name, error = %e, "remove exited container");
        }
        if let Err(e) = crate::image::overlay::unmount_rootfs(self.ctx.images.store(), &rec.id, &rec.rootfs) {
            tracing::warn!(pod = %self.name(), container = name, error = %e, "unmount rootfs");
        }
        let x = RecordedExit { exit_code: exit.exit_code, finished_at, oom_killed: oom, message };
        let mut rec = rec.clone();
        rec.exit = Some(x.clone());
        let _ = write_json(&cdir.join("meta.json"), &rec);
        self.containers.insert(name.to_string(), rec);
        self.prober.forget(name);
        x
    }

    /// One pass: observe, decide, act. Returns when to look again.
    pub fn sync(&mut self) -> Duration {
        let mut rounds = 0;
        loop {
            let observed = self.observe();
            let now = Utc::now();
            let actions = step(&self.pod, &observed, &mut self.backoff, now);
            self.report(&observed, now);
            let immediate: Vec<&Action> = actions.iter().filter(|a| !matches!(a, Action::BackOff { .. })).collect();
            for a in &actions {
                if let Action::BackOff { name, until, reason } = a {
                    // BackOff events are for pulls and restarts; other start failures have their own events
                    let backoff_event = *reason == "ImagePullBackOff" || *reason == "CrashLoopBackOff";
                    if backoff_event && self.backoff_reported.get(name) != Some(until) {
                        self.backoff_reported.insert(name.clone(), *until);
                        let msg = if *reason == "ImagePullBackOff" {
                            let image = self.container_spec(name).and_then(|c| c.0.image).unwrap_or_default();
                            format!("Back-off pulling image \"{image}\"")
                        } else {
                            format!("Back-off restarting failed container {name} in pod {}_{}({})", self.name(), self.namespace(), self.uid)
                        };
                        // upstream records the pull back-off as Normal, the crash loop's as Warning
                        let kind = if *reason == "ImagePullBackOff" { EventType::Normal } else { EventType::Warning };
                        self.event(Some(name), kind, "BackOff", msg);
                        if *reason == "ImagePullBackOff" {
                            // upstream's startContainer then records the pull's error as every start failure's
                            self.event(Some(name), EventType::Warning, "Failed", "Error: ImagePullBackOff".into());
                        }
                    }
                }
            }
            if immediate.is_empty() || rounds > 20 || self.finalized {
                self.run_probes(&observed);
                let wake = super::lifecycle::next_wakeup(&actions)
                    .and_then(|t| (t - Utc::now()).to_std().ok())
                    .unwrap_or(Duration::from_secs(1));
                return wake.min(self.prober.next_due().unwrap_or(Duration::from_secs(1))).min(Duration::from_secs(1));
            }
            for a in immediate.into_iter().cloned().collect::<Vec<_>>() {
                self.execute(a);
            }
            rounds += 1;
        }
    }

    fn report(&mut self, observed: &Observed, now: DateTime<Utc>) {
        if self.finalized {
            return;
        }
        let mut pod = self.pod.clone();
        pod.status = self.last_status.clone();
        let facts = NodeFacts { host_ip: self.ctx.config.node_ip.clone() };
        let status = pod_status(&pod, observed, &self.backoff, &facts, now);
        if self.last_status.as_ref().map(strip_heartbeat) != Some(strip_heartbeat(&status)) {
            self.last_status = Some(status.clone());
            self.ctx.sink.status(&self.pod, status);
        }
    }

    fn execute(&mut self, a: Action) {
        match a {
            Action::CreateSandbox => {
                if let Err(msg) = self.create_sandbox() {
                    tracing::warn!(pod = %self.name(), error = %msg, "create sandbox");
                    self.event(None, EventType::Warning, "FailedCreatePodSandBox", format!("Failed to create pod sandbox: {msg}"));
                    self.teardown_sandbox();
                    // retried on the next pass
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            Action::StartContainer { name, init: _ } => self.start_container(&name),
            Action::KillContainer { name, grace, reason } => {
                if reason == KillReason::Unhealthy {
                    self.event(Some(&name), EventType::Normal, "Killing", format!("Container {name} failed probe, will be restarted"));
                }
                self.kill_containers(&[name], grace);
            }
            Action::KillPod { grace, reason } => {
                let names: Vec<String> = self.containers.iter().filter(|(_, r)| r.exit.is_none()).map(|(n, _)| n.clone()).collect();
                if reason == KillReason::SandboxChanged {
                    self.event(None, EventType::Normal, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.".into());
                }
                self.kill_containers(&names, grace);
                // make sure the exits are recorded before the sandbox goes
                let _ = self.observe();
                self.teardown_sandbox();
            }
            Action::BackOff { .. } => {}
            Action::Finalize => {
                self.remove_everything();
                self.finalized = true;
                self.ctx.sink.finalized(&self.pod);
            }
        }
    }

    fn create_sandbox(&mut self) -> Result<(), String> {
        let mut steps = Steps::new();
        let name = self.name();
        let ns = self.namespace();
        fs::create_dir_all(&self.dir).map_err(|e| format!("create {}: {e}", self.dir.display()))?;
        let _ = write_json(&self.dir.join("pod.json"), &self.pod);
        let id = format!("sb-{}", short_uid(&self.uid));
        // a stale sandbox of ours with this id (crash between create and record): remove it
        let _ = self.ctx.runtime.delete(&id);
        // the pause process gets a leaf of its own: cgroup v2 allows no processes in a cgroup whose children
        // have controllers enabled
        let cgroup = format!("/{}/{id}", qos::pod_cgroup_parent(&self.ctx.config.cgroup_root, &self.pod));
        let hostname = super::dns::hostname(&self.pod);
        let info = self.ctx.runtime.sandbox(&id, &hostname, &cgroup).map_err(|e| e.to_string())?;
        steps.mark("runtime sandbox");
        let host_network = self.host_network();
        let ns_path = |k: &str| info.namespaces.get(k).cloned().or_else(|| Some(format!("/proc/{}/ns/{k}", info.pid)));
        let mut rec = SandboxRecord {
            id: id.clone(),
            pid: info.pid,
            netns: if host_network { None } else { ns_path("net") },
            ipc: ns_path("ipc"),
            uts: if host_network { None } else { ns_path("uts") },
            ip: None,
            host_network,
            cni_conf_dir: Some(self.ctx.network.conf_dir.clone()),
        };
        // record before CNI so a failure in between is cleaned up by teardown
        self.sandbox = Some(rec.clone());
        write_json(&self.dir.join("sandbox.json"), &rec).map_err(|e| format!("record sandbox: {e}"))?;
        if host_network {
            rec.ip = Some(self.ctx.config.node_ip.clone());
        } else {
            let netns = rec.netns.clone().unwrap_or_default();
            super::network::loopback_up(&name, Path::new(&netns)).map_err(|e| e.to_string())?;
            steps.mark("loopback");
            rec.ip = self.ctx.network.add(&name, &ns, &id, Path::new(&netns)).map_err(|e| e.to_string())?;
            steps.mark("CNI ADD");
        }
        let node_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let files = [
            ("hosts", super::dns::hosts_file(&self.pod, rec.ip.as_deref())),
            ("hostname", format!("{hostname}\n")),
            (
                "resolv.conf",
                super::dns::resolv_conf(&self.pod, self.ctx.config.cluster_dns.as_deref(), &self.ctx.config.cluster_domain, &node_resolv),
            ),
        ];
        for (f, content) in files {
            fs::write(self.dir.join(f), content).map_err(|e| format!("write {f}: {e}"))?;
        }
        write_json(&self.dir.join("sandbox.json"), &rec).map_err(|e| format!("record sandbox: {e}"))?;
        steps.mark("pod files");
        tracing::debug!(pod = %name, total_ms = steps.total_ms(), steps = %steps, "sandbox steps");
        tracing::info!(pod = %name, sandbox = %id, ip = %rec.ip.as_deref().unwrap_or("none"), ms = steps.total_ms(), "sandbox ready");
        self.sandbox = Some(rec);
        Ok(())
    }

    fn teardown_sandbox(&mut self) {
        let Some(sb) = self.sandbox.take() else { return };
        if !sb.host_network {
            if let Some(netns) = &sb.netns {
                let mut network = self.ctx.network.clone();
                if let Some(dir) = &sb.cni_conf_dir {
                    network.conf_dir = dir.clone();
                }
                if let Err(e) = network.del(&self.name(), &self.namespace(), &sb.id, Path::new(netns)) {
                    tracing::warn!(pod = %self.name(), error = %e, "CNI DEL");
                }
            }
        }
        let _ = self.ctx.runtime.kill(&sb.id, "KILL");
        if let Err(e) = self.ctx.runtime.delete(&sb.id) {
            tracing::warn!(pod = %self.name(), error = %e, "delete sandbox");
        }
        let _ = volume::teardown_all(&self.dir);
        self.ctx.runtime.remove_pod_cgroup(&qos::pod_cgroup_parent(&self.ctx.config.cgroup_root, &self.pod));
        let _ = fs::remove_file(self.dir.join("sandbox.json"));
    }

    fn fail(&mut self, name: &str, kind: FailureKind, message: String) {
        let attempts = self.failures.get(name).filter(|f| f.kind == kind).map(|f| f.attempts + 1).unwrap_or(1);
        tracing::info!(pod = %self.name(), container = name, reason = kind.reason(), %message, "container start failed");
        // upstream's event reason is "Failed" for every kind; only a pull words its message differently
        let reason = "Failed";
        let msg = match kind {
            // upstream's frame around the puller's error (there the container runtime's text, here rkube's own)
            FailureKind::ImagePull => {
                let image = self.container_spec(name).and_then(|c| c.0.image).unwrap_or_default();
                format!("Failed to pull image \"{image}\": {message}")
            }
            _ => format!("Error: {message}"),
        };
        if kind == FailureKind::Mount {
            // the volume manager's event, on the pod (not a container), once per failed attempt
            self.event(None, EventType::Warning, "FailedMount", message.clone());
            self.failures.insert(name.to_string(), Failure { kind, message, at: Utc::now(), attempts });
            return;
        }
        if kind == FailureKind::NeverPull {
            // upstream's image manager: its own event, then startContainer's "Error: <reason>"
            self.event(Some(name), EventType::Warning, "ErrImageNeverPull", message.clone());
            self.event(Some(name), EventType::Warning, "Failed", "Error: ErrImageNeverPull".into());
            self.failures.insert(name.to_string(), Failure { kind, message, at: Utc::now(), attempts });
            return;
        }
        self.event(Some(name), EventType::Warning, reason, msg);
        if kind == FailureKind::ImagePull {
            self.event(Some(name), EventType::Warning, "Failed", "Error: ErrImagePull".into());
        }
        self.failures.insert(name.to_string(), Failure { kind, message, at: Utc::now(), attempts });
    }

    /// Registry credentials from the pod's imagePullSecrets (`kubernetes.io/dockerconfigjson`, or the legacy
    /// `kubernetes.io/dockercfg`); the first secret naming a registry wins. A missing or unreadable secret is
    /// reported and skipped, as upstream does: the pull then goes on without it.
    fn pull_secrets(&self, sources: &env::EnvSources) -> crate::image::DockerConfigJson {
        let names: Vec<String> = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .collect();
        let mut parsed = Vec::new();
        for n in names {
            let Some(secret) = sources.secrets.get(&n) else {
                self.event(
                    None,
                    EventType::Warning,
                    "FailedToRetrieveImagePullSecret",
                    format!("Unable to retrieve some image pull secrets ({n}); attempting to pull the image may not succeed."),
                );
                continue;
            };
            let data = secret.data.clone().unwrap_or_default();
            let json = if let Some(b) = data.get(".dockerconfigjson") {
                Some(b.0.clone())
            } else {
                // .dockercfg is the `auths` map alone
                data.get(".dockercfg").and_then(|b| serde_json::from_slice::<serde_json::Value>(&b.0).ok()).map(|v| {
                    serde_json::to_vec(&serde_json::json!({ "auths": v })).unwrap_or_default()
                })
            };
            match json.map(|j| crate::image::DockerConfigJson::parse(&j)) {
                Some(Ok(c)) => parsed.push(c),
                Some(Err(e)) => self.event(None, EventType::Warning, "FailedToRetrieveImagePullSecret", format!("image pull secret {n}: {e}")),
                None => self.event(
                    None,
                    EventType::Warning,
                    "FailedToRetrieveImagePullSecret",
                    format!("image pull secret {n} has neither .dockerconfigjson nor .dockercfg"),
                ),
            }
        }
        crate::image::DockerConfigJson::merge(parsed)
    }

    /// Starts a new instance of container `name` in the sandbox, in named steps: [`Self::replace_previous`],
    /// [`Self::container_inputs`] (env and volumes), [`Self::container_image`], [`Self::mount_container_rootfs`],
    /// [`Self::write_bundle`], [`Self::create_with_monitor`] and [`Self::start_created`]. What the steps made is
    /// held by a [`StartUndo`] guard: a step that fails returns, and the guard's drop removes the container from
    /// the runtime, unmounts its rootfs and drops its record, so a failed start leaves nothing behind. A failure is
    /// then reported once, with the kind the pod's status shows ([`Self::fail`]).
    fn start_container(&mut self, name: &str) {
        let Some((c, _init)) = self.container_spec(name) else { return };
        let Some(sb) = self.sandbox.clone() else { return };
        let mut steps = Steps::new();
        match self.start_steps(name, &c, &sb, &mut steps) {
            Ok(id) => self.after_start(name, &c, &sb, &id, &steps),
            Err(StartFailure { kind, message }) => self.fail(name, kind, message),
        }
    }

    fn start_steps(&mut self, name: &str, c: &Container, sb: &SandboxRecord, steps: &mut Steps) -> Result<String, StartFailure> {
        let (restart_count, previous) = self.replace_previous(name);
        let (env, vols, sources) = self.container_inputs(c, sb)?;
        steps.mark("env + volumes");
        let (image, record) = self.container_image(name, c, &sources)?;
        steps.mark("image");
        let image_config = self.ctx.images.store().read_blob(&record.id).map(|b| ImageConfig::from_json(&b)).unwrap_or_default();
        let sec = security::resolve(&self.pod, c, image_config.user.as_deref()).map_err(|e| StartFailure::new(FailureKind::CreateConfig, e))?;
        let id = format!("{}-{}-{}", short_uid(&self.uid), name, restart_count);
        let paths = ContainerPaths::new(&self.dir, name);
        let mut undo = StartUndo::new(self.ctx.clone(), &id);
        self.mount_container_rootfs(&id, &record, &paths, &mut undo)?;
        steps.mark("rootfs");
        let cgroups_path = self.write_bundle(c, &id, sb, &paths, &image_config, sec, &env, &vols)?;
        steps.mark("config.json");
        let log_path = self.create_with_monitor(name, c, &id, restart_count, &paths, &mut undo)?;
        steps.mark("monitor + create");
        let rec = ContainerRecord {
            id: id.clone(),
            restart_count,
            started_at: Utc::now(),
            image_id: format!("docker.io/library/{}@{}", image, record.id).replace("docker.io/library/docker.io/", "docker.io/"),
            rootfs: paths.rootfs.clone(),
            cgroups_path,
            log_path,
            exit: None,
            previous,
        };
        self.start_created(name, rec, &paths, &mut undo)?;
        steps.mark("start");
        undo.disarm();
        Ok(id)
    }

    /// The previous instance's restart count carries over, and how it ended becomes the new one's lastState;
    /// the previous instance itself is removed from the runtime and unmounted.
    fn replace_previous(&mut self, name: &str) -> (i32, Option<PreviousInstance>) {
        let restart_count = match self.containers.get(name) {
            Some(r) if r.exit.is_some() => r.restart_count + 1,
            Some(r) => r.restart_count,
            None => 0,
        };
        let previous = self.containers.get(name).and_then(|r| match &r.exit {
            Some(exit) => Some(PreviousInstance { id: r.id.clone(), started_at: r.started_at, exit: exit.clone() }),
            None => r.previous.clone(),
        });
        if let Some(r) = self.containers.get(name).cloned() {
            let _ = self.ctx.runtime.delete(&r.id);
            let _ = crate::image::overlay::unmount_rootfs(self.ctx.images.store(), &r.id, &r.rootfs);
        }
        (restart_count, previous)
    }

    /// Env, volumes: what the user must fix shows as CreateContainerConfigError, a volume that cannot be set up
    /// as FailedMount.
    #[allow(clippy::type_complexity)]
    fn container_inputs(
        &mut self,
        c: &Container,
        sb: &SandboxRecord,
    ) -> Result<(env::Env, HashMap<String, volume::PreparedVolume>, env::EnvSources), StartFailure> {
        let sources = self.sources(sb.ip.clone().unwrap_or_default(), true);
        let env = env::container_env(&self.pod, c, &sources).map_err(|e| StartFailure::new(FailureKind::CreateConfig, e))?;
        let vols = match volume::setup_all(&self.pod, &self.dir, &sources, true) {
            Ok(v) => v,
            Err(e) if e.is_config_error() => return Err(StartFailure::new(FailureKind::CreateConfig, e)),
            Err(e) => {
                return Err(match e.setup_failure() {
                    Some((volume, cause)) => StartFailure {
                        kind: FailureKind::Mount,
                        message: format!("MountVolume.SetUp failed for volume \"{volume}\" : {cause}"),
                    },
                    None => StartFailure::new(FailureKind::Create, e),
                })
            }
        };
        self.volumes_synced_at = Some(Instant::now());
        Ok((env, vols, sources))
    }

    /// The container's image, pulled per its pull policy with the pod's pull secrets (Pulling/Pulled events).
    fn container_image(&mut self, name: &str, c: &Container, sources: &env::EnvSources) -> Result<(String, ImageRecord), StartFailure> {
        let image = c.image.clone().unwrap_or_default();
        let policy = c.image_pull_policy.as_deref().and_then(|p| crate::image::PullPolicy::from_api(p).ok().flatten());
        let present = self.ctx.images.store().resolve(&image).ok().flatten();
        // policy Never never pulls, so never says Pulling (a missing image is ErrImageNeverPull)
        let never = policy == Some(crate::image::PullPolicy::Never);
        let will_pull = !never && (present.is_none() || policy == Some(crate::image::PullPolicy::Always));
        if will_pull {
            self.event(Some(name), EventType::Normal, "Pulling", format!("Pulling image \"{image}\""));
        }
        let images = self.ctx.images.clone();
        let secrets = self.pull_secrets(sources);
        let ensured = self.ctx.tokio.block_on(images.ensure_image(&image, policy, &secrets, crate::image::no_progress()));
        let record = match ensured {
            Ok(crate::image::Ensured::Present(r)) => {
                if !will_pull {
                    self.event(Some(name), EventType::Normal, "Pulled", format!("Container image \"{image}\" already present on machine"));
                }
                r
            }
            Ok(crate::image::Ensured::Pulled(o)) => {
                self.event(Some(name), EventType::Normal, "Pulled", o.event_message(&image));
                o.image
            }
            Err(e) => {
                return Err(match e {
                    // upstream's image manager words it with a capital, and that text is the waiting message
                    crate::image::EnsureError::NeverPull { .. } => StartFailure {
                        kind: FailureKind::NeverPull,
                        message: format!("Container image \"{image}\" is not present with pull policy of Never"),
                    },
                    e if e.reason() == "InvalidImageName" => StartFailure::new(FailureKind::InvalidImageName, e),
                    e => StartFailure::new(FailureKind::ImagePull, e),
                });
            }
        };
        Ok((image, record))
    }

    /// A fresh bundle directory and the image's layers mounted as its rootfs (overlay, writable upper).
    fn mount_container_rootfs(&self, id: &str, record: &ImageRecord, paths: &ContainerPaths, undo: &mut StartUndo) -> Result<(), StartFailure> {
        let _ = fs::remove_dir_all(&paths.monitor);
        fs::create_dir_all(&paths.bundle)
            .map_err(|e| StartFailure { kind: FailureKind::Create, message: format!("create bundle {}: {e}", paths.bundle.display()) })?;
        // Undone even if the mount fails: mount_rootfs may have made the overlay's upper and work dirs first, and
        // unmount_rootfs removes them (an unmounted target is fine).
        undo.rootfs = Some(paths.rootfs.clone());
        // Writable even for readOnlyRootFilesystem: the runtime makes mount points in it (/etc/hosts, volume
        // paths) and then remounts the root read-only (the spec's root.readonly), as runc does.
        crate::image::overlay::mount_rootfs(self.ctx.images.store(), id, record, &paths.rootfs, false)
            .map_err(|e| StartFailure::new(FailureKind::Create, e))?;
        Ok(())
    }

    /// The OCI bundle's config.json: the image user resolved in the rootfs, the pod's files and volumes as bind
    /// mounts, the container's cgroup. Returns the cgroup path.
    #[allow(clippy::too_many_arguments)]
    fn write_bundle(
        &self,
        c: &Container,
        id: &str,
        sb: &SandboxRecord,
        paths: &ContainerPaths,
        image_config: &ImageConfig,
        sec: security::Security,
        env: &env::Env,
        vols: &HashMap<String, volume::PreparedVolume>,
    ) -> Result<String, StartFailure> {
        // a named image user (User: nobody) is looked up in the container's own /etc/passwd, as the runtime
        // under upstream's CRI does; an unknown name is a CreateContainerError
        let sec = match security::image_user_in_rootfs(&self.pod, c, image_config.user.as_deref(), &paths.rootfs) {
            Ok(None) => sec,
            Ok(Some(numeric)) => security::resolve(&self.pod, c, Some(&numeric)).map_err(|e| StartFailure::new(FailureKind::CreateConfig, e))?,
            Err(e) => return Err(StartFailure::new(FailureKind::Create, e)),
        };
        let term_log = paths.dir.join("termination-log");
        let _ = fs::write(&term_log, b"");
        let mut mounts = vec![
            BindMount { destination: "/etc/hosts".into(), source: self.dir.join("hosts"), readonly: false },
            BindMount { destination: "/etc/resolv.conf".into(), source: self.dir.join("resolv.conf"), readonly: false },
            BindMount { destination: "/etc/hostname".into(), source: self.dir.join("hostname"), readonly: false },
            BindMount {
                destination: c.termination_message_path.clone().unwrap_or_else(|| "/dev/termination-log".into()),
                source: term_log,
                readonly: false,
            },
        ];
        for m in c.volume_mounts.as_deref().unwrap_or(&[]) {
            let src = volume::mount_source(vols, m).map_err(|e| StartFailure::new(FailureKind::Create, e))?;
            mounts.push(BindMount { destination: m.mount_path.clone(), source: src, readonly: m.read_only.unwrap_or(false) });
        }
        let cgroups_path = format!("/{}", qos::container_cgroup(&self.ctx.config.cgroup_root, &self.pod, id));
        let namespaces = SandboxNamespaces { net: sb.netns.clone(), ipc: sb.ipc.clone(), uts: sb.uts.clone() };
        let input = SpecInput {
            pod: &self.pod,
            container: c,
            image: image_config,
            env,
            security: &sec,
            rootfs: &paths.rootfs,
            namespaces: &namespaces,
            mounts,
            cgroups_path: cgroups_path.clone(),
            qos: qos::qos_class(&self.pod),
            node_memory_bytes: self.ctx.node_memory_bytes,
        };
        let mut config = oci_config(&input).map_err(|e| StartFailure::new(FailureKind::CreateConfig, e))?;
        if sec.privileged {
            crate::container::devices::with_host_devices(&mut config, &crate::container::devices::host_devices(Path::new("/dev")));
        }
        fs::write(paths.bundle.join("config.json"), serde_json::to_vec_pretty(&config).unwrap_or_default())
            .map_err(|e| StartFailure { kind: FailureKind::Create, message: format!("write config.json: {e}") })?;
        Ok(cgroups_path)
    }

    /// The container's monitor, which runs the runtime's create and holds the container's stdio and log.
    /// Returns the log path.
    fn create_with_monitor(
        &self,
        name: &str,
        c: &Container,
        id: &str,
        restart_count: i32,
        paths: &ContainerPaths,
        undo: &mut StartUndo,
    ) -> Result<PathBuf, StartFailure> {
        let log_path = self
            .ctx
            .config
            .log_dir
            .join(format!("{}_{}_{}", self.namespace(), self.name(), self.uid))
            .join(name)
            .join(format!("{restart_count}.log"));
        if let Some(p) = log_path.parent() {
            let _ = fs::create_dir_all(p);
        }
        // tty: true: the runtime's create hands the pty master to the monitor over this socket. Socket
        // addresses hold 108 bytes, so it lives under a short name in the kubelet's root, not in the pod dir.
        let console_socket = c.tty.unwrap_or(false).then(|| self.ctx.config.root_dir.join("tty").join(format!("{}.sock", short_hash(id))));
        if let Some(p) = console_socket.as_ref().and_then(|p| p.parent()) {
            let _ = fs::create_dir_all(p);
        }
        let pid_file = paths.dir.join("container.pid");
        let mut command = self.ctx.runtime.create_argv(id, &paths.bundle, &pid_file);
        if let Some(p) = &console_socket {
            command.push("--console-socket".into());
            command.push(p.into());
        }
        let args = container_monitor::Args {
            dir: paths.monitor.clone(),
            log: log_path.clone(),
            log_max_bytes: self.ctx.config.log_max_bytes,
            log_max_files: self.ctx.config.log_max_files,
            pid_file: Some(pid_file),
            stdin: c.stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
            console_socket,
            command,
        };
        // from here the runtime may hold the container, whatever the monitor says
        undo.created = true;
        if let Err(e) = container_monitor::spawn(&self.ctx.config.monitor_bin, &args) {
            // The runtime looks the program up at create, as runc does; upstream's CRI creates at start, so a
            // missing or non-executable command is a RunContainerError there, and here too.
            let message = e.to_string();
            let kind = if message.contains("process.args[0]") { FailureKind::Run } else { FailureKind::Create };
            return Err(StartFailure { kind, message });
        }
        Ok(log_path)
    }

    /// Records the created instance (`meta.json`, Created event) and starts it. A start that fails is a
    /// RunContainerError: the process never ran, the instance and its record go.
    fn start_created(&mut self, name: &str, rec: ContainerRecord, paths: &ContainerPaths, undo: &mut StartUndo) -> Result<(), StartFailure> {
        let meta = paths.dir.join("meta.json");
        let _ = write_json(&meta, &rec);
        undo.meta = Some(meta);
        let id = rec.id.clone();
        self.containers.insert(name.to_string(), rec);
        self.event(Some(name), EventType::Normal, "Created", format!("Created container {name}"));
        if let Err(e) = self.ctx.runtime.start(&id) {
            self.containers.remove(name);
            return Err(StartFailure::new(FailureKind::Run, e));
        }
        Ok(())
    }

    /// Started: the failure is cleared, the Started event sent and the postStart hook run.
    fn after_start(&mut self, name: &str, c: &Container, sb: &SandboxRecord, id: &str, steps: &Steps) {
        self.failures.remove(name);
        self.event(Some(name), EventType::Normal, "Started", format!("Started container {name}"));
        if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let ip = sb.ip.clone().unwrap_or_else(|| "127.0.0.1".into());
            let (ok, msg) = crate::probe::run_hook(hook, c, id, &ip, self.ctx.runtime.as_ref(), Duration::from_secs(30));
            if !ok {
                // upstream kills a container whose postStart hook fails; it restarts per restartPolicy
                self.event(Some(name), EventType::Warning, "FailedPostStartHook", format!("PostStartHook failed: {msg}"));
                let _ = self.ctx.runtime.kill(id, "KILL");
            }
        }
        let pod_name = self.name();
        tracing::debug!(pod = %pod_name, container = name, total_ms = steps.total_ms(), steps = %steps, "container steps");
        tracing::info!(pod = %pod_name, container = name, id = %id, ms = steps.total_ms(), "container started");
    }

    /// SIGTERM to each, wait up to `grace` for all exits, SIGKILL what is left.
    fn kill_containers(&mut self, names: &[String], grace: Duration) {
        let deadline = Instant::now() + grace;
        let mut live = Vec::new();
        for n in names {
            let Some(rec) = self.containers.get(n).cloned() else { continue };
            if rec.exit.is_some() {
                continue;
            }
            self.event(Some(n), EventType::Normal, "Killing", format!("Stopping container {n}"));
            if let Some((c, _)) = self.container_spec(n) {
                if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
                    // upstream: the hook's time counts against the grace period; a failure is an event, the stop goes on
                    let ip = self.sandbox.as_ref().and_then(|s| s.ip.clone()).unwrap_or_else(|| "127.0.0.1".into());
                    let left = deadline.saturating_duration_since(Instant::now());
                    let (ok, msg) = crate::probe::run_hook(hook, &c, &rec.id, &ip, self.ctx.runtime.as_ref(), left.max(Duration::from_secs(1)));
                    if !ok {
                        self.event(Some(n), EventType::Warning, "FailedPreStopHook", format!("PreStopHook failed: {msg}"));
                    }
                }
            }
            let _ = self.ctx.runtime.kill(&rec.id, "TERM");
            live.push((n.clone(), rec));
        }
        let mdir = |n: &str| self.dir.join("containers").join(n).join("monitor");
        while Instant::now() < deadline && live.iter().any(|(n, _)| container_monitor::read_exit(&mdir(n)).is_none()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (n, rec) in &live {
            if container_monitor::read_exit(&mdir(n)).is_none() {
                let _ = self.ctx.runtime.kill(&rec.id, "KILL");
            }
        }
        let hard = Instant::now() + Duration::from_secs(10);
        while Instant::now() < hard && live.iter().any(|(n, _)| container_monitor::read_exit(&mdir(n)).is_none()) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn remove_everything(&mut self) {
        self.teardown_sandbox();
        for rec in self.containers.values() {
            let _ = self.ctx.runtime.delete(&rec.id);
            let _ = crate::image::overlay::unmount_rootfs(self.ctx.images.store(), &rec.id, &rec.rootfs);
        }
        let _ = volume::teardown_all(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
        let logs = self.ctx.config.log_dir.join(format!("{}_{}_{}", self.namespace(), self.name(), self.uid));
        let _ = fs::remove_dir_all(logs);
    }

    fn run_probes(&mut self, observed: &Observed) {
        let Some(sb) = self.sandbox.clone() else { return };
        let ip = sb.ip.clone().unwrap_or_else(|| "127.0.0.1".into());
        let specs: Vec<Container> = self.pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
        for c in specs {
            let Some(o) = observed.containers.get(&c.name) else { continue };
            let ContainerState::Running { id, started_at } = &o.state else { continue };
            for (kind, outcome) in self.prober.run_due(&c, id, *started_at, &ip, self.ctx.runtime.as_ref()) {
                if !outcome.0 {
                    let what = match kind {
                        ProbeKind::Liveness => "Liveness",
                        ProbeKind::Readiness => "Readiness",
                        ProbeKind::Startup => "Startup",
                    };
                    self.event(Some(&c.name), EventType::Warning, "Unhealthy", format!("{what} probe failed: {}", outcome.1));
                }
            }
        }
    }

    /// Runs until the pod is finalized or the worker is detached.
    pub fn run(mut self, updates: Receiver<PodUpdate>) {
        loop {
            let wait = self.sync();
            if self.finalized {
                return;
            }
            match updates.recv_timeout(wait) {
                Ok(PodUpdate::Pod(p)) => {
                    let mut p = *p;
                    p.status = self.last_status.clone();
                    self.pod = p;
                }
                Ok(PodUpdate::Evict(msg)) => self.evict(msg),
                Ok(PodUpdate::Detach) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// The pod was deleted and everything of it is gone ([`Action::Finalize`] done): the worker is finished.
    pub fn is_finalized(&self) -> bool {
        self.finalized
    }

    /// The pod as the worker last saw it, with the status it last reported.
    pub fn pod(&self) -> &Pod {
        &self.pod
    }
}

fn strip_heartbeat(s: &PodStatus) -> PodStatus {
    s.clone()
}

/// First 13 characters of a uid, enough to be unique on a node and short enough for ids.
pub fn short_uid(uid: &str) -> String {
    uid.chars().filter(|c| c.is_ascii_alphanumeric()).take(13).collect()
}

/// 16 hex digits naming `s` (a container id) where a path must stay short.
fn short_hash(s: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Why a container's start failed: the kind its status shows and the message.
#[derive(Debug)]
struct StartFailure {
    kind: FailureKind,
    message: String,
}

impl StartFailure {
    fn new(kind: FailureKind, e: impl std::fmt::Display) -> StartFailure {
        StartFailure { kind, message: e.to_string() }
    }
}

/// Where one container's files live under the pod directory.
struct ContainerPaths {
    dir: PathBuf,
    bundle: PathBuf,
    rootfs: PathBuf,
    monitor: PathBuf,
}

impl ContainerPaths {
    fn new(pod_dir: &Path, name: &str) -> ContainerPaths {
        let dir = pod_dir.join("containers").join(name);
        let bundle = dir.join("bundle");
        ContainerPaths { rootfs: bundle.join("rootfs"), monitor: dir.join("monitor"), bundle, dir }
    }
}

/// What a container start has made so far, undone on drop unless [`StartUndo::disarm`]ed: the container in the
/// runtime (killed and deleted), its rootfs mount, its `meta.json` record.
struct StartUndo {
    ctx: Arc<NodeContext>,
    id: String,
    created: bool,
    rootfs: Option<PathBuf>,
    meta: Option<PathBuf>,
    armed: bool,
}

impl StartUndo {
    fn new(ctx: Arc<NodeContext>, id: &str) -> StartUndo {
        StartUndo { ctx, id: id.to_string(), created: false, rootfs: None, meta: None, armed: true }
    }

    /// The start succeeded: keep everything.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for StartUndo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.created {
            let _ = self.ctx.runtime.kill(&self.id, "KILL");
            if let Err(e) = self.ctx.runtime.delete(&self.id) {
                tracing::warn!(id = %self.id, error = %e, "undo a failed start: delete container");
            }
        }
        if let Some(rootfs) = &self.rootfs {
            if let Err(e) = crate::image::overlay::unmount_rootfs(self.ctx.images.store(), &self.id, rootfs) {
                tracing::warn!(id = %self.id, error = %e, "undo a failed start: unmount rootfs");
            }
        }
        if let Some(meta) = &self.meta {
            let _ = fs::remove_file(meta);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The pod worker against the fake runtime and a recording sink (the API side): each way a container's
    //! start can fail leaves nothing behind (no container in the runtime, no rootfs mount, no record), and a
    //! monitor that dies has its container removed. Tests that mount an overlay rootfs need root.

    use super::*;
    use crate::container::env::EnvSources;
    use crate::image::store::LayerRecord;
    use crate::image::RegistryConfig;
    use crate::runtime_client::fake::{Call, FakeRuntime};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Mutex;

    #[derive(Default)]
    struct RecordingSink {
        events: Mutex<Vec<(String, String)>>,
    }

    impl PodSink for RecordingSink {
        fn event(&self, _: &Pod, _: Option<&str>, _: EventType, reason: &str, message: String) {
            self.events.lock().expect("events").push((reason.to_string(), message));
        }
        fn status(&self, _: &Pod, _: PodStatus) {}
        fn finalized(&self, _: &Pod) {}
        fn sources(&self, _: &Pod, _: bool) -> EnvSources {
            EnvSources::default()
        }
    }

    const IMAGE: &str = "example.test/app:1";
    const IMAGE_ID: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const DIFF_ID: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    struct Harness {
        dir: tempfile::TempDir,
        _tokio: tokio::runtime::Runtime,
        runtime: Arc<FakeRuntime>,
        sink: Arc<RecordingSink>,
        ctx: Arc<NodeContext>,
    }

    /// A node whose monitor is a script with `body` (it prints `ok <pid>` or `err <message>` as the monitor does).
    fn harness(monitor_body: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = Arc::new(RecordingSink::default());
        let (tokio, runtime, ctx) = node_context(dir.path(), monitor_body, sink.clone());
        Harness { dir, _tokio: tokio, runtime, sink, ctx }
    }

    /// Node n1's context under `root` for tests of the workers (here and the sync loop's in kubelet.rs): the fake
    /// runtime, an empty image store, no CNI, a monitor script with `monitor_body`, API writes to `sink`.
    pub(crate) fn node_context(
        root: &std::path::Path,
        monitor_body: &str,
        sink: Arc<dyn PodSink>,
    ) -> (tokio::runtime::Runtime, Arc<FakeRuntime>, Arc<NodeContext>) {
        let mut config = KubeletConfig::new("n1", "127.0.0.1", root);
        config.monitor_bin = root.join("monitor.sh");
        fs::write(&config.monitor_bin, format!("#!/bin/sh\n{monitor_body}\n")).expect("write monitor");
        fs::set_permissions(&config.monitor_bin, fs::Permissions::from_mode(0o755)).expect("chmod monitor");
        let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio");
        let images = Arc::new(ImageService::new(root.join("images"), RegistryConfig::default()).expect("image store"));
        let runtime = Arc::new(FakeRuntime::default());
        let ctx = Arc::new(NodeContext {
            network: PodNetwork::new(root.join("cni"), vec![], root.join("cni-cache")),
            runtime: runtime.clone(),
            images,
            tokio: tokio.handle().clone(),
            sink,
            node_memory_bytes: 1 << 30,
            node_cpu_millis: 1000,
            config,
        });
        (tokio, runtime, ctx)
    }

    impl Harness {
        /// The image in the local store; with `layer`, its one layer unpacked (else mounting it fails).
        fn add_image(&self, layer: bool) {
            let store = self.ctx.images.store();
            if layer {
                let d = store.layer_dir(DIFF_ID).expect("layer dir");
                fs::create_dir_all(d.join("bin")).expect("mkdir layer");
                fs::write(d.join("bin").join("app"), b"#!/bin/sh\n").expect("write layer file");
            }
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

        /// A worker for a one-container pod whose sandbox is already up (host network: no CNI).
        fn worker(&self, pull_policy: &str) -> PodWorker {
            let mut pod = crate::pod::lifecycle::tests::pod("Never", &[], &["app"]);
            pod.metadata.uid = Some("u1".into());
            let c = &mut pod.spec.as_mut().expect("spec").containers[0];
            c.image = Some(IMAGE.into());
            c.image_pull_policy = Some(pull_policy.into());
            let mut w = PodWorker::new(self.ctx.clone(), pod);
            fs::create_dir_all(&w.dir).expect("pod dir");
            w.sandbox = Some(SandboxRecord {
                id: "sb-u1".into(),
                pid: std::process::id() as i32,
                netns: None,
                ipc: None,
                uts: None,
                ip: Some("127.0.0.1".into()),
                host_network: true,
                cni_conf_dir: None,
            });
            w
        }

        fn reasons(&self) -> Vec<String> {
            self.sink.events.lock().expect("events").iter().map(|(r, _)| r.clone()).collect()
        }
    }

    fn mounted(path: &Path) -> bool {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let p = path.to_string_lossy();
        info.lines().any(|l| l.split(' ').nth(4) == Some(p.as_ref()))
    }

    /// Unmounts what a failing test left mounted, so the tempdir can go.
    struct Unmount(PathBuf);

    impl Drop for Unmount {
        fn drop(&mut self) {
            if mounted(&self.0) {
                let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }

    /// Nothing of container `app` is left: no record, no runtime container, no rootfs mount, no overlay upper
    /// and work dirs in the image store.
    fn assert_nothing_left(h: &Harness, w: &PodWorker) {
        let paths = ContainerPaths::new(&w.dir, "app");
        assert!(!w.containers.contains_key("app"), "no record in the worker");
        assert!(!paths.dir.join("meta.json").exists(), "no meta.json");
        assert!(!mounted(&paths.rootfs), "rootfs {} unmounted", paths.rootfs.display());
        assert_eq!(h.runtime.containers(), Vec::<String>::new(), "nothing in the runtime");
        let layers: Vec<_> = fs::read_dir(h.ctx.images.store().containers_dir())
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(layers, Vec::<std::ffi::OsString>::new(), "no container's writable layer left in the image store");
    }

    #[test]
    fn a_missing_image_never_reaches_the_runtime() {
        let h = harness("echo ok $$");
        let mut w = h.worker("Never");
        w.start_container("app");
        let f = w.failures.get("app").expect("a failure recorded");
        assert_eq!(f.kind, FailureKind::NeverPull);
        assert_eq!(f.message, format!("Container image \"{IMAGE}\" is not present with pull policy of Never"));
        assert_eq!(h.runtime.calls(), vec![], "the runtime was never asked");
        assert!(!ContainerPaths::new(&w.dir, "app").bundle.exists(), "no bundle made");
        assert_nothing_left(&h, &w);
    }

    #[test]
    fn a_rootfs_that_cannot_be_mounted_leaves_nothing() {
        let h = harness("echo ok $$");
        h.add_image(false);
        let mut w = h.worker("IfNotPresent");
        w.start_container("app");
        let f = w.failures.get("app").expect("a failure recorded");
        assert_eq!(f.kind, FailureKind::Create);
        assert!(f.message.contains("2222"), "names the missing layer: {}", f.message);
        assert_eq!(h.runtime.calls(), vec![], "the runtime was never asked");
        assert!(h.reasons().contains(&"Failed".to_string()), "{:?}", h.reasons());
        assert_nothing_left(&h, &w);
    }

    /// The overlay's mount fails after its upper and work dirs were made (here: the mount point cannot be made,
    /// a file is in the way): those dirs go too.
    #[test]
    fn a_rootfs_mount_failing_halfway_leaves_nothing() {
        let h = harness("echo ok $$");
        h.add_image(true);
        let mut w = h.worker("IfNotPresent");
        let paths = ContainerPaths::new(&w.dir, "app");
        fs::create_dir_all(&paths.bundle).expect("mkdir bundle");
        fs::write(&paths.rootfs, b"in the way").expect("a file where the rootfs goes");
        w.start_container("app");
        let f = w.failures.get("app").expect("a failure recorded");
        assert_eq!(f.kind, FailureKind::Create);
        assert!(f.message.contains("rootfs"), "names the mount point: {}", f.message);
        assert_eq!(h.runtime.calls(), vec![], "the runtime was never asked");
        assert_nothing_left(&h, &w);
    }

    #[test]
    fn a_create_that_fails_is_deleted_and_unmounted() {
        rkube_testsupport::require_root();
        let h = harness("echo 'err create failed: injected by the test'");
        h.add_image(true);
        let mut w = h.worker("IfNotPresent");
        let _u = Unmount(ContainerPaths::new(&w.dir, "app").rootfs);
        w.start_container("app");
        let f = w.failures.get("app").expect("a failure recorded");
        assert_eq!(f.kind, FailureKind::Create);
        assert!(f.message.contains("injected by the test"), "{}", f.message);
        let id = "u1-app-0".to_string();
        assert_eq!(h.runtime.calls(), vec![Call::CreateArgv(id.clone()), Call::Kill(id.clone(), "KILL".into()), Call::Delete(id)]);
        assert_nothing_left(&h, &w);
    }

    #[test]
    fn a_monitor_that_dies_before_reporting_leaves_nothing() {
        rkube_testsupport::require_root();
        let h = harness("exit 3");
        h.add_image(true);
        let mut w = h.worker("IfNotPresent");
        let _u = Unmount(ContainerPaths::new(&w.dir, "app").rootfs);
        w.start_container("app");
        assert_eq!(w.failures.get("app").map(|f| f.kind), Some(FailureKind::Create));
        assert!(h.runtime.calls().contains(&Call::Delete("u1-app-0".into())), "{:?}", h.runtime.calls());
        assert_nothing_left(&h, &w);
    }

    #[test]
    fn a_start_that_fails_removes_the_instance_and_its_record() {
        rkube_testsupport::require_root();
        let h = harness("echo ok $$");
        h.add_image(true);
        h.runtime.fail("start");
        let mut w = h.worker("IfNotPresent");
        let _u = Unmount(ContainerPaths::new(&w.dir, "app").rootfs);
        w.start_container("app");
        assert_eq!(w.failures.get("app").map(|f| f.kind), Some(FailureKind::Run));
        let id = "u1-app-0".to_string();
        assert_eq!(
            h.runtime.calls(),
            vec![Call::CreateArgv(id.clone()), Call::Start(id.clone()), Call::Kill(id.clone(), "KILL".into()), Call::Delete(id)]
        );
        assert!(h.reasons().contains(&"Created".to_string()) && !h.reasons().contains(&"Started".to_string()), "{:?}", h.reasons());
        assert_nothing_left(&h, &w);
    }

    #[test]
    fn a_started_container_whose_monitor_dies_is_reaped() {
        rkube_testsupport::require_root();
        let h = harness("echo ok $$");
        h.add_image(true);
        let mut w = h.worker("IfNotPresent");
        let paths = ContainerPaths::new(&w.dir, "app");
        let _u = Unmount(paths.rootfs.clone());
        w.start_container("app");
        assert!(w.failures.is_empty(), "{:?}", w.failures.get("app").map(|f| &f.message));
        assert!(mounted(&paths.rootfs), "a started container keeps its rootfs");
        assert!(paths.dir.join("meta.json").exists(), "and its record");
        assert!(h.reasons().contains(&"Started".to_string()), "{:?}", h.reasons());
        // the monitor (the script) is gone and wrote no exit record: the container counts as killed
        let observed = w.observe();
        match &observed.containers.get("app").expect("observed").state {
            ContainerState::Exited { exit_code, oom_killed, .. } => assert_eq!((*exit_code, *oom_killed), (137, false)),
            other => panic!("expected an exit, got {other:?}"),
        }
        let calls = h.runtime.calls();
        assert!(calls.contains(&Call::Delete("u1-app-0".into())), "{calls:?}");
        assert!(!mounted(&paths.rootfs), "the reaped container's rootfs is unmounted");
        assert!(h.runtime.containers().is_empty(), "{:?}", h.runtime.containers());
    }

    /// The record `start_container` leaves for a started container `app` of pod u1.
    fn started_record(h: &Harness) -> ContainerRecord {
        ContainerRecord {
            id: "u1-app-0".into(),
            restart_count: 0,
            started_at: Utc::now(),
            image_id: String::new(),
            rootfs: h.dir.path().join("no-rootfs"),
            cgroups_path: "/kubepods/podu1/u1-app-0".into(),
            log_path: h.dir.path().join("log"),
            exit: None,
            previous: None,
        }
    }

    /// A worker whose container `app` was started (its record as `start_container` leaves it) and the directory
    /// of its monitor, where a test fakes what the monitor writes.
    fn started(h: &Harness) -> (PodWorker, PathBuf) {
        let mut w = h.worker("IfNotPresent");
        let rec = started_record(h);
        w.containers.insert("app".into(), rec);
        let mdir = ContainerPaths::new(&w.dir, "app").monitor;
        fs::create_dir_all(&mdir).expect("mkdir monitor dir");
        (w, mdir)
    }

    fn app_state(w: &mut PodWorker) -> ContainerState {
        w.observe().containers.get("app").expect("observed").state.clone()
    }

    /// The monitor's files, read as the monitor leaves them: alive without a record is running; gone with its
    /// record is that exit (0 stays 0, issue 13: a completed `kubectl run -i` pod must not read as failed).
    #[test]
    fn a_monitor_gone_after_its_record_is_that_exit() {
        let h = harness("echo ok $$");
        let (mut w, mdir) = started(&h);
        // alive (this test process stands in for the monitor), no record yet
        fs::write(mdir.join(container_monitor::PID_FILE), std::process::id().to_string()).expect("write monitor.pid");
        assert!(matches!(app_state(&mut w), ContainerState::Running { .. }));
        assert_eq!(h.runtime.calls(), vec![], "a running container is left alone");
        // the monitor writes its record, removes its pid file and exits, in that order
        fs::write(mdir.join(container_monitor::EXIT_FILE), r#"{"exitCode":0,"signal":null,"finishedAt":"2026-01-02T03:04:05.000000006Z"}"#)
            .expect("write exit");
        fs::remove_file(mdir.join(container_monitor::PID_FILE)).expect("remove monitor.pid");
        match app_state(&mut w) {
            ContainerState::Exited { exit_code, oom_killed, finished_at, .. } => {
                assert_eq!((exit_code, oom_killed), (0, false));
                assert_eq!(finished_at.to_rfc3339(), "2026-01-02T03:04:05.000000006+00:00");
            }
            other => panic!("expected exit 0, got {other:?}"),
        }
        let rec: ContainerRecord = read_json(&ContainerPaths::new(&w.dir, "app").dir.join("meta.json")).expect("meta.json");
        assert_eq!(rec.exit.map(|x| x.exit_code), Some(0), "the exit is recorded for a restarted kubelet");
        assert_eq!(h.runtime.calls(), vec![Call::Delete("u1-app-0".into())], "removed once; exit 0 asks nothing of OOM");
        // seen again: the recorded exit, nothing asked of the runtime
        assert!(matches!(app_state(&mut w), ContainerState::Exited { exit_code: 0, .. }));
        assert_eq!(h.runtime.calls().len(), 1);
    }

    /// A monitor that is gone and left no record (killed, node rebooted): the container counts as killed.
    #[test]
    fn a_monitor_gone_without_a_record_is_a_kill() {
        let h = harness("echo ok $$");
        let (mut w, mdir) = started(&h);
        let mut dead = std::process::Command::new("true").spawn().expect("spawn true");
        let dead_pid = dead.id();
        dead.wait().expect("reap true");
        fs::write(mdir.join(container_monitor::PID_FILE), dead_pid.to_string()).expect("write monitor.pid");
        match app_state(&mut w) {
            ContainerState::Exited { exit_code, oom_killed, .. } => assert_eq!((exit_code, oom_killed), (137, false)),
            other => panic!("expected a kill, got {other:?}"),
        }
        assert_eq!(h.runtime.calls(), vec![Call::OomKilled("u1-app-0".into()), Call::Delete("u1-app-0".into())]);
    }

    #[test]
    fn an_oom_kill_the_runtime_reports_is_recorded() {
        let h = harness("echo ok $$");
        let mut w = h.worker("IfNotPresent");
        h.runtime.set_oom("u1-app-0");
        let rec = started_record(&h);
        fs::create_dir_all(w.dir.join("containers/app")).expect("mkdir");
        let x = w.reap("app", &rec, container_monitor::ExitRecord { exit_code: 137, signal: Some(9), finished_at: String::new() });
        assert!(x.oom_killed);
        assert_eq!(h.runtime.calls(), vec![Call::OomKilled("u1-app-0".into()), Call::Delete("u1-app-0".into())]);
        let x = w.reap("app", &rec, container_monitor::ExitRecord { exit_code: 1, signal: None, finished_at: String::new() });
        assert!(!x.oom_killed, "only a SIGKILL exit asks the runtime");
    }
}
