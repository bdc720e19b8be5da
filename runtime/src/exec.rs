//! `exec`: a new process in a running container. Joins the container's namespaces (pid for children before the
//! clone, the rest in the child), its cgroup, and applies the process object as create does (user, caps,
//! rlimits, no_new_privs, the container's seccomp profile, terminal).

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Process};
use serde::{Deserialize, Serialize};

use crate::container::{self, create::Stdio, io_err, ContainerError};
use crate::init::ChildCtx;
use crate::namespaces::{Join, Plan};
use crate::sys::{self, Forked};

/// An exec request (CLI flags or the kubelet's).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The runtime's state root (`--root`).
    pub root: PathBuf,
    /// The container to run the process in.
    pub id: String,
    /// The process to run (`--process` JSON, or built from the command line); required.
    pub process: Option<Process>,
    /// Where to write the process's host pid (`--pid-file`).
    pub pid_file: Option<PathBuf>,
    /// A unix socket to send the pty master to (`--console-socket`).
    pub console_socket: Option<PathBuf>,
    /// Extra fds after stdio passed into the process (`--preserve-fds`).
    #[serde(default)]
    pub preserve_fds: u32,
    /// Files for the process's stdio; inherited from the caller when `None`.
    #[serde(default)]
    pub stdio: Option<Stdio>,
}

/// The exec'd process as seen by the caller that cloned it.
pub struct Execed {
    /// Its host pid.
    pub pid: i32,
    /// A pidfd to wait on it.
    pub pidfd: Option<OwnedFd>,
}

/// Starts the process; returns once it is set up (the caller may wait on `pidfd`).
pub fn exec(req: &ExecRequest) -> Result<Execed, ContainerError> {
    container::require_single_threaded("exec")?;
    // Non-dumpable before the container's namespaces are opened or joined, until the exec'd program starts
    // (CVE-2019-5736): a container process cannot open /proc/<this>/exe or its fds.
    sys::set_dumpable(false).map_err(io_err("make the runtime non-dumpable"))?;
    // Before the runtime opens anything: which of 3..3+N the caller really passed.
    let passed_fds = crate::process::passed_fds(req.preserve_fds);
    let st = container::state(&req.root, &req.id)?;
    if !st.status.can_exec() {
        return Err(ContainerError::Lifecycle { id: req.id.clone(), what: format!("cannot exec in a {} container", st.status.as_str()) });
    }
    let process = req.process.clone().ok_or_else(|| ContainerError::Lifecycle { id: req.id.clone(), what: "exec needs a process (--process file.json or a command)".into() })?;
    crate::config::validate_process(&process, "process")?;
    // The container's own config gives the seccomp profile; the rest comes from the exec'd process.
    let mut spec = crate::config::load(&st.bundle).unwrap_or_default();
    if process.terminal() == Some(true) && req.console_socket.is_none() {
        return Err(ContainerError::Lifecycle { id: req.id.clone(), what: "process.terminal is true but no --console-socket was given".into() });
    }
    spec.set_process(Some(process));
    spec.set_hooks(None);
    let mut plan = Plan { clone_flags: 0, new_cgroup: false, new_user: false, new_mount: false, new_uts: false, joins: Vec::new(), time_offsets: None };
    for (name, typ) in [
        ("user", LinuxNamespaceType::User),
        ("ipc", LinuxNamespaceType::Ipc),
        ("uts", LinuxNamespaceType::Uts),
        ("net", LinuxNamespaceType::Network),
        ("pid", LinuxNamespaceType::Pid),
        ("cgroup", LinuxNamespaceType::Cgroup),
        ("time", LinuxNamespaceType::Time),
        ("mnt", LinuxNamespaceType::Mount),
    ] {
        let theirs = PathBuf::from(format!("/proc/{}/ns/{name}", st.pid));
        let (Ok(a), Ok(b)) = (fs::metadata(&theirs), fs::metadata(format!("/proc/self/ns/{name}"))) else { continue };
        if a.ino() == b.ino() && a.dev() == b.dev() {
            continue;
        }
        let file = fs::File::open(&theirs).map_err(io_err(format!("open {}", theirs.display())))?;
        plan.joins.push(Join { typ, path: theirs, file });
    }
    let cg = container::cgroup_of(&st);
    let layout = cg.as_ref().map(|c| c.layout.clone()).unwrap_or(crate::cgroups::Layout::V2 { root: PathBuf::new() });
    let console = match &req.console_socket {
        Some(p) => Some(UnixStream::connect(p).map_err(io_err(format!("connect --console-socket {}", p.display())))?),
        None => None,
    };
    let (parent_end, child_end) = crate::sync::pair().map_err(io_err("make sync socketpair"))?;
    let old_oom = crate::process::set_oom_score_adj(spec.process().as_ref().expect("set above"))
        .map_err(|e| ContainerError::Init { id: req.id.clone(), message: e.to_string() })?;
    let restore = crate::namespaces::join_for_children(&plan)?;
    let forked = sys::clone_process(0, None);
    // Only the parent goes back: in the child a restored time namespace would take the child itself out of the
    // container's (setns into a time namespace moves the caller too, not just its future children).
    if !matches!(forked, Ok((Forked::Child, _))) {
        for r in &restore {
            let _ = crate::namespaces::join(r);
        }
    }
    if matches!(forked, Ok((Forked::Parent(_), _))) {
        crate::process::restore_oom_score_adj(old_oom);
    }
    let (forked, pidfd) = forked.map_err(io_err("clone the exec process"))?;
    let pid = match forked {
        Forked::Child => {
            drop(parent_end);
            let ctx = ChildCtx {
                spec: &spec,
                rootfs: &st.rootfs,
                plan: &plan,
                cgroup: cg.as_ref(),
                layout: &layout,
                sync: &child_end,
                fifo: None,
                console: console.as_ref().map(|c| c.as_raw_fd()),
                passed_fds: &passed_fds,
                no_pivot: false,
                stdio: req.stdio.as_ref(),
                exec_mode: true,
                parent_joins_cgroup: false,
            };
            crate::init::container_child(&ctx)
        }
        Forked::Parent(pid) => pid,
    };
    drop(child_end);
    drop(console);
    match parent_end.recv().map_err(io_err("read from exec child"))? {
        Some((b'D', _)) => {}
        Some((b'E', m)) => {
            if let Some(fd) = &pidfd {
                let _ = sys::wait_pidfd(fd);
            }
            return Err(ContainerError::Init { id: req.id.clone(), message: String::from_utf8_lossy(&m).into_owned() });
        }
        _ => return Err(ContainerError::Init { id: req.id.clone(), message: "exec child exited before finishing setup".into() }),
    }
    if let Some(pf) = &req.pid_file {
        container::create::write_pid_file(pf, pid)?;
    }
    Ok(Execed { pid, pidfd })
}
