//! rkube's OCI container runtime.
//!
//! Owns everything between an OCI bundle (`config.json` + rootfs) and a running process: namespaces, rootfs and
//! mounts, cgroups, capabilities, seccomp, hooks, and the container state kept under the runtime root. The
//! `rkube-runtime` binary is a runc-compatible CLI over this library, and the kubelet runs that CLI (one process
//! per call, `kubelet/src/runtime_client/cli.rs`); [`Runtime`] offers the same operations in-process.
//!
//! The public modules are what the CLI and the integration tests use; the rest (namespaces, rootfs, seccomp,
//! hooks, terminal, the init sync channel) is internal.
//!
//! # Using it from a multi-threaded program
//!
//! ```no_run
//! // First thing, before any thread or tokio runtime: serves create/exec/sandbox requests when this binary
//! // was re-executed by the runtime in init mode, and returns immediately otherwise.
//! rkube_runtime::init::run_if_init();
//! // Become the reaper of containers whose `create` helper has exited, to collect their exit codes.
//! rkube_runtime::become_subreaper().expect("subreaper");
//! let rt = rkube_runtime::Runtime::new("/run/rkube/runtime");
//! let sandbox = rt.create_sandbox(&rkube_runtime::SandboxRequest {
//!     id: "pod-a".into(), hostname: Some("pod-a".into()), ..Default::default()
//! }).unwrap();
//! let netns = sandbox.private.namespaces["net"].clone(); // put this path in each container's config.json
//! rt.create("pod-a-web", "/var/lib/rkube/bundles/web".as_ref(), Default::default()).unwrap();
//! rt.start("pod-a-web").unwrap();
//! let exit = rt.wait("pod-a-web").unwrap(); // Some(code) when we are the reaper
//! rt.delete("pod-a-web", true).unwrap();
//! rt.delete("pod-a", true).unwrap();
//! let _ = (netns, exit);
//! ```

#![warn(missing_docs)]

pub mod capabilities;
pub mod cgroups;
pub mod config;
pub mod container;
pub mod exec;
pub(crate) mod hooks;
pub mod init;
pub(crate) mod namespaces;
pub(crate) mod process;
pub(crate) mod rootfs;
pub mod sandbox;
pub(crate) mod seccomp;
pub mod sealed;
pub(crate) mod sync;
pub mod sys;
pub(crate) mod terminal;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use container::create::Stdio;
pub use container::{ContainerError, ContainerStatus, CreateRequest, State};
pub use exec::ExecRequest;
pub use sandbox::SandboxRequest;
pub use sys::Exit;

/// Options for [`Runtime::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Where to write the container's host pid (runc's `--pid-file`).
    pub pid_file: Option<PathBuf>,
    /// A unix socket to send the pty's master fd to when the process has a terminal (`--console-socket`).
    pub console_socket: Option<PathBuf>,
    /// Container stdio files (e.g. the kubelet's log file); `/dev/null` for any left unset.
    pub stdio: Stdio,
    /// `cgroupsPath` is systemd's `slice:prefix:name` form (`--systemd-cgroup`).
    pub systemd_cgroup: bool,
}

/// The runtime as a library: one state root, and the binary to re-execute in init mode for the operations that
/// fork (by default this process's own binary, which must call [`init::run_if_init`] first in `main`).
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The state root: one directory per container (runc's `--root`).
    pub root: PathBuf,
    /// The binary re-executed in init mode.
    pub init_binary: PathBuf,
}

