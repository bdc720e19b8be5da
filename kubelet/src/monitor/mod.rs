//! The per-container monitor (`rkube-monitor`, conmon-like). It detaches from the kubelet (re-executes itself
//! in a new session), becomes a child subreaper, starts the container's create command with its stdout and
//! stderr on pipes it holds, writes what comes out as CRI log lines with rotation, and records the container's
//! exit code in `<dir>/exit` when it ends. So a container keeps running, logging and having its exit recorded
//! while the kubelet restarts or crashes; the restarted kubelet finds `<dir>/monitor.pid` and `<dir>/exit`.
//!
//! No async runtime and no threads: one `poll` loop over two pipes. The kubelet side is [`spawn`] and
//! [`read_exit`].

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::logs::cri::{rfc3339_nano, CriWriter, Stream};

/// Set in the environment of the re-executed, detached monitor.
pub const DETACHED_ENV: &str = "RKUBE_MONITOR_DETACHED";
/// Where the exit record goes, inside the monitor's directory.
pub const EXIT_FILE: &str = "exit";
/// The monitor's own pid, inside its directory.
pub const PID_FILE: &str = "monitor.pid";
/// The container's pid, inside the monitor's directory.
pub const CONTAINER_PID_FILE: &str = "container.pid";

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("rkube-monitor: {0}")]
    Usage(String),
    #[error("start monitor {bin} for {dir}: {source}")]
    Spawn {
        bin: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container command failed to start (monitor {dir}): {message}")]
    Start { dir: PathBuf, message: String },
}

/// Parsed command line of `rkube-monitor`.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// State directory: exit record, pid files, monitor's own error log.
    pub dir: PathBuf,
    /// CRI log file of the container.
    pub log: PathBuf,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// When set, the command only creates the container and writes its pid here (`runtime create
    /// --pid-file`); the monitor then waits for that pid (reparented to it) instead of the command.
    pub pid_file: Option<PathBuf>,
    pub command: Vec<OsString>,
}

impl Args {
    /// The argument vector (without the program name) that [`Args::parse`] reads back.
    pub fn to_argv(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            "--dir".into(),
            self.dir.clone().into(),
            "--log".into(),
            self.log.clone().into(),
            "--log-max-bytes".into(),
            self.log_max_bytes.to_string().into(),
            "--log-max-files".into(),
            self.log_max_files.to_string().into(),
        ];
        if let Some(p) = &self.pid_file {
            v.push("--pid-file".into());
            v.push(p.clone().into());
        }
        v.push("--".into());
        v.extend(self.command.iter().cloned());
        v
    }

    pub fn parse(mut it: impl Iterator<Item = OsString>) -> Result<Self, MonitorError> {
        let usage = |m: &str| MonitorError::Usage(format!("{m}; usage: rkube-monitor --dir DIR --log FILE [--log-max-bytes N] [--log-max-files N] [--pid-file FILE] -- COMMAND..."));
        let (mut dir, mut log, mut pid_file) = (None, None, None);
        let (mut max_bytes, mut max_files) = (10 << 20, 5);
        while let Some(a) = it.next() {
            let mut val = || it.next().ok_or_else(|| usage(&format!("{} needs a value", a.to_string_lossy())));
            match a.to_str() {
                Some("--dir") => dir = Some(PathBuf::from(val()?)),
                Some("--log") => log = Some(PathBuf::from(val()?)),
                Some("--pid-file") => pid_file = Some(PathBuf::from(val()?)),
                Some("--log-max-bytes") => {
                    max_bytes = val()?.to_string_lossy().parse().map_err(|_| usage("--log-max-bytes is not a number"))?
                }
                Some("--log-max-files") => {
                    max_files = val()?.to_string_lossy().parse().map_err(|_| usage("--log-max-files is not a number"))?
                }
                Some("--") => break,
                _ => return Err(usage(&format!("unknown argument {:?}", a))),
            }
        }
        let command: Vec<OsString> = it.collect();
        if command.is_empty() {
            return Err(usage("no command after --"));
        }
        Ok(Self {
            dir: dir.ok_or_else(|| usage("--dir is required"))?,
            log: log.ok_or_else(|| usage("--log is required"))?,
            log_max_bytes: max_bytes,
            log_max_files: max_files,
            pid_file,
            command,
        })
    }
}

