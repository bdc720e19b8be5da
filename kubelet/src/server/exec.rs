//! Running a command in a container for `kubectl exec` / `cp`, independent of the transport (SPDY or
//! WebSocket): finds the container from the pod records the workers keep, runs `rkube-runtime exec` with pipes
//! (or, with a tty, `--tty --console-socket` and the pty master the runtime sends back), pumps stdio through
//! channels and reports the exit as the Status kubectl expects on the error stream.
//!
//! Must not: touch the pod's lifecycle (the worker owns it) or speak a wire protocol.

use std::path::PathBuf;
use std::process::Stdio;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::pod::worker::{ContainerRecord, SandboxRecord};

/// Where the kubelet keeps what exec needs.
#[derive(Clone, Debug)]
pub struct ExecEnv {
    /// `<kubelet root>/pods`: one directory per pod uid with `pod.json`, `sandbox.json`, `containers/<n>/meta.json`.
    pub pods_dir: PathBuf,
    /// The runtime binary (`rkube-runtime`).
    pub runtime_bin: PathBuf,
    /// The runtime's `--root`, where it keeps container state.
    pub runtime_root: PathBuf,
    /// Console sockets for `exec -t` are made here.
    pub socket_dir: PathBuf,
}

/// A running container of a pod on this node.
#[derive(Clone, Debug)]
pub struct Target {
    /// The runtime's id of the container (or of the sandbox).
    pub container_id: String,
    /// The container's CRI log file (None for a pod's sandbox).
    pub log_path: Option<PathBuf>,
    /// The container's OCI bundle (its `config.json` holds the process exec starts from).
    pub bundle: Option<PathBuf>,
    /// The pod's network namespace (None for hostNetwork pods).
    pub netns: Option<PathBuf>,
    /// The pod's UID.
    pub pod_uid: String,
    /// The monitor's attach socket (None for a pod's sandbox).
    pub attach_socket: Option<PathBuf>,
    /// The spec's `stdin` and `tty`: what attach may use.
    pub stdin: bool,
    /// The spec's `tty`.
    pub tty: bool,
}

/// Why a pod or container cannot be reached; `code` is the HTTP status to answer with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LookupError {
    /// 404 when the pod is not on this node, 400 when the container is unknown, not started or exited.
    pub code: u16,
    /// What kubectl prints, upstream's wording.
    pub message: String,
}

fn pod_dir_of(env: &ExecEnv, ns: &str, pod: &str) -> Option<(PathBuf, Value)> {
    for e in std::fs::read_dir(&env.pods_dir).ok()?.flatten() {
        let Some(v) = std::fs::read(e.path().join("pod.json")).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()) else {
            continue;
        };
        if v.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default") == ns
            && v.pointer("/metadata/name").and_then(Value::as_str) == Some(pod)
        {
            return Some((e.path(), v));
        }
    }
    None
}

