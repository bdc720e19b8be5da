//! `/exec/<ns>/<pod>/<container>?command=..&stdin=..&stdout=..&stderr=..&tty=..` over either transport kubectl
//! uses: SPDY/3.1 (`X-Stream-Protocol-Version: v4.channel.k8s.io`; one SPDY stream per `streamType` header:
//! error, stdin, stdout, stderr, resize) or WebSocket (`v5.channel.k8s.io` / `v4.channel.k8s.io`; one byte of
//! channel in front of each binary message: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize, 255 close).
//! Both end with a Status on the error stream (see [`exec::exit_status`]).
//!
//! Must not: run anything before the container is known to be running (bad requests get an HTTP error before
//! any upgrade, so kubectl prints it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::exec::{self, ExecIo, TermSize};
use super::spdy::{Session, Stream};
use super::ServerState;

/// Stream protocol versions served over SPDY, most preferred first.
pub const SPDY_PROTOCOLS: &[&str] = &["v4.channel.k8s.io"];
/// WebSocket subprotocols served, most preferred first.
pub const WS_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// What runs once the streams are up: exec's command, or attach's log follower.
pub type Runner = Box<dyn FnOnce(ExecIo) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, String>> + Send>> + Send>;

/// How long the client has to open the streams it asked for.
const STREAM_WAIT: Duration = Duration::from_secs(30);

/// The parsed exec/attach query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// The command and its arguments, one `command` parameter each (exec only; empty for attach).
    pub command: Vec<String>,
    /// The client sends stdin (`stdin` or `input`).
    pub stdin: bool,
    /// The client wants stdout (`stdout` or `output`; on unless given).
    pub stdout: bool,
    /// The client wants stderr apart (`stderr` or `error`; on unless given; always off with a tty).
    pub stderr: bool,
    /// Run in a terminal.
    pub tty: bool,
}

impl Options {
    /// Parses the query string with upstream's names and defaults; unknown parameters are ignored.
    pub fn parse(query: Option<&str>) -> Options {
        let mut o = Options::default();
        let mut seen_stdout = false;
        let mut seen_stderr = false;
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let on = matches!(v.as_ref(), "true" | "1" | "True");
            match k.as_ref() {
                "command" => o.command.push(v.into_owned()),
                "input" | "stdin" => o.stdin = on,
                "output" | "stdout" => {
                    o.stdout = on;
                    seen_stdout = true
                }
                "error" | "stderr" => {
                    o.stderr = on;
                    seen_stderr = true
                }
                "tty" => o.tty = on,
                _ => {}
            }
        }
        // Upstream defaults: stdout and stderr on unless asked otherwise.
        if !seen_stdout {
            o.stdout = true;
        }
        if !seen_stderr {
            o.stderr = true;
        }
        if o.tty {
            o.stderr = false; // a terminal merges stderr into stdout
        }
        o
    }
}

pub(crate) fn plain(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg.into()).into_response()
}

/// Whether the request asks for a WebSocket.
pub(crate) fn is_websocket(h: &HeaderMap) -> bool {
    h.get(header::UPGRADE).and_then(|v| v.to_str().ok()).map(|v| v.eq_ignore_ascii_case("websocket")).unwrap_or(false)
}

