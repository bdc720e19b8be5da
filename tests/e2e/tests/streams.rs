//! Streaming subresources on `rkube up` with the real kubectl, old and new: 1.27 speaks SPDY/3.1 for
//! everything; 1.33 uses WebSocket `v5.channel.k8s.io` for exec/cp and SPDY tunnelled in a WebSocket for
//! port-forward. Covers `kubectl exec` (stdout, stderr, exit codes, `-i`, `-it` under a pty), `kubectl cp` both
//! ways, `kubectl port-forward` to a busybox httpd, `kubectl logs -f`, `kubectl attach` (`-i` into a container's
//! stdin), `kubectl run -i --rm` and `run -it --rm` (a container terminal), and the errors kubectl prints for a
//! bad container or pod.
//!
//! Needs root and the binaries: `cargo build -p rkube -p rkube-kubelet -p rkube-runtime -p rkube-cni --bins`.

mod up_support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rkube_testsupport::{poll_until, ChildGuard};
use up_support::Up;

const KUBECTL_OLD: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";
const KUBECTL_NEW: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]
---
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo served-from-pod > /www/index.html && head -c 6000000 /dev/urandom > /www/big && httpd -f -p 8080 -h /www"]
"#;

fn kubectl_bin(path: &str) -> &str {
    assert!(Path::new(path).exists(), "{path} missing: the test needs kubectl 1.27 and 1.33 side by side");
    path
}

fn run(up: &Up, kubectl: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(kubectl_bin(kubectl));
    cmd.args(args).env("KUBECONFIG", up.kubeconfig());
    rkube_testsupport::output_within(&mut cmd, stdin, Duration::from_secs(60), &format!("kubectl {args:?}"))
}

