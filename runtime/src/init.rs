//! The single-threaded side of the runtime: the container's init child (namespaces, rootfs, process setup, park
//! on the exec fifo, exec), and [`run_if_init`], the entry point every binary that embeds the runtime calls first
//! thing in `main`, before any thread starts.
//!
//! Why a re-exec: the kubelet is a multi-threaded tokio process, and after fork in such a process only
//! async-signal-safe calls are allowed. The runtime allocates freely while setting a container up, so in-process
//! callers ([`crate::Runtime`]) run `create`/`exec`/sandbox creation in a fresh copy of their own binary started
//! in init mode (`_RKUBE_RUNTIME_INIT` in the environment), which is single-threaded by construction. The
//! `rkube-runtime` CLI is single-threaded already and forks directly: no extra exec hop on the fast path.

use std::convert::Infallible;
use std::fs;
use std::os::fd::RawFd;
use std::path::Path;

use nix::sched::{unshare, CloneFlags};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::cgroups::{Cgroup, Layout};
use crate::container::create::Stdio;
use crate::namespaces::Plan;
use crate::sync::Channel;
use crate::sys;

/// Environment variable that puts a binary into init mode.
pub const INIT_ENV: &str = "_RKUBE_RUNTIME_INIT";

/// What an init-mode process is asked to do (argv[1], JSON). Built once per call, so variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum InitRequest {
    Create(crate::container::CreateRequest),
    Exec(crate::exec::ExecRequest),
    Sandbox(crate::sandbox::SandboxRequest),
}