/// The sandbox of pod `ns/pod` (for port-forward).
pub fn find_pod(env: &ExecEnv, ns: &str, pod: &str) -> Result<Target, LookupError> {
    let (dir, v) = pod_dir_of(env, ns, pod)
        .ok_or_else(|| LookupError { code: 404, message: format!("pod {ns}/{pod} is not running on this node") })?;
    let sandbox: SandboxRecord = std::fs::read(dir.join("sandbox.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| LookupError { code: 400, message: format!("pod {ns}/{pod} has no running sandbox yet") })?;
    Ok(Target {
        container_id: sandbox.id.clone(),
        log_path: None,
        bundle: None,
        attach_socket: None,
        stdin: false,
        tty: false,
        netns: if sandbox.host_network { None } else { sandbox.netns.map(PathBuf::from) },
        pod_uid: v.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_string(),
    })
}

/// The running container `container` of pod `ns/pod`.
pub fn find_container(env: &ExecEnv, ns: &str, pod: &str, container: &str) -> Result<Target, LookupError> {
    let (dir, v) = pod_dir_of(env, ns, pod)
        .ok_or_else(|| LookupError { code: 404, message: format!("pod {ns}/{pod} is not running on this node") })?;
    let Some(spec) = v
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("name").and_then(Value::as_str) == Some(container)))
    else {
        return Err(LookupError { code: 400, message: format!("container {container} is not valid for pod {pod}") });
    };
    let flag = |k: &str| spec.get(k).and_then(Value::as_bool).unwrap_or(false);
    let (stdin, tty) = (flag("stdin"), flag("tty"));
    let rec: ContainerRecord = std::fs::read(dir.join("containers").join(container).join("meta.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| LookupError { code: 400, message: format!("container {container} in pod {pod} is not running: not started yet") })?;
    if rec.exit.is_some() {
        return Err(LookupError { code: 400, message: format!("container {container} in pod {pod} is not running: it has exited") });
    }
    let sandbox: Option<SandboxRecord> = std::fs::read(dir.join("sandbox.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    Ok(Target {
        log_path: Some(rec.log_path.clone()),
        bundle: Some(dir.join("containers").join(container).join("bundle")),
        attach_socket: Some(dir.join("containers").join(container).join("monitor").join(rkube_monitor::ATTACH_SOCKET)),
        stdin,
        tty,
        container_id: rec.id,
        netns: sandbox.and_then(|s| if s.host_network { None } else { s.netns.map(PathBuf::from) }),
        pod_uid: v.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_string(),
    })
}

/// Terminal size from a resize message (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub struct TermSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The stdio of one exec, as channels: the transport feeds `stdin` (dropping the sender is EOF) and
/// `resize`, and drains `stdout` / `stderr` (which end when the process's output does).
#[derive(Default)]
pub struct ExecIo {
    /// The client's input; None: the process gets no stdin.
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    /// The process's stdout (with a tty, the terminal's whole output); None: dropped.
    pub stdout: Option<mpsc::Sender<Bytes>>,
    /// The process's stderr (unused with a tty); None: [`run`] drops it, [`attach`] sends it to `stdout`.
    pub stderr: Option<mpsc::Sender<Bytes>>,
    /// Terminal resizes, applied to the pty (tty only).
    pub resize: Option<mpsc::Receiver<TermSize>>,
    /// Fires when the client is gone: the runtime's exec is killed and the pipes closed, so the command gets
    /// EOF / SIGPIPE instead of blocking on output nobody reads.
    pub cancel: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// Waits for `child`, killing it if `cancel` fires first.
async fn wait_or_cancel(
    child: &mut tokio::process::Child,
    cancel: Option<tokio::sync::oneshot::Receiver<()>>,
) -> std::io::Result<std::process::ExitStatus> {
    let Some(cancel) = cancel else { return child.wait().await };
    tokio::select! {
        st = child.wait() => st,
        Ok(()) = cancel => {
            tracing::info!(pid = ?child.id(), "exec: client went away, killing the exec");
            let _ = child.kill().await;
            child.wait().await
        }
    }
}

/// The Status kubectl reads from the error stream: Success, or Failure with the exit code
/// ("command terminated with exit code N"), or a plain failure message.
pub fn exit_status(result: &Result<i32, String>, command: &[String]) -> Value {
    match result {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(message) => json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500}),
    }
}

async fn pump_out<R: tokio::io::AsyncRead + Unpin>(mut r: R, tx: mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    break;
                }
            }
        }
    }
}

