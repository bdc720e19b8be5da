//! `rkube server` and `rkube kubelet` as two processes that a test stops and starts on their own: the server on
//! a fixed loopback port (so a restarted server is where the kubelet and kubectl left it; `--tls`, and `--etcd`
//! when asked), the kubelet with its node address on a veth of the test's own (never the uplink's). Used by the
//! tests that need one half down while the other runs: crash recovery, static pods without an apiserver, RBAC
//! on the streaming subresources, the etcd-backed server.
//!
//! On drop: both processes stopped by PID, `rkube down` on the kubelet's data dir, the veth and bridge removed.
//! On a failing test the last lines of each process's logs are printed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rkube_testsupport::{poll_until, registry::free_port, require_command, require_root, unique_name, ChildGuard};

use crate::up_support::{bin, import_busybox, kubectl_ok_with, plenty_of_disk_args, kubectl_output_with, kubectl_try_with, kubectl_with, ForwardGuard, NodeNet};

/// How the server is run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// etcd endpoints for `rkube server --etcd`; empty: the embedded store in the server's data dir.
    pub etcd: Vec<String>,
    /// More `rkube kubelet` flags.
    pub kubelet_args: Vec<String>,
}

pub struct Cluster {
    pub server_dir: tempfile::TempDir,
    pub node_dir: tempfile::TempDir,
    pub net: NodeNet,
    pub node_name: String,
    pub kubeconfig: PathBuf,
    pub port: u16,
    opts: Options,
    server: Option<ChildGuard>,
    kubelet: Option<ChildGuard>,
    server_starts: u32,
    kubelet_starts: u32,
    _forward: ForwardGuard,
}

impl Cluster {
    /// Server and kubelet started, the node Ready.
    pub fn start(opts: Options) -> Cluster {
        require_root();
        require_command("ip", "iproute2");
        require_command("nft", "nftables");
        require_command("kubectl", "kubectl");
        let server_dir = tempfile::tempdir().expect("server dir");
        let kubeconfig = server_dir.path().join("kubeconfig");
        // the guard exists before anything it removes is made
        let mut c = Cluster {
            server_dir,
            node_dir: tempfile::tempdir().expect("node dir"),
            net: NodeNet::new(),
            node_name: unique_name("node"),
            kubeconfig,
            port: free_port(),
            opts,
            server: None,
            kubelet: None,
            server_starts: 0,
            kubelet_starts: 0,
            _forward: ForwardGuard::acquire(),
        };
        c.net.create_veth();
        import_busybox(c.node_dir.path());
        c.start_server();
        c.start_kubelet();
        c
    }

