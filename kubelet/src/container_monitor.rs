//! The kubelet's side of the per-container monitor (`rkube-monitor`, conmon-like, in the `rkube-monitor`
//! crate): [`spawn`] starts one for a container and waits until the container exists; [`read_exit`],
//! [`alive_monitor`] and [`container_pid`] read what a monitor recorded in its directory, which is how a
//! restarted kubelet adopts running containers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use rkube_monitor::{Args, ATTACH_SOCKET, CONTAINER_PID_FILE, DETACHED_ENV, EXIT_FILE, PID_FILE};

/// Why a container's monitor could not be started, or its container did not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The monitor's command line is invalid.
    #[error(transparent)]
    Usage(#[from] rkube_monitor::UsageError),
    /// The monitor's directory could not be made or the monitor binary could not be run.
    #[error("start monitor {bin} for {dir}: {source}")]
    Spawn {
        /// The `rkube-monitor` binary.
        bin: PathBuf,
        /// The container's monitor directory (pid, exit and attach files).
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The monitor ran but the container did not start; `message` is the runtime's error as the monitor reported it.
    #[error("container command failed to start (monitor {dir}): {message}")]
    Start {
        /// The container's monitor directory (pid, exit and attach files).
        dir: PathBuf,
        /// The monitor's report.
        message: String,
    },
}

/// How a container ended, as the monitor recorded it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitRecord {
    /// Exit status, or 128 + signal number when killed by a signal; -1 when the monitor could not reap it.
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// When the monitor saw it end, RFC 3339 with nanoseconds.
    pub finished_at: String,
}

/// The exit record in `dir`, once the container has ended.
pub fn read_exit(dir: &Path) -> Option<ExitRecord> {
    let data = fs::read(dir.join(EXIT_FILE)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// The monitor's pid recorded in `dir`, if that process is still alive.
pub fn alive_monitor(dir: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(dir.join(PID_FILE)).ok()?.trim().parse().ok()?;
    process_alive(pid).then_some(pid)
}

/// True when `pid` is a running process. A zombie is dead: monitors and sandboxes are detached, so once killed
/// they wait for init to reap them, and an init that does not reap (a container's PID 1, some VM agents) leaves
/// them zombies for good, which `kill(pid, 0)` still reports as alive.
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // the state follows the command name, which may itself hold ") "
    !matches!(stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()), Some('Z' | 'X') | None)
}

/// The container pid recorded in `dir`.
pub fn container_pid(dir: &Path) -> Option<i32> {
    fs::read_to_string(dir.join(CONTAINER_PID_FILE)).ok()?.trim().parse().ok()
}

/// Starts a detached monitor for one container and waits until the container process exists.
/// Returns the container's pid.
pub fn spawn(bin: &Path, args: &Args) -> Result<i32, MonitorError> {
    fs::create_dir_all(&args.dir).map_err(|source| MonitorError::Spawn { bin: bin.into(), dir: args.dir.clone(), source })?;
    let out = Command::new(bin)
        .args(args.to_argv())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| MonitorError::Spawn { bin: bin.into(), dir: args.dir.clone(), source })?;
    let line = String::from_utf8_lossy(&out.stdout);
    let line = line.trim();
    if let Some(pid) = line.strip_prefix("ok ") {
        if let Ok(pid) = pid.trim().parse() {
            return Ok(pid);
        }
    }
    let message = line.strip_prefix("err ").map(str::to_string).unwrap_or_else(|| {
        format!("{line} {}", String::from_utf8_lossy(&out.stderr).trim()).trim().to_string()
    });
    Err(MonitorError::Start { dir: args.dir.clone(), message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_is_not_alive() {
        assert!(process_alive(std::process::id() as i32));
        assert!(!process_alive(0) && !process_alive(-1));
        // an exited child not yet waited for is a zombie until the wait
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process_alive(pid) {
            assert!(std::time::Instant::now() < deadline, "child {pid} never exited");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "still a zombie: kill(pid, 0) would call it alive");
        child.wait().expect("reap");
        assert!(!process_alive(pid));
    }
}