/// Waits for `child` with a deadline (a hung stream must fail the test, not hang it).
fn wait_output(child: std::process::Child, limit: Duration, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{what} did not finish within {limit:?}");
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// How many requests of `what` ("exec", "port-forward") the kubelet logged over `transport`.
fn served_over(up: &Up, what: &str, transport: &str) -> usize {
    let log = std::fs::read_to_string(up.data.path().join("rkube-0.log")).unwrap_or_default();
    let mut plain = String::with_capacity(log.len());
    let mut in_escape = false;
    for c in log.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    plain.lines().filter(|l| l.contains(&format!("transport=\"{transport}\"")) && l.contains(&format!(": {what} "))).count()
}

fn start() -> Up {
    let up = Up::start();
    up.kubectl_ok(&["apply", "-f", "-"], Some(PODS));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/shell", "pod/web", "--timeout=90s"], None);
    up
}

fn check_exec(up: &Up, kubectl: &str) {
    let v = kubectl.rsplit('.').take(2).collect::<Vec<_>>().join(".");
    // stdout and stderr apart, exit code 0
    let out = run(up, kubectl, &["exec", "shell", "--", "sh", "-c", "echo out-line; echo err-line >&2"], None);
    assert!(out.status.success(), "{v}: exec: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out-line\n", "{v}: stdout");
    assert!(text(&out.stderr).contains("err-line"), "{v}: stderr {:?}", text(&out.stderr));
    // a non-zero exit reaches kubectl as its own exit code
    let out = run(up, kubectl, &["exec", "shell", "--", "sh", "-c", "exit 7"], None);
    assert_eq!(out.status.code(), Some(7), "{v}: exit code; stderr {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("command terminated with exit code 7"), "{v}: {}", text(&out.stderr));
    // stdin, and its end
    let data: Vec<u8> = (0..200_000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
    let out = run(up, kubectl, &["exec", "-i", "shell", "--", "sh", "-c", "cat | md5sum"], Some(&data));
    assert!(out.status.success(), "{v}: exec -i: {}", text(&out.stderr));
    let local = Command::new("md5sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("md5sum");
    let mut local = local;
    local.stdin.take().expect("stdin").write_all(&data).expect("write");
    let sum = text(&local.wait_with_output().expect("md5sum").stdout);
    assert_eq!(text(&out.stdout).split_whitespace().next(), sum.split_whitespace().next(), "{v}: stdin arrived whole");
    // errors kubectl prints
    let out = run(up, kubectl, &["exec", "shell", "-c", "nope", "--", "true"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("container nope is not valid for pod shell"), "{v}: {}", text(&out.stderr));
    let out = run(up, kubectl, &["exec", "missing-pod", "--", "true"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("pods \"missing-pod\" not found"), "{v}: {}", text(&out.stderr));
}

#[test]
fn exec_stdout_stderr_exit_codes_and_stdin_with_kubectl_127_and_133() {
    let up = start();
    check_exec(&up, KUBECTL_OLD);
    assert_eq!(served_over(&up, "exec", "websocket"), 0, "kubectl 1.27 speaks SPDY only");
    assert!(served_over(&up, "exec", "spdy") >= 3);
    check_exec(&up, KUBECTL_NEW);
    assert!(served_over(&up, "exec", "websocket") >= 3, "kubectl 1.33 was served over WebSocket, not a fallback");
}

fn check_tty(up: &Up, kubectl: &str) {
    // `script` gives kubectl a terminal, so `-t` is honoured; the command inside sees a pty of its own, sized
    // like kubectl's (the resize stream / channel 4, applied with TIOCSWINSZ).
    let cmd = format!("stty rows 41 cols 101; {kubectl} exec -it shell -- sh -c 'tty; stty size; exit 3'");
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("KUBECONFIG", up.kubeconfig())
        .env("COLUMNS", "100")
        .env("LINES", "40")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let stdin = child.stdin.take();
    let out = wait_output(child, Duration::from_secs(60), "kubectl exec -it");
    drop(stdin);
    let s = text(&out.stdout);
    assert!(s.contains("/dev/pts/"), "{kubectl}: tty inside the container: {s:?} / {}", text(&out.stderr));
    assert!(s.contains("41 101"), "{kubectl}: the terminal size reached the container: {s:?}");
    assert_eq!(out.status.code(), Some(3), "{kubectl}: exit code through -it: {s:?}");
}

#[test]
fn exec_with_a_terminal_with_kubectl_127_and_133() {
    let up = start();
    check_tty(&up, KUBECTL_OLD);
    check_tty(&up, KUBECTL_NEW);
}

fn check_cp(up: &Up, kubectl: &str, dir: &Path) {
    let v = kubectl.rsplit('.').next().unwrap_or_default();
    let local = dir.join(format!("payload-{v}.bin"));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&local, &data).expect("write payload");
    let remote = format!("shell:/tmp/payload-{v}.bin");
    let out = run(up, kubectl, &["cp", local.to_str().expect("utf8"), &remote], None);
    assert!(out.status.success(), "{kubectl} cp to pod: {}", text(&out.stderr));
    let size = run(up, kubectl, &["exec", "shell", "--", "wc", "-c", &format!("/tmp/payload-{v}.bin")], None);
    assert_eq!(text(&size.stdout).split_whitespace().next(), Some("300000"), "{kubectl}: size in the pod");
    let back = dir.join(format!("back-{v}.bin"));
    let out = run(up, kubectl, &["cp", &remote, back.to_str().expect("utf8")], None);
    assert!(out.status.success(), "{kubectl} cp from pod: {}", text(&out.stderr));
    assert_eq!(std::fs::read(&back).expect("copied back"), data, "{kubectl}: contents survive the round trip");
}

#[test]
fn cp_to_and_from_a_pod_with_kubectl_127_and_133() {
    let up = start();
    let dir = tempfile::tempdir().expect("tmp");
    check_cp(&up, KUBECTL_OLD, dir.path());
    check_cp(&up, KUBECTL_NEW, dir.path());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn check_port_forward(up: &Up, kubectl: &str) {
    let port = free_port();
    let mut child = Command::new(kubectl_bin(kubectl))
        .args(["port-forward", "pod/web", &format!("{port}:8080"), "--address", "127.0.0.1"])
        .env("KUBECONFIG", up.kubeconfig())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("port-forward");
    let stdout = child.stdout.take().expect("stdout");
    let guard = ChildGuard::new(child, "kubectl stream");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(first.contains(&format!("Forwarding from 127.0.0.1:{port}")), "{kubectl}: {first}");
    // several MiB through one connection: more than any flow-control window
    let big = Command::new("curl")
        .args(["-sS", "--max-time", "60", &format!("http://127.0.0.1:{port}/big")])
        .output()
        .expect("curl big");
    assert_eq!(big.stdout.len(), 6_000_000, "{kubectl}: whole file: {}", text(&big.stderr));
    let local = Command::new("md5sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("md5sum");
    let mut local = local;
    local.stdin.take().expect("stdin").write_all(&big.stdout).expect("write");
    let local_sum = text(&local.wait_with_output().expect("md5sum").stdout);
    let pod_sum = run(up, kubectl, &["exec", "web", "--", "md5sum", "/www/big"], None);
    assert_eq!(
        local_sum.split_whitespace().next(),
        text(&pod_sum.stdout).split_whitespace().next(),
        "{kubectl}: same bytes as in the pod"
    );
    // concurrent connections over one session
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                Command::new("curl").args(["-sS", "--max-time", "20", &format!("http://127.0.0.1:{port}/index.html")]).output().expect("curl")
            })
        })
        .collect();
    for h in handles {
        assert_eq!(text(&h.join().expect("join").stdout), "served-from-pod\n", "{kubectl}: concurrent connection");
    }
    for round in 0..3 {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", &format!("http://127.0.0.1:{port}/index.html")])
            .output()
            .expect("curl");
        assert_eq!(text(&out.stdout), "served-from-pod\n", "{kubectl}: round {round}: {}", text(&out.stderr));
    }
    drop(guard);
}

#[test]
fn port_forward_to_busybox_httpd_with_kubectl_127_and_133() {
    let up = start();
    check_port_forward(&up, KUBECTL_OLD);
    assert_eq!(served_over(&up, "port-forward", "spdy"), 1);
    check_port_forward(&up, KUBECTL_NEW);
    assert_eq!(served_over(&up, "port-forward", "websocket"), 1, "kubectl 1.33 tunnels SPDY in a WebSocket");
}

/// Starts a long-running kubectl (logs -f, attach) and hands its stdout over line by line as it arrives.
fn stream_lines(up: &Up, kubectl: &str, args: &[&str]) -> (ChildGuard, std::sync::mpsc::Receiver<String>) {
    let (guard, rx, _) = spawn_lines(up, kubectl, args, false);
    (guard, rx)
}

/// Starts kubectl with `args` and forwards its stdout line by line; with `stdin`, also hands back a pipe into
/// kubectl's stdin (for `attach -i`).
fn spawn_lines(
    up: &Up,
    kubectl: &str,
    args: &[&str],
    stdin: bool,
) -> (ChildGuard, std::sync::mpsc::Receiver<String>, Option<std::process::ChildStdin>) {
    let mut child = Command::new(kubectl_bin(kubectl))
        .args(args)
        .env("KUBECONFIG", up.kubeconfig())
        .stdin(if stdin { Stdio::piped() } else { Stdio::inherit() })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    let input = child.stdin.take();
    let stdout = child.stdout.take().expect("stdout");
    let guard = ChildGuard::new(child, "kubectl stream");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (guard, rx, input)
}

#[test]
fn logs_follow_sees_lines_written_after_it_started() {
    let up = start();
    for kubectl in [KUBECTL_OLD, KUBECTL_NEW] {
        let (guard, rx) = stream_lines(&up, kubectl, &["logs", "-f", "shell", "--tail=1"]);
        let first = rx.recv_timeout(Duration::from_secs(20)).expect("first line");
        let n: u64 = first.trim_start_matches("tick ").parse().expect("tick number");
        // The pod prints one line a second: a line numbered higher was written after -f started.
        let later = poll_until("a later line through logs -f", Duration::from_secs(20), || {
            rx.recv_timeout(Duration::from_millis(200)).ok().filter(|l| l.trim_start_matches("tick ").parse::<u64>().map(|m| m > n).unwrap_or(false))
        });
        assert!(later.starts_with("tick "), "{kubectl}: {later}");
        drop(guard);
    }
}

/// Processes named `name` in the shell pod, seen from inside it.
fn count_in_pod(up: &Up, name: &str) -> usize {
    let out = run(up, KUBECTL_OLD, &["exec", "shell", "--", "ps", "-o", "comm"], None);
    text(&out.stdout).lines().filter(|l| l.trim() == name).count()
}

#[test]
fn a_killed_kubectl_ends_its_exec_and_errors_are_reported() {
    let up = start();
    for kubectl in [KUBECTL_OLD, KUBECTL_NEW] {
        // `yes` writes forever; once kubectl is gone the kubelet must stop it rather than leave it blocked.
        let child = Command::new(kubectl_bin(kubectl))
            .args(["exec", "shell", "--", "yes"])
            .env("KUBECONFIG", up.kubeconfig())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("exec yes");
        let mut guard = ChildGuard::new(child, "kubectl exec yes");
        poll_until("yes running in the pod", Duration::from_secs(20), || (count_in_pod(&up, "yes") == 1).then_some(()));
        let _ = Command::new("kill").args(["-9", &guard.pid().to_string()]).status();
        poll_until("kubectl gone", Duration::from_secs(10), || (!guard.is_running()).then_some(()));
        poll_until(&format!("{kubectl}: exec'd yes ended after its client died"), Duration::from_secs(20), || {
            (count_in_pod(&up, "yes") == 0).then_some(())
        });
    }
    // port-forward to a closed port: kubectl reports the kubelet's error for that connection
    for kubectl in [KUBECTL_OLD, KUBECTL_NEW] {
        let port = free_port();
        let mut child = Command::new(kubectl_bin(kubectl))
            .args(["port-forward", "pod/web", &format!("{port}:9999"), "--address", "127.0.0.1"])
            .env("KUBECONFIG", up.kubeconfig())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("port-forward");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let guard = ChildGuard::new(child, "kubectl port-forward");
        // Keep reading stdout: kubectl writes "Handling connection" there and dies of a closed pipe.
        let mut out_lines = BufReader::new(stdout).lines();
        let first = out_lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(first.contains("Forwarding from"), "{kubectl}: {first}");
        std::thread::spawn(move || out_lines.map_while(Result::ok).for_each(drop));
        let _ = Command::new("curl").args(["-sS", "--max-time", "5", &format!("http://127.0.0.1:{port}/")]).output();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let err = loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.contains("error forwarding port 9999") => break l,
                Ok(l) => seen.push(l),
                Err(_) if std::time::Instant::now() > deadline => panic!("{kubectl}: no port-forward error line in {seen:?}"),
                Err(_) => {}
            }
        };
        assert!(err.contains("connect"), "{kubectl}: {err}");
        drop(guard);
    }
    // nodes/proxy reaches the kubelet's own API
    let node = up.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let out = run(&up, KUBECTL_NEW, &["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/healthz")], None);
    assert_eq!(text(&out.stdout), "ok", "{}", text(&out.stderr));
    let out = run(&up, KUBECTL_NEW, &["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/containerLogs/default/shell/main?tailLines=1")], None);
    assert!(text(&out.stdout).starts_with("tick "), "{}", text(&out.stdout));
    // the kubelet API itself: HTTPS only, and only for clients it can name and a SubjectAccessReview allows
    // (kubelet_authz.rs tries the rest)
    let url = format!("https://{}:10250/healthz", up.node_ip);
    let pki = up.data.path().join("pki");
    let curl = |extra: &[&str], url: &str| {
        let out = Command::new("curl").args(["-sS", "--max-time", "10"]).args(extra).arg(url).output().expect("curl");
        (out.status.success(), text(&out.stdout))
    };
    let ca = pki.join("ca.crt").display().to_string();
    let (cert, key) = (pki.join("admin.crt").display().to_string(), pki.join("admin.key").display().to_string());
    assert_eq!(curl(&["--cacert", &ca, "--cert", &cert, "--key", &key], &url), (true, "ok".to_string()), "with a CA-signed client certificate");
    assert_eq!(curl(&["--cacert", &ca], &url), (true, "Unauthorized".to_string()), "no client certificate: upstream's 401");
    let (_, plain) = curl(&[], &format!("http://{}:10250/healthz", up.node_ip));
    assert_ne!(plain, "ok", "no plain HTTP");
}

