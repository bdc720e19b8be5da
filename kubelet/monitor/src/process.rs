//! The monitor process: the launcher stage (re-executes itself detached and relays a one-line report) and
//! the detached stage (owns the container's stdio until it exits, then records the exit).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cri::{rfc3339_nano, CriWriter, Stream};
use crate::stdin::StdinRelay;
use crate::{Args, CONTAINER_PID_FILE, DETACHED_ENV, ERROR_LOG, EXIT_FILE, PID_FILE, STDIN_SOCKET};

/// Size of the one read buffer (the CRI line limit; longer lines are split anyway).
const READ_BUF: usize = 16 * 1024;

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
    let errlog = fs::OpenOptions::new().create(true).append(true).open(args.dir.join(ERROR_LOG));
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
        line = format!("err monitor exited before reporting (see {})\n", args.dir.join(ERROR_LOG).display());
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

fn exit_record(code: i32, signal: Option<i32>) -> String {
    let signal = signal.map(|s| s.to_string()).unwrap_or_else(|| "null".into());
    let at = rfc3339_nano(std::time::SystemTime::now());
    format!("{{\"exitCode\":{code},\"signal\":{signal},\"finishedAt\":\"{at}\"}}")
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
    // stdin: true: the container reads a pipe this process feeds from the attach socket
    let (mut relay, stdin) = if args.stdin {
        match StdinRelay::bind(&args.dir, STDIN_SOCKET, args.stdin_once) {
            Ok((relay, read)) => (Some(relay), Stdio::from(read)),
            Err(e) => {
                report(&format!("err make stdin socket {}: {e}", args.dir.join(STDIN_SOCKET).display()));
                return 1;
            }
        }
    } else {
        (None, Stdio::null())
    };
    let mut child = match Command::new(&args.command[0])
        .args(&args.command[1..])
        .stdin(stdin)
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
    drop(child);
    let _ = write_atomic(&args.dir.join(PID_FILE), std::process::id().to_string().as_bytes());
    let _ = write_atomic(&args.dir.join(CONTAINER_PID_FILE), target.to_string().as_bytes());
    report(&format!("ok {target}"));
    // from here on only the loop below runs: let go of the text that starting up touched
    crate::resident::drop_startup_text();

    let mut buf = vec![0u8; READ_BUF];
    let mut open = [true, true];
    let mut exit: Option<(i32, Option<i32>)> = None;
    loop {
        // drain whatever is readable; after the exit, only what is already buffered (timeout 0)
        let timeout = if exit.is_some() { PollTimeout::ZERO } else { PollTimeout::from(1000u16) };
        let mut ready = [false, false];
        let mut polled = false;
        {
            let mut fds = Vec::with_capacity(4);
            if open[0] {
                fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
            }
            if open[1] {
                fds.push(PollFd::new(err.as_fd(), PollFlags::POLLIN));
            }
            let pipes = fds.len();
            if let Some(r) = relay.as_ref().filter(|_| exit.is_none()) {
                r.interest(&mut fds);
            }
            if !fds.is_empty() && poll(&mut fds, timeout).is_ok() {
                polled = true;
                let revents: Vec<PollFlags> = fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect();
                drop(fds);
                let mut k = 0;
                for (s, is_open) in open.iter().enumerate() {
                    if *is_open {
                        ready[s] = !revents[k].is_empty();
                        k += 1;
                    }
                }
                if let Some(r) = relay.as_mut().filter(|_| exit.is_none()) {
                    r.handle(&revents[pipes..], &mut buf);
                }
            }
        }
        for s in 0..2 {
            if !ready[s] {
                continue;
            }
            let (stream, n) = if s == 0 { (Stream::Stdout, out.read(&mut buf)) } else { (Stream::Stderr, err.read(&mut buf)) };
            match n {
                Ok(0) | Err(_) => {
                    open[s] = false;
                    let _ = log.flush_stream(stream);
                }
                Ok(n) => {
                    let _ = log.write(stream, &buf[..n]);
                }
            }
        }
        // reap: the container, the create command, and orphans reparented to us
        let flags = if exit.is_none() && !polled && !open[0] && !open[1] { None } else { Some(WaitPidFlag::WNOHANG) };
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
        let any_ready = ready[0] || ready[1];
        if let Some((code, sig)) = exit {
            if !any_ready || (!open[0] && !open[1]) {
                let _ = log.flush_stream(Stream::Stdout);
                let _ = log.flush_stream(Stream::Stderr);
                if let Err(e) = write_atomic(&args.dir.join(EXIT_FILE), exit_record(code, sig).as_bytes()) {
                    eprintln!("rkube-monitor: write exit record in {}: {e}", args.dir.display());
                }
                let _ = fs::remove_file(args.dir.join(PID_FILE));
                drop(relay.take()); // removes the socket
                return 0;
            }
        } else if !open[0] && !open[1] && matches!(waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)), Err(nix::errno::Errno::ECHILD)) {
            // the container is not our child (we are not its reaper): we cannot learn its status
            eprintln!("rkube-monitor: container pid {target} is not reapable by the monitor");
            let at = rfc3339_nano(std::time::SystemTime::now());
            let _ = write_atomic(&args.dir.join(EXIT_FILE), format!("{{\"exitCode\":-1,\"signal\":null,\"finishedAt\":\"{at}\"}}").as_bytes());
            return 1;
        }
    }
}
