//! Podman (Debian's) drives rkube-runtime as its OCI runtime: run, exec, logs, stop, rm and -t, on a busybox
//! image imported into a private podman storage that the guard removes.
//!
//! Podman here needs `--ulimit nofile=... --ulimit nproc=...` below the host's hard limits: its defaults are
//! above them and the host lacks CAP_SYS_RESOURCE (crun and runc fail the same way without them).

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use rkube_testsupport::{busybox_rootfs, require_command, require_root, unique_name};

// `--network none` as well: podman's default bridge network masquerades container traffic out of the machine
// and leaves cni-podman0 and nat rules behind; these tests need no network.
const ULIMITS: [&str; 5] = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--network=none"];

struct Podman {
    dir: tempfile::TempDir,
    image: String,
}

impl Podman {
    fn new() -> Podman {
        require_root();
        require_command("podman", "podman");
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        busybox_rootfs(&rootfs);
        let tar = dir.path().join("busybox.tar");
        let st = Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".").status().unwrap();
        assert!(st.success());
        let p = Podman { dir, image: format!("localhost/{}", unique_name("rkimg")) };
        let out = p.podman(&["import", tar.to_str().unwrap(), &p.image]);
        assert!(out.status.success(), "podman import: {}", String::from_utf8_lossy(&out.stderr));
        p
    }

    fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.arg("--root").arg(d.join("storage"))
            .arg("--runroot").arg(d.join("run"))
            .arg("--tmpdir").arg(d.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .arg("--runtime").arg(common::RT);
        // No --runtime-flag=root=...: podman 4.3 does not pass it to `delete`, so the runtime uses its default
        // root (/run/rkube-runtime); podman's 64-hex container ids do not clash there.
        c
    }

    fn podman(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(out.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        let _ = self.podman(&["rmi", "-af"]);
        // Podman may leave shm mounts under its run directory: detach them before removing it.
        let prefix = self.dir.path().to_string_lossy().to_string();
        let mounts: Vec<PathBuf> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| m.starts_with(&prefix))
            .map(PathBuf::from)
            .collect();
        for m in mounts.iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn podman_run_exec_logs_stop_rm() {
    let p = Podman::new();
    let mut args = vec!["run", "--rm"];
    args.extend(ULIMITS);
    args.extend([p.image.as_str(), "sh", "-c", "echo hello-from-rkube; ulimit -n; grep -c . /proc/self/mountinfo"]);
    let out = p.ok(&args);
    assert!(out.starts_with("hello-from-rkube\n1024\n"), "{out}");

    // Exit codes come back through conmon.
    let mut args = vec!["run", "--rm"];
    args.extend(ULIMITS);
    args.extend([p.image.as_str(), "sh", "-c", "exit 42"]);
    assert_eq!(p.podman(&args).status.code(), Some(42));

    let name = unique_name("rkpod");
    let mut args = vec!["run", "-d", "--name", name.as_str()];
    args.extend(ULIMITS);
    args.extend([p.image.as_str(), "sh", "-c", "echo started; trap 'echo got-term; exit 0' TERM; while true; do sleep 0.1; done"]);
    let ids = vec![p.ok(&args).trim().to_string()];
    let out = p.ok(&["exec", &name, "sh", "-c", "echo in-exec; cat /proc/1/cmdline | tr '\\0' ' '"]);
    assert!(out.starts_with("in-exec\nsh -c"), "{out}");
    let out = p.podman(&["exec", &name, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    p.ok(&["stop", "-t", "10", &name]);
    let logs = p.ok(&["logs", &name]);
    assert!(logs.contains("started") && logs.contains("got-term"), "logs: {logs}");
    let state = p.ok(&["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", &name]);
    assert_eq!(state.trim(), "exited 0");
    p.ok(&["rm", &name]);
    assert!(p.ok(&["ps", "-aq"]).trim().is_empty());
    // Nothing of the containers is left in the runtime's state root.
    for id in ids {
        assert!(!PathBuf::from("/run/rkube-runtime").join(&id).exists(), "state of {id} left behind");
    }
}

#[test]
fn podman_tty() {
    let p = Podman::new();
    let mut args = vec!["run", "--rm", "-t"];
    args.extend(ULIMITS);
    args.extend([p.image.as_str(), "sh", "-c", "tty; test -t 1 && echo stdout-is-a-tty"]);
    let out = p.ok(&args);
    assert!(out.contains("/dev/pts/0") && out.contains("stdout-is-a-tty"), "{out:?}");
    let name = unique_name("rkpod");
    let mut args = vec!["run", "-d", "--name", name.as_str()];
    args.extend(ULIMITS);
    args.extend([p.image.as_str(), "sleep", "1000"]);
    p.ok(&args);
    let out = p.ok(&["exec", "-t", &name, "sh", "-c", "tty"]);
    assert!(out.contains("/dev/pts/"), "{out:?}");
    p.ok(&["rm", "-f", "-t", "0", &name]);
}
