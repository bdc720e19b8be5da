//! The pod worker for real, as root, without an apiserver: a busybox pod gets a sandbox (rkube-runtime), a CNI
//! address (the reference bridge + host-local plugins on a bridge this test names), its image from the local
//! store, a running container whose output reaches the CRI log; crashes back off; a second worker adopts a
//! running pod without restarting it; deletion leaves nothing behind.
//!
//! Needs `cargo build -p rkube-runtime` (the runtime CLI next to this test's binaries).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_kubelet::config::KubeletConfig;
use rkube_kubelet::container::env::EnvSources;
use rkube_kubelet::image::{ImageService, RegistryConfig};
use rkube_kubelet::pod::events::{EventType, PodSink};
use rkube_kubelet::pod::network::PodNetwork;
use rkube_kubelet::runtime_client::RuntimeCli;
use rkube_kubelet::pod::worker::{NodeContext, PodWorker};
use rkube_testsupport::{poll_until, require_command, require_root, unique_name};

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(String, String, String)>>,
    statuses: Mutex<Vec<PodStatus>>,
    finalized: Mutex<bool>,
}

impl PodSink for Recorder {
    fn event(&self, _pod: &Pod, container: Option<&str>, _t: EventType, reason: &str, message: String) {
        self.events.lock().expect("lock").push((container.unwrap_or("").into(), reason.into(), message));
    }
    fn status(&self, _pod: &Pod, status: PodStatus) {
        self.statuses.lock().expect("lock").push(status);
    }
    fn finalized(&self, _pod: &Pod) {
        *self.finalized.lock().expect("lock") = true;
    }
    fn sources(&self, _pod: &Pod, _services: bool) -> EnvSources {
        EnvSources::default()
    }
}

impl Recorder {
    fn last(&self) -> Option<PodStatus> {
        self.statuses.lock().expect("lock").last().cloned()
    }
    fn count(&self, reason: &str) -> usize {
        self.events.lock().expect("lock").iter().filter(|e| e.1 == reason).count()
    }
}

fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    exe.parent().and_then(|d| d.parent()).expect("target dir").to_path_buf()
}

/// Everything one test makes, removed on drop: pods (through a worker's own teardown), the bridge, dirs.
struct Node {
    ctx: Arc<NodeContext>,
    sink: Arc<Recorder>,
    bridge: String,
    _tmp: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
    pods: Vec<Pod>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("events: {:#?}", self.sink.events.lock().map(|e| e.clone()).unwrap_or_default());
            eprintln!("last status: {:#?}", self.sink.last());
        }
        for p in self.pods.clone() {
            let mut p = p;
            p.metadata.deletion_timestamp = Some(rkube_kubelet::time::to_k8s(chrono::Utc::now()));
            p.metadata.deletion_grace_period_seconds = Some(0);
            let mut w = PodWorker::new(self.ctx.clone(), p);
            for _ in 0..5 {
                w.sync();
                if w.is_finalized() {
                    break;
                }
            }
        }
        let _ = std::process::Command::new("ip").args(["link", "del", &self.bridge]).status();
        self.ctx.runtime.remove_pod_cgroup(&self.ctx.config.cgroup_root);
    }
}

