//! The monitor process: the launcher stage (re-executes itself detached and relays a one-line report) and
//! the detached stage (owns the container's stdio until it exits, then records the exit).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cri::{rfc3339_nano, CriWriter, Stream};
use crate::attach::{AttachServer, Stdin};
use crate::{Args, ATTACH_SOCKET, CONTAINER_PID_FILE, DETACHED_ENV, ERROR_LOG, EXIT_FILE, PID_FILE};

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

/// How the container ended, as the monitor learns it by reaping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// Its wait status: exit code (128 + signal when killed) and the signal.
    Exited(i32, Option<i32>),
    /// Its outputs are closed and the monitor has no child left to wait for: the container was never ours to
    /// reap (not reparented to us), so its status cannot be known.
    NotReapable,
}

/// One round of reaping, after the round's reads: the monitor's ended children (the container, the create
/// command, orphans reparented to us) are waited for through `wait` (`waitpid(-1, WNOHANG)`) until the container
/// (`target`) is found, a child is still running, or none is left. `outputs_closed`: both of the container's
/// outputs are at end of file.
///
/// Every answer of `wait` is acted on, and "no child left" is learnt from the same calls: a second `waitpid`
/// only to ask whether any child is left would reap the container when it exits between the two calls (it
/// closes its outputs a moment before it becomes a zombie) and drop its status, and the next round would then
/// find no child and record it as not reapable (issue 13).
fn reap_round(target: i32, outputs_closed: bool, wait: &mut impl FnMut() -> nix::Result<WaitStatus>) -> Option<Ended> {
    loop {
        match wait() {
            Ok(ws) => match status_code(ws) {
                Some((pid, code, sig)) if pid == target => return Some(Ended::Exited(code, sig)),
                // another child that ended: reaped, look again
                Some(_) => continue,
                // StillAlive: children remain, none has ended
                None => return None,
            },
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECHILD) => return outputs_closed.then_some(Ended::NotReapable),
            Err(_) => return None,
        }
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
    let (stdin_read, stdin_write) = if args.stdin && args.console_socket.is_none() {
        match crate::attach::stdin_pipe() {
            Ok((r, w)) => (Some(r), Some(w)),
            Err(e) => {
                report(&format!("err make stdin pipe: {e}"));
                return 1;
            }
        }
    } else {
        (None, None)
    };
    // tty: true: the create command sends the pty master over this socket
    let console = match &args.console_socket {
        Some(p) => {
            let _ = fs::remove_file(p);
            match UnixListener::bind(p) {
                Ok(l) => Some((l, p)),
                Err(e) => {
                    report(&format!("err listen on console socket {}: {e}", p.display()));
                    return 1;
                }
            }
        }
        None => None,
    };
    let mut child = match Command::new(&args.command[0])
        .args(&args.command[1..])
        .stdin(stdin_read.map(Stdio::from).unwrap_or_else(Stdio::null))
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
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        report("err no stdio pipes");
        return 1;
    };
    let (mut out, mut err) = (File::from(OwnedFd::from(out)), File::from(OwnedFd::from(err)));
    let master = match console {
        None => None,
        Some((listener, path)) => {
            let got = receive_master(&listener, &mut child);
            let _ = fs::remove_file(path);
            match got {
                Ok(m) => Some(m),
                Err(e) => {
                    let _ = child.wait();
                    let mut msg = Vec::new();
                    let _ = err.read_to_end(&mut msg);
                    report(&format!("err no terminal from the create command ({e}): {}", String::from_utf8_lossy(&msg).replace('\n', " ").trim()));
                    return 1;
                }
            }
        }
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
    // with a terminal the container's output is the pty master's; the pipes only carried the create command's
    let mut streams: [Option<File>; 2] = match &master {
        Some(m) => match m.try_clone() {
            Ok(m) => [Some(m), None],
            Err(e) => {
                report(&format!("err dup pty master: {e}"));
                return 1;
            }
        },
        None => [Some(out), Some(err)],
    };
    let stdin = match (master, stdin_write) {
        (Some(m), _) => Stdin::Tty(m),
        (None, Some(w)) => Stdin::Pipe(w),
        (None, None) => Stdin::None,
    };
    let mut attach = match AttachServer::bind(&args.dir, ATTACH_SOCKET, stdin, args.stdin_once) {
        Ok(a) => a,
        Err(e) => {
            report(&format!("err listen on attach socket {}: {e}", args.dir.join(ATTACH_SOCKET).display()));
            return 1;
        }
    };
    let _ = write_atomic(&args.dir.join(PID_FILE), std::process::id().to_string().as_bytes());
    let _ = write_atomic(&args.dir.join(CONTAINER_PID_FILE), target.to_string().as_bytes());
    report(&format!("ok {target}"));
    // from here on only the loop below runs: let go of the text that starting up touched
    crate::resident::drop_startup_text();

    let mut buf = vec![0u8; READ_BUF];
    let mut exit: Option<(i32, Option<i32>)> = None;
    // Whether a poll has run since the exit was seen: only such a poll can tell that the output is drained
    // (the container may write its last bytes and exit between this iteration's poll and its waitpid).
    let mut polled_after_exit = false;
    loop {
        let open = [streams[0].is_some(), streams[1].is_some()];
        // drain whatever is readable; after the exit, only what is already buffered (timeout 0). With both
        // outputs closed, poll briefly: the exit that usually follows is only seen by waitpid.
        let timeout = match (exit.is_some(), open) {
            (true, _) => PollTimeout::ZERO,
            (false, [false, false]) => PollTimeout::from(100u16),
            (false, _) => PollTimeout::from(1000u16),
        };
        let mut ready = [false, false];
        {
            let mut fds = Vec::with_capacity(4);
            for f in streams.iter().flatten() {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
            let outputs = fds.len();
            if exit.is_none() {
                attach.interest(&mut fds);
            }
            if !fds.is_empty() && poll(&mut fds, timeout).is_ok() {
                let revents: Vec<PollFlags> = fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect();
                drop(fds);
                let mut k = 0;
                for (s, is_open) in open.iter().enumerate() {
                    if *is_open {
                        ready[s] = !revents[k].is_empty();
                        k += 1;
                    }
                }
                if exit.is_none() {
                    attach.handle(&revents[outputs..], &mut buf);
                }
            }
        }
        for s in 0..2 {
            let Some(f) = streams[s].as_mut().filter(|_| ready[s]) else { continue };
            let (stream, kind) = if s == 0 { (Stream::Stdout, crate::attach::STDOUT) } else { (Stream::Stderr, crate::attach::STDERR) };
            match f.read(&mut buf) {
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => {}
                // end of file, or EIO from a pty master once the container's side is closed
                Ok(0) | Err(_) => {
                    streams[s] = None;
                    let _ = log.flush_stream(stream);
                }
                Ok(n) => {
                    let _ = log.write(stream, &buf[..n]);
                    attach.broadcast(kind, &buf[..n]);
                }
            }
        }
        let open = [streams[0].is_some(), streams[1].is_some()];
        if exit.is_none() {
            let mut wait = || waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG));
            match reap_round(target, !open[0] && !open[1], &mut wait) {
                Some(Ended::Exited(code, sig)) => exit = Some((code, sig)),
                Some(Ended::NotReapable) => {
                    eprintln!("rkube-monitor: container pid {target} is not reapable by the monitor");
                    let at = rfc3339_nano(std::time::SystemTime::now());
                    let _ = write_atomic(&args.dir.join(EXIT_FILE), format!("{{\"exitCode\":-1,\"signal\":null,\"finishedAt\":\"{at}\"}}").as_bytes());
                    return 1;
                }
                None => {}
            }
        }
        let any_ready = ready[0] || ready[1];
        if let Some((code, sig)) = exit {
            if polled_after_exit && (!any_ready || (!open[0] && !open[1])) {
                let _ = log.flush_stream(Stream::Stdout);
                let _ = log.flush_stream(Stream::Stderr);
                if let Err(e) = write_atomic(&args.dir.join(EXIT_FILE), exit_record(code, sig).as_bytes()) {
                    eprintln!("rkube-monitor: write exit record in {}: {e}", args.dir.display());
                }
                let _ = fs::remove_file(args.dir.join(PID_FILE));
                attach.close(); // last output to attached clients, then the socket goes
                return 0;
            }
            polled_after_exit = true;
        }
    }
}

