//! rkube's per-container monitor (`rkube-monitor`, conmon-like). It detaches from the kubelet (re-executes
//! itself in a new session), becomes a child subreaper, starts the container's create command with its stdout
//! and stderr on pipes it holds (or a pty, for `tty: true`), writes what comes out as CRI log lines with
//! rotation ([`cri`]) and to clients attached on `<dir>/attach.sock` ([`attach`], which also feeds the
//! container's stdin), and records the container's exit code in `<dir>/exit` when it ends. So a container keeps running, logging and having its
//! exit recorded while the kubelet restarts or crashes; the restarted kubelet finds `<dir>/monitor.pid` and
//! `<dir>/exit`.
//!
//! One of these runs per container, so it must stay small: no async runtime, no threads, one `poll` loop over
//! the output pipes (or pty) and the attach socket, one reused 16 KiB read buffer, no per-line allocation or
//! formatting machinery. This crate holds
//! only the monitor process and its wire format (arguments, files); the kubelet side (starting one, reading
//! its records) is `rkube_kubelet::container_monitor`.
#![warn(missing_docs)]

pub mod attach;
pub mod cri;
mod process;
pub mod resident;

use std::ffi::OsString;
use std::path::PathBuf;

pub use process::main;

/// Set in the environment of the re-executed, detached monitor.
pub const DETACHED_ENV: &str = "RKUBE_MONITOR_DETACHED";
/// Where the exit record goes, inside the monitor's directory.
pub const EXIT_FILE: &str = "exit";
/// The monitor's own pid, inside its directory.
pub const PID_FILE: &str = "monitor.pid";
/// The container's pid, inside the monitor's directory.
pub const CONTAINER_PID_FILE: &str = "container.pid";
/// The socket `kubectl attach` goes through (live output; stdin with `--stdin`), inside the monitor's directory.
pub const ATTACH_SOCKET: &str = "attach.sock";
/// The monitor's own error log (what it could not do), inside its directory.
pub const ERROR_LOG: &str = "monitor.log";

/// A command line `rkube-monitor` cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rkube-monitor: {}; usage: rkube-monitor --dir DIR --log FILE [--log-max-bytes N] [--log-max-files N] [--pid-file FILE] [--stdin [--stdin-once]] [--console-socket PATH] -- COMMAND...",
            self.0
        )
    }
}

impl std::error::Error for UsageError {}

/// Parsed command line of `rkube-monitor`.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// State directory: exit record, pid files, monitor's own error log.
    pub dir: PathBuf,
    /// CRI log file of the container.
    pub log: PathBuf,
    /// Size at which the CRI log is rotated (`containerLogMaxSize`).
    pub log_max_bytes: u64,
    /// Rotated files kept, the current one included (`containerLogMaxFiles`).
    pub log_max_files: u32,
    /// When set, the command only creates the container and writes its pid here (`runtime create
    /// --pid-file`); the monitor then waits for that pid (reparented to it) instead of the command.
    pub pid_file: Option<PathBuf>,
    /// Give the container a stdin fed through [`ATTACH_SOCKET`] (`stdin: true`).
    pub stdin: bool,
    /// Close that stdin when the first attached client that used it is done (`stdinOnce: true`).
    pub stdin_once: bool,
    /// `tty: true`: listen here for the pty master the command (`create --console-socket` the same path)
    /// sends; the container's output is then read from that master, and its stdin written to it.
    pub console_socket: Option<PathBuf>,
    /// The command that runs the container (the runtime's `run` or `create`), after `--`.
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
        if self.stdin {
            v.push("--stdin".into());
        }
        if self.stdin_once {
            v.push("--stdin-once".into());
        }
        if let Some(p) = &self.console_socket {
            v.push("--console-socket".into());
            v.push(p.clone().into());
        }
        v.push("--".into());
        v.extend(self.command.iter().cloned());
        v
    }

    /// Parses the arguments [`Args::to_argv`] wrote (program name already taken off).
    pub fn parse(mut it: impl Iterator<Item = OsString>) -> Result<Self, UsageError> {
        let usage = |m: String| UsageError(m);
        let (mut dir, mut log, mut pid_file, mut console_socket) = (None, None, None, None);
        let (mut max_bytes, mut max_files) = (10 << 20, 5);
        let (mut stdin, mut stdin_once) = (false, false);
        while let Some(a) = it.next() {
            let mut val = || it.next().ok_or_else(|| usage(format!("{} needs a value", a.to_string_lossy())));
            match a.to_str() {
                Some("--dir") => dir = Some(PathBuf::from(val()?)),
                Some("--log") => log = Some(PathBuf::from(val()?)),
                Some("--pid-file") => pid_file = Some(PathBuf::from(val()?)),
                Some("--console-socket") => console_socket = Some(PathBuf::from(val()?)),
                Some("--log-max-bytes") => {
                    max_bytes = val()?.to_string_lossy().parse().map_err(|_| usage("--log-max-bytes is not a number".into()))?
                }
                Some("--log-max-files") => {
                    max_files = val()?.to_string_lossy().parse().map_err(|_| usage("--log-max-files is not a number".into()))?
                }
                Some("--stdin") => stdin = true,
                Some("--stdin-once") => stdin_once = true,
                Some("--") => break,
                _ => return Err(usage(format!("unknown argument {:?}", a))),
            }
        }
        let command: Vec<OsString> = it.collect();
        if command.is_empty() {
            return Err(usage("no command after --".into()));
        }
        Ok(Self {
            dir: dir.ok_or_else(|| usage("--dir is required".into()))?,
            log: log.ok_or_else(|| usage("--log is required".into()))?,
            log_max_bytes: max_bytes,
            log_max_files: max_files,
            pid_file,
            stdin,
            stdin_once,
            console_socket,
            command,
        })
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
            stdin: true,
            stdin_once: true,
            console_socket: Some("/run/x/tty.sock".into()),
            command: vec!["runc".into(), "create".into(), "--".into()],
        };
        assert_eq!(Args::parse(a.to_argv().into_iter()).expect("parse"), a);
        assert!(Args::parse(vec![OsString::from("--dir"), "d".into()].into_iter()).is_err());
        let e = Args::parse(vec![OsString::from("--bogus")].into_iter()).expect_err("bogus");
        assert!(e.to_string().contains("unknown argument \"--bogus\""), "{e}");
    }
}
