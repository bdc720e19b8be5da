//! The per-container monitor as a real process: it detaches, logs in CRI format, records exit codes, survives
//! the process that started it, and stays small. Needs no root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rkube_kubelet::container_monitor::{self as monitor, Args};
use rkube_testsupport::poll_until;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rkube-monitor"))
}

/// Kills, by pid, the monitor and container processes a test started, pass or fail.
struct Pids(Vec<i32>);

impl Drop for Pids {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn args(dir: &Path, command: &[&str]) -> Args {
    Args {
        dir: dir.join("state"),
        log: dir.join("0.log"),
        log_max_bytes: 1 << 20,
        log_max_files: 2,
        pid_file: None,
        stdin: false,
        stdin_once: false,
        console_socket: None,
        command: command.iter().map(|s| s.into()).collect(),
    }
}

fn log_records(path: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut p = l.splitn(4, ' ');
            let ts = p.next().unwrap_or("");
            assert!(ts.len() == 30 && ts.ends_with('Z'), "CRI timestamp in {l:?}");
            (p.next().unwrap_or("").into(), p.next().unwrap_or("").into(), p.next().unwrap_or("").into())
        })
        .collect()
}

#[test]
fn logs_both_streams_and_records_exit_code() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = args(tmp.path(), &["/bin/sh", "-c", "echo hello; echo oops >&2; printf tail; exit 3"]);
    let pid = monitor::spawn(&bin(), &a).expect("spawn");
    let _guard = Pids(vec![pid]);
    assert!(pid > 0);
    let rec = poll_until("exit record", Duration::from_secs(10), || monitor::read_exit(&a.dir));
    assert_eq!(rec.exit_code, 3);
    assert_eq!(rec.signal, None);
    let mut recs = log_records(&a.log);
    recs.sort();
    assert_eq!(
        recs,
        vec![
            ("stderr".into(), "F".into(), "oops".into()),
            ("stdout".into(), "F".into(), "hello".into()),
            ("stdout".into(), "F".into(), "tail".into()),
        ]
    );
    // it records the exit first, then removes its pid file and goes
    poll_until("monitor exits after recording", Duration::from_secs(5), || monitor::alive_monitor(&a.dir).is_none().then_some(()));
}

#[test]
fn killed_container_records_signal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = args(tmp.path(), &["/bin/sleep", "300"]);
    let pid = monitor::spawn(&bin(), &a).expect("spawn");
    let mon = monitor::alive_monitor(&a.dir).expect("monitor running");
    let _guard = Pids(vec![pid, mon]);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).expect("kill");
    let rec = poll_until("exit record", Duration::from_secs(10), || monitor::read_exit(&a.dir));
    assert_eq!((rec.exit_code, rec.signal), (137, Some(9)));
}

#[test]
fn create_style_command_hands_over_the_container_pid() {
    // like `runtime create --pid-file`: the command leaves a process behind and exits; the monitor (subreaper)
    // adopts it and records its exit, and the container's output still reaches the log.
    let tmp = tempfile::tempdir().expect("tempdir");
    let pidfile = tmp.path().join("container.pidfile");
    let script = format!(
        "(sleep 0.3; echo from-container; exit 7) & echo $! > {}; echo created",
        pidfile.display()
    );
    let mut a = args(tmp.path(), &["/bin/sh", "-c", &script]);
    a.pid_file = Some(pidfile.clone());
    let pid = monitor::spawn(&bin(), &a).expect("spawn");
    let _guard = Pids(vec![pid]);
    assert_eq!(std::fs::read_to_string(&pidfile).expect("pidfile").trim(), pid.to_string());
    let rec = poll_until("exit record", Duration::from_secs(10), || monitor::read_exit(&a.dir));
    assert_eq!(rec.exit_code, 7);
    let texts: Vec<String> = log_records(&a.log).into_iter().map(|r| r.2).collect();
    assert!(texts.contains(&"from-container".to_string()), "{texts:?}");
}

#[test]
fn failed_create_is_reported_with_its_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut a = args(tmp.path(), &["/bin/sh", "-c", "echo 'no such image layer' >&2; exit 1"]);
    a.pid_file = Some(tmp.path().join("never"));
    let err = monitor::spawn(&bin(), &a).expect_err("create fails");
    assert!(err.to_string().contains("no such image layer"), "{err}");
}

