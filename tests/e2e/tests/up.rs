//! `rkube up` with the real kubectl, as root: a busybox Pod (image imported offline) reaches Running with an
//! address from rkube's bridge network, its logs come through the apiserver's proxy from the kubelet, a
//! `kill -9` of rkube leaves the container running and the next `rkube up` adopts it without a restart, and
//! `rkube down` removes pods, mounts, the bridge and the network's veths.
//!
//! The node gets an address on a veth pair this test creates (never the uplink's). Needs the binaries:
//! `cargo build -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rkube_testsupport::{poll_until, require_command, require_root, unique_name};

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(p.exists(), "{} missing: cargo build -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins", p.display());
    p
}

/// One `rkube up` with its own data dir, veth and bridge; `rkube down` and the veth removal run on drop.
struct Up {
    data: tempfile::TempDir,
    veth: String,
    bridge: String,
    node_ip: String,
    subnet_prefix: String,
    child: Option<std::process::Child>,
    ip_forward: String,
}

impl Up {
    fn start() -> Up {
        require_root();
        require_command("ip", "iproute2");
        let kubectl = require_command("kubectl", "kubectl");
        let _ = kubectl;
        let data = tempfile::tempdir().expect("data dir");
        let veth = unique_name("rku");
        let bridge = unique_name("rkb");
        let n = (std::process::id() % 200) as u8 + 20;
        let node_ip = format!("10.198.{n}.1");
        let subnet_prefix = format!("10.197.{n}.");
        let ok = Command::new("ip")
            .args(["link", "add", &veth, "type", "veth", "peer", "name", &format!("{veth}p")])
            .status()
            .expect("ip")
            .success();
        assert!(ok, "create veth {veth}");
        let ip_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_else(|_| "0".into());
        let mut up = Up { data, veth, bridge, node_ip, subnet_prefix, child: None, ip_forward };
        for args in [
            vec!["addr", "add", &format!("{}/24", up.node_ip), "dev", &up.veth],
            vec!["link", "set", &up.veth, "up"],
            vec!["link", "set", &format!("{}p", up.veth), "up"],
        ] {
            assert!(Command::new("ip").args(&args).status().expect("ip").success(), "ip {args:?}");
        }
        // the demo image, offline
        let layout = rkube_testsupport::busybox_oci_layout(&up.data.path().join("oci"), "latest", &["sh"]);
        let out = Command::new(bin("rkube"))
            .args(["image", "import", "--root"])
            .arg(up.data.path().join("images"))
            .args(["--name", "docker.io/library/busybox:latest"])
            .arg(&layout.dir)
            .output()
            .expect("rkube image import");
        assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
        up.launch();
        up
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.data.path().join(format!("rkube-{}.log", self.child.is_some() as u8))).expect("log");
        let _ = std::fs::remove_file(self.kubeconfig());
        let child = Command::new(bin("rkube"))
            .args(["up", "--data-dir"])
            .arg(self.data.path())
            .args(["--node-ip", &self.node_ip, "--listen", "127.0.0.1:0", "--bridge", &self.bridge])
            .args(["--pod-cidr", &format!("{}0/24", self.subnet_prefix)])
            .env("RKUBE_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rkube up");
        self.child = Some(child);
        let kc = self.kubeconfig();
        poll_until("kubeconfig written", Duration::from_secs(30), || kc.exists().then_some(()));
        poll_until("node Ready", Duration::from_secs(60), || {
            let out = self.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].status.conditions[?(@.type==\"Ready\")].status}"]);
            (out.trim() == "True").then_some(())
        });
    }

    fn kubeconfig(&self) -> PathBuf {
        self.data.path().join("kubeconfig")
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl").args(args).env("KUBECONFIG", self.kubeconfig()).output().expect("kubectl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        if let Some(s) = stdin {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(s.as_bytes()).expect("write");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("kubectl");
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kill9(&mut self) {
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
                if let Ok(s) = std::fs::read_to_string(self.data.path().join(f)) {
                    let tail: Vec<&str> = s.lines().rev().take(30).collect();
                    eprintln!("--- {f} (last lines)\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
                }
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
        let _ = Command::new(bin("rkube")).args(["down", "--data-dir"]).arg(self.data.path()).stderr(Stdio::null()).status();
        let _ = Command::new("ip").args(["link", "del", &self.veth]).status();
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).stderr(Stdio::null()).status();
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", self.ip_forward.trim());
    }
}

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: hello
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "echo hello from $(hostname); while true; do sleep 1; done"]
"#;

