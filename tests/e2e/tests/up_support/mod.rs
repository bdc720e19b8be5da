//! Shared by the `up*` e2e tests: one `rkube up` on a veth address and a bridge the test owns, removed with
//! `rkube down` on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rkube_testsupport::{poll_until, require_command, require_root, unique_name};

pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(p.exists(), "{} missing: cargo build -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins", p.display());
    p
}

/// One `rkube up` with its own data dir, veth and bridge; `rkube down` and the veth removal run on drop.
pub struct Up {
    pub data: tempfile::TempDir,
    pub veth: String,
    pub bridge: String,
    pub node_ip: String,
    pub subnet_prefix: String,
    pub child: Option<std::process::Child>,
    ip_forward: String,
}

impl Up {
    pub fn start() -> Up {
        require_root();
        require_command("ip", "iproute2");
        let kubectl = require_command("kubectl", "kubectl");
        let _ = kubectl;
        let data = tempfile::tempdir().expect("data dir");
        let veth = unique_name("rku");
        let bridge = unique_name("rkb");
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = ((std::process::id() * 7 + k * 31) % 200) as u8 + 20;
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

    pub fn launch(&mut self) {
        let log = std::fs::File::create(self.data.path().join(format!("rkube-{}.log", self.child.is_some() as u8))).expect("log");
        let _ = std::fs::remove_file(self.kubeconfig());
        let child = Command::new(bin("rkube"))
            .args(["up", "--data-dir"])
            .arg(self.data.path())
            .args(["--node-ip", &self.node_ip, "--listen", "127.0.0.1:0", "--bridge", &self.bridge])
            .args(["--pod-cidr", &format!("{}0/24", self.subnet_prefix)])
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
            let out = self.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].status.conditions[?(@.type==\"Ready\")].status}"]);
            (out.trim() == "True").then_some(())
        });
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data.path().join("kubeconfig")
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl").args(args).env("KUBECONFIG", self.kubeconfig()).output().expect("kubectl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
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


/// Mount points under `dir`.
pub fn mounts_under(dir: &Path) -> usize {
    let d = dir.canonicalize().expect("canon").to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines().filter(|l| l.split(' ').nth(4).map(|m| m.starts_with(&d)).unwrap_or(false)).count()
}

/// `rkube up`'s pid.
impl Up {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}