/// The first protocol of `ours` the client offers in `X-Stream-Protocol-Version` (one header per version, or
/// comma-separated).
pub(crate) fn negotiate_spdy(h: &HeaderMap, ours: &[&'static str]) -> Option<&'static str> {
    let offered: Vec<String> = h
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
        .collect();
    ours.iter().copied().find(|p| offered.iter().any(|o| o == p))
}

/// Answers a SPDY upgrade with 101 and runs `then` on the upgraded connection.
pub(crate) fn upgrade_spdy<F, Fut>(mut req: Request<Body>, protocol: &'static str, then: F) -> Response
where
    F: FnOnce(Session) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let upgrade_ok = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_ascii_lowercase().contains("spdy/3.1"))
        .unwrap_or(false);
    if !upgrade_ok {
        return plain(StatusCode::BAD_REQUEST, "unable to upgrade: missing upgrade headers in request (use SPDY/3.1 or a WebSocket)");
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => then(Session::serve(hyper_util::rt::TokioIo::new(upgraded))).await,
            Err(e) => tracing::debug!(error = %e, "spdy upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", protocol)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `GET|POST /exec/{ns}/{pod}/{container}`.
pub async fn exec_handler(
    State(state): State<Arc<ServerState>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    req: Request<Body>,
) -> Response {
    let opts = Options::parse(query.as_deref());
    if opts.command.is_empty() {
        return plain(StatusCode::BAD_REQUEST, "you must specify at least one command for the container");
    }
    if !opts.stdin && !opts.stdout && !opts.stderr {
        return plain(StatusCode::BAD_REQUEST, "you must specify at least 1 of stdin, stdout, stderr");
    }
    let target = match exec::find_container(&state.exec, &ns, &pod, &container) {
        Ok(t) => t,
        Err(e) => return plain(StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST), e.message),
    };
    let env = state.exec.clone();
    let websocket = is_websocket(req.headers());
    tracing::info!(pod = %format!("{ns}/{pod}"), container, command = ?opts.command, tty = opts.tty, transport = if websocket { "websocket" } else { "spdy" }, "exec");
    let (command, tty) = (opts.command.clone(), opts.tty);
    let runner: Runner = Box::new(move |io| Box::pin(async move { exec::run(&env, &target, &command, tty, io).await }));
    serve_streams(req, opts, runner).await
}

/// `GET|POST /attach/{ns}/{pod}/{container}`: the container's output from now on, live, until it exits; with
/// `stdin=true` the client's input to the container's stdin (`stdin: true` in its spec), with `tty=true` its
/// terminal (`tty: true`), resizes included.
pub async fn attach_handler(
    State(state): State<Arc<ServerState>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    req: Request<Body>,
) -> Response {
    let opts = Options::parse(query.as_deref());
    let target = match exec::find_container(&state.exec, &ns, &pod, &container) {
        Ok(t) => t,
        Err(e) => return plain(StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST), e.message),
    };
    if opts.tty && !target.tty {
        return plain(StatusCode::BAD_REQUEST, format!("Unable to use a TTY - container {container} did not allocate one"));
    }
    if opts.stdin && !target.stdin {
        return plain(
            StatusCode::BAD_REQUEST,
            format!("container {container} in pod {pod} has no stdin: its spec does not set stdin: true; attach without -i"),
        );
    }
    let websocket = is_websocket(req.headers());
    tracing::info!(pod = %format!("{ns}/{pod}"), container, transport = if websocket { "websocket" } else { "spdy" }, "attach");
    let runner: Runner = Box::new(move |io| Box::pin(async move { exec::attach(&target, io).await }));
    serve_streams(req, opts, runner).await
}

/// Upgrades to whichever transport the client asked for and runs `runner` with the negotiated streams.
async fn serve_streams(req: Request<Body>, opts: Options, runner: Runner) -> Response {
    if is_websocket(req.headers()) {
        let (mut parts, _body) = req.into_parts();
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws.protocols(WS_PROTOCOLS.iter().copied()),
            Err(e) => return e.into_response(),
        };
        let Some(proto) = ws.selected_protocol().and_then(|p| p.to_str().ok()).map(str::to_string) else {
            return plain(StatusCode::BAD_REQUEST, format!("no supported WebSocket subprotocol: use one of {WS_PROTOCOLS:?}"));
        };
        let v5 = proto.starts_with("v5.");
        let grace = ws_first_frame_grace(parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()));
        return ws.on_upgrade(move |socket| exec_websocket(socket, v5, grace, opts, runner));
    }
    let Some(proto) = negotiate_spdy(req.headers(), SPDY_PROTOCOLS) else {
        return plain(StatusCode::FORBIDDEN, format!("unable to upgrade: no common stream protocol: the server speaks {SPDY_PROTOCOLS:?}"));
    };
    upgrade_spdy(req, proto, move |session| exec_spdy(session, opts, runner))
}

