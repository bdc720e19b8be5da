//! `/portForward/<ns>/<pod>` (protocol `portforward.k8s.io`): over SPDY/3.1 directly (kubectl <= 1.30), or over
//! SPDY tunnelled in a WebSocket (`SPDY/3.1+portforward.k8s.io`, kubectl 1.31+: each binary message carries
//! raw SPDY bytes). Each forwarded connection is a pair of SPDY streams with the same `requestID` and `port`
//! headers: `streamType: error` (where a failure is written as text) and `streamType: data`, spliced with a
//! TCP connection to `127.0.0.1:<port>` made inside the pod's network namespace.
//!
//! Must not: connect anywhere but the pod's loopback.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::exec::{self, Target};
use super::remotecommand::{is_websocket, negotiate_spdy, plain, upgrade_spdy};
use super::spdy::{Session, Stream};
use super::ServerState;

/// The stream protocol negotiated over SPDY (`X-Stream-Protocol-Version`).
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol of SPDY tunnelled in WebSocket (kubectl 1.31+).
pub const WS_TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Connects to `127.0.0.1:port` inside network namespace `netns` (the host's when None). The connect runs on a
/// thread of its own that joins the namespace and ends afterwards, so no other thread changes namespace.
pub async fn connect_in_netns(netns: Option<PathBuf>, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("portforward-connect".into()).spawn(move || {
        let result = (|| {
            if let Some(ns) = &netns {
                let f = std::fs::File::open(ns).map_err(|e| std::io::Error::new(e.kind(), format!("open netns {}: {e}", ns.display())))?;
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| std::io::Error::other(format!("join netns {}: {e}", ns.display())))?;
            }
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(s)
        })();
        let _ = tx.send(result);
    })?;
    let std_stream = rx.await.map_err(|_| std::io::Error::other("connect thread ended without an answer"))??;
    tokio::net::TcpStream::from_std(std_stream)
}

/// `GET|POST /portForward/{ns}/{pod}`.
pub async fn portforward_handler(
    State(state): State<Arc<ServerState>>,
    Path((ns, pod)): Path<(String, String)>,
    req: Request<Body>,
) -> Response {
    let target = match exec::find_pod(&state.exec, &ns, &pod) {
        Ok(t) => t,
        Err(e) => return plain(StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST), e.message),
    };
    let name = format!("{ns}/{pod}");
    let websocket = is_websocket(req.headers());
    tracing::info!(pod = %name, transport = if websocket { "websocket" } else { "spdy" }, "port-forward");
    if websocket {
        let (mut parts, _body) = req.into_parts();
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws.protocols([WS_TUNNEL_PROTOCOL]),
            Err(e) => return e.into_response(),
        };
        if ws.selected_protocol().is_none() {
            return plain(StatusCode::BAD_REQUEST, format!("port-forward over WebSocket needs subprotocol {WS_TUNNEL_PROTOCOL}"));
        }
        return ws.on_upgrade(move |socket| async move {
            let session = Session::serve(websocket_bytes(socket));
            serve_session(session, target, name).await
        });
    }
    let Some(proto) = negotiate_spdy(req.headers(), &[PROTOCOL]) else {
        return plain(StatusCode::FORBIDDEN, format!("unable to upgrade: port-forward speaks {PROTOCOL}"));
    };
    upgrade_spdy(req, proto, move |session| serve_session(session, target, name))
}

/// A byte stream over a WebSocket's binary messages (the tunnel kubectl 1.31+ runs SPDY through).
pub fn websocket_bytes(socket: WebSocket) -> tokio::io::DuplexStream {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut rd, mut wr) = tokio::io::split(theirs);
    let (mut sink, mut source) = socket.split();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
    });
    tokio::spawn(async move {
        while let Some(Ok(m)) = source.next().await {
            match m {
                Message::Binary(b) if wr.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    });
    ours
}

#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
}

async fn serve_session(mut session: Session, target: Target, pod: String) {
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    while let Some(s) = session.incoming.recv().await {
        let request_id = s.header("requestid").unwrap_or_default().to_string();
        let kind = s.header("streamtype").unwrap_or_default().to_string();
        tracing::debug!(pod, stream = s.id, kind, request_id, "port-forward stream");
        let pair = pairs.entry(request_id.clone()).or_default();
        match kind.as_str() {
            "error" => pair.error = Some(s),
            "data" => pair.data = Some(s),
            _ => {
                s.writer.reset(super::spdy::RST_PROTOCOL_ERROR).await;
                continue;
            }
        }
        if pair.error.is_some() && pair.data.is_some() {
            let Pair { error: Some(error), data: Some(data) } = pairs.remove(&request_id).unwrap_or_default() else { continue };
            tokio::spawn(forward(error, data, target.clone(), pod.clone()));
        }
    }
}

async fn forward(error: Stream, mut data: Stream, target: Target, pod: String) {
    let port: Option<u16> = data.header("port").and_then(|p| p.parse().ok()).filter(|p| *p > 0);
    let Some(port) = port else {
        let _ = error.writer.write(format!("invalid port {:?} in the data stream", data.header("port")).as_bytes()).await;
        error.writer.close().await;
        data.writer.close().await;
        return;
    };
    let tcp = match connect_in_netns(target.netns.clone(), port).await {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod {pod}, uid {}: failed to connect to localhost:{port} inside the pod's network namespace: {e}", target.pod_uid);
            tracing::info!(pod, port, error = %e, "port-forward connect failed");
            let _ = error.writer.write(msg.as_bytes()).await;
            error.writer.close().await;
            data.writer.close().await;
            return;
        }
    };
    let (mut rd, mut wr) = tcp.into_split();
    let writer = data.writer.clone();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if writer.write(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        writer.close().await;
    });
    while let Some(chunk) = data.read().await {
        if wr.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
    let _ = up.await;
    error.writer.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_on_the_host_namespace_reaches_loopback() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let accept = tokio::spawn(async move { l.accept().await.map(|_| ()) });
        let s = connect_in_netns(None, port).await.expect("connect");
        assert_eq!(s.peer_addr().expect("peer").port(), port);
        accept.await.expect("join").expect("accept");
        let err = connect_in_netns(Some("/nonexistent/netns".into()), port).await.expect_err("bad netns");
        assert!(err.to_string().contains("/nonexistent/netns"), "{err}");
    }
}
