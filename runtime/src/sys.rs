//! The only module with `unsafe`: thin wrappers over the system calls nix does not cover (clone3, pidfd,
//! close_range, TIOCSCTTY, umask-free exec helpers). Every block names the invariant that makes it sound.
//!
//! Nothing here allocates after a fork; callers decide what runs in the child.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// What a fork-like clone returned.
pub enum Forked {
    /// We are the new process.
    Child,
    /// We are the caller; the child has this host pid.
    Parent(libc::pid_t),
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Fork-like clone3 (no new stack: the child continues on a copy of ours) with namespace `flags`, SIGCHLD on exit,
/// and optionally CLONE_INTO_CGROUP. Returns a pidfd for the child when the kernel supports it.
///
/// The caller must be single-threaded (the runtime CLI or an `init`-mode re-exec): the child then owns a full copy
/// of the address space with no lock held by another thread, so it may allocate.
pub fn clone_process(flags: u64, cgroup_fd: Option<RawFd>) -> io::Result<(Forked, Option<OwnedFd>)> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= 0x200000000; // CLONE_INTO_CGROUP
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 with stack == 0 behaves like fork: the child resumes here on a copy-on-write copy of this
    // stack. `args` and `pidfd` live on this stack for the whole call. The caller guarantees single-threadedness.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>())
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if ret == 0 {
        return Ok((Forked::Child, None));
    }
    // SAFETY: with CLONE_PIDFD the kernel stored a fresh fd that nothing else owns.
    let fd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    Ok((Forked::Parent(ret as libc::pid_t), fd))
}

/// pidfd_open(2): a handle on `pid` that can never refer to a recycled pid.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// pidfd_send_signal(2).
pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: the fd is valid for the duration of the call; null siginfo is allowed.
    let ret = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0)
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Exit of a process, as waitid reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl Exit {
    /// The shell convention: the code, or 128 + signal.
    pub fn as_shell_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Blocks until the child behind `pidfd` exits and reaps it (waitid P_PIDFD). Fails with ECHILD when the process
/// is not our child.
pub fn wait_pidfd(pidfd: &OwnedFd) -> io::Result<Exit> {
    loop {
        // SAFETY: siginfo_t is plain data; zeroed is a valid value and waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and pointer to a live siginfo_t.
        let ret = unsafe { libc::waitid(libc::P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, libc::WEXITED) };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid succeeded with WEXITED, so si_code/si_status describe the exit.
        let (code, status) = unsafe { (info.si_code, info.si_status()) };
        return Ok(if code == libc::CLD_EXITED { Exit::Code(status) } else { Exit::Signal(status) });
    }
}

/// Like [`wait_pidfd`] but returns `Ok(None)` at once when the process has not exited yet.
pub fn try_wait_pidfd(pidfd: &OwnedFd) -> io::Result<Option<Exit>> {
    // SAFETY: siginfo_t is plain data; zeroed is valid and means "nothing reported" (si_pid 0).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and pointer to a live siginfo_t.
    let ret = unsafe {
        libc::waitid(libc::P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG)
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid succeeded; si_pid is 0 when no child changed state.
    let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(if code == libc::CLD_EXITED { Exit::Code(status) } else { Exit::Signal(status) }))
}

/// Reaps the zombie child `pid` if it is one (waitpid WNOHANG).
pub fn reap(pid: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: waitpid on a specific pid with a pointer to a local int.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) > 0 }
}

