//! Shared by the `up*` e2e tests: one `rkube up` on a veth address and a bridge the test owns, removed with
//! `rkube down` on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rkube_testsupport::{poll_until, require_command, require_root, unique_name};

/// Deployment `web`: two busybox pods (the image every test cluster imports) that sleep, labelled app=web.
pub const SLEEPING_DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", "exec sleep 3600"]
"#;

pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(p.exists(), "{} missing: cargo build -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins", p.display());
    p
}

/// The kubelet's disk signal for a node whose data dir is `dir`: `--eviction-nodefs-signal-file` naming a file
/// there that says half the data disk is free, so the default `nodefs.available<10%` never taints a test node
/// with disk-pressure because the host's own disk is full (issue 13). Tests about disk pressure write the file.
pub fn plenty_of_disk_args(dir: &Path) -> Vec<String> {
    let file = dir.join("nodefs.available");
    std::fs::write(&file, "50%").expect("write the nodefs signal file");
    vec!["--eviction-nodefs-signal-file".into(), file.display().to_string()]
}

/// `rkube server --data-dir DATA --listen 127.0.0.1:PORT` and `extra`, its stderr in `log`; returns once the log
/// says "rkube server is up" (and fails with the log if it exits first). Stopped when the guard drops.
pub fn start_rkube_server(data: &Path, port: u16, extra: &[&str], log: &Path) -> rkube_testsupport::ChildGuard {
    let child = Command::new(bin("rkube"))
        .args(["server", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("server log"))
        .spawn()
        .expect("start rkube server");
    let mut guard = rkube_testsupport::ChildGuard::new(child, "rkube server");
    poll_until("rkube server to come up", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(guard.is_running(), "rkube server exited: {text}");
        text.contains("rkube server is up").then_some(())
    });
    guard
}

/// Host-wide ip_forward, shared by every test of this binary: the first test records the original, the last
/// one out puts it back (a test restoring it while another still runs would cut that one's forwarding).
static FORWARD: std::sync::Mutex<(u32, Option<String>)> = std::sync::Mutex::new((0, None));
const FORWARD_PATH: &str = "/proc/sys/net/ipv4/ip_forward";

pub struct ForwardGuard;

impl ForwardGuard {
    pub fn acquire() -> ForwardGuard {
        let mut g = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == 0 {
            g.1 = std::fs::read_to_string(FORWARD_PATH).ok();
        }
        g.0 += 1;
        ForwardGuard
    }
}

impl Drop for ForwardGuard {
    fn drop(&mut self) {
        let mut g = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            if let Some(orig) = g.1.take() {
                let _ = std::fs::write(FORWARD_PATH, orig.trim());
            }
        }
    }
}

/// Per-test network names and addresses: a node address on a veth the test makes, a pod /24, a bridge, the
/// cluster DNS address, its link and the proxy table, all unique so tests run side by side.
#[derive(Clone, Debug)]
pub struct NodeNet {
    pub veth: String,
    pub bridge: String,
    pub dns_link: String,
    pub proxy_table: String,
    pub node_ip: String,
    pub subnet_prefix: String,
    pub cluster_dns: String,
}

impl NodeNet {
    pub fn new() -> NodeNet {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // even third octets 20..218: the node on .n, its pods on .n+1 (never 10.99.x, inside the service CIDR)
        let n = 20 + 2 * ((std::process::id() * 7 + k * 31) % 100);
        NodeNet {
            veth: unique_name("rku"),
            bridge: unique_name("rkb"),
            dns_link: unique_name("rkd"),
            proxy_table: unique_name("rkp"),
            node_ip: format!("10.244.{n}.1"),
            subnet_prefix: format!("10.244.{}.", n + 1),
            cluster_dns: format!("10.96.0.{n}"),
        }
    }