async fn pump_in<W: tokio::io::AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(chunk) = rx.recv().await {
        if w.write_all(&chunk).await.is_err() || w.flush().await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// Runs `command` in `target`'s container; returns its exit code once it exited and its output was drained.
pub async fn run(env: &ExecEnv, target: &Target, command: &[String], tty: bool, io: ExecIo) -> Result<i32, String> {
    if command.is_empty() {
        return Err("you must specify at least one command for the container".into());
    }
    if tty {
        return run_tty(env, target, command, io).await;
    }
    let mut cmd = tokio::process::Command::new(&env.runtime_bin);
    cmd.arg("--root").arg(&env.runtime_root).arg("exec").arg(&target.container_id).arg("--").args(command);
    cmd.stdin(if io.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(if io.stdout.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stderr(Stdio::piped());
    cmd.kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("run {} exec in container {}: {e}", env.runtime_bin.display(), target.container_id))?;
    let mut tasks = Vec::new();
    if let (Some(w), Some(rx)) = (child.stdin.take(), io.stdin) {
        // stdin is not waited for: the process may exit without reading it.
        tokio::spawn(pump_in(w, rx));
    }
    if let (Some(r), Some(tx)) = (child.stdout.take(), io.stdout) {
        tasks.push(tokio::spawn(pump_out(r, tx)));
    }
    // stderr carries the command's stderr and the runtime's own errors; without a stderr stream it is dropped.
    let stderr = child.stderr.take();
    let stderr_tx = io.stderr;
    let err_task = tokio::spawn(async move {
        let mut collected = Vec::new();
        if let Some(mut r) = stderr {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => match &stderr_tx {
                        Some(tx) => {
                            let _ = tx.send(Bytes::copy_from_slice(&buf[..n])).await;
                        }
                        None if collected.len() < 4096 => collected.extend_from_slice(&buf[..n]),
                        None => {}
                    },
                }
            }
        }
        collected
    });
    let status = wait_or_cancel(&mut child, io.cancel).await.map_err(|e| format!("wait for exec in container {}: {e}", target.container_id))?;
    for t in tasks {
        let _ = t.await;
    }
    let _ = err_task.await;
    Ok(status.code().unwrap_or(128 + 9))
}

static SOCKET_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Receives the pty master the runtime sends over the console socket (SCM_RIGHTS).
fn recv_master(stream: std::os::unix::net::UnixStream) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::io::IoSliceMut;
    use std::mem::MaybeUninit;
    let mut name = [0u8; 256];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    recvmsg(&stream, &mut [IoSliceMut::new(&mut name)], &mut control, RecvFlags::CMSG_CLOEXEC)?;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(std::io::Error::other("the runtime sent no pty master over the console socket"))
}

/// The container's process with `command`, a terminal of `size` (rows, columns): an OCI process object for
/// `rkube-runtime exec --process`, so the terminal has its size before the command starts.
fn tty_process(bundle: &std::path::Path, command: &[String], size: TermSize) -> Option<Value> {
    let config: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).ok()?).ok()?;
    let mut process = config.get("process")?.clone();
    let obj = process.as_object_mut()?;
    obj.insert("args".into(), json!(command));
    obj.insert("terminal".into(), json!(true));
    obj.insert("consoleSize".into(), json!({"height": size.height, "width": size.width}));
    Some(process)
}