/// Marks every fd >= `from` close-on-exec (close_range with CLOSE_RANGE_CLOEXEC), so nothing of the runtime
/// leaks into the container process (CVE-2024-21626 class).
pub fn cloexec_from(from: u32) -> io::Result<()> {
    // SAFETY: integer-only syscall; CLOSE_RANGE_CLOEXEC (4) never closes anything.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 4u32) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `fd` the controlling terminal of this (session leader) process.
pub fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument; fd validity is checked by the kernel.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the terminal window size.
pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize from a pointer to a live struct.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the process umask (always succeeds).
pub fn set_umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// Unblocks every signal and resets dispositions to default, so the container process starts clean.
pub fn reset_signals() {
    // SAFETY: sigset operations on a local set; signal(SIG_DFL) is always valid for catchable signals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// Blocks `sigs` for this thread (they stay pending until [`wait_signal`] takes them).
pub fn block_signals(sigs: &[i32]) {
    // SAFETY: local sigset; sigprocmask with a valid set pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Blocks until any signal in `set` arrives, returning its number (sigwaitinfo).
pub fn wait_signal(sigs: &[i32]) -> i32 {
    // SAFETY: local sigset; blocking the signals first makes sigwaitinfo receive them.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        loop {
            let r = libc::sigwaitinfo(&set, std::ptr::null_mut());
            if r > 0 {
                return r;
            }
        }
    }
}

/// Reaps any exited children without blocking; returns how many were reaped.
pub fn reap_zombies() -> usize {
    let mut n = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG and a pointer to a local int.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r <= 0 {
            return n;
        }
        n += 1;
    }
}

/// Becomes a child subreaper: orphaned descendants (containers whose `create` helper exited) are reparented to
/// us so we can collect their exit status.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to SIGKILL us when our parent dies (used by the pause sandbox's helper paths).
pub fn set_pdeathsig(sig: i32) {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) };
}

/// Exits immediately without running destructors or atexit handlers (for forked children).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// The number of threads this process has (from /proc/self/stat field 20).
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(17)?.parse().ok()))
        .unwrap_or(1)
}

/// The namespace type (a CLONE_NEW* value) of an open namespace file (ioctl NS_GET_NSTYPE).
pub fn ns_type(fd: RawFd) -> io::Result<i32> {
    // SAFETY: NS_GET_NSTYPE (_IO(0xb7, 3)) takes no argument and returns an int.
    let r = unsafe { libc::ioctl(fd, 0xb703) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// unshare(CLONE_NEWTIME): this process's children (not itself) will be in a new time namespace, whose offsets can
/// be written to /proc/self/timens_offsets until the first child is made.
pub fn unshare_time_for_children() -> io::Result<()> {
    // SAFETY: unshare with an integer flag; CLONE_NEWTIME changes only time_for_children of this process.
    let r = unsafe { libc::unshare(libc::CLONE_NEWTIME) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// setdomainname(2).
pub fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe a live byte slice for the duration of the call.
    let r = unsafe { libc::setdomainname(name.as_ptr() as *const libc::c_char, name.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Clears FD_CLOEXEC on `fd` so it survives exec (`--preserve-fds`).
pub fn clear_cloexec(fd: RawFd) {
    // SAFETY: fcntl on an integer fd; an invalid fd just returns EBADF.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
        }
    }
}

/// True when `fd` is open in this process (fcntl F_GETFD succeeds).
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on an integer fd only reads its flags; an unused fd returns EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// prctl(PR_SET_DUMPABLE): a non-dumpable process's /proc/<pid> entries (exe, fd, mem, ...) are owned by root and
/// refused to anyone without CAP_SYS_PTRACE over it, whatever its uid. Inherited across fork, reset by execve.
pub fn set_dumpable(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0, 0, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// prctl(PR_GET_DUMPABLE).
pub fn is_dumpable() -> bool {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) == 1 }
}

/// The seals a memfd copy of the runtime carries: nothing can change its contents or size, nor the seals.
pub const EXE_SEALS: i32 = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
/// mount_setattr(2) attribute bits (linux/mount.h), for recursive mount options.
pub(crate) const MOUNT_ATTR_RDONLY_BIT: u64 = MOUNT_ATTR_RDONLY;
pub(crate) const MOUNT_ATTR_NOSUID_BIT: u64 = MOUNT_ATTR_NOSUID;
pub(crate) const MOUNT_ATTR_NODEV_BIT: u64 = MOUNT_ATTR_NODEV;
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub(crate) const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
pub(crate) const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub(crate) const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub(crate) const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub(crate) const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub(crate) const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
/// AT_RECURSIVE: mount_setattr applies to the whole tree under the mount.
pub(crate) const AT_RECURSIVE: libc::c_int = 0x8000;

/// struct mount_attr (linux/mount.h).
#[repr(C)]
#[derive(Default)]
pub(crate) struct MountAttr {
    pub(crate) attr_set: u64,
    pub(crate) attr_clr: u64,
    pub(crate) propagation: u64,
    pub(crate) userns_fd: u64,
}

/// mount_setattr(2) on `dirfd`/`path` (`AT_EMPTY_PATH` with an empty path names `dirfd` itself).
pub(crate) fn mount_setattr(dirfd: RawFd, path: &std::ffi::CStr, flags: libc::c_int, attr: &MountAttr) -> io::Result<()> {
    // SAFETY: path is NUL-terminated and attr points to a live, correctly sized struct for the whole call.
    let r = unsafe {
        libc::syscall(libc::SYS_mount_setattr, dirfd, path.as_ptr(), flags as libc::c_uint, attr as *const MountAttr, std::mem::size_of::<MountAttr>())
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A read-only clone of the mount holding this process's own executable, detached from every mount namespace and
/// rooted at the file itself (open_tree OPEN_TREE_CLONE of /proc/self/exe, then mount_setattr read-only, nosuid,
/// nodev). Executing it leaves /proc/<pid>/exe pointing at a file that no one can open for writing (EROFS) and
/// whose mount no one can reach to remount: runc's read-only bind defence against CVE-2019-5736, without a copy.
pub fn readonly_exe_clone() -> io::Result<OwnedFd> {
    let path = c"/proc/self/exe";
    // SAFETY: path is NUL-terminated; open_tree returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, ..Default::default() };
    mount_setattr(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH, &attr)?;
    Ok(fd)
}

/// A sealed memfd copy of this process's own executable (the fallback where a mount clone is not allowed):
/// memfd_create + sendfile from /proc/self/exe + F_ADD_SEALS with [`EXE_SEALS`], as runc's cloned_binary does.
pub fn sealed_memfd_exe() -> io::Result<OwnedFd> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let name = c"rkube-runtime";
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: name is NUL-terminated; memfd_create returns a new fd or -1.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), base | MFD_EXEC) };
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Kernels before 6.3 do not know MFD_EXEC (and make every memfd executable).
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), base) };
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd owned by nobody else.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let exe = std::fs::File::open("/proc/self/exe")?;
    loop {
        // SAFETY: both fds are open for the call; a null offset means "the file position".
        let n = unsafe { libc::sendfile(memfd.as_raw_fd(), exe.as_raw_fd(), std::ptr::null_mut(), 1 << 30) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
    }
    // SAFETY: fcntl on an fd we own with an integer argument.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, EXE_SEALS) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(memfd)
}

