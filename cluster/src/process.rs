//! The processes a cluster runs (`rkube server`, one `rkube kubelet` per node): started detached from the
//! command that starts them (a process group of their own, output to a log file), known afterwards by pid and
//! start time, and stopped only by that record.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::state::Proc;
use crate::{io_err, ClusterError, Result};

/// Field 22 (starttime) and the state letter of /proc/<pid>/stat.
fn stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); starttime is field 22
    Some((fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

/// Starts `exe args...` detached, its stdout and stderr appended to `log`.
pub fn spawn(exe: &Path, args: &[String], log: &Path, env: &[(&str, &str)]) -> Result<Proc> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(io_err("open log", log))?;
    let err = out.try_clone().map_err(io_err("open log", log))?;
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().map_err(|e| ClusterError::Command { cmd: format!("{} {}", exe.display(), args.join(" ")), message: e.to_string() })?;
    let pid = child.id() as i32;
    // the child is not waited for here: it outlives this command (reaped by init once it exits)
    std::mem::forget(child);
    let start_time = stat(pid).map(|(_, t)| t).unwrap_or(0);
    Ok(Proc { pid, start_time, log: log.to_path_buf() })
}

/// True while the recorded process runs (not a zombie, and the pid not recycled).
pub fn alive(p: &Proc) -> bool {
    match stat(p.pid) {
        Some((state, start)) => state != 'Z' && state != 'X' && (p.start_time == 0 || start == p.start_time),
        None => false,
    }
}

/// SIGTERM, up to `grace` for it to exit, then SIGKILL. Does nothing to a pid that is no longer the recorded
/// process. Returns whether it had to kill.
pub fn stop(p: &Proc, grace: Duration) -> bool {
    if !alive(p) {
        return false;
    }
    let _ = kill(Pid::from_raw(p.pid), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while alive(p) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(p) {
        let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(p) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawned_process_is_known_by_pid_and_start_time_and_stopped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("sleep.log");
        let p = spawn(Path::new("/bin/sh"), &["-c".into(), "echo started; exec sleep 30".into()], &log, &[]).expect("spawn");
        assert!(alive(&p));
        let recycled = Proc { start_time: p.start_time + 1, ..p.clone() };
        assert!(!alive(&recycled), "another start time is another process");
        assert!(!stop(&recycled, Duration::from_millis(10)), "never signals a process it did not record");
        assert!(alive(&p));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("started") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(std::fs::read_to_string(&log).expect("log").contains("started"), "its output goes to the log");
        assert!(!stop(&p, Duration::from_secs(5)), "it ends on SIGTERM");
        assert!(!alive(&p));
    }
}
