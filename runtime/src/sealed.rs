//! The CVE-2019-5736 defence: no process of the runtime that a container can see gives the container a way to
//! write the runtime's binary.
//!
//! While `create` or `exec` sets a process up inside a container, that process is still running the runtime's
//! own executable, and a process in the container (root in it) could open `/proc/<pid>/exe`, keep the handle,
//! and open it for writing once the runtime has exec'd the container's program: the next `rkube-runtime` run on
//! the host (every kubelet exec and probe) would then run the attacker's code. Two defences, as runc has:
//!
//! 1. The processes that join a container are non-dumpable from before the first namespace is joined until they
//!    execve the container's program ([`crate::sys::set_dumpable`], set in `create` and `exec`): their `/proc`
//!    entries are refused to anything without CAP_SYS_PTRACE over them.
//! 2. They run from a sealed executable: [`ensure`] re-executes the binary from a read-only clone of its own
//!    mount, detached from every namespace (open_tree + mount_setattr: no copy, so no cost in time or memory but
//!    one exec), or, where cloning a mount is refused, from a sealed memfd copy (runc's cloned_binary). Even a
//!    process that holds `/proc/<pid>/exe` (CAP_SYS_PTRACE) can then not open it for writing: EROFS, or EPERM on
//!    the sealed memfd.
//!
//! What must not happen here: anything before [`ensure`] that opens a file the re-executed process would keep.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use crate::sys;

/// Set in the environment of the re-executed process (and removed by it), so it knows the exec was ours.
pub const SEALED_ENV: &str = "_RKUBE_RUNTIME_SEALED";

/// Failing to run from a sealed executable: the runtime refuses to go on without the protection.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Copying the binary into a sealed memfd or re-executing it failed.
    #[error("cannot run from a sealed copy of the runtime binary (CVE-2019-5736 protection): {what}: {source}")]
    Seal {
        /// The step that failed.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Returns when this process already runs from a sealed executable that it was re-executed into; otherwise
/// re-executes itself from one, with the same argv and environment, and does not return. Call before anything
/// is opened or created (descriptors without close-on-exec survive the re-exec; that is how `--preserve-fds`
/// descriptors reach the container).
pub fn ensure() -> Result<(), SealError> {
    if std::env::var_os(SEALED_ENV).is_some() && sys::exe_is_sealed() {
        // We are single-threaded here (the CLI, or an init-mode process before it forks).
        std::env::remove_var(SEALED_ENV);
        return Ok(());
    }
    let fd = match sys::readonly_exe_clone() {
        Ok(fd) => fd,
        Err(_) => sys::sealed_memfd_exe().map_err(|source| SealError::Seal { what: "copy into a sealed memfd", source })?,
    };
    let cstr = |b: &[u8]| CString::new(b).ok();
    let argv: Vec<CString> = std::env::args_os().filter_map(|a| cstr(a.as_bytes())).collect();
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != SEALED_ENV)
        .filter_map(|(k, v)| cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect();
    envp.push(CString::new(format!("{SEALED_ENV}=1")).expect("no NUL"));
    let source = sys::fexecve(&fd, &argv, &envp);
    Err(SealError::Seal { what: "re-execute", source })
}