    /// The node's pod subnet: the kubelet's `--pod-cidr`, and the Node's `spec.podCIDR` (`rkube up` gives its one
    /// Node the subnet of its `--pod-cidr`; a test's `rkube server` gets it as `--cluster-cidr`, see
    /// [`NodeNet::server_args`]), so the two agree.
    pub fn pod_cidr(&self) -> String {
        format!("{}0/24", self.subnet_prefix)
    }

    /// `rkube server` flags that make node IPAM give this node [`NodeNet::pod_cidr`] as its podCIDR.
    pub fn server_args(&self) -> Vec<String> {
        vec!["--cluster-cidr".into(), self.pod_cidr(), "--node-cidr-mask-size".into(), "24".into()]
    }

    /// Waits until Node `name` has its podCIDR and checks it is [`NodeNet::pod_cidr`].
    pub fn assert_node_pod_cidr(&self, kubeconfig: &Path, name: &str) {
        let got = poll_until("the Node's podCIDR", Duration::from_secs(30), || {
            kubectl_try_with(kubeconfig, &["get", "node", name, "-o", "jsonpath={.spec.podCIDR}"]).filter(|c| !c.trim().is_empty())
        });
        assert_eq!(got.trim(), self.pod_cidr(), "Node {name}'s spec.podCIDR is the subnet its kubelet's bridge uses (--pod-cidr)");
    }

    /// The veth pair holding the node address (removed by [`NodeNet::remove_veth`]).
    pub fn create_veth(&self) {
        let peer = format!("{}p", self.veth);
        for args in [
            vec!["link", "add", &self.veth, "type", "veth", "peer", "name", &peer],
            vec!["addr", "add", &format!("{}/24", self.node_ip), "dev", &self.veth],
            vec!["link", "set", &self.veth, "up"],
            vec!["link", "set", &peer, "up"],
        ] {
            assert!(Command::new("ip").args(&args).status().expect("ip").success(), "ip {args:?}");
        }
    }