/// True when this process runs from a sealed executable: a memfd carrying [`EXE_SEALS`], or a file on a
/// read-only mount.
pub fn exe_is_sealed() -> bool {
    let Ok(exe) = std::fs::File::open("/proc/self/exe") else { return false };
    // SAFETY: fcntl on an fd we own; F_GET_SEALS fails with EINVAL on files that are not memfds.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & EXE_SEALS == EXE_SEALS {
        return true;
    }
    nix::sys::statvfs::fstatvfs(&exe).map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY)).unwrap_or(false)
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH): runs the executable behind `fd`. Returns only on failure.
pub fn fexecve(fd: &OwnedFd, argv: &[std::ffi::CString], envp: &[std::ffi::CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of pointers into CStrings that outlive the call; the path
    // is an empty NUL-terminated string, which AT_EMPTY_PATH makes name `fd` itself.
    unsafe {
        libc::syscall(libc::SYS_execveat, fd.as_raw_fd(), c"".as_ptr(), a.as_ptr(), e.as_ptr(), libc::AT_EMPTY_PATH);
    }
    io::Error::last_os_error()
}

/// Borrows a raw fd the caller keeps open for the rest of the process's life (the exec fifo in init).
pub fn borrow_fd(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: callers pass an fd that stays open until they close it themselves, after the last use.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Loads a BPF_PROG_TYPE_CGROUP_DEVICE program (raw 8-byte instructions) and attaches it to the cgroup2
/// directory `cgroup_fd` with BPF_F_ALLOW_MULTI. The attachment keeps the program alive; the fd is dropped.
pub fn attach_device_program(cgroup_fd: RawFd, insns: &[[u8; 8]]) -> io::Result<()> {
    let license = b"Apache-2.0\0";
    let mut log = vec![0u8; 4096];
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&15u32.to_ne_bytes()); // prog_type = BPF_PROG_TYPE_CGROUP_DEVICE
    attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[24..28].copy_from_slice(&1u32.to_ne_bytes()); // log_level
    attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
    attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
    // SAFETY: attr is a zeroed bpf_attr prefix whose pointers (insns, license, log) outlive the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 5 /* BPF_PROG_LOAD */, attr.as_ptr(), attr.len() as u32) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let msg = String::from_utf8_lossy(&log[..log.iter().position(|b| *b == 0).unwrap_or(0)]).trim().to_string();
        return Err(io::Error::new(e.kind(), format!("load device program: {e} {msg}")));
    }
    // SAFETY: the kernel returned a new fd owned by nobody else.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let mut attr = [0u8; 32];
    attr[0..4].copy_from_slice(&(cgroup_fd as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&6u32.to_ne_bytes()); // BPF_CGROUP_DEVICE
    attr[12..16].copy_from_slice(&2u32.to_ne_bytes()); // BPF_F_ALLOW_MULTI
    // SAFETY: attr is a valid bpf_attr prefix for BPF_PROG_ATTACH; both fds are open.
    let r = unsafe { libc::syscall(libc::SYS_bpf, 8 /* BPF_PROG_ATTACH */, attr.as_ptr(), attr.len() as u32) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Private, non-writable file mappings with no copy-on-write page (`Anonymous: 0 kB`) in `/proc/self/smaps`
/// text: (start, length) pairs whose resident pages are all unmodified pages of the file.
pub fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut f = line.split_ascii_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            current = None;
            let perms = f.next().unwrap_or("");
            let file_backed = f.nth(3).is_some_and(|p| p.starts_with('/'));
            let private_ro = perms.len() == 4 && perms.as_bytes()[1] == b'-' && perms.ends_with('p');
            if let (true, true, Ok(s), Ok(e)) =
                (file_backed, private_ro, usize::from_str_radix(start, 16), usize::from_str_radix(end, 16))
            {
                current = (e > s).then_some((s, e - s));
            }
        } else if first == "Anonymous:" {
            if let (Some(m), Some("0")) = (current.take(), f.next()) {
                out.push(m);
            }
        }
    }
    out
}

