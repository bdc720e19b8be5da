//! The pod sandbox: a tiny long-lived process of this runtime (no pause image) that holds a pod's new network,
//! IPC and UTS namespaces (and PID, for shareProcessNamespace). The pod's containers join them by path
//! (`/proc/<pid>/ns/net`, ...), which [`SandboxRequest`] returns in the state's `rkube.namespaces`.
//!
//! The process is this binary re-executed in pause mode ([`pause_main`]): it sleeps in sigwaitinfo, reaps
//! zombies when it is the pod's PID 1, and exits on SIGTERM/SIGINT. It keeps nothing else alive per pod.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

use crate::cgroups::{self, Cgroup, Layout};
use crate::container::state::{container_dir, process_start_time, ContainerStatus, State};
use crate::container::{io_err, ContainerError, CGROUP_ROOT};
use crate::sys::{self, Forked};

/// A sandbox to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxRequest {
    /// The runtime's state root.
    pub root: PathBuf,
    /// The sandbox's id.
    pub id: String,
    /// The hostname set in its new UTS namespace.
    pub hostname: Option<String>,
    /// Also a new PID namespace, shared by the pod's containers (shareProcessNamespace).
    #[serde(default)]
    pub share_pid: bool,
    /// Cgroup for the pod (the pause process goes there); none when unset.
    pub cgroups_path: Option<String>,
    /// Cgroup root (default /sys/fs/cgroup).
    #[serde(default)]
    pub cgroup_root: Option<PathBuf>,
    /// Where to write the pause process's host pid.
    pub pid_file: Option<PathBuf>,
}

/// Creates the sandbox; its state is `running` with `rkube.namespaces` naming the files to join.
pub fn create(req: &SandboxRequest) -> Result<State, ContainerError> {
    crate::container::require_single_threaded("sandbox create")?;
    crate::container::state::check_id(&req.id)?;
    fs::create_dir_all(&req.root).map_err(io_err(format!("create state root {}", req.root.display())))?;
    let dir = container_dir(&req.root, &req.id);
    if let Err(e) = fs::create_dir(&dir) {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Err(crate::container::StateError::Exists { id: req.id.clone(), path: dir }.into());
        }
        return Err(io_err(format!("create {}", dir.display()))(e));
    }
    let result = create_in(req, &dir);
    if result.is_err() {
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

fn create_in(req: &SandboxRequest, dir: &std::path::Path) -> Result<State, ContainerError> {
    let mut st = State::new(&req.id, dir, std::path::Path::new("/"));
    st.private.sandbox = true;
    let cgroup_root = req.cgroup_root.clone().unwrap_or_else(|| PathBuf::from(CGROUP_ROOT));
    let cg = match &req.cgroups_path {
        Some(p) => {
            let rel = cgroups::resolve_path(Some(p), &req.id, false)?;
            st.private.cgroup = Some(rel.clone());
            st.private.cgroup_root = Some(cgroup_root.clone());
            let cg = Cgroup::new(Layout::detect(&cgroup_root), rel);
            cg.create(None)?;
            Some(cg)
        }
        None => None,
    };
    st.save(&req.root)?;
    let exe = CString::new("/proc/self/exe").expect("no NUL");
    let argv = [CString::new("rkube-pause").expect("no NUL")];
    let env = [CString::new(format!("{}=pause", crate::init::INIT_ENV)).expect("no NUL")];
    let mut flags = CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    if req.share_pid {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    let (forked, pidfd) = sys::clone_process(flags.bits() as u32 as u64, None).map_err(io_err("clone the sandbox process"))?;
    match forked {
        Forked::Child => {
            let fail = |what: &str| -> ! {
                eprintln!("error: rkube-runtime: sandbox: {what}");
                sys::exit_now(1)
            };
            if let Some(cg) = &cg {
                if cg.join_self().is_err() {
                    fail("join cgroup");
                }
            }
            if let Some(h) = &req.hostname {
                if nix::unistd::sethostname(h).is_err() {
                    fail("sethostname");
                }
            }
            let _ = nix::unistd::chdir("/");
            let _ = nix::unistd::setsid();
            if let Ok(null) = fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
                let _ = nix::unistd::dup2_stderr(&null);
            }
            let _ = sys::cloexec_from(3);
            sys::reset_signals();
            let _ = nix::unistd::execve(&exe, &argv, &env);
            fail("exec /proc/self/exe")
        }
        Forked::Parent(pid) => {
            st.pid = pid;
            st.private.start_time = process_start_time(pid).unwrap_or(0);
            let mut ns = HashMap::new();
            let mut names = vec!["net", "ipc", "uts"];
            if req.share_pid {
                names.push("pid");
            }
            for n in names {
                ns.insert(n.to_string(), PathBuf::from(format!("/proc/{pid}/ns/{n}")));
            }
            st.private.namespaces = ns;
            st.status = ContainerStatus::Running;
            if let Err(e) = st.save(&req.root) {
                if let Some(fd) = &pidfd {
                    let _ = sys::pidfd_send_signal(fd, libc::SIGKILL);
                    let _ = sys::wait_pidfd(fd);
                }
                if let Some(cg) = &cg {
                    let _ = cg.remove();
                }
                return Err(e.into());
            }
            if let Some(pf) = &req.pid_file {
                crate::container::create::write_pid_file(pf, pid)?;
            }
            Ok(st)
        }
    }
}

/// The pause process: holds the namespaces, reaps zombies, exits 0 on SIGTERM or SIGINT.
pub fn pause_main() -> ! {
    // The pause process is pid 1 of a pod that shares its pid namespace: keep its /proc entries (exe, fds) away
    // from the pod's containers (CVE-2019-5736 class). It was exec'd from the sandbox creator's sealed executable.
    let _ = sys::set_dumpable(false);
    // one pause process per pod lives as long as the pod: keep only the pages its loop touches resident
    sys::drop_clean_file_pages();
    loop {
        let sig = sys::wait_signal(&[libc::SIGTERM, libc::SIGINT, libc::SIGCHLD]);
        if sig == libc::SIGCHLD {
            sys::reap_zombies();
            continue;
        }
        sys::exit_now(0);
    }
}
