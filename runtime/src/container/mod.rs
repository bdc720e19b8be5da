//! Container lifecycle operations over the state under a runtime root: create, start, state, kill, delete,
//! run, list, ps. Each is refresh -> check -> act -> persist.
//!
//! `create` (and `exec`, and sandbox creation) fork; they must run in a single-threaded process. The CLI is one;
//! in-process callers (the kubelet) go through [`crate::Runtime`], which re-executes itself in init mode.

pub mod create;
pub mod state;

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

pub use create::{create, CreateRequest};
pub use state::{ContainerStatus, State, StateError};

use crate::cgroups::{Cgroup, CgroupError, Layout};
use crate::config::SpecError;
use crate::hooks::HookError;
use crate::namespaces::NamespaceError;

/// Errors of container operations: each says what failed on which container and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// Reading or writing the container's state.
    #[error(transparent)]
    State(#[from] StateError),
    /// The bundle's `config.json`.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Creating, limiting or removing its cgroup.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Joining or creating its namespaces.
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    /// One of its OCI hooks.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The operation does not fit the container's status (start twice, delete while running...).
    #[error("container {id:?}: {what}")]
    Lifecycle {
        /// The container id.
        id: String,
        /// What was refused and why.
        what: String,
    },
    /// The init process (or the init-mode helper) reported a failure.
    #[error("container {id:?}: init failed: {message}")]
    Init {
        /// The container id (empty when the helper failed before knowing it).
        id: String,
        /// The failure as init reported it.
        message: String,
    },
    /// A system call or file operation.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A forking operation was called from a multi-threaded process.
    #[error("{0} must run in a single-threaded process: call rkube_runtime::init::run_if_init() first in main and use rkube_runtime::Runtime from threaded code")]
    Threaded(&'static str),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let what = what.into();
    move |source| ContainerError::Io { what, source }
}

fn lifecycle(id: &str, what: impl Into<String>) -> ContainerError {
    ContainerError::Lifecycle { id: id.to_string(), what: what.into() }
}

/// The cgroup root used unless a caller overrides it.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Loads a container's state and refreshes its status from the kernel.
pub fn state(root: &Path, id: &str) -> Result<State, ContainerError> {
    let mut s = State::load(root, id)?;
    s.refresh(root);
    Ok(s)
}

/// The container's cgroup as recorded at create.
pub fn cgroup_of(s: &State) -> Option<Cgroup> {
    let rel = s.private.cgroup.clone()?;
    let root = s.private.cgroup_root.clone().unwrap_or_else(|| PathBuf::from(CGROUP_ROOT));
    Some(Cgroup::new(Layout::detect(&root), rel))
}

/// `start`: releases the init process blocked on the exec fifo so it execs the user program.
pub fn start(root: &Path, id: &str) -> Result<(), ContainerError> {
    let mut s = state(root, id)?;
    if !s.status.can_start() {
        return Err(lifecycle(id, format!("cannot start a container that is {} (only a created container can start)", s.status.as_str())));
    }
    let fifo = state::container_dir(root, id).join("exec.fifo");
    let f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
        .map_err(|e| lifecycle(id, format!("init process is gone ({e}); delete the container")))?;
    use std::io::Write;
    (&f).write_all(&[0]).map_err(io_err(format!("write {}", fifo.display())))?;
    drop(f);
    let _ = fs::remove_file(&fifo);
    s.status = ContainerStatus::Running;
    s.save(root)?;
    if let Some(h) = s.private.hooks.as_ref().and_then(|h| h.poststart().clone()) {
        // poststart failures are logged, not fatal (runtime-spec).
        if let Err(e) = crate::hooks::run("poststart", &h, &s.oci_json().to_string()) {
            eprintln!("warning: rkube-runtime: {e}");
        }
    }
    Ok(())
}

use std::os::unix::fs::OpenOptionsExt;

/// Parses a signal given as a number, `KILL` or `SIGKILL`.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let sig = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return None,
    };
    Some(sig)
}

/// Signals the container's process through a pidfd, after checking the pid still names the process we started
/// (its start time), so a recycled pid is never signalled. With `all`, every process in its cgroup.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<(), ContainerError> {
    let s = state(root, id)?;
    if !s.status.can_kill() {
        return Err(lifecycle(id, format!("cannot signal a container that is {}", s.status.as_str())));
    }
    signal_checked(&s, sig).map_err(|e| lifecycle(id, format!("signal {sig}: {e}")))?;
    if all {
        if let Some(cg) = cgroup_of(&s) {
            for pid in cg.pids() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::try_from(sig).ok());
            }
        }
    }
    Ok(())
}

