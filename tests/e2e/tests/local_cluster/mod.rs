//! A `rkube cluster` of one test's own (cluster.rs, cluster_vxlan.rs): its name, data dir and LAN subnet, the
//! `rkube cluster` verbs on it, kubectl with its admin kubeconfig, and on drop `rkube cluster down` with the checks
//! that nothing of it is left (network namespaces, host link, data dir, mounts, cgroups); its logs are printed
//! first when the test failed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::up_support::{bin, kubectl_with};

/// `rkube ARGS`, logging at info (kube-rs at warn).
pub fn rkube(args: &[&str]) -> Output {
    Command::new(bin("rkube")).args(args).env("RKUBE_LOG", "info,kube=warn").output().expect("run rkube")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

pub struct LocalCluster {
    pub name: String,
    pub data: PathBuf,
    _tmp: tempfile::TempDir,
    /// The LAN's /24: node i is .10+i (routed: .16i+2).
    pub subnet: [u8; 3],
    /// Made with `--lan routed`: each node on a /28 of its own behind a router.
    pub routed: bool,
}

impl LocalCluster {
    /// A name from `prefix`, a data dir in a temp dir, the LAN `subnet` (a range of the test's own).
    pub fn new(prefix: &str, subnet: [u8; 3]) -> LocalCluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let name = rkube_testsupport::unique_name(prefix);
        LocalCluster { data: tmp.path().join(&name), _tmp: tmp, subnet, name, routed: false }
    }

    /// The same cluster on a routed LAN: [`LocalCluster::up`] passes `--lan routed`.
    pub fn routed(mut self) -> LocalCluster {
        self.routed = true;
        self
    }

    /// `rkube cluster up --subnet <its LAN> [--lan routed] ARGS`, which must succeed; its output.
    pub fn up(&self, args: &[&str]) -> String {
        let [a, b, c] = self.subnet;
        let subnet = format!("{a}.{b}.{c}.0/24");
        let mut all = vec!["up", "--subnet", &subnet];
        if self.routed {
            all.extend(["--lan", "routed"]);
        }
        all.extend_from_slice(args);
        self.cluster(&all)
    }

    fn which(&self) -> Vec<String> {
        vec!["--name".into(), self.name.clone(), "--data-dir".into(), self.data.display().to_string()]
    }

    fn run_cluster(&self, args: &[&str]) -> (Output, Vec<String>) {
        let mut a: Vec<String> = vec!["cluster".into()];
        a.extend(args.iter().map(|s| s.to_string()));
        a.extend(self.which());
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        (rkube(&refs), a)
    }

    /// `rkube cluster ARGS --name --data-dir` of this cluster, which must succeed; its output.
    pub fn cluster(&self, args: &[&str]) -> String {
        let (out, a) = self.run_cluster(args);
        let text = text(&out);
        assert!(out.status.success(), "rkube {a:?}: {text}");
        text
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data.join("server/kubeconfig")
    }

    pub fn node(&self, i: usize) -> String {
        format!("{}-n{i}", self.name)
    }

    pub fn node_ip(&self, i: usize) -> String {
        let [a, b, c] = self.subnet;
        if self.routed {
            format!("{a}.{b}.{c}.{}", 16 * i + 2)
        } else {
            format!("{a}.{b}.{c}.{}", 10 + i)
        }
    }

    /// Node i's network namespace.
    pub fn netns(&self, i: usize) -> String {
        format!("rkc-{}", self.node(i))
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        kubectl_with(&self.kubeconfig(), args)
    }

    fn print_logs(&self) {
        let Ok(rd) = std::fs::read_dir(&self.data) else { return };
        for f in rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "log")) {
            if let Some(tail) = rkube_testsupport::log_tail(&f, 30) {
                eprintln!("{tail}");
            }
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        let (out, _) = self.run_cluster(&["down"]);
        let text = text(&out);
        eprintln!("rkube cluster down:\n{text}");
        if std::thread::panicking() {
            return;
        }
        assert!(out.status.success(), "cluster down failed: {text}");
        // nothing is left
        let netns = String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).stderr(Stdio::null()).output().expect("ip").stdout).into_owned();
        assert!(!netns.contains(&format!("rkc-{}-", self.name)), "network namespaces left: {netns}");
        assert!(!Path::new("/sys/class/net").join(format!("rkc-{}", self.name)).exists(), "host link left");
        assert!(!self.data.exists(), "data dir {} left", self.data.display());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        assert!(!mounts.contains(&self.data.display().to_string()), "mounts left under {}", self.data.display());
        let cg = format!("rkc-{}", self.name);
        for h in std::fs::read_dir("/sys/fs/cgroup").expect("cgroupfs").flatten() {
            assert!(!h.path().join(&cg).exists(), "cgroup {} left", h.path().join(&cg).display());
        }
    }
}
