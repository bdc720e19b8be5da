//! `create`: the runtime side of making a container. Validates the bundle, claims the state directory, makes the
//! cgroup and exec fifo, clones the init child into its new namespaces (clone3 + pidfd), answers the child's
//! requests on the sync socket, and persists the state once the child is parked on the exec fifo.
//!
//! Anything that fails undoes everything made so far (child, cgroup, state directory): bad input leaves nothing.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use super::state::{container_dir, process_start_time, ContainerStatus, State};
use super::{io_err, ContainerError, CGROUP_ROOT};
use crate::cgroups::{self, Cgroup, Layout};
use crate::init::ChildCtx;
use crate::sync;
use crate::sys::{self, Forked};

/// Where the container's stdio goes when the caller is not a terminal handler: files (a kubelet's log file) or
/// inherited from the creating process (the CLI under conmon) when `None`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stdio {
    /// The file opened as fd 0.
    pub stdin: Option<PathBuf>,
    /// The file opened (appending) as fd 1.
    pub stdout: Option<PathBuf>,
    /// The file opened (appending) as fd 2.
    pub stderr: Option<PathBuf>,
}

/// Everything `create` needs (the CLI's flags, or the kubelet's request through [`crate::Runtime`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The runtime's state root (`--root`).
    pub root: PathBuf,
    /// The new container's id.
    pub id: String,
    /// The bundle: `config.json` and the rootfs.
    pub bundle: PathBuf,
    /// Where to write the container's host pid (`--pid-file`).
    pub pid_file: Option<PathBuf>,
    /// A unix socket to send the pty master to (`--console-socket`).
    pub console_socket: Option<PathBuf>,
    /// Extra fds after stdio passed into the container (`--preserve-fds`).
    #[serde(default)]
    pub preserve_fds: u32,
    /// `cgroupsPath` is in systemd's `slice:prefix:name` form (`--systemd-cgroup`).
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// Enter the rootfs with chroot instead of pivot_root (`--no-pivot`, for a rootfs on a ramfs).
    #[serde(default)]
    pub no_pivot: bool,
    /// Cgroup root (default /sys/fs/cgroup); tests and private mounts may point elsewhere.
    #[serde(default)]
    pub cgroup_root: Option<PathBuf>,
    /// Files for the container's stdio; inherited from the caller when `None`.
    #[serde(default)]
    pub stdio: Option<Stdio>,
}

/// A created container: its state and, for the process that cloned it, a pidfd to wait on.
pub struct Created {
    /// The container's state, `created`.
    pub state: State,
    /// A pidfd of its init process, for the process that cloned it.
    pub pidfd: Option<OwnedFd>,
}