fn node() -> Node {
    require_root();
    require_command("ip", "iproute2");
    assert!(Path::new("/usr/lib/cni/bridge").exists(), "apt-get install -y containernetworking-plugins");
    let runtime_bin = bin_dir().join("rkube-runtime");
    assert!(runtime_bin.exists(), "build the runtime first: cargo build -p rkube-runtime ({} missing)", runtime_bin.display());
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    let bridge = unique_name("kwb");
    let conf_dir = data.join("net.d");
    std::fs::create_dir_all(&conf_dir).expect("conf dir");
    // a /24 from 10.123.x.0 that depends on the pid, so parallel test processes do not overlap
    let third = (std::process::id() % 200) as u8 + 20;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": bridge.clone(),
        "plugins": [{"type": "bridge", "bridge": bridge.clone(), "isGateway": false, "ipMasq": false,
            "ipam": {"type": "host-local", "dataDir": data.join("ipam"), "ranges": [[{"subnet": format!("10.123.{third}.0/24")}]]}}]
    });
    std::fs::write(conf_dir.join("10-test.conflist"), conf.to_string()).expect("conflist");
    let mut cfg = KubeletConfig::new("test-node", "10.200.0.1", data);
    cfg.runtime_bin = runtime_bin;
    cfg.monitor_bin = PathBuf::from(env!("CARGO_BIN_EXE_rkube-monitor"));
    cfg.cni_conf_dir = conf_dir.clone();
    cfg.cni_bin_dirs = vec!["/usr/lib/cni".into()];
    // a cgroup root of this test's own, removed on drop (the host's kubepods may belong to a running node)
    cfg.cgroup_root = unique_name("kwpods");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio");
    let images = ImageService::new(data.join("images"), RegistryConfig::default()).expect("image store");
    let layout = rkube_testsupport::busybox_oci_layout(&data.join("oci"), "1.0", &["sh"]);
    rkube_kubelet::image::import::import(images.store(), &layout.dir, Some("busybox:1.0")).expect("import busybox");
    let sink = Arc::new(Recorder::default());
    let ctx = Arc::new(NodeContext {
        runtime: Arc::new(RuntimeCli { bin: cfg.runtime_bin.clone(), root: cfg.runtime_root.clone() }),
        network: PodNetwork::new(conf_dir, cfg.cni_bin_dirs.clone(), cfg.cni_cache_dir.clone()),
        images: Arc::new(images),
        tokio: rt.handle().clone(),
        sink: sink.clone(),
        node_memory_bytes: 1 << 30,
        node_cpu_millis: 2000,
        config: cfg,
    });
    Node { ctx, sink, bridge, _tmp: tmp, _rt: rt, pods: Vec::new() }
}