/// How a container ended, as the monitor recorded it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitRecord {
    /// Exit status, or 128 + signal number when killed by a signal.
    pub exit_code: i32,
    pub signal: Option<i32>,
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
    nix::sys::signal::kill(Pid::from_raw(pid), None).ok().map(|_| pid)
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

/// Entry point of the `rkube-monitor` binary; returns the process exit code.
pub fn main() -> i32 {
    let args = match Args::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    if std::env::var_os(DETACHED_ENV).is_some() {
        detached(&args)
    } else {
        launcher(&args)
    }
}

/// First stage: re-executes itself detached and relays its one-line report, so the caller can reap us at once.
fn launcher(args: &Args) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            println!("err cannot find own executable: {e}");
            return 1;
        }
    };
    let _ = fs::create_dir_all(&args.dir);
    let errlog = fs::OpenOptions::new().create(true).append(true).open(args.dir.join("monitor.log"));
    let mut cmd = Command::new(exe);
    cmd.args(args.to_argv()).env(DETACHED_ENV, "1").stdin(Stdio::null()).stdout(Stdio::piped());
    match errlog {
        Ok(f) => cmd.stderr(f),
        Err(_) => cmd.stderr(Stdio::null()),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            println!("err start detached monitor: {e}");
            return 1;
        }
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.is_empty() {
        line = "err monitor exited before reporting (see monitor.log)\n".into();
    }
    print!("{line}");
    let _ = std::io::stdout().flush();
    if line.starts_with("ok ") {
        0
    } else {
        1
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)?;
    fs::rename(tmp, path)
}

fn status_code(ws: WaitStatus) -> Option<(i32, i32, Option<i32>)> {
    match ws {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code, None)),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as i32, Some(sig as i32))),
        _ => None,
    }
}

