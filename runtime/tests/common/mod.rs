//! Shared fixtures for the runtime's root integration tests: a busybox bundle with a default config, a private
//! state root and a unique cgroup path, all removed (delete --force, rmdir) when the guard drops.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rkube_testsupport::{busybox_rootfs, poll_until, require_root, unique_name};
use serde_json::{json, Value};

pub const RT: &str = env!("CARGO_BIN_EXE_rkube-runtime");

/// One test's bundle, state root and container ids.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub root: tempfile::TempDir,
    pub config: Value,
    pub cgroup: String,
    pub ids: Vec<String>,
}

impl Bundle {
    /// A busybox bundle running `args`, with the default namespaces, mounts and a unique cgroup.
    pub fn new(args: &[&str]) -> Bundle {
        require_root();
        let dir = tempfile::tempdir().expect("bundle dir");
        busybox_rootfs(&dir.path().join("rootfs"));
        let root = tempfile::tempdir().expect("state root");
        let cgroup = format!("/rkube-test/{}", unique_name("rkc"));
        let config = default_config(args, &cgroup);
        Bundle { dir, root, config, cgroup, ids: Vec::new() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn write(&self) {
        fs::write(self.dir.path().join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
    }

    /// A fresh container id, remembered for cleanup.
    pub fn id(&mut self) -> String {
        let id = unique_name("rkr");
        self.ids.push(id.clone());
        id
    }

    /// The CLI with `--root` set.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(RT);
        c.arg("--root").arg(self.root.path());
        c
    }

    pub fn rt(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().expect("run rkube-runtime")
    }

    /// `run` in the foreground: (exit code, stdout, stderr).
    pub fn run(&mut self) -> (i32, String, String) {
        self.write();
        let id = self.id();
        let out = self.rt(&["run", "--bundle", self.dir.path().to_str().unwrap(), &id]);
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Runs and asserts success; returns stdout.
    pub fn run_ok(&mut self) -> String {
        let (code, out, err) = self.run();
        assert_eq!(code, 0, "container failed: stdout={out} stderr={err}");
        out
    }

    /// `create` with the container's stdout/stderr going to a file in the bundle; returns (id, output path).
    pub fn create(&mut self) -> (String, PathBuf) {
        self.write();
        let id = self.id();
        let log = self.dir.path().join(format!("{id}.out"));
        let f = fs::File::create(&log).unwrap();
        let out = self
            .cmd()
            .args(["create", "--bundle", self.dir.path().to_str().unwrap(), &id])
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .output()
            .expect("run create");
        assert!(out.status.success(), "create failed: {}", fs::read_to_string(&log).unwrap_or_default());
        (id, log)
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]);
        assert!(out.status.success(), "state {id}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("state is JSON")
    }

    pub fn wait_status(&self, id: &str, status: &str) {
        poll_until(&format!("container {id} to be {status}"), Duration::from_secs(20), || {
            (self.state(id)["status"] == status).then_some(())
        });
    }

    /// Every directory the container's cgroup would occupy on this host.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let rel = self.cgroup.trim_start_matches('/');
        fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.path().join(rel))
            .collect()
    }

    pub fn cgroup_exists(&self) -> bool {
        self.cgroup_dirs().iter().any(|d| d.exists())
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.rt(&["delete", "--force", id]);
        }
        for d in self.cgroup_dirs() {
            let _ = fs::remove_dir(&d);
            // The shared parent goes too once the last test's cgroup is gone (fails harmlessly before that).
            if let Some(parent) = d.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
        let _ = fs::remove_dir_all(self.root.path());
    }
}

/// The default config (like `rkube-runtime spec`) without a terminal, running `args`.
pub fn default_config(args: &[&str], cgroup: &str) -> Value {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "rkube-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "cgroupsPath": cgroup,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// Bit mask of capability numbers, as /proc/self/status prints it (16 hex digits).
pub fn cap_mask(nums: &[u32]) -> String {
    format!("{:016x}", nums.iter().fold(0u64, |m, n| m | (1u64 << n)))
}

/// The value of `Key:` in /proc/self/status output.
pub fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{key} missing from status: {status}"))
}