fn signal_checked(s: &State, sig: i32) -> std::io::Result<()> {
    let pidfd = crate::sys::pidfd_open(s.pid)?;
    if state::process_start_time(s.pid) != Some(s.private.start_time) {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    crate::sys::pidfd_send_signal(&pidfd, sig)
}

/// Waits up to `timeout` for the process behind `pidfd` to exit (pidfd becomes readable).
pub fn wait_gone(pidfd: &std::os::fd::OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(n) if n > 0 => return true,
            Ok(_) if left.is_zero() => return false,
            Ok(_) => {}
            Err(nix::Error::EINTR) => {}
            Err(_) => return false,
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// `delete`: removes a stopped (or created) container; with `force` kills it first. Leaves no cgroup and no
/// state directory, also for a container whose create crashed half-way.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), ContainerError> {
    state::check_id(id)?;
    let dir = state::container_dir(root, id);
    let mut s = match State::load(root, id) {
        Ok(s) => s,
        Err(StateError::NotFound { .. }) if force && dir.exists() => {
            // Crashed before the first state write: nothing but the directory exists.
            fs::remove_dir_all(&dir).map_err(io_err(format!("remove {}", dir.display())))?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    s.refresh(root);
    let alive = matches!(s.status, ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused);
    if (s.status == ContainerStatus::Running || s.status == ContainerStatus::Paused) && !force {
        return Err(lifecycle(id, format!("cannot delete a {} container; stop it first or use delete --force", s.status.as_str())));
    }
    let cg = cgroup_of(&s);
    if s.status == ContainerStatus::Paused {
        if let Some(cg) = &cg {
            kill_cgroup(cg);
        }
    }
    if alive || s.status == ContainerStatus::Creating {
        if let Ok(pidfd) = crate::sys::pidfd_open(s.pid).map_err(|_| ()).and_then(|fd| {
            if s.pid > 0 && state::process_start_time(s.pid) == Some(s.private.start_time) {
                Ok(fd)
            } else {
                Err(())
            }
        }) {
            let _ = crate::sys::pidfd_send_signal(&pidfd, libc::SIGKILL);
            wait_gone(&pidfd, Duration::from_secs(10));
        }
    }
    if let Some(cg) = &cg {
        kill_cgroup(cg);
        cg.remove()?;
    }
    if let Some(h) = s.private.hooks.as_ref().and_then(|h| h.poststop().clone()) {
        s.status = ContainerStatus::Stopped;
        if let Err(e) = crate::hooks::run("poststop", &h, &s.oci_json().to_string()) {
            eprintln!("warning: rkube-runtime: {e}");
        }
    }
    fs::remove_dir_all(&dir).map_err(io_err(format!("remove {}", dir.display())))?;
    Ok(())
}

/// `pause`: freezes every process of a running container (freezer v1 or v2).
pub fn pause(root: &Path, id: &str) -> Result<(), ContainerError> {
    let s = state(root, id)?;
    if s.status != ContainerStatus::Running {
        return Err(lifecycle(id, format!("cannot pause a container that is {} (only a running container can be paused)", s.status.as_str())));
    }
    let cg = cgroup_of(&s).ok_or_else(|| lifecycle(id, "has no cgroup to freeze"))?;
    if let Err(e) = cg.freeze(true) {
        let _ = cg.freeze(false);
        return Err(e.into());
    }
    Ok(())
}

/// `resume`: thaws a paused container.
pub fn resume(root: &Path, id: &str) -> Result<(), ContainerError> {
    let s = state(root, id)?;
    if s.status != ContainerStatus::Paused {
        return Err(lifecycle(id, format!("cannot resume a container that is {} (only a paused container can be resumed)", s.status.as_str())));
    }
    let cg = cgroup_of(&s).ok_or_else(|| lifecycle(id, "has no cgroup to thaw"))?;
    cg.freeze(false)?;
    Ok(())
}

/// `update`: writes new limits into a created, running or paused container's cgroup. Limits this host cannot
/// apply are refused (naming the controller) before anything is written.
pub fn update(root: &Path, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<(), ContainerError> {
    let s = state(root, id)?;
    if !matches!(s.status, ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused) {
        return Err(lifecycle(id, format!("cannot update a container that is {}", s.status.as_str())));
    }
    let cg = cgroup_of(&s).ok_or_else(|| lifecycle(id, "has no cgroup to update"))?;
    crate::cgroups::check(&cg.layout, resources)?;
    cg.update(resources)?;
    Ok(())
}

/// SIGKILLs every process left in a cgroup and waits until it is empty.
pub fn kill_cgroup(cg: &Cgroup) {
    if cg.frozen() {
        // A frozen process takes its SIGKILL only once thawed: signal everything, then thaw (runc's order).
        for pid in cg.pids() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = cg.freeze(false);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = cg.pids();
        if pids.is_empty() || Instant::now() >= deadline {
            return;
        }
        for pid in pids {
            if let Ok(fd) = crate::sys::pidfd_open(pid) {
                let _ = crate::sys::pidfd_send_signal(&fd, libc::SIGKILL);
                wait_gone(&fd, Duration::from_millis(500));
            }
        }
    }
}

/// All containers under a root, refreshed.
pub fn list(root: &Path) -> Vec<State> {
    state::list_ids(root).iter().filter_map(|id| state(root, id).ok()).collect()
}

/// Pids in the container's cgroup.
pub fn ps(root: &Path, id: &str) -> Result<Vec<i32>, ContainerError> {
    let s = state(root, id)?;
    Ok(cgroup_of(&s).map(|c| c.pids()).unwrap_or_default())
}

/// OOM kills counted in the container's cgroup (0 when it has no memory cgroup).
pub fn oom_kills(root: &Path, id: &str) -> Result<u64, ContainerError> {
    let s = state(root, id)?;
    Ok(cgroup_of(&s).map(|c| c.oom_kills()).unwrap_or(0))
}

/// Fails unless this process is single-threaded (fork safety for create/exec/sandbox).
pub fn require_single_threaded(op: &'static str) -> Result<(), ContainerError> {
    if crate::sys::thread_count() > 1 {
        return Err(ContainerError::Threaded(op));
    }
    Ok(())
}