/// Second stage: owns the container's stdio until it exits.
fn detached(args: &Args) -> i32 {
    let _ = nix::unistd::setsid();
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("rkube-monitor: become subreaper: {e}");
    }
    let report = |msg: &str| {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{msg}");
        let _ = out.flush();
    };
    let mut log = match CriWriter::open(&args.log, args.log_max_bytes, args.log_max_files) {
        Ok(w) => w,
        Err(e) => {
            report(&format!("err open log {}: {e}", args.log.display()));
            return 1;
        }
    };
    let mut child = match Command::new(&args.command[0])
        .args(&args.command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            report(&format!("err run {:?}: {e}", args.command[0]));
            return 1;
        }
    };
    let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        report("err no stdio pipes");
        return 1;
    };
    let target = match &args.pid_file {
        None => child.id() as i32,
        Some(pf) => {
            let status = child.wait();
            let ok = matches!(&status, Ok(s) if s.success());
            let pid = fs::read_to_string(pf).ok().and_then(|s| s.trim().parse::<i32>().ok());
            match (ok, pid) {
                (true, Some(pid)) => pid,
                _ => {
                    // nothing else holds the pipes: what the create command said is all there is
                    let mut msg = Vec::new();
                    let _ = err.read_to_end(&mut msg);
                    let _ = out.read_to_end(&mut msg);
                    let text = String::from_utf8_lossy(&msg).replace('\n', " ");
                    report(&format!("err create command failed ({status:?}): {}", text.trim()));
                    return 1;
                }
            }
        }
    };
    let _ = write_atomic(&args.dir.join(PID_FILE), std::process::id().to_string().as_bytes());
    let _ = write_atomic(&args.dir.join(CONTAINER_PID_FILE), target.to_string().as_bytes());
    report(&format!("ok {target}"));

    let mut buf = [0u8; 32 * 1024];
    let mut open = [true, true];
    let mut exit: Option<(i32, Option<i32>)> = None;
    loop {
        // drain whatever is readable; after the exit, only what is already buffered (timeout 0)
        let timeout: u16 = if exit.is_some() { 0 } else { 1000 };
        let ready = {
            let mut fds = Vec::with_capacity(2);
            if open[0] {
                fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
            }
            if open[1] {
                fds.push(PollFd::new(err.as_fd(), PollFlags::POLLIN));
            }
            if fds.is_empty() {
                Vec::new()
            } else {
                let _ = poll(&mut fds, timeout);
                let mut which = Vec::new();
                let mut i = 0;
                for (s, is_open) in open.iter().enumerate() {
                    if *is_open {
                        if fds[i].revents().map(|r| !r.is_empty()).unwrap_or(false) {
                            which.push(s);
                        }
                        i += 1;
                    }
                }
                which
            }
        };
        for s in &ready {
            let (stream, n) = if *s == 0 { (Stream::Stdout, out.read(&mut buf)) } else { (Stream::Stderr, err.read(&mut buf)) };
            match n {
                Ok(0) | Err(_) => {
                    open[*s] = false;
                    let _ = log.flush_stream(stream);
                }
                Ok(n) => {
                    let _ = log.write(stream, &buf[..n]);
                }
            }
        }
        // reap: the container, the create command, and orphans reparented to us
        let flags = if exit.is_none() && !open[0] && !open[1] { None } else { Some(WaitPidFlag::WNOHANG) };
        while let Ok(ws) = waitpid(None::<Pid>, flags) {
            match status_code(ws) {
                Some((pid, code, sig)) if pid == target => {
                    exit = Some((code, sig));
                    break;
                }
                Some(_) => continue,
                None => break,
            }
        }
        if let Some((code, sig)) = exit {
            if ready.is_empty() || (!open[0] && !open[1]) {
                let _ = log.flush_stream(Stream::Stdout);
                let _ = log.flush_stream(Stream::Stderr);
                let rec = format!(
                    "{{\"exitCode\":{code},\"signal\":{},\"finishedAt\":\"{}\"}}",
                    sig.map(|s| s.to_string()).unwrap_or_else(|| "null".into()),
                    rfc3339_nano(std::time::SystemTime::now())
                );
                if let Err(e) = write_atomic(&args.dir.join(EXIT_FILE), rec.as_bytes()) {
                    eprintln!("rkube-monitor: write exit record in {}: {e}", args.dir.display());
                }
                let _ = fs::remove_file(args.dir.join(PID_FILE));
                return 0;
            }
        } else if !open[0] && !open[1] && matches!(waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)), Err(nix::errno::Errno::ECHILD)) {
            // the container is not our child (we are not its reaper): we cannot learn its status
            eprintln!("rkube-monitor: container pid {target} is not reapable by the monitor");
            let _ = write_atomic(
                &args.dir.join(EXIT_FILE),
                format!("{{\"exitCode\":-1,\"signal\":null,\"finishedAt\":\"{}\"}}", rfc3339_nano(std::time::SystemTime::now())).as_bytes(),
            );
            return 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = Args {
            dir: "/run/x".into(),
            log: "/var/log/pods/x/0.log".into(),
            log_max_bytes: 1000,
            log_max_files: 2,
            pid_file: Some("/run/x/pid".into()),
            command: vec!["runc".into(), "create".into(), "--".into()],
        };
        assert_eq!(Args::parse(a.to_argv().into_iter()).expect("parse"), a);
        assert!(Args::parse(vec![OsString::from("--dir"), "d".into()].into_iter()).is_err());
        assert!(Args::parse(vec![OsString::from("--bogus")].into_iter()).is_err());
    }
}