/// Forwards a SPDY stream's data into a channel until the peer half-closes it.
fn stream_to_channel(mut s: Stream) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(chunk) = s.read().await {
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// Sends what arrives on the returned channel to a SPDY stream, then half-closes it.
fn channel_to_stream(writer: super::spdy::StreamWriter) -> (mpsc::Sender<Bytes>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let task = tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if writer.write(&chunk).await.is_err() {
                break;
            }
        }
        writer.close().await;
    });
    (tx, task)
}

/// Decodes resize messages (a sequence of JSON objects) from a stream.
fn resize_decoder(mut s: Stream) -> mpsc::Receiver<TermSize> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some(chunk) = s.read().await {
            buf.extend_from_slice(&chunk);
            let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<TermSize>();
            let mut used = 0;
            while let Some(Ok(sz)) = it.next() {
                used = it.byte_offset();
                if tx.send(sz).await.is_err() {
                    return;
                }
            }
            buf.drain(..used);
        }
    });
    rx
}

async fn exec_spdy(mut session: Session, opts: Options, runner: Runner) {
    let mut streams: HashMap<String, Stream> = HashMap::new();
    let wanted = |t: &str| match t {
        "error" => true,
        "stdin" => opts.stdin,
        "stdout" => opts.stdout,
        "stderr" => opts.stderr,
        "resize" => opts.tty,
        _ => false,
    };
    let expected = 1 + opts.stdin as usize + opts.stdout as usize + opts.stderr as usize;
    let deadline = tokio::time::Instant::now() + STREAM_WAIT;
    // Resize is optional (kubectl opens it only for a terminal); the others must all arrive.
    while streams.keys().filter(|k| k.as_str() != "resize").count() < expected {
        let s = match tokio::time::timeout_at(deadline, session.incoming.recv()).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(_) => {
                tracing::warn!("exec/attach: client did not open its streams within 30s");
                return;
            }
        };
        let t = s.header("streamtype").unwrap_or_default().to_string();
        if !wanted(&t) {
            s.writer.reset(super::spdy::RST_PROTOCOL_ERROR).await;
            continue;
        }
        streams.insert(t, s);
    }
    // A resize stream may follow the others (kubectl opens it last).
    if opts.tty && !streams.contains_key("resize") {
        if let Ok(Some(s)) = tokio::time::timeout(Duration::from_millis(500), session.incoming.recv()).await {
            if s.header("streamtype") == Some("resize") {
                streams.insert("resize".into(), s);
            }
        }
    }
    let error = streams.remove("error").expect("the error stream is always expected");
    let mut io = ExecIo::default();
    let mut tasks = Vec::new();
    if let Some(s) = streams.remove("stdin") {
        io.stdin = Some(stream_to_channel(s));
    }
    let mut keep = Vec::new();
    for name in ["stdout", "stderr"] {
        if let Some(s) = streams.remove(name) {
            let (tx, task) = channel_to_stream(s.writer.clone());
            if name == "stdout" {
                io.stdout = Some(tx);
            } else {
                io.stderr = Some(tx);
            }
            tasks.push(task);
            keep.push(s);
        }
    }
    if let Some(s) = streams.remove("resize") {
        io.resize = Some(resize_decoder(s));
    }
    // The session ends when the client closes the connection (normally after it read the status).
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
    io.cancel = Some(cancel_rx);
    let watcher = tokio::spawn(async move {
        while session.incoming.recv().await.is_some() {}
        let _ = cancel_tx.send(());
    });
    let result = runner(io).await;
    for t in tasks {
        let _ = t.await;
    }
    let status = exec::exit_status(&result, &opts.command);
    let _ = error.writer.write(status.to_string().as_bytes()).await;
    error.writer.close().await;
    drop(keep);
    // Let the client read everything and close; then the session goes.
    let _ = tokio::time::timeout(Duration::from_secs(10), watcher).await;
}