fn pod(name: &str, policy: &str, script: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("{}-{}", unique_name("u"), name)),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some(policy.into()),
            termination_grace_period_seconds: Some(2),
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox:1.0".into()),
                image_pull_policy: Some("IfNotPresent".into()),
                command: Some(vec!["sh".into(), "-c".into(), script.into()]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

fn phase(s: &Option<PodStatus>) -> String {
    s.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default()
}

fn main_status(s: &PodStatus) -> k8s_openapi::api::core::v1::ContainerStatus {
    s.container_statuses.as_ref().and_then(|c| c.first().cloned()).expect("container status")
}

#[test]
fn runs_logs_adopts_and_cleans_up() {
    let mut n = node();
    let p = pod("web", "Always", "echo hello from $(hostname); cat /etc/hosts | grep web; sleep 300");
    n.pods.push(p.clone());
    let mut w = PodWorker::new(n.ctx.clone(), p.clone());
    let started = std::time::Instant::now();
    poll_until("pod Running", Duration::from_secs(30), || {
        w.sync();
        (phase(&n.sink.last()) == "Running").then_some(())
    });
    eprintln!("pod Running after {:?}", started.elapsed());
    let st = n.sink.last().expect("status");
    let ip = st.pod_ip.clone().expect("pod IP from CNI");
    assert!(ip.starts_with("10.123."), "{ip}");
    assert_eq!(st.host_ip.as_deref(), Some("10.200.0.1"));
    let cs = main_status(&st);
    assert!(cs.ready && cs.restart_count == 0);
    for r in ["Pulled", "Created", "Started"] {
        assert_eq!(n.sink.count(r), 1, "event {r}");
    }
    // the log in CRI format, written by the monitor
    let log_dir = n.ctx.config.log_dir.clone();
    let log = poll_until("container output logged", Duration::from_secs(10), || {
        let uid = p.metadata.uid.clone().expect("uid");
        let path = log_dir.join(format!("default_web_{uid}")).join("main").join("0.log");
        let s = std::fs::read_to_string(path).ok()?;
        (s.contains("hello from web") && s.contains(&ip)).then_some(s)
    });
    assert!(log.lines().all(|l| l.contains(" stdout F ") || l.contains(" stderr F ")), "{log}");

    // kubelet "restart": a new worker over the same pod directory adopts the running container
    drop(w);
    let mut w2 = PodWorker::new(n.ctx.clone(), p.clone());
    let observed = w2.observe();
    assert!(matches!(observed.containers["main"].state, rkube_kubelet::pod::lifecycle::ContainerState::Running { .. }));
    w2.sync();
    assert_eq!(n.sink.count("Started"), 1, "adopted, not restarted");
    assert_eq!(main_status(&n.sink.last().expect("status")).restart_count, 0);

    // delete: SIGTERM, grace, everything removed
    let mut d = p.clone();
    d.metadata.deletion_timestamp = Some(rkube_kubelet::time::to_k8s(chrono::Utc::now()));
    d.metadata.deletion_grace_period_seconds = Some(1);
    let mut w3 = PodWorker::new(n.ctx.clone(), d);
    poll_until("pod finalized", Duration::from_secs(30), || {
        w3.sync();
        w3.is_finalized().then_some(())
    });
    assert!(*n.sink.finalized.lock().expect("lock"));
    let uid = p.metadata.uid.clone().expect("uid");
    assert!(!n.ctx.config.root_dir.join("pods").join(&uid).exists(), "pod dir removed");
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(!mounts.contains(n.ctx.config.root_dir.to_str().expect("utf8")), "no mounts left");
    let list = std::process::Command::new(&n.ctx.config.runtime_bin).arg("--root").arg(&n.ctx.config.runtime_root).args(["list", "-q"]).output().expect("list");
    assert!(String::from_utf8_lossy(&list.stdout).trim().is_empty(), "runtime has no containers left");
    let pod_cgroup = format!("/sys/fs/cgroup/memory/{}/besteffort/pod{uid}", n.ctx.config.cgroup_root);
    assert!(!Path::new(&pod_cgroup).exists(), "pod cgroup removed");
    n.pods.clear();
}

#[test]
fn crash_backs_off_and_counts_restarts() {
    let mut n = node();
    let p = pod("crash", "Always", "echo dying; exit 3");
    n.pods.push(p.clone());
    let mut w = PodWorker::new(n.ctx.clone(), p);
    let st = poll_until("CrashLoopBackOff", Duration::from_secs(30), || {
        w.sync();
        let st = n.sink.last()?;
        let cs = main_status(&st);
        (cs.state.as_ref()?.waiting.as_ref()?.reason.as_deref() == Some("CrashLoopBackOff")).then_some(st)
    });
    let cs = main_status(&st);
    let last = cs.last_state.and_then(|l| l.terminated).expect("last state");
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    assert_eq!(cs.restart_count, 0);
    assert!(n.sink.count("BackOff") >= 1);
    // after the 10 s backoff it runs again: restartCount 1
    poll_until("restart after backoff", Duration::from_secs(25), || {
        w.sync();
        (main_status(&n.sink.last()?).restart_count == 1).then_some(())
    });
    assert_eq!(n.sink.count("Started"), 2);
}

#[test]
fn bad_command_and_unknown_image_are_reported() {
    let mut n = node();
    let mut p = pod("badcmd", "Never", "");
    p.spec.as_mut().expect("spec").containers[0].command = Some(vec!["/no/such/binary".into()]);
    n.pods.push(p.clone());
    let mut w = PodWorker::new(n.ctx.clone(), p);
    let st = poll_until("bad command reported", Duration::from_secs(20), || {
        w.sync();
        let st = n.sink.last()?;
        let cs = main_status(&st);
        let s = cs.state.as_ref()?;
        let reason = s.waiting.as_ref().and_then(|w| w.reason.clone()).or_else(|| s.terminated.as_ref().and_then(|t| t.reason.clone()))?;
        (reason == "RunContainerError" || reason == "Error" || reason == "ContainerCannotRun").then_some(st)
    });
    eprintln!("bad command status: {:?}", main_status(&st).state);

    let mut p = pod("noimage", "Always", "true");
    p.spec.as_mut().expect("spec").containers[0].image = Some("127.0.0.1:1/nope/missing:1".into());
    n.pods.push(p.clone());
    let mut w = PodWorker::new(n.ctx.clone(), p);
    poll_until("ErrImagePull", Duration::from_secs(20), || {
        w.sync();
        let cs = main_status(&n.sink.last()?);
        let r = cs.state.as_ref()?.waiting.as_ref()?.reason.clone()?;
        (r == "ErrImagePull" || r == "ImagePullBackOff").then_some(())
    });
    assert!(n.sink.count("Failed") >= 1);
}