/// Undoes a half-made container unless disarmed.
struct Undo {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    child: Option<OwnedFd>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(fd) = self.child.take() {
            let _ = sys::pidfd_send_signal(&fd, libc::SIGKILL);
            let _ = sys::wait_pidfd(&fd);
        }
        if let Some(cg) = self.cgroup.take() {
            super::kill_cgroup(&cg);
            let _ = cg.remove();
        }
        if let Some(dir) = self.dir.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Writes a pid file atomically.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), ContainerError> {
    let tmp = path.with_extension("rkube-tmp");
    fs::write(&tmp, pid.to_string()).map_err(io_err(format!("write pid file {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io_err(format!("write pid file {}", path.display())))
}

/// Creates the container. Must run in a single-threaded process (see [`crate::init`]).
pub fn create(req: &CreateRequest) -> Result<Created, ContainerError> {
    super::require_single_threaded("create")?;
    super::state::check_id(&req.id)?;
    // Non-dumpable before any namespace is joined, inherited by the init child until it execs the container's
    // program: a container process cannot open /proc/<init>/exe or its fds (CVE-2019-5736).
    sys::set_dumpable(false).map_err(io_err("make the runtime non-dumpable"))?;
    // Before the runtime opens anything: which of 3..3+N the caller really passed.
    let passed_fds = crate::process::passed_fds(req.preserve_fds);
    let bundle = fs::canonicalize(&req.bundle).map_err(|e| {
        ContainerError::Spec(crate::config::SpecError::Read { path: req.bundle.join("config.json"), source: e })
    })?;
    let spec = crate::config::load(&bundle)?;
    crate::config::validate(&spec, &bundle, true)?;
    let process = spec.process().as_ref().expect("validated: process present");
    let rootfs = fs::canonicalize(crate::config::rootfs_of(&spec, &bundle))
        .map_err(io_err("resolve root.path"))?;
    if process.terminal() == Some(true) && req.console_socket.is_none() {
        return Err(ContainerError::Lifecycle {
            id: req.id.clone(),
            what: "process.terminal is true but no --console-socket was given to receive the pty".into(),
        });
    }
    if req.no_pivot && !crate::config::has_mount_ns(&spec) {
        // runc's wording
        return Err(crate::config::SpecError::Invalid {
            field: "linux.namespaces".into(),
            reason: "unable to use no-pivot without a private MNT namespace".into(),
        }
        .into());
    }
    let plan = crate::namespaces::plan(&spec)?;
    let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().as_ref()).map(|p| p.to_string_lossy().into_owned());
    let rel = cgroups::resolve_path(cgroups_path.as_deref(), &req.id, req.systemd_cgroup)?;
    let cgroup_root = req.cgroup_root.clone().unwrap_or_else(|| PathBuf::from(CGROUP_ROOT));
    let layout = Layout::detect(&cgroup_root);
    // Every limit asked for can be applied here, or nothing is made.
    if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        cgroups::check(&layout, r)?;
    }
    let console = match &req.console_socket {
        Some(p) => Some(UnixStream::connect(p).map_err(io_err(format!("connect --console-socket {}", p.display())))?),
        None => None,
    };

    // Claim the id: mkdir is the atomic test for a duplicate.
    fs::create_dir_all(&req.root).map_err(io_err(format!("create state root {}", req.root.display())))?;
    let dir = container_dir(&req.root, &req.id);
    if let Err(e) = fs::create_dir(&dir) {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Err(super::StateError::Exists { id: req.id.clone(), path: dir }.into());
        }
        return Err(io_err(format!("create {}", dir.display()))(e));
    }
    let mut undo = Undo { dir: Some(dir.clone()), cgroup: None, child: None };

    let mut st = State::new(&req.id, &bundle, &rootfs);
    st.annotations = spec.annotations().clone().unwrap_or_default();
    st.private.hooks = spec.hooks().clone();
    st.private.cgroup = Some(rel.clone());
    st.private.cgroup_root = Some(cgroup_root.clone());
    st.save(&req.root)?;

    let cg = Cgroup::new(layout.clone(), rel);
    undo.cgroup = Some(cg.clone());
    let resources = spec.linux().as_ref().and_then(|l| l.resources().clone()).map(|r| with_default_devices(r, &spec));
    cg.create(resources.as_ref())?;

    let fifo_path = dir.join("exec.fifo");
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o600)).map_err(|e| io_err("make exec fifo")(e.into()))?;
    let fifo: OwnedFd = nix::fcntl::open(&fifo_path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| io_err("open exec fifo")(e.into()))?;

    let (parent_end, child_end) = sync::pair().map_err(io_err("make sync socketpair"))?;
    let old_oom = crate::process::set_oom_score_adj(process).map_err(|e| ContainerError::Init { id: req.id.clone(), message: e.to_string() })?;
    let restore = crate::namespaces::join_for_children(&plan)?;
    let cgroup_fd = None::<RawFd>;
    let forked = sys::clone_process(plan.clone_flags, cgroup_fd);
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
    let (forked, pidfd) = forked.map_err(io_err("clone the container's init process"))?;
    let pid = match forked {
        Forked::Child => {
            drop(parent_end);
            let ctx = ChildCtx {
                spec: &spec,
                rootfs: &rootfs,
                plan: &plan,
                cgroup: Some(&cg),
                layout: &layout,
                sync: &child_end,
                fifo: Some(fifo.as_raw_fd()),
                console: console.as_ref().map(|c| c.as_raw_fd()),
                passed_fds: &passed_fds,
                no_pivot: req.no_pivot,
                stdio: req.stdio.as_ref(),
                exec_mode: false,
                parent_joins_cgroup: true,
            };
            crate::init::container_child(&ctx)
        }
        Forked::Parent(pid) => pid,
    };
    drop(child_end);
    drop(console);
    undo.child = pidfd.as_ref().and_then(|fd| fd.try_clone().ok());
    st.pid = pid;
    st.private.start_time = process_start_time(pid).unwrap_or(0);
    // Move the child into its cgroup while it builds the first part of its rootfs (see rootfs::prepare_early).
    let id = req.id.clone();
    // Whenever talking to the init fails, its own error (already queued) is the one to report.
    let init_err = |what: &'static str| {
        let id = id.clone();
        let ch = &parent_end;
        move |e: std::io::Error| match ch.pending_error() {
            Some(message) => ContainerError::Init { id, message },
            None => io_err(what)(e),
        }
    };
    if let Err(e) = cg.join_pid(pid) {
        if let Some(message) = parent_end.pending_error() {
            return Err(ContainerError::Init { id, message });
        }
        let _ = parent_end.send(b'X', e.to_string().as_bytes());
        return Err(e.into());
    }
    parent_end.send(b'C', b"").map_err(init_err("write to init"))?;

    // Serve the child until it reports done or fails.
    let linux = spec.linux().as_ref();
    loop {
        let msg = parent_end.recv().map_err(init_err("read from init"))?;
        match msg {
            Some((b'D', _)) => break,
            Some((b'E', m)) => return Err(ContainerError::Init { id, message: String::from_utf8_lossy(&m).into_owned() }),
            Some((b'U', _)) => {
                write_id_maps(pid, linux)?;
                parent_end.send(b'G', b"").map_err(init_err("write to init"))?;
            }
            Some((b'H', _)) => {
                let json = st.oci_json().to_string();
                if let Some(h) = spec.hooks() {
                    #[allow(deprecated)]
                    let prestart = h.prestart().clone().unwrap_or_default();
                    crate::hooks::run("prestart", &prestart, &json)?;
                    crate::hooks::run("createRuntime", &h.create_runtime().clone().unwrap_or_default(), &json)?;
                }
                parent_end.send(b'G', json.as_bytes()).map_err(init_err("write to init"))?;
            }
            Some((k, _)) => return Err(ContainerError::Init { id, message: format!("unexpected message {k} from init") }),
            None => {
                return Err(ContainerError::Init { id, message: "init exited before finishing setup".into() });
            }
        }
    }
    st.status = ContainerStatus::Created;
    st.save(&req.root)?;
    if let Some(pf) = &req.pid_file {
        write_pid_file(pf, pid)?;
    }
    // Success: keep everything.
    undo.dir = None;
    undo.cgroup = None;
    undo.child = None;
    Ok(Created { state: st, pidfd })
}