    pub fn remove_veth(&self) {
        let _ = Command::new("ip").args(["link", "del", &self.veth]).stderr(Stdio::null()).status();
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).stderr(Stdio::null()).status();
    }

    /// The node flags for `rkube up` / `rkube kubelet`.
    pub fn node_args(&self) -> Vec<String> {
        [
            "--node-ip", &self.node_ip, "--bridge", &self.bridge, "--pod-cidr", &self.pod_cidr(),
            "--cluster-dns", &self.cluster_dns, "--dns-link", &self.dns_link, "--proxy-table", &self.proxy_table,
            // cluster names only: nothing is relayed off the machine
            "--dns-upstream", "none",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// What must be gone once the node is down: veths on the bridge, the bridge, the DNS link, the proxy table.
    pub fn assert_gone(&self) {
        let links = Command::new("ip").args(["-o", "link"]).output().expect("ip link");
        let links = String::from_utf8_lossy(&links.stdout);
        assert!(!links.contains(&format!(" {}:", self.bridge)), "bridge {} removed", self.bridge);
        // trailing space: another test's bridge may extend this one's name
        assert!(!links.contains(&format!("master {} ", self.bridge)), "no veth left on the bridge");
        assert!(!links.contains(&format!(" {}:", self.dns_link)), "dns link {} removed", self.dns_link);
        let tables = Command::new("nft").args(["list", "tables"]).output().expect("nft");
        let tables = String::from_utf8_lossy(&tables.stdout);
        assert!(!tables.contains(&self.proxy_table), "proxy table {} removed: {tables}", self.proxy_table);
    }
}

/// Imports the offline busybox demo image as docker.io/library/busybox:latest into `<data>/images`.
pub fn import_busybox(data: &Path) {
    import_busybox_as(data, "latest", None);
}

/// Imports busybox as docker.io/library/busybox:`tag`, with `User` set in its config when given. Safe while
/// `rkube up` runs: the store's index is locked and re-read on every lookup.
pub fn import_busybox_as(data: &Path, tag: &str, user: Option<&str>) {
    let layout = rkube_testsupport::busybox_oci_layout_as(&data.join(format!("oci-{tag}")), tag, &["sh"], user);
    let out = Command::new(bin("rkube"))
        .args(["image", "import", "--root"])
        .arg(data.join("images"))
        .args(["--name", &format!("docker.io/library/busybox:{tag}")])
        .arg(&layout.dir)
        .output()
        .expect("rkube image import");
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
}

/// One `rkube up` with its own data dir, veth, bridge, DNS address and proxy table; `rkube down` and the veth
/// removal run on drop.
pub struct Up {
    pub data: tempfile::TempDir,
    pub net: NodeNet,
    pub veth: String,
    pub bridge: String,
    pub node_ip: String,
    pub subnet_prefix: String,
    pub child: Option<std::process::Child>,
    /// More `rkube up` flags (e.g. eviction thresholds).
    pub extra_args: Vec<String>,
    _forward: ForwardGuard,
}

impl Up {
    pub fn start() -> Up {
        Up::start_with(&[])
    }

    /// `rkube up` with more flags.
    pub fn start_with(extra: &[&str]) -> Up {
        require_root();
        require_command("ip", "iproute2");
        require_command("nft", "nftables");
        require_command("kubectl", "kubectl");
        let data = tempfile::tempdir().expect("data dir");
        let net = NodeNet::new();
        // the guard exists before anything it removes is made
        let mut up = Up {
            data,
            veth: net.veth.clone(),
            bridge: net.bridge.clone(),
            node_ip: net.node_ip.clone(),
            subnet_prefix: net.subnet_prefix.clone(),
            net,
            child: None,
            extra_args: extra.iter().map(|a| a.to_string()).collect(),
            _forward: ForwardGuard::acquire(),
        };
        up.net.create_veth();
        import_busybox(up.data.path());
        up.launch();
        up
    }

    pub fn launch(&mut self) {
        let log = std::fs::File::create(self.data.path().join(format!("rkube-{}.log", self.child.is_some() as u8))).expect("log");
        let _ = std::fs::remove_file(self.kubeconfig());
        // a test that sets the disk signal itself gives the flag in its extra args
        let disk = if self.extra_args.iter().any(|a| a.starts_with("--eviction-nodefs-signal-file")) {
            Vec::new()
        } else {
            plenty_of_disk_args(self.data.path())
        };
        let mut node_args = self.net.node_args();
        // a test that names its own DNS upstream (a stand-in resolver on loopback) gives the flag in its extra args
        if let Some(i) = node_args.iter().position(|a| a == "--dns-upstream").filter(|_| self.extra_args.iter().any(|a| a == "--dns-upstream")) {
            node_args.drain(i..i + 2);
        }
        let child = Command::new(bin("rkube"))
            .args(["up", "--data-dir"])
            .arg(self.data.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(node_args)
            .args(disk)
            .args(&self.extra_args)
            // RKUBE_TEST_LOG=info,rkube_kubelet=debug shows the kubelet's per-step pod timings in rkube-N.log
            .env("RKUBE_LOG", std::env::var("RKUBE_TEST_LOG").unwrap_or_else(|_| "info,kube=warn".into()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rkube up");
        self.child = Some(child);
        let kc = self.kubeconfig();
        poll_until("kubeconfig written", Duration::from_secs(30), || kc.exists().then_some(()));
        poll_until("node Ready", Duration::from_secs(60), || {
            // no node registered yet: jsonpath's items[0] is an error
            let out = self.kubectl_try(&["get", "nodes", "-o", "jsonpath={.items[0].status.conditions[?(@.type==\"Ready\")].status}"])?;
            (out.trim() == "True").then_some(())
        });
        let name = self.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
        self.net.assert_node_pod_cidr(&kc, name.trim());
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data.path().join("kubeconfig")
    }

    /// kubectl that must succeed: its stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        kubectl_with(&self.kubeconfig(), args)
    }

    /// kubectl that must succeed, fed `stdin` when given: its stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        kubectl_ok_with(&self.kubeconfig(), args, stdin)
    }

    /// kubectl whose failure the caller checks.
    pub fn kubectl_output(&self, args: &[&str]) -> std::process::Output {
        kubectl_output_with(&self.kubeconfig(), args, None)
    }

    /// kubectl in a poll: stdout, or None when it failed (see [`kubectl_try_with`]).
    pub fn kubectl_try(&self, args: &[&str]) -> Option<String> {
        kubectl_try_with(&self.kubeconfig(), args)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for f in ["rkube-0.log", "rkube-1.log"] {
                if let Some(tail) = rkube_testsupport::log_tail(&self.data.path().join(f), 30) {
                    eprintln!("{tail}");
                }
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
        let _ = Command::new(bin("rkube")).args(["down", "--data-dir"]).arg(self.data.path()).stderr(Stdio::null()).status();
        self.net.remove_veth();
    }
}

/// Mount points under `dir`.
pub fn mounts_under(dir: &Path) -> usize {
    let d = dir.canonicalize().expect("canon").to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines().filter(|l| l.split(' ').nth(4).map(|m| m.starts_with(&d)).unwrap_or(false)).count()
}

/// How long one kubectl call may take before the test fails: its own `--timeout=` (`60s`, `2m`) plus half a
/// minute, else a minute. Nothing a test asks of kubectl takes longer on a loaded machine when rkube works.
pub fn kubectl_deadline(args: &[&str]) -> Duration {
    let own = args.iter().find_map(|a| a.strip_prefix("--timeout=")).and_then(|t| {
        let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: u64 = n.parse().ok()?;
        match unit {
            "s" | "" => Some(n),
            "m" => Some(n * 60),
            _ => None,
        }
    });
    own.map(|s| Duration::from_secs(s + 30)).unwrap_or(Duration::from_secs(60))
}

/// kubectl against `kubeconfig`, fed `stdin` when given, killed (and the test failed with what it printed) if it
/// runs past [`kubectl_deadline`]. Exit status as it is: for the checks that expect kubectl to fail.
pub fn kubectl_output_with(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new("kubectl");
    cmd.args(args).env("KUBECONFIG", kubeconfig);
    rkube_testsupport::output_within(&mut cmd, stdin.map(str::as_bytes), kubectl_deadline(args), &format!("kubectl {args:?}"))
}

/// kubectl against `kubeconfig` that must succeed: its stdout, or the test fails with kubectl's stderr.
pub fn kubectl_with(kubeconfig: &Path, args: &[&str]) -> String {
    kubectl_ok_with(kubeconfig, args, None)
}

/// kubectl against `kubeconfig` that must succeed, fed `stdin` when given; returns its stdout.
pub fn kubectl_ok_with(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl_output_with(kubeconfig, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// For polls whose condition may not hold yet in a way kubectl reports as an error (a pod whose container has
/// not started has no logs; a node not yet registered is NotFound): stdout on success, None on failure, with
/// kubectl's stderr printed so a poll that times out shows the last error.
pub fn kubectl_try_with(kubeconfig: &Path, args: &[&str]) -> Option<String> {
    let out = kubectl_output_with(kubeconfig, args, None);
    if out.status.success() {
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        eprintln!("kubectl {args:?} (retried): {}", String::from_utf8_lossy(&out.stderr).trim());
        None
    }
}

/// `rkube up`'s pid.
impl Up {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

/// `rkube server --tls` and a separate `rkube kubelet` process, each with its own data dir, the node's address
/// on a test veth. On drop: both processes stopped, `rkube down` on the kubelet's data dir, the veth removed.
pub struct SplitCluster {
    pub server_dir: tempfile::TempDir,
    pub node_dir: tempfile::TempDir,
    pub net: NodeNet,
    pub node_name: String,
    pub kubeconfig: PathBuf,
    pub kubelet: Option<rkube_testsupport::ChildGuard>,
    server: Option<rkube_testsupport::ChildGuard>,
    _forward: ForwardGuard,
}

impl SplitCluster {
    /// Starts both and waits until the node is Ready.
    pub fn start() -> SplitCluster {
        require_root();
        let net = NodeNet::new();
        // the guard exists before anything it removes is made
        let mut c = SplitCluster {
            server_dir: tempfile::tempdir().expect("server dir"),
            node_dir: tempfile::tempdir().expect("node dir"),
            node_name: unique_name("node"),
            kubeconfig: PathBuf::new(),
            kubelet: None,
            server: None,
            net,
            _forward: ForwardGuard::acquire(),
        };
        c.kubeconfig = c.server_dir.path().join("kubeconfig");
        c.net.create_veth();
        import_busybox(c.node_dir.path());
        let log = |dir: &Path, name: &str| std::fs::File::create(dir.join(name)).expect("log");
        let server = Command::new(bin("rkube"))
            .args(["server", "--data-dir"])
            .arg(c.server_dir.path())
            .args(["--listen", "127.0.0.1:0", "--tls", "--cluster-dns", &c.net.cluster_dns])
            .env("RKUBE_LOG", "info,kube=warn")
            .stderr(log(c.server_dir.path(), "server.log"))
            .spawn()
            .expect("start rkube server");
        let server = c.server.insert(rkube_testsupport::ChildGuard::new(server, "rkube server"));
        poll_until("server kubeconfig", Duration::from_secs(30), || {
            assert!(server.is_running(), "rkube server exited; see {}", c.server_dir.path().join("server.log").display());
            c.kubeconfig.exists().then_some(())
        });
        let kubelet = Command::new(bin("rkube"))
            .args(["kubelet", "--kubeconfig"])
            .arg(&c.kubeconfig)
            .args(["--node-name", &c.node_name, "--data-dir"])
            .arg(c.node_dir.path())
            .args(c.net.node_args())
            .args(plenty_of_disk_args(c.node_dir.path()))
            .env("RKUBE_LOG", "info,kube=warn")
            .stderr(log(c.node_dir.path(), "kubelet.log"))
            .spawn()
            .expect("start rkube kubelet");
        c.kubelet = Some(rkube_testsupport::ChildGuard::new(kubelet, "rkube kubelet"));
        poll_until("node Ready", Duration::from_secs(60), || {
            let running = c.kubelet.as_mut().is_some_and(|k| k.is_running());
            assert!(running, "rkube kubelet exited; see {}", c.node_dir.path().join("kubelet.log").display());
            // NotFound until the kubelet registers
            let s = c.kubectl_try(&["get", "node", &c.node_name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"])?;
            (s == "True").then_some(())
        });
        c
    }

    /// kubectl that must succeed: its stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        kubectl_with(&self.kubeconfig, args)
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        kubectl_ok_with(&self.kubeconfig, args, None)
    }

    /// kubectl whose failure the caller checks.
    pub fn kubectl_output(&self, args: &[&str]) -> std::process::Output {
        kubectl_output_with(&self.kubeconfig, args, None)
    }

    /// kubectl in a poll: stdout, or None when it failed (see [`kubectl_try_with`]).
    pub fn kubectl_try(&self, args: &[&str]) -> Option<String> {
        kubectl_try_with(&self.kubeconfig, args)
    }

    pub fn kubelet_pid(&self) -> u32 {
        self.kubelet.as_ref().expect("kubelet running").pid()
    }
}

impl Drop for SplitCluster {
    fn drop(&mut self) {
        self.kubelet.take();
        let _ = Command::new(bin("rkube")).args(["down", "--data-dir"]).arg(self.node_dir.path()).stderr(Stdio::null()).status();
        self.server.take();
        self.net.remove_veth();
    }
}