    /// Starts `rkube server` on this cluster's port and data (or etcd) and waits until it answers.
    pub fn start_server(&mut self) {
        assert!(self.server.is_none(), "the server is already running");
        let log = self.server_dir.path().join(format!("server-{}.log", self.server_starts));
        self.server_starts += 1;
        let mut cmd = Command::new(bin("rkube"));
        cmd.args(["server", "--data-dir"])
            .arg(self.server_dir.path())
            .args(["--listen", &format!("127.0.0.1:{}", self.port), "--tls", "--cluster-dns", &self.net.cluster_dns])
            .args(self.net.server_args());
        for e in &self.opts.etcd {
            cmd.args(["--etcd", e]);
        }
        let child = cmd
            .env("RKUBE_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("server log"))
            .spawn()
            .expect("start rkube server");
        let server = self.server.insert(ChildGuard::new(child, "rkube server"));
        let kubeconfig = self.kubeconfig.clone();
        poll_until("the server answers kubectl", Duration::from_secs(60), || {
            assert!(server.is_running(), "rkube server exited; see {}", log.display());
            if !kubeconfig.exists() {
                return None;
            }
            let out = kubectl_output_with(&kubeconfig, &["get", "--raw", "/readyz", "--request-timeout=10s"], None);
            out.status.success().then_some(())
        });
    }

    /// SIGKILL to the server, reaped.
    pub fn kill_server(&mut self) {
        let mut s = self.server.take().expect("the server runs");
        kill9(&mut s);
    }

    /// Starts `rkube kubelet` against the server and waits until the node is Ready.
    pub fn start_kubelet(&mut self) {
        self.spawn_kubelet();
        let (name, kubeconfig) = (self.node_name.clone(), self.kubeconfig.clone());
        let logs = self.node_dir.path().display().to_string();
        let kubelet = self.kubelet.as_mut().expect("kubelet");
        poll_until("node Ready", Duration::from_secs(60), || {
            assert!(kubelet.is_running(), "rkube kubelet exited; see the kubelet-N.log files in {logs}");
            // NotFound until the kubelet has registered the node
            let s = kubectl_try_with(&kubeconfig, &["get", "node", &name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]);
            (s.as_deref() == Some("True")).then_some(())
        });
        self.net.assert_node_pod_cidr(&kubeconfig, &name);
    }

    /// Starts `rkube kubelet` without waiting for anything.
    pub fn spawn_kubelet(&mut self) {
        assert!(self.kubelet.is_none(), "the kubelet is already running");
        let log = self.node_dir.path().join(format!("kubelet-{}.log", self.kubelet_starts));
        self.kubelet_starts += 1;
        // the kubelet runs as its node (system:node:<name>), held to its own objects by the Node authorizer
        let kubelet_kubeconfig = self.node_kubeconfig();
        let child = Command::new(bin("rkube"))
            .args(["kubelet", "--kubeconfig"])
            .arg(&kubelet_kubeconfig)
            .args(["--node-name", &self.node_name, "--data-dir"])
            .arg(self.node_dir.path())
            .args(self.net.node_args())
            .args(plenty_of_disk_args(self.node_dir.path()))
            .args(&self.opts.kubelet_args)
            .env("RKUBE_LOG", std::env::var("RKUBE_TEST_LOG").unwrap_or_else(|_| "info,kube=warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("kubelet log"))
            .spawn()
            .expect("start rkube kubelet");
        self.kubelet = Some(ChildGuard::new(child, "rkube kubelet"));
    }

    /// SIGKILL to the kubelet, reaped: a crash, nothing cleaned up on the way out.
    pub fn kill_kubelet(&mut self) {
        let mut k = self.kubelet.take().expect("the kubelet runs");
        kill9(&mut k);
    }

    pub fn kubelet_running(&mut self) -> bool {
        self.kubelet.as_mut().is_some_and(|k| k.is_running())
    }

    /// kubectl that must succeed: its stdout (see up_support::kubectl_with).
    pub fn kubectl(&self, args: &[&str]) -> String {
        kubectl_with(&self.kubeconfig, args)
    }

    /// kubectl that must succeed, fed `stdin`; its stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        kubectl_ok_with(&self.kubeconfig, args, stdin)
    }

    /// kubectl that may fail, as `kubeconfig` (default: the admin's): its whole output, within
    /// up_support::kubectl_deadline.
    pub fn kubectl_output(&self, kubeconfig: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Output {
        kubectl_output_with(kubeconfig.unwrap_or(&self.kubeconfig), args, stdin)
    }

    /// A field of one object by jsonpath, trimmed ("" when the object or field is missing).
    pub fn get(&self, what: &str, jsonpath: &str) -> String {
        let out = self.kubectl_output(None, &["get", what, "-o", &format!("jsonpath={jsonpath}")], None);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The kubelet's directory of pod `uid`.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.node_dir.path().join("kubelet/pods").join(uid)
    }

    /// A kubeconfig for `user` (client certificate from the cluster CA) written by `rkube kubeconfig`.
    pub fn user_kubeconfig(&self, user: &str) -> PathBuf {
        let path = self.server_dir.path().join(format!("{user}.kubeconfig"));
        let out = Command::new(bin("rkube"))
            .args(["kubeconfig", "--data-dir"])
            .arg(self.server_dir.path())
            .args(["--user", user, "-o"])
            .arg(&path)
            .output()
            .expect("run rkube kubeconfig");
        assert!(out.status.success(), "rkube kubeconfig: {}", String::from_utf8_lossy(&out.stderr));
        path
    }

    /// The kubelet's kubeconfig: its node's credential, written by `rkube kubeconfig --node`.
    pub fn node_kubeconfig(&self) -> PathBuf {
        let path = self.server_dir.path().join(format!("{}.kubeconfig", self.node_name));
        let out = Command::new(bin("rkube"))
            .args(["kubeconfig", "--data-dir"])
            .arg(self.server_dir.path())
            .args(["--node", &self.node_name, "-o"])
            .arg(&path)
            .output()
            .expect("run rkube kubeconfig --node");
        assert!(out.status.success(), "rkube kubeconfig --node: {}", String::from_utf8_lossy(&out.stderr));
        path
    }

    fn print_logs(&self) {
        for dir in [self.server_dir.path(), self.node_dir.path()] {
            let Ok(rd) = std::fs::read_dir(dir) else { continue };
            let mut logs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "log")).collect();
            logs.sort();
            for f in logs {
                if let Some(tail) = rkube_testsupport::log_tail(&f, 25) {
                    eprintln!("{tail}");
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        self.kubelet.take();
        let _ = Command::new(bin("rkube")).args(["down", "--data-dir"]).arg(self.node_dir.path()).stderr(Stdio::null()).status();
        self.server.take();
        self.net.remove_veth();
    }
}

fn kill9(g: &mut ChildGuard) {
    let pid = g.pid().to_string();
    let _ = Command::new("kill").args(["-KILL", &pid]).status();
    poll_until(&format!("{} (pid {pid}) to die", g.what()), Duration::from_secs(10), || (!g.is_running()).then_some(()));
}

/// Whether process `pid` exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    matches!(stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()), Some(c) if c != 'Z' && c != 'X')
}

/// A pid recorded in a file ("" or missing: None).
pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