#[test]
fn attach_streams_live_output_with_kubectl_127_and_133() {
    let up = start();
    for kubectl in [KUBECTL_OLD, KUBECTL_NEW] {
        let (guard, rx) = stream_lines(&up, kubectl, &["attach", "shell", "-c", "main"]);
        let a = rx.recv_timeout(Duration::from_secs(20)).expect("a line through attach");
        // the pod prints a line a second; the deadline only stops a dead stream from hanging the test
        let b = rx.recv_timeout(Duration::from_secs(30)).expect("the next line through attach");
        let num = |l: &str| l.trim_start_matches("tick ").parse::<u64>().unwrap_or_else(|_| panic!("{kubectl}: not a tick line: {l:?}"));
        assert_eq!(num(&b), num(&a) + 1, "{kubectl}: consecutive live lines");
        drop(guard);
    }
    // -i needs a container created with stdin: true: said plainly
    let out = run(&up, KUBECTL_NEW, &["attach", "-i", "shell", "-c", "main"], Some(b""));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("does not set stdin: true"), "{}", text(&out.stderr));
}

/// `stdin: true`: `kubectl attach -i` types into the container's stdin (through the monitor's socket), and
/// without stdinOnce the stdin stays open for the next attach; `kubectl run -i --rm` (stdinOnce) feeds a
/// container, which reads end-of-file when kubectl's input ends, completes, and is deleted.
#[test]
fn attach_and_run_feed_a_containers_stdin_with_kubectl_127_and_133() {
    let up = start();
    let reader = r#"
apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:latest
    imagePullPolicy: Never
    stdin: true
    command: ["sh", "-c", "while read l; do echo \"got:$l\"; done; echo stdin-closed"]
"#;
    up.kubectl_ok(&["apply", "-f", "-"], Some(reader));
    up.kubectl_ok(&["wait", "--for=condition=Ready", "pod/reader", "--timeout=60s"], None);
    for (i, kubectl) in [KUBECTL_OLD, KUBECTL_NEW].into_iter().enumerate() {
        let (guard, rx, input) = spawn_lines(&up, kubectl, &["attach", "-i", "reader", "-c", "main"], true);
        let mut input = input.expect("a pipe into kubectl's stdin");
        // kubectl sends stdin once its streams are up; a line typed before that waits in the pipe
        let word = format!("hello-{i}");
        input.write_all(format!("{word}\n").as_bytes()).expect("type a line");
        input.flush().expect("flush");
        let echoed = poll_until(&format!("{kubectl}: the container echoes what was typed"), Duration::from_secs(20), || {
            rx.recv_timeout(Duration::from_millis(200)).ok().filter(|l| l.starts_with("got:"))
        });
        assert_eq!(echoed, format!("got:{word}"), "{kubectl}");
        drop(guard); // ends kubectl; without stdinOnce the container's stdin stays open
    }
    let logs = up.kubectl(&["logs", "reader"]);
    assert_eq!(logs.lines().collect::<Vec<_>>(), vec!["got:hello-0", "got:hello-1"], "both sessions reached one stdin");

    for (i, kubectl) in [KUBECTL_OLD, KUBECTL_NEW].into_iter().enumerate() {
        let name = format!("run-stdin-{i}");
        let out = run(
            &up,
            kubectl,
            &["run", &name, "-i", "--rm", "--restart=Never", "--image=busybox:latest", "--image-pull-policy=Never", "--", "sh", "-c", "read l; echo \"run-got:$l\"; cat; echo done"],
            Some(b"abc\nmore\n"),
        );
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{kubectl} run -i: {stdout} {}", text(&out.stderr));
        assert!(stdout.contains("run-got:abc"), "{kubectl}: {stdout}");
        assert!(stdout.contains("more\ndone"), "{kubectl}: cat read to end-of-file: {stdout}");
        let left = up.kubectl(&["get", "pods", "--ignore-not-found", "-o", "name", &name]);
        assert!(left.trim().is_empty() || left.contains("not found"), "{kubectl}: --rm deleted the pod: {left}");
    }
}