/// The device rules of `resources` plus allow rules for the devices every container gets (null, zero, full,
/// random, urandom, tty, ptmx, pts) and for `linux.devices`, so a deny-all rule does not stop /dev from being made.
pub fn with_default_devices(mut r: oci_spec::runtime::LinuxResources, spec: &oci_spec::runtime::Spec) -> oci_spec::runtime::LinuxResources {
    let Some(mut rules) = r.devices().clone() else { return r };
    let mut allow = |typ: &str, major: i64, minor: Option<i64>| {
        let v = serde_json::json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": "rwm"});
        if let Ok(rule) = serde_json::from_value(v) {
            rules.push(rule);
        }
    };
    for (major, minor) in [(1, Some(3)), (1, Some(5)), (1, Some(7)), (1, Some(8)), (1, Some(9)), (5, Some(0)), (5, Some(2)), (136, None)] {
        allow("c", major, minor);
    }
    for d in spec.linux().as_ref().and_then(|l| l.devices().clone()).into_iter().flatten() {
        let t = if d.typ() == oci_spec::runtime::LinuxDeviceType::B { "b" } else { "c" };
        allow(t, d.major(), Some(d.minor()));
    }
    r.set_devices(Some(rules));
    r
}

fn write_id_maps(pid: i32, linux: Option<&oci_spec::runtime::Linux>) -> Result<(), ContainerError> {
    let fmt = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        m.iter().flatten().map(|x| format!("{} {} {}\n", x.container_id(), x.host_id(), x.size())).collect::<String>()
    };
    let Some(l) = linux else { return Ok(()) };
    fs::write(format!("/proc/{pid}/uid_map"), fmt(l.uid_mappings())).map_err(io_err("linux.uidMappings: write uid_map"))?;
    fs::write(format!("/proc/{pid}/gid_map"), fmt(l.gid_mappings())).map_err(io_err("linux.gidMappings: write gid_map"))?;
    Ok(())
}

/// `run` in the foreground: create, start, wait for the exit and delete; returns the shell-style exit code.
/// While waiting, INT, TERM, HUP, QUIT, USR1, USR2 and WINCH sent to the runtime are forwarded to the container.
pub fn run(req: &CreateRequest, detach: bool) -> Result<i32, ContainerError> {
    const FORWARD: [i32; 7] =
        [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH];
    if !detach {
        // Block before the container exists so no signal is lost between start and the wait loop.
        let mut all = FORWARD.to_vec();
        all.push(libc::SIGCHLD);
        sys::block_signals(&all);
    }
    let created = create(req)?;
    if let Err(e) = super::start(&req.root, &req.id) {
        let _ = super::delete(&req.root, &req.id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let code = match created.pidfd.as_ref() {
        Some(fd) => loop {
            if let Some(exit) = sys::try_wait_pidfd(fd).map_err(io_err("wait for the container"))? {
                break exit.as_shell_code();
            }
            let sig = sys::wait_signal(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH, libc::SIGCHLD]);
            if sig != libc::SIGCHLD {
                let _ = sys::pidfd_send_signal(fd, sig);
            }
        },
        None => 255,
    };
    super::delete(&req.root, &req.id, true)?;
    Ok(code)
}