/// Waits for the create command to connect to the console socket and send the pty master, or to end first.
fn receive_master(listener: &UnixListener, child: &mut std::process::Child) -> std::io::Result<File> {
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(100u16))?;
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            let (sock, _) = listener.accept()?;
            return crate::attach::recv_pty_master(&sock);
        }
        if let Some(status) = child.try_wait()? {
            return Err(std::io::Error::other(format!("it ended ({status}) without connecting")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    /// `waitpid` answering from a script, then ECHILD (no child left) for good.
    fn script(answers: Vec<nix::Result<WaitStatus>>) -> impl FnMut() -> nix::Result<WaitStatus> {
        let mut answers = answers.into_iter();
        move || answers.next().unwrap_or(Err(Errno::ECHILD))
    }

    fn exited(pid: i32, code: i32) -> nix::Result<WaitStatus> {
        Ok(WaitStatus::Exited(Pid::from_raw(pid), code))
    }

    /// Rounds with both outputs closed (the container closed them, or is exiting) until one decides.
    fn rounds_until_decided(target: i32, wait: &mut impl FnMut() -> nix::Result<WaitStatus>) -> Ended {
        for _ in 0..10 {
            if let Some(e) = reap_round(target, true, wait) {
                return e;
            }
        }
        panic!("no decision in 10 rounds");
    }

    #[test]
    fn the_containers_status_is_found_among_other_children() {
        let mut wait = script(vec![exited(7, 1), Ok(WaitStatus::Signaled(Pid::from_raw(8), nix::sys::signal::Signal::SIGKILL, false)), exited(42, 3)]);
        assert_eq!(reap_round(42, false, &mut wait), Some(Ended::Exited(3, None)));
        let mut wait = script(vec![Ok(WaitStatus::Signaled(Pid::from_raw(42), nix::sys::signal::Signal::SIGTERM, false))]);
        assert_eq!(reap_round(42, false, &mut wait), Some(Ended::Exited(143, Some(15))));
    }

    #[test]
    fn a_running_container_is_not_decided() {
        let mut wait = script(vec![Ok(WaitStatus::StillAlive)]);
        assert_eq!(reap_round(42, false, &mut wait), None);
        // outputs open: no child yet is no verdict (the loop goes on polling)
        let mut wait = script(vec![]);
        assert_eq!(reap_round(42, false, &mut wait), None);
    }

    #[test]
    fn no_child_left_with_the_outputs_closed_is_not_reapable() {
        let mut wait = script(vec![exited(7, 0)]);
        assert_eq!(rounds_until_decided(42, &mut wait), Ended::NotReapable);
    }

    /// The race of issue 13: the container closes its outputs (end of file seen), the round's first wait finds
    /// it still alive, and it becomes a zombie just before the round looks whether any child is left. That look
    /// must not take the container's status and drop it (it did: the next round found no child and recorded
    /// exit code -1, kubectl run -i then failed with "terminated (Error)" for a container that exited 0).
    #[test]
    fn an_exit_landing_between_two_waits_is_not_lost() {
        let mut wait = script(vec![Ok(WaitStatus::StillAlive), exited(42, 0)]);
        assert_eq!(rounds_until_decided(42, &mut wait), Ended::Exited(0, None));
    }
}