#[test]
fn survives_its_launcher_and_stays_small() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = args(tmp.path(), &["/bin/sh", "-c", "while :; do echo tick; sleep 0.05; done"]);
    // launch through a shell that exits at once, standing in for a kubelet that dies
    let argv: Vec<String> = a.to_argv().iter().map(|s| format!("'{}'", s.to_string_lossy())).collect();
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{} {} >/dev/null", bin().display(), argv.join(" ")))
        .status()
        .expect("launch");
    assert!(status.success());
    let mon = poll_until("monitor pid", Duration::from_secs(5), || monitor::alive_monitor(&a.dir));
    let pid = poll_until("container pid", Duration::from_secs(5), || monitor::container_pid(&a.dir));
    let _guard = Pids(vec![pid, mon]);
    poll_until("ticks logged", Duration::from_secs(5), || (log_records(&a.log).len() >= 5).then_some(()));
    // its own session, not the launcher's
    let stat = std::fs::read_to_string(format!("/proc/{mon}/stat")).expect("stat");
    let fields: Vec<&str> = stat.rsplit_once(") ").expect("stat").1.split(' ').collect();
    assert_eq!(fields[3], mon.to_string(), "monitor leads its own session");
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{mon}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS");
    eprintln!("rkube-monitor VmRSS: {rss_kib} KiB");
    // dynamically linked (libc.so and ld.so pages count): ~1.4 MiB in release; static builds stay under 1 MiB
    assert!(rss_kib < 3072, "monitor RSS {rss_kib} KiB");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM).expect("term");
    let rec = poll_until("exit record", Duration::from_secs(10), || monitor::read_exit(&a.dir));
    assert_eq!((rec.exit_code, rec.signal), (143, Some(15)));
}

/// Reads frames off the attach socket, keeping a partial frame for the next read.
struct FrameReader {
    sock: std::os::unix::net::UnixStream,
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next frames, or an empty list once the monitor has closed the socket.
    fn next(&mut self) -> Vec<(u8, Vec<u8>)> {
        use std::io::Read;
        self.sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        loop {
            let frames = rkube_monitor::attach::decode(&mut self.buf);
            if !frames.is_empty() {
                return frames.into_iter().map(|f| (f.kind, f.payload)).collect();
            }
            let mut chunk = [0u8; 4096];
            let n = self.sock.read(&mut chunk).expect("read attach socket");
            if n == 0 {
                return Vec::new();
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// `stdin: true, stdinOnce: true`: a client on the attach socket gets the container's output live (partial
/// lines included) and types into its stdin; when that client's input ends the container reads
/// end-of-file (so `kubectl run -i` ends), and the socket goes with the container.
#[test]
fn attach_socket_streams_output_and_feeds_stdin_once() {
    use rkube_monitor::attach::{encode, STDIN, STDIN_CLOSE, STDOUT};
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut a = args(tmp.path(), &["/bin/sh", "-c", "while read l; do printf 'got:%s|' \"$l\"; done; echo eof"]);
    a.stdin = true;
    a.stdin_once = true;
    let pid = monitor::spawn(&bin(), &a).expect("spawn");
    let _guard = Pids(vec![pid]);
    let socket = a.dir.join(monitor::ATTACH_SOCKET);
    let mut c = std::os::unix::net::UnixStream::connect(&socket).expect("connect to the attach socket");
    let mut frames = Vec::new();
    encode(STDIN, b"one\ntwo\n", &mut frames);
    c.write_all(&frames).expect("write");
    let mut reader = FrameReader { sock: c.try_clone().expect("clone socket"), buf: Vec::new() };
    let diag = |what: &str| {
        format!(
            "{what}: monitor.log {:?}, exit {:?}, log {:?}",
            std::fs::read_to_string(a.dir.join("monitor.log")).unwrap_or_default(),
            std::fs::read_to_string(a.dir.join(monitor::EXIT_FILE)).ok(),
            std::fs::read_to_string(&a.log).unwrap_or_default()
        )
    };
    let mut out = Vec::new();
    // no newline after either answer: only live output (not the line-based log) can show them now
    while !String::from_utf8_lossy(&out).contains("got:two|") {
        let frames = reader.next();
        assert!(!frames.is_empty(), "{}", diag("the socket closed before the answers"));
        for (kind, data) in frames {
            assert_eq!(kind, STDOUT);
            out.extend(data);
        }
    }
    let mut close = Vec::new();
    encode(STDIN_CLOSE, &[], &mut close);
    c.write_all(&close).expect("close stdin");
    while !String::from_utf8_lossy(&out).contains("eof") {
        let frames = reader.next();
        assert!(!frames.is_empty(), "{}", diag("the socket closed before eof"));
        out.extend(frames.into_iter().flat_map(|(_, d)| d));
    }
    let rec = poll_until("exit after stdin closed", Duration::from_secs(10), || monitor::read_exit(&a.dir));
    assert_eq!(rec.exit_code, 0);
    let text = String::from_utf8_lossy(&out).to_string();
    assert_eq!(text, "got:one|got:two|eof\n");
    let lines: Vec<String> = log_records(&a.log).into_iter().map(|(_, _, l)| l).collect();
    assert_eq!(lines, vec!["got:one|got:two|eof"], "the log has the same, as one line");
    poll_until("socket removed", Duration::from_secs(5), || (!socket.exists()).then_some(()));
}

/// Without `stdin`, the container's stdin is /dev/null.
#[test]
fn no_stdin_means_end_of_file_at_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = args(tmp.path(), &["/bin/sh", "-c", "read l; echo \"read:$?\""]);
    let pid = monitor::spawn(&bin(), &a).expect("spawn");
    let _guard = Pids(vec![pid]);
    poll_until("exit", Duration::from_secs(10), || monitor::read_exit(&a.dir));
    assert_eq!(log_records(&a.log).into_iter().map(|(_, _, l)| l).collect::<Vec<_>>(), vec!["read:1"]);
}