async fn run_tty(env: &ExecEnv, target: &Target, command: &[String], mut io: ExecIo) -> Result<i32, String> {
    std::fs::create_dir_all(&env.socket_dir).map_err(|e| format!("create {}: {e}", env.socket_dir.display()))?;
    let n = SOCKET_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let sock: PathBuf = env.socket_dir.join(format!("console-{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock).map_err(|e| format!("listen on console socket {}: {e}", sock.display()))?;
    let _cleanup = RemoveOnDrop(sock.clone());
    // kubectl sends the terminal's size first thing; a command started before it would see 0x0.
    let first_size = match io.resize.as_mut() {
        Some(rx) => tokio::time::timeout(std::time::Duration::from_secs(1), rx.recv()).await.ok().flatten(),
        None => None,
    };
    let process_file = env.socket_dir.join(format!("process-{}-{n}.json", std::process::id()));
    let _cleanup_process = RemoveOnDrop(process_file.clone());
    let process = first_size.and_then(|sz| target.bundle.as_deref().and_then(|b| tty_process(b, command, sz)));
    let mut cmd = tokio::process::Command::new(&env.runtime_bin);
    cmd.arg("--root").arg(&env.runtime_root).arg("exec").arg("--tty").arg("--console-socket").arg(&sock);
    match process {
        Some(p) => {
            std::fs::write(&process_file, p.to_string()).map_err(|e| format!("write {}: {e}", process_file.display()))?;
            cmd.arg("--process").arg(&process_file).arg(&target.container_id);
        }
        None => {
            cmd.arg(&target.container_id).arg("--").args(command);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("run {} exec --tty in container {}: {e}", env.runtime_bin.display(), target.container_id))?;
    let accepted = tokio::select! {
        a = listener.accept() => a.map_err(|e| format!("accept on console socket: {e}")),
        st = child.wait() => {
            let mut msg = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut msg).await;
            }
            return Err(format!("exec --tty in container {} failed before making a terminal ({}): {}",
                target.container_id, st.map(|s| s.to_string()).unwrap_or_default(), msg.trim()));
        }
    }?;
    let std_stream = accepted.0.into_std().map_err(|e| format!("console socket: {e}"))?;
    std_stream.set_nonblocking(false).map_err(|e| format!("console socket: {e}"))?;
    let master = tokio::task::spawn_blocking(move || recv_master(std_stream))
        .await
        .map_err(|e| format!("receive pty master: {e}"))?
        .map_err(|e| format!("receive pty master: {e}"))?;
    let master = std::fs::File::from(master);
    let resize_fd = master.try_clone().map_err(|e| format!("dup pty master: {e}"))?;
    let writer = master.try_clone().map_err(|e| format!("dup pty master: {e}"))?;
    // A pty master is not pollable through tokio's file API in a useful way; plain blocking threads do.
    let out_task = io.stdout.map(|tx| {
        let mut reader = master;
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break, // EIO once the last slave holder exits
                    Ok(n) => {
                        if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                            break;
                        }
                    }
                }
            }
        })
    });
    if let Some(mut rx) = io.stdin {
        std::thread::spawn(move || {
            use std::io::Write;
            let mut w = writer;
            while let Some(chunk) = rx.blocking_recv() {
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
            // EOF on a terminal is ^D.
            let _ = w.write_all(&[4]);
        });
    }
    if let Some(mut rx) = io.resize {
        tokio::spawn(async move {
            while let Some(sz) = rx.recv().await {
                let ws = rustix::termios::Winsize { ws_row: sz.height, ws_col: sz.width, ws_xpixel: 0, ws_ypixel: 0 };
                let _ = rustix::termios::tcsetwinsize(&resize_fd, ws);
            }
        });
    }
    let status = wait_or_cancel(&mut child, io.cancel).await.map_err(|e| format!("wait for exec in container {}: {e}", target.container_id))?;
    if let Some(t) = out_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
    }
    Ok(status.code().unwrap_or(128 + 9))
}

/// Connects to a monitor's attach socket however deep its directory is (socket addresses hold 108 bytes):
/// through `/proc/self/fd/<dir>/<name>`, as the monitor bound it.
pub async fn connect_attach(socket: &std::path::Path) -> std::io::Result<tokio::net::UnixStream> {
    let dir = socket.parent().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "socket path has no directory"))?;
    let name = socket.file_name().and_then(|n| n.to_str()).unwrap_or(rkube_monitor::ATTACH_SOCKET);
    let dir_fd = std::fs::File::open(dir)?;
    tokio::net::UnixStream::connect(rkube_monitor::attach::short_socket_path(&dir_fd, name)).await
}