/// `kubectl run -it --rm` (stdin + tty): kubectl under `script` has a terminal, the container's shell gets a pty
/// of its own (the runtime's console socket hands the master to the monitor), sized like kubectl's through
/// the resize stream, and what is typed runs in it; the pod is deleted afterwards.
#[test]
fn run_with_a_terminal_with_kubectl_127_and_133() {
    let up = start();
    for (i, kubectl) in [KUBECTL_OLD, KUBECTL_NEW].into_iter().enumerate() {
        let name = format!("run-tty-{i}");
        let cmd = format!(
            "stty rows 33 cols 77; {} run {name} -it --rm --restart=Never --image=busybox:latest --image-pull-policy=Never -- sh",
            kubectl_bin(kubectl)
        );
        let mut child = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("KUBECONFIG", up.kubeconfig())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script");
        let mut stdin = child.stdin.take().expect("stdin");
        // typed ahead: it waits in the terminal until kubectl attaches. The resize may reach the pty just after
        // the line does, so the shell polls for it (5 s at most) before reporting.
        stdin
            .write_all(b"i=0; while [ \"$(stty size)\" = '0 0' ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; echo \"T=$(tty) S=$(stty size)\"; exit 4\n")
            .expect("type");
        let out = wait_output(child, Duration::from_secs(90), &format!("{kubectl} run -it"));
        drop(stdin);
        let s = text(&out.stdout);
        assert!(s.contains("T=/dev/pts/"), "{kubectl}: a terminal inside the container: {s:?} / {}", text(&out.stderr));
        assert!(s.contains("S=33 77"), "{kubectl}: kubectl's terminal size reached it: {s:?}");
        let left = up.kubectl(&["get", "pods", "--ignore-not-found", "-o", "name", &name]);
        assert!(left.trim().is_empty(), "{kubectl}: --rm deleted the pod: {left}");
    }
}