/// How long the first frame to a WebSocket client is held back unless the client speaks first.
///
/// kubectl up to 1.33 starts reading frames before it has made its table of streams (kubernetes#131189, fixed
/// in 1.34): a frame that arrives in between is dropped with "Unknown stream id", which cut the start off a
/// `kubectl cp` archive and, once in ~5 suite runs on a loaded 2-core machine, lost the whole output of a quick
/// `kubectl exec ... cat`. Behind the real apiserver the extra hop to the kubelet (WebSocket translated to SPDY)
/// hides that window; here the first byte can be on loopback within microseconds. A client that sends anything
/// (stdin, a resize) has its streams made already and opens the gate at once.
///
/// Clients built on client-go before 1.34 (kubectl among them) get [`WS_GRACE_OLD_CLIENT_GO`]: their window is
/// a goroutine switch, and on a machine that is short of CPU that can take tens of milliseconds. Everyone else
/// gets [`WS_GRACE`]. The cost is paid only by a command whose first output comes sooner than that.
fn ws_first_frame_grace(user_agent: Option<&str>) -> Duration {
    match user_agent.and_then(client_go_minor) {
        Some(minor) if minor < 34 => WS_GRACE_OLD_CLIENT_GO,
        _ => WS_GRACE,
    }
}

const WS_GRACE: Duration = Duration::from_millis(30);
const WS_GRACE_OLD_CLIENT_GO: Duration = Duration::from_millis(200);

/// The minor version of a client-go User-Agent (`kubectl/v1.32.4 (linux/amd64) kubernetes/6b1d3a7`); 0 for a
/// client-go program that does not stamp its version (`v0.0.0`); None for anything else.
fn client_go_minor(ua: &str) -> Option<u32> {
    let (product, rest) = ua.split_once(' ')?;
    if !rest.split(' ').any(|t| t.starts_with("kubernetes/")) {
        return None;
    }
    let version = product.split_once('/')?.1.strip_prefix('v')?;
    let mut parts = version.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    Some(if major == 0 { 0 } else { minor })
}

/// Waits until `grace` has passed since `start` or the client has sent a frame, whichever comes first.
async fn first_frame_gate(start: tokio::time::Instant, grace: Duration, client_spoke: &tokio::sync::Notify) {
    tokio::select! {
        _ = tokio::time::sleep_until(start + grace) => {}
        _ = client_spoke.notified() => {}
    }
}