/// Call first thing in `main` of any binary that uses [`crate::Runtime`] (rkube-runtime, the kubelet, rkube),
/// before starting threads or a tokio runtime. Returns normally when the process is not in init mode; otherwise
/// performs the requested operation and exits.
pub fn run_if_init() {
    let Some(mode) = std::env::var_os(INIT_ENV) else { return };
    if mode == "pause" {
        std::env::remove_var(INIT_ENV);
        crate::sandbox::pause_main();
    }
    // Every other mode puts processes into containers: run from a sealed executable (CVE-2019-5736). The re-exec
    // keeps INIT_ENV, so it is removed only after.
    if let Err(e) = crate::sealed::ensure() {
        eprintln!("{e}");
        std::process::exit(1);
    }
    // SAFETY-free: removing our own marker so the container never sees it; we are single-threaded here.
    std::env::remove_var(INIT_ENV);
    let arg = std::env::args().nth(1).unwrap_or_default();
    let req: InitRequest = match serde_json::from_str(&arg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rkube-runtime init: bad request: {e}");
            std::process::exit(2);
        }
    };
    let out = match req {
        InitRequest::Create(r) => crate::container::create(&r).map(|c| c.state.oci_json().to_string()),
        InitRequest::Exec(r) => crate::exec::exec(&r).map(|p| p.pid.to_string()),
        InitRequest::Sandbox(r) => crate::sandbox::create(&r).map(|s| s.oci_json().to_string()),
    };
    match out {
        Ok(s) => {
            println!("{s}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// What the cloned init child works from: references into the parent's memory (the child has a copy).
pub(crate) struct ChildCtx<'a> {
    pub(crate) spec: &'a Spec,
    pub(crate) rootfs: &'a Path,
    pub(crate) plan: &'a Plan,
    pub(crate) cgroup: Option<&'a Cgroup>,
    pub(crate) layout: &'a Layout,
    pub(crate) sync: &'a Channel,
    pub(crate) fifo: Option<RawFd>,
    pub(crate) console: Option<RawFd>,
    /// The caller's descriptors (`--preserve-fds`) to pass into the container at their numbers; every other
    /// descriptor of the runtime is close-on-exec.
    pub(crate) passed_fds: &'a [RawFd],
    pub(crate) no_pivot: bool,
    pub(crate) stdio: Option<&'a Stdio>,
    /// `exec` into a running container: namespaces are joined, the rootfs is already there.
    pub(crate) exec_mode: bool,
    /// The parent moves us into `cgroup` (in parallel with our first rootfs steps) and says so with `C`;
    /// otherwise we join it ourselves first thing.
    pub(crate) parent_joins_cgroup: bool,
}

/// The container's init child: sets everything up, reports to the parent, waits for `start`, execs. On error
/// the message goes to the parent and the child exits.
pub(crate) fn container_child(ctx: &ChildCtx) -> ! {
    let Err(msg) = setup(ctx);
    let _ = ctx.sync.send(b'E', msg.as_bytes());
    sys::exit_now(1)
}

fn redirect_stdio(s: &Stdio) -> Result<(), String> {
    let open = |p: &Option<std::path::PathBuf>, write: bool| -> Result<fs::File, String> {
        let path = p.clone().unwrap_or_else(|| "/dev/null".into());
        fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .append(write)
            .create(write)
            .open(&path)
            .map_err(|e| format!("open stdio {}: {e}", path.display()))
    };
    let i = open(&s.stdin, false)?;
    let o = open(&s.stdout, true)?;
    let e = open(&s.stderr, true)?;
    nix::unistd::dup2_stdin(&i).map_err(|e| format!("dup stdin: {e}"))?;
    nix::unistd::dup2_stdout(&o).map_err(|e| format!("dup stdout: {e}"))?;
    nix::unistd::dup2_stderr(&e).map_err(|e| format!("dup stderr: {e}"))?;
    Ok(())
}

fn setup(ctx: &ChildCtx) -> Result<Infallible, String> {
    let spec = ctx.spec;
    let process = spec.process().as_ref().ok_or("process: missing")?;
    sys::cloexec_from(3).map_err(|e| format!("mark fds close-on-exec: {e}"))?;
    if let Some(s) = ctx.stdio {
        redirect_stdio(s)?;
    }
    if let (Some(cg), false) = (ctx.cgroup, ctx.parent_joins_cgroup) {
        cg.join_self().map_err(|e| e.to_string())?;
    }
    // The parent's "in your cgroup" message may arrive while we wait for something else.
    let mut cgroup_joined = !ctx.parent_joins_cgroup;
    if ctx.plan.new_user {
        ctx.sync.send(b'U', b"").map_err(|e| format!("sync: {e}"))?;
        loop {
            match ctx.sync.recv() {
                Ok(Some((b'G', _))) => break,
                Ok(Some((b'C', _))) => cgroup_joined = true,
                Ok(Some((b'X', m))) => return Err(String::from_utf8_lossy(&m).into_owned()),
                _ => return Err("runtime did not write the id maps".into()),
            }
        }
        let root_u = nix::unistd::Uid::from_raw(0);
        let root_g = nix::unistd::Gid::from_raw(0);
        nix::unistd::setresgid(root_g, root_g, root_g).map_err(|e| format!("become root in the user namespace: {e}"))?;
        nix::unistd::setresuid(root_u, root_u, root_u).map_err(|e| format!("become root in the user namespace: {e}"))?;
    }
    crate::namespaces::join_in_child(ctx.plan).map_err(|e| e.to_string())?;
    if ctx.plan.new_uts {
        if let Some(h) = spec.hostname() {
            nix::unistd::sethostname(h).map_err(|e| format!("hostname: {h:?}: {e}"))?;
        }
        if let Some(d) = spec.domainname() {
            sys::set_domainname(d).map_err(|e| format!("domainname: {d:?}: {e}"))?;
        }
    }
    // A mount namespace joined by path gets the rootfs set up in it too, as runc does (its prepareRootfs runs for
    // any config listing a mount namespace); without one, the process is only chrooted (see below).
    let mount_ns = ctx.plan.new_mount || ctx.plan.joins_type(oci_spec::runtime::LinuxNamespaceType::Mount);
    let setup_rootfs = !ctx.exec_mode && mount_ns;
    let early = if setup_rootfs { Some(crate::rootfs::prepare_early(spec, ctx.rootfs).map_err(|e| e.to_string())?) } else { None };
    if !cgroup_joined {
        match ctx.sync.recv() {
            Ok(Some((b'C', _))) => {}
            Ok(Some((b'X', m))) => return Err(String::from_utf8_lossy(&m).into_owned()),
            _ => return Err("runtime did not move the process into its cgroup".into()),
        }
    }
    if ctx.plan.new_cgroup {
        unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| format!("linux.namespaces: unshare cgroup: {e}"))?;
    }
    if let Some((done, root)) = &early {
        crate::rootfs::prepare_late(spec, root, *done, ctx.plan.new_user, Some(ctx.layout)).map_err(|e| e.to_string())?;
    }
    let mut state_json = String::new();
    let hooks = spec.hooks().as_ref();
    #[allow(deprecated)]
    let wants_hooks = !ctx.exec_mode
        && hooks.is_some_and(|h| {
            [h.prestart(), h.create_runtime(), h.create_container(), h.start_container()]
                .iter()
                .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
        });
    if wants_hooks {
        ctx.sync.send(b'H', b"").map_err(|e| format!("sync: {e}"))?;
        match ctx.sync.recv() {
            Ok(Some((b'G', json))) => state_json = String::from_utf8_lossy(&json).into_owned(),
            _ => return Err("runtime hooks failed".into()),
        }
        if let Some(h) = hooks.and_then(|h| h.create_container().clone()) {
            crate::hooks::run("createContainer", &h, &state_json).map_err(|e| e.to_string())?;
        }
    }
    if setup_rootfs {
        crate::rootfs::pivot(ctx.rootfs, ctx.no_pivot).map_err(|e| e.to_string())?;
        crate::rootfs::finish(spec).map_err(|e| e.to_string())?;
    } else if ctx.exec_mode && mount_ns {
        nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    } else {
        // No mount namespace of its own (for exec: the container shares the caller's): chroot into the rootfs,
        // runc's path for this case; config validation refused everything that would need a mount.
        crate::rootfs::chroot_into(ctx.rootfs).map_err(|e| e.to_string())?;
    }
    if process.terminal() == Some(true) {
        let sock = ctx.console.ok_or("process.terminal is true but no --console-socket was given")?;
        let size = process.console_size().map(|b| (b.height() as u16, b.width() as u16));
        crate::terminal::setup(sock, size).map_err(|e| e.to_string())?;
    }
    crate::process::set_rlimits(process).map_err(|e| e.to_string())?;
    // Built now (it allocates), loaded last: nothing of the runtime's own setup runs under the container's filter.
    let filter = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::seccomp::build(s).map_err(|e| e.to_string())?),
        None => None,
    };
    let nnp = process.no_new_privileges() == Some(true);
    // No capabilities object means none at all (runc), not the runtime's full set.
    let caps = process.capabilities().clone().unwrap_or_else(crate::capabilities::none);
    crate::capabilities::apply_bounding(&caps).map_err(|e| e.to_string())?;
    crate::process::switch_user(process).map_err(|e| e.to_string())?;
    // Without no_new_privs, loading the filter needs CAP_SYS_ADMIN: keep it (effective and permitted only; the
    // bounding set is already final) until the filter is loaded.
    let keep_sys_admin = filter.is_some() && !nnp;
    crate::capabilities::apply(&caps, keep_sys_admin).map_err(|e| e.to_string())?;
    crate::process::set_no_new_privs(process).map_err(|e| e.to_string())?;
    sys::set_umask(process.user().umask().unwrap_or(0o022));
    // The CVE-2024-21626 cwd check (getcwd) and the PATH lookup happen before the filter: a profile may deny them.
    crate::process::enter_cwd(process).map_err(|e| e.to_string())?;
    let exec = crate::process::prepare_exec(process).map_err(|e| e.to_string())?;
    for fd in ctx.passed_fds {
        sys::clear_cloexec(*fd);
    }
    if let (Some(f), true) = (&filter, keep_sys_admin) {
        // Loaded before parking so the parked process does not hold CAP_SYS_ADMIN until start; after it come
        // only the capset dropping CAP_SYS_ADMIN, the handshake with the runtime, startContainer hooks and exec.
        crate::seccomp::load(f).map_err(|e| e.to_string())?;
        crate::capabilities::drop_kept_sys_admin(&caps).map_err(|e| e.to_string())?;
    }
    ctx.sync.send(b'D', b"").map_err(|e| format!("sync: {e}"))?;
    if let Some(fifo) = ctx.fifo {
        // Park until `start` writes a byte.
        let mut b = [0u8; 1];
        loop {
            match nix::unistd::read(unsafe_borrow(fifo), &mut b) {
                Ok(_) => break,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(format!("wait for start: {e}")),
            }
        }
        let _ = nix::unistd::close(fifo);
        if let Some(h) = hooks.and_then(|h| h.start_container().clone()) {
            let state = crate::hooks::state_for(&state_json, "created");
            let env = process.env().clone().unwrap_or_default();
            if let Err(e) = crate::hooks::run_with_env("startContainer", &h, &state, &env) {
                eprintln!("error: rkube-runtime: {e}");
                sys::exit_now(1);
            }
        }
    }
    if let (Some(f), true) = (&filter, nnp) {
        // With no_new_privs: the very last step before exec.
        if let Err(e) = crate::seccomp::load(f) {
            eprintln!("error: rkube-runtime: {e}");
            sys::exit_now(1);
        }
    }
    sys::reset_signals();
    let e = crate::process::exec(&exec);
    eprintln!("error: rkube-runtime: {e}");
    sys::exit_now(127)
}

fn unsafe_borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    sys::borrow_fd(fd)
}