/// `attach`: through the container's monitor ([`rkube_monitor::attach`]), what the container writes from now
/// on, live, to `io.stdout` / `io.stderr` by stream (stderr to stdout when the client did not ask for it
/// apart); `io.stdin` to the container's stdin and `io.resize` to its terminal. Ends when the container does
/// (the monitor closes the socket) or the client goes away.
pub async fn attach(target: &Target, mut io: ExecIo) -> Result<i32, String> {
    use rkube_monitor::attach::{decode, encode, RESIZE, STDERR, STDIN, STDIN_CLOSE, STDOUT};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(socket) = target.attach_socket.clone() else {
        return Err(format!("container {} has no monitor to attach to", target.container_id));
    };
    let sock = connect_attach(&socket)
        .await
        .map_err(|e| format!("attach to container {}: its monitor's socket {}: {e}", target.container_id, socket.display()))?;
    let (mut rd, mut wr) = sock.into_split();
    let (mut stdin, mut resize) = (io.stdin.take(), io.resize.take());
    // The write half stays open until the end: closing it would be a hang-up, and the output must keep coming
    // after the client's input has ended.
    let writer = tokio::spawn(async move {
        let mut frame = Vec::new();
        while stdin.is_some() || resize.is_some() {
            frame.clear();
            tokio::select! {
                chunk = async { stdin.as_mut()?.recv().await.map(Some) }, if stdin.is_some() => match chunk {
                    Some(Some(c)) => encode(STDIN, &c, &mut frame),
                    _ => {
                        stdin = None;
                        encode(STDIN_CLOSE, &[], &mut frame);
                    }
                },
                size = async { resize.as_mut()?.recv().await }, if resize.is_some() => match size {
                    Some(sz) => {
                        let mut p = sz.width.to_be_bytes().to_vec();
                        p.extend_from_slice(&sz.height.to_be_bytes());
                        encode(RESIZE, &p, &mut frame);
                    }
                    None => resize = None,
                },
            }
            if !frame.is_empty() && wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await;
        drop(wr);
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match io.cancel.as_mut() {
            Some(c) => tokio::select! {
                n = rd.read(&mut chunk) => n,
                _ = c => break,
            },
            None => rd.read(&mut chunk).await,
        };
        match n {
            Ok(0) | Err(_) => break, // the container ended: its monitor closed the socket
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        for f in decode(&mut buf) {
            let tx = match f.kind {
                STDOUT => io.stdout.as_ref(),
                STDERR => io.stderr.as_ref().or(io.stdout.as_ref()),
                _ => None,
            };
            if let Some(tx) = tx {
                if tx.send(Bytes::from(f.payload)).await.is_err() {
                    writer.abort();
                    return Ok(0);
                }
            }
        }
    }
    writer.abort();
    Ok(0)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether a query flag is on (`stdin=true`, `tty=1`).
pub fn flag(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1" | "True"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn exit_status_matches_what_kubectl_decodes() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(exit_status(&Ok(0), &cmd)["status"], "Success");
        let s = exit_status(&Ok(3), &cmd);
        assert_eq!(s["message"], "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3");
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(exit_status(&Err("boom".into()), &cmd)["message"], "boom");
    }

    #[test]
    fn lookup_reports_unknown_pods_and_containers() {
        let tmp = tempfile::tempdir().expect("tmp");
        let env = ExecEnv {
            pods_dir: tmp.path().to_path_buf(),
            runtime_bin: "/bin/false".into(),
            runtime_root: tmp.path().into(),
            socket_dir: tmp.path().into(),
        };
        let pod = tmp.path().join("uid1");
        std::fs::create_dir_all(pod.join("containers/app")).expect("dirs");
        std::fs::write(
            pod.join("pod.json"),
            r#"{"metadata":{"name":"web","namespace":"default","uid":"uid1"},"spec":{"containers":[{"name":"app"}]}}"#,
        )
        .expect("pod.json");
        assert_eq!(find_container(&env, "default", "nope", "app").expect_err("no pod").code, 404);
        let e = find_container(&env, "default", "web", "other").expect_err("bad container");
        assert_eq!(e.message, "container other is not valid for pod web");
        assert_eq!(find_container(&env, "default", "web", "app").expect_err("not started").code, 400);
        std::fs::write(
            pod.join("containers/app/meta.json"),
            r#"{"id":"uid1-app-0","restart_count":0,"started_at":"2024-01-01T00:00:00Z","image_id":"x","rootfs":"/","cgroups_path":"x","log_path":"/x"}"#,
        )
        .expect("meta");
        std::fs::write(
            pod.join("sandbox.json"),
            r#"{"id":"sb-uid1","pid":1,"netns":"/run/netns/x","ipc":null,"uts":null,"ip":"10.244.0.2","host_network":false}"#,
        )
        .expect("sandbox");
        let t = find_container(&env, "default", "web", "app").expect("found");
        assert_eq!(t.container_id, "uid1-app-0");
        assert_eq!(t.netns.as_deref(), Some(Path::new("/run/netns/x")));
        assert_eq!(find_pod(&env, "default", "web").expect("pod").pod_uid, "uid1");
    }
}