async fn exec_websocket(socket: WebSocket, v5: bool, grace: Duration, opts: Options, runner: Runner) {
    let upgraded = tokio::time::Instant::now();
    let (mut sink, mut source) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
    let client_spoke = std::sync::Arc::new(tokio::sync::Notify::new());
    let spoke = client_spoke.clone();
    let writer = tokio::spawn(async move {
        first_frame_gate(upgraded, grace, &spoke).await;
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut io = ExecIo::default();
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<TermSize>(4);
    if opts.stdin {
        io.stdin = Some(stdin_rx);
    }
    if opts.tty {
        io.resize = Some(resize_rx);
    }
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
    io.cancel = Some(cancel_rx);
    // Reader: stdin (0), resize (4), close (255, v5); its end means the client is gone.
    let reader = tokio::spawn(async move {
        let mut stdin_tx = Some(stdin_tx);
        while let Some(Ok(msg)) = source.next().await {
            client_spoke.notify_one();
            let data = match msg {
                Message::Binary(b) => b,
                Message::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&ch, rest)) = data.split_first() else { continue };
            match ch {
                0 => {
                    if let Some(tx) = &stdin_tx {
                        if !rest.is_empty() && tx.send(Bytes::copy_from_slice(rest)).await.is_err() {
                            stdin_tx = None;
                        }
                    }
                }
                4 => {
                    if let Ok(sz) = serde_json::from_slice::<TermSize>(rest) {
                        let _ = resize_tx.send(sz).await;
                    }
                }
                255 if v5 && rest.first() == Some(&0) => stdin_tx = None,
                _ => {}
            }
        }
        let _ = cancel_tx.send(());
    });
    let mut pumps = Vec::new();
    for (ch, wanted) in [(1u8, opts.stdout), (2u8, opts.stderr)] {
        if !wanted {
            continue;
        }
        let (tx, mut rx) = mpsc::channel::<Bytes>(16);
        let out = out_tx.clone();
        pumps.push(tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                let mut m = Vec::with_capacity(chunk.len() + 1);
                m.push(ch);
                m.extend_from_slice(&chunk);
                if out.send(Message::Binary(m.into())).await.is_err() {
                    break;
                }
            }
        }));
        if ch == 1 {
            io.stdout = Some(tx);
        } else {
            io.stderr = Some(tx);
        }
    }
    let result = runner(io).await;
    for p in pumps {
        let _ = p.await;
    }
    let mut m = vec![3u8];
    m.extend_from_slice(exec::exit_status(&result, &opts.command).to_string().as_bytes());
    let _ = out_tx.send(Message::Binary(m.into())).await;
    // A normal closure (1000) is the end of every stream to the client; a close without a code is an error.
    let _ = out_tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_frame_waits_for_the_grace_when_the_client_is_silent() {
        let start = tokio::time::Instant::now();
        first_frame_gate(start, Duration::from_millis(120), &tokio::sync::Notify::new()).await;
        assert!(start.elapsed() >= Duration::from_millis(120), "gate opened after {:?}", start.elapsed());
    }

    #[tokio::test]
    async fn first_frame_goes_at_once_when_the_client_spoke() {
        let spoke = tokio::sync::Notify::new();
        // The client's frame may come before the writer reaches the gate: the permit is kept.
        spoke.notify_one();
        let start = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), first_frame_gate(start, Duration::from_secs(600), &spoke))
            .await
            .expect("a client frame opens the gate");
    }

    #[test]
    fn kubectl_before_1_34_waits_longer_before_its_first_frame() {
        for ua in [
            "kubectl/v1.32.4-dispatcher (linux/amd64) kubernetes/6b1d3a7",
            "kubectl/v1.27.16 (linux/amd64) kubernetes/cbb86e0",
            "my-operator/v0.0.0 (linux/amd64) kubernetes/$Format",
        ] {
            assert_eq!(ws_first_frame_grace(Some(ua)), WS_GRACE_OLD_CLIENT_GO, "{ua}");
        }
        for ua in [
            Some("kubectl/v1.34.0 (linux/amd64) kubernetes/abcdef0"),
            Some("kubectl/v1.40.1 (darwin/arm64) kubernetes/abcdef0"),
            Some("OpenAPI-Generator/31.0.0/python"),
            Some("kube-rs/0.99"),
            Some("kubectl"),
            None,
        ] {
            assert_eq!(ws_first_frame_grace(ua), WS_GRACE, "{ua:?}");
        }
    }

    #[test]
    fn options_follow_upstream_defaults() {
        let o = Options::parse(Some("command=sh&command=-c&command=echo%20hi&stdin=true&stdout=true&stderr=true"));
        assert_eq!(o.command, vec!["sh", "-c", "echo hi"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        let t = Options::parse(Some("command=sh&input=1&output=1&tty=1"));
        assert!(t.stdin && t.stdout && t.tty && !t.stderr, "tty merges stderr");
        let d = Options::parse(Some("command=ls"));
        assert!(!d.stdin && d.stdout && d.stderr);
    }

    #[test]
    fn spdy_protocol_negotiation_picks_ours() {
        let mut h = HeaderMap::new();
        h.append("X-Stream-Protocol-Version", "v5.channel.k8s.io".parse().expect("hv"));
        h.append("X-Stream-Protocol-Version", "v4.channel.k8s.io".parse().expect("hv"));
        h.append("X-Stream-Protocol-Version", "v3.channel.k8s.io".parse().expect("hv"));
        assert_eq!(negotiate_spdy(&h, SPDY_PROTOCOLS), Some("v4.channel.k8s.io"));
        let mut old = HeaderMap::new();
        old.append("X-Stream-Protocol-Version", "channel.k8s.io".parse().expect("hv"));
        assert_eq!(negotiate_spdy(&old, SPDY_PROTOCOLS), None);
    }
}