impl Runtime {
    /// A runtime keeping its state under `root`, re-executing this process's binary for init mode.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime { root: root.into(), init_binary: PathBuf::from("/proc/self/exe") }
    }

    /// Uses another binary for init mode (tests use the `rkube-runtime` binary).
    pub fn with_init_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.init_binary = path.into();
        self
    }

    fn call_init(&self, req: &init::InitRequest) -> Result<String, ContainerError> {
        let arg = serde_json::to_string(req).expect("requests serialize");
        let out = Command::new(&self.init_binary)
            .arg(arg)
            .env(init::INIT_ENV, "1")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(container::io_err(format!("run {} in init mode", self.init_binary.display())))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(ContainerError::Init { id: String::new(), message: msg });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Creates a container from a bundle (re-executes the init binary; safe from threaded code).
    pub fn create(&self, id: &str, bundle: &Path, opts: CreateOptions) -> Result<State, ContainerError> {
        let req = CreateRequest {
            root: self.root.clone(),
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            pid_file: opts.pid_file,
            console_socket: opts.console_socket,
            systemd_cgroup: opts.systemd_cgroup,
            stdio: Some(opts.stdio),
            ..Default::default()
        };
        self.call_init(&init::InitRequest::Create(req))?;
        container::state(&self.root, id)
    }

    /// Creates a pause sandbox holding new net/ipc/uts (and pid with `share_pid`) namespaces.
    pub fn create_sandbox(&self, req: &SandboxRequest) -> Result<State, ContainerError> {
        let mut req = req.clone();
        req.root = self.root.clone();
        self.call_init(&init::InitRequest::Sandbox(req.clone()))?;
        container::state(&self.root, &req.id)
    }

    /// Runs a process in a running container, detached; returns its host pid.
    pub fn exec(&self, req: &ExecRequest) -> Result<i32, ContainerError> {
        let mut req = req.clone();
        req.root = self.root.clone();
        let out = self.call_init(&init::InitRequest::Exec(req))?;
        out.parse().map_err(|_| ContainerError::Init { id: String::new(), message: format!("bad exec reply {out:?}") })
    }

    /// Starts a created container's process (runc `start`).
    pub fn start(&self, id: &str) -> Result<(), ContainerError> {
        container::start(&self.root, id)
    }

    /// The container's state, refreshed from its process (runc `state`).
    pub fn state(&self, id: &str) -> Result<State, ContainerError> {
        container::state(&self.root, id)
    }

    /// Sends `signal` to the container's init and, with `all`, to every process in its cgroup (runc `kill`).
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), ContainerError> {
        container::kill(&self.root, id, signal, all)
    }

    /// Removes a stopped container, or with `force` kills a running one first (runc `delete`).
    pub fn delete(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        container::delete(&self.root, id, force)
    }

    /// Every container under the root, with refreshed states (runc `list`).
    pub fn list(&self) -> Vec<State> {
        container::list(&self.root)
    }

    /// OOM kills counted in the container's memory cgroup.
    pub fn oom_kills(&self, id: &str) -> Result<u64, ContainerError> {
        container::oom_kills(&self.root, id)
    }

    /// Blocks until the container's process exits. Returns its exit when this process is its reaper (see
    /// [`become_subreaper`]), `None` when it exited but someone else collected the status. Blocking: call it
    /// from `spawn_blocking` in async code.
    pub fn wait(&self, id: &str) -> Result<Option<Exit>, ContainerError> {
        let s = container::state(&self.root, id)?;
        // An exited init may still be our zombie child: collect it unless its pid was already reused.
        if s.pid <= 0 || container::state::any_start_time(s.pid) != Some(s.private.start_time) {
            return Ok(None);
        }
        let fd = sys::pidfd_open(s.pid).map_err(container::io_err(format!("pidfd_open {}", s.pid)))?;
        loop {
            match sys::try_wait_pidfd(&fd) {
                Ok(Some(e)) => return Ok(Some(e)),
                Ok(None) => {}
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                    container::wait_gone(&fd, std::time::Duration::from_secs(u64::MAX / 4));
                    return Ok(None);
                }
                Err(e) => return Err(container::io_err("wait for container")(e)),
            }
            // A pid namespace's init cannot finish exiting while exec'd processes of that namespace, reparented
            // to us, are unreaped zombies: reap those, then wait a little for the exit.
            self.reap_orphans();
            container::wait_gone(&fd, std::time::Duration::from_millis(50));
        }
    }

    /// Reaps zombie children of this process that are not the init process of a container under this root
    /// (exec'd processes and grandchildren reparented to us as subreaper). The kubelet calls it periodically;
    /// [`Runtime::wait`] calls it while waiting.
    pub fn reap_orphans(&self) -> usize {
        let inits: std::collections::HashSet<i32> = self.list().iter().map(|s| s.pid).collect();
        let mut n = 0;
        let tasks = std::fs::read_dir("/proc/self/task").map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>()).unwrap_or_default();
        for t in tasks {
            let children = std::fs::read_to_string(t.join("children")).unwrap_or_default();
            for pid in children.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                if inits.contains(&pid) {
                    continue;
                }
                let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')))
                    .unwrap_or(false);
                if zombie && sys::reap(pid) {
                    n += 1;
                }
            }
        }
        n
    }
}

/// Makes this process a child subreaper, so containers created through [`Runtime`] are reparented to it when the
/// init-mode helper exits, and [`Runtime::wait`] can collect their exit codes.
pub fn become_subreaper() -> std::io::Result<()> {
    sys::set_child_subreaper()
}
