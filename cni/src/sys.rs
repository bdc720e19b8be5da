//! The crate's only `unsafe` code: forking a short-lived helper process. Everything else goes through safe
//! wrappers (nix, std).

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// True when this process has a single thread, read from /proc/self/status.
pub fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Threads:")).map(|l| l.split_whitespace().nth(1) == Some("1")))
        .unwrap_or(false)
}

/// Runs `work` in a forked child whose stdout and stderr go to /dev/null (so a runtime reading our stdout sees
/// EOF when we exit, whatever the child is doing), and returns the child's pid without waiting for it. The
/// child exits with `work`'s return value. Returns `None` (and runs nothing) if this process is not
/// single-threaded or fork fails; the caller then does the work itself.
pub fn fork_detached(work: impl FnOnce() -> i32) -> Option<Pid> {
    if !single_threaded() {
        return None;
    }
    let devnull = std::fs::OpenOptions::new().write(true).open("/dev/null").ok()?;
    // SAFETY: fork is only unsafe in a multi-threaded process, where the child could inherit locks held by
    // threads that do not exist in it. We checked just above that this process has one thread (plugins never
    // start threads), so the child may allocate, lock and run ordinary Rust code before it exits.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = nix::unistd::dup2_stdout(&devnull);
            let _ = nix::unistd::dup2_stderr(&devnull);
            let code = work();
            // SAFETY: _exit ends the child at once, without the parent's atexit handlers or flushing stdio
            // buffers it shares with the parent; it takes no pointers.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => Some(child),
        Err(_) => None,
    }
}

/// The child's exit code if it has exited (reaping it), `None` while it runs.
pub fn exited(child: Pid) -> Option<i32> {
    match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        Ok(WaitStatus::Signaled(..)) => Some(128),
        Ok(_) => None,
        // ECHILD: already reaped (SIGCHLD ignored by whoever started us); it is not running any more.
        Err(_) => Some(0),
    }
}