fn mounts_under(dir: &Path) -> usize {
    let d = dir.canonicalize().expect("canon").to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines().filter(|l| l.split(' ').nth(4).map(|m| m.starts_with(&d)).unwrap_or(false)).count()
}

#[test]
fn up_runs_a_busybox_pod_survives_kill9_and_down_cleans_up() {
    let mut up = Up::start();
    up.kubectl_ok(&["apply", "-f", "-"], Some(POD));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/hello", "--timeout=60s"], None);
    let ip = up.kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.podIP}"]);
    assert!(ip.starts_with(&up.subnet_prefix), "pod IP {ip} from rkube's bridge network {}0/24", up.subnet_prefix);
    let host_ip = up.kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.hostIP}"]);
    assert_eq!(host_ip, up.node_ip);
    let logs = poll_until("logs through the apiserver", Duration::from_secs(20), || {
        let l = up.kubectl(&["logs", "hello"]);
        l.contains("hello from hello").then_some(l)
    });
    assert!(logs.starts_with("hello from hello"), "{logs}");
    let events = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=hello", "-o", "jsonpath={.items[*].reason}"]);
    for r in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(events.split_whitespace().any(|e| e == r), "event {r} in {events}");
    }
    let started_before = up.kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].state.running.startedAt}"]);

    // kill -9: the container keeps running; the next rkube adopts it
    up.kill9();
    let pods = up.data.path().join("kubelet/pods");
    let monitor_alive = std::fs::read_dir(&pods).expect("pod dirs").flatten().any(|p| {
        let pidfile = p.path().join("containers/hello/monitor/monitor.pid");
        let pid = std::fs::read_to_string(pidfile).unwrap_or_default();
        !pid.trim().is_empty() && Path::new(&format!("/proc/{}", pid.trim())).exists()
    });
    assert!(monitor_alive, "the container's monitor outlives rkube");
    up.launch();
    poll_until("pod Ready again after restart", Duration::from_secs(30), || {
        let s = up.kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].ready}"]);
        (s == "true").then_some(())
    });
    let restarts = up.kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]);
    assert_eq!(restarts, "0", "adopted, not restarted");
    let started_after = up.kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.containerStatuses[0].state.running.startedAt}"]);
    assert_eq!(started_before, started_after, "same container instance");
    let started_events = up.kubectl(&["get", "events", "--field-selector", "involvedObject.name=hello,reason=Started", "-o", "name"]);
    assert_eq!(started_events.lines().count(), 1, "no second Started event: {started_events}");

    // delete, then down: nothing left
    up.kubectl_ok(&["delete", "pod", "hello", "--timeout=60s"], None);
    assert!(up.kubectl(&["get", "pods", "-o", "name"]).trim().is_empty());
    let data = up.data.path().to_path_buf();
    let st = Command::new(bin("rkube")).args(["down", "--data-dir"]).arg(&data).status().expect("down");
    assert!(st.success());
    up.child = None;
    assert_eq!(mounts_under(&data), 0, "no mounts left under the data dir");
    let links = Command::new("ip").args(["-o", "link"]).output().expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains(&format!(" {}:", up.bridge)), "bridge {} removed", up.bridge);
    assert!(!links.contains(&format!("master {}", up.bridge)), "no veth left on the bridge");
    assert!(!data.join("kubelet/pods").exists());
}