/// Lets a long-lived, single-threaded process (the pause process) give back the file pages that starting up
/// mapped: the loader's relocation work, argument parsing, fault-around. The pages stay in the page cache,
/// shared, and fault back in on the next touch. Best effort. (The monitor does the same, in its own crate.)
pub fn drop_clean_file_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    for (start, len) in clean_file_mappings(&smaps) {
        // SAFETY: the range is one whole mapping of this process as the kernel listed it: private, not
        // writable, of a file, with no anonymous (copy-on-write) page, so every resident page is an unmodified
        // page of the file. MADV_DONTNEED only unmaps them; the next access reads the same bytes back from the
        // page cache. The caller is single-threaded, so nothing changes the mapping in between.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
}

#[cfg(test)]
mod resident_tests {
    use super::clean_file_mappings;

    #[test]
    fn clean_file_mappings_skips_writable_shared_anonymous_and_cow() {
        let smaps = "\
5555aaaa0000-5555aaab0000 r--p 00000000 08:01 123 /usr/bin/x
Rss:                  64 kB
Anonymous:             0 kB
5555aaab0000-5555aaac0000 r-xp 00010000 08:01 123 /usr/bin/x
Anonymous:             0 kB
5555aaac0000-5555aaac1000 r--p 00020000 08:01 123 /usr/bin/x
Anonymous:             4 kB
5555aaac1000-5555aaac2000 rw-p 00021000 08:01 123 /usr/bin/x
Anonymous:             0 kB
7f0000000000-7f0000001000 r--s 00000000 08:01 9 /dev/shm/y
Anonymous:             0 kB
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";
        assert_eq!(clean_file_mappings(smaps), vec![(0x5555aaaa0000, 0x10000), (0x5555aaab0000, 0x10000)]);
    }
}
