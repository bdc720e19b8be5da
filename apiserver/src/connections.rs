//! The listener: accepts connections (plain HTTP or TLS) and serves the router on each over HTTP/1.1 with
//! upgrades, with the limits that keep an anonymous client from holding the process's descriptors:
//!
//! - a TLS handshake must finish within [`ConnectionLimits::tls_handshake_timeout`];
//! - a request head must arrive within [`ConnectionLimits::request_header_timeout`], counted from the
//!   connection's start (after the handshake) for the first request and from its first byte for later ones,
//!   as Go's `ReadHeaderTimeout`, which upstream's apiserver sets to 32 s;
//! - a keep-alive connection with no request in flight is closed after [`ConnectionLimits::idle_timeout`]
//!   (Go's `IdleTimeout`, 90 s upstream), while a request in flight (a watch, a log stream) is never cut by it;
//! - a request body must arrive within [`ConnectionLimits::request_body_timeout`] (the handlers read bodies and
//!   answer 504 past it, as upstream's 60 s request timeout does);
//! - one client address (an IPv6 client's whole /64) holds at most
//!   [`ConnectionLimits::max_connections_per_client`] connections; more are closed as soon as they are accepted,
//!   and other addresses are served as before.
//!
//! An upgraded connection (exec, attach, port-forward) leaves HTTP here and is no longer counted or timed: it
//! exists only after authorization.
//!
//! Must not: read request bodies or know about Kubernetes; the router does.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Notify};
use tokio::time::Instant;

pub use crate::config::{ConnectionLimits, DEFAULT_MAX_CONNECTIONS_PER_CLIENT};

/// How the listener serves: TLS or not, with what limits.
pub struct Listener {
    /// The bound socket.
    pub tcp: TcpListener,
    /// The TLS configuration (serving certificate, client CA); plain HTTP when None.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Timeouts and the per-client connection cap.
    pub limits: ConnectionLimits,
}

/// Accepts connections and serves `app` on each until `stop` fires, then waits for the open ones: they finish
/// their requests and close once `stopping` turns true. Dropping this future ends every connection.
pub async fn serve(listener: Listener, app: Router, mut stop: oneshot::Receiver<()>, stopping: watch::Receiver<bool>) {
    let clients = Arc::new(ClientCounts::default());
    let acceptor = listener.tls.map(tokio_rustls::TlsAcceptor::from);
    let limits = Arc::new(listener.limits);
    let mut open = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => break,
            Some(_) = open.join_next(), if !open.is_empty() => continue,
            accepted = listener.tcp.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // out of descriptors, typically: do not spin on it
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = clients.acquire(peer.ip(), limits.max_connections_per_client) else {
            tracing::debug!(%peer, max = limits.max_connections_per_client, "connection refused: too many from this client");
            drop(tcp);
            continue;
        };
        let (app, acceptor, limits, stopping) = (app.clone(), acceptor.clone(), limits.clone(), stopping.clone());
        open.spawn(async move {
            let _slot = slot;
            let _ = tcp.set_nodelay(true);
            match acceptor {
                None => serve_connection(tcp, app, None, &limits, stopping, peer).await,
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    // the client certificate, when there is one, names who every request on this connection
                    // comes from
                    let identity = match stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                        None => crate::auth::TlsIdentity(None),
                        Some(cert) => match crate::auth::User::from_certificate(cert) {
                            Some(user) => crate::auth::TlsIdentity(Some(Arc::new(user))),
                            None => {
                                tracing::debug!(%peer, "client certificate names no user (no CN)");
                                return;
                            }
                        },
                    };
                    serve_connection(stream, app, Some(identity), &limits, stopping, peer).await
                }
            }
        });
    }
    drop(listener.tcp);
    while open.join_next().await.is_some() {}
}

async fn serve_connection<IO>(
    io: IO,
    app: Router,
    identity: Option<crate::auth::TlsIdentity>,
    limits: &ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
    peer: SocketAddr,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let watched = Watched { io, activity: activity.clone() };
    let service = Tracked { app, identity, activity: activity.clone() };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // the request head timeout is ours (it must not also count idle time between requests)
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(None);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(watched), service).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        why = activity.expired(limits) => {
            tracing::debug!(%peer, why, "connection closed");
        }
        _ = async { let _ = stopping.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            if tokio::time::timeout(Duration::from_secs(5), conn).await.is_err() {
                tracing::debug!(%peer, "connection still busy 5s after shutdown; closing it");
            }
        }
    }
}

/// What a connection is doing, for its timeouts: requests in flight, when it last became idle, and when the
/// head of the request it is waiting for started to arrive.
struct Activity {
    state: Mutex<ActivityState>,
    changed: Notify,
}

struct ActivityState {
    in_flight: usize,
    idle_since: Instant,
    /// Set while a request head is due: from the start for the first request, from its first byte after.
    head_started: Option<Instant>,
}

impl Activity {
    fn new() -> Activity {
        let now = Instant::now();
        Activity { state: Mutex::new(ActivityState { in_flight: 0, idle_since: now, head_started: Some(now) }), changed: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bytes_read(&self) {
        let mut s = self.lock();
        if s.in_flight == 0 && s.head_started.is_none() {
            s.head_started = Some(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        let mut s = self.lock();
        s.in_flight += 1;
        s.head_started = None;
    }

    fn response_done(&self) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.idle_since = Instant::now();
        }
        drop(s);
        self.changed.notify_one();
    }

    /// Resolves when the connection has waited too long for a request head, or sat idle too long.
    async fn expired(&self, limits: &ConnectionLimits) -> &'static str {
        loop {
            let deadline = {
                let s = self.lock();
                match (s.in_flight, s.head_started) {
                    (0, Some(t)) => Some((t + limits.request_header_timeout, "request header timeout")),
                    (0, None) => Some((s.idle_since + limits.idle_timeout, "idle timeout")),
                    _ => None,
                }
            };
            match deadline {
                None => self.changed.notified().await,
                Some((at, why)) => {
                    if Instant::now() >= at {
                        return why;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// The connection's stream, telling [`Activity`] when bytes arrive.
struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The router as a hyper service: marks the request with the connection's TLS identity and keeps
/// [`Activity`] told of requests in flight (until the response body is done).
#[derive(Clone)]
struct Tracked {
    app: Router,
    identity: Option<crate::auth::TlsIdentity>,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for Tracked {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send>>;

    fn call(&self, mut req: Request<hyper::body::Incoming>) -> Self::Future {
        if let Some(identity) = &self.identity {
            req.extensions_mut().insert(identity.clone());
        }
        self.activity.request_started();
        let done = InFlight(self.activity.clone());
        let app = self.app.clone();
        Box::pin(async move {
            let resp = tower::ServiceExt::oneshot(app, req.map(Body::new)).await?;
            Ok(resp.map(|body| Body::new(TrackedBody { inner: body, _done: done })))
        })
    }
}

/// Marks one request finished when dropped (with its response body, or with the request if it never answered).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.response_done();
    }
}

struct TrackedBody {
    inner: Body,
    _done: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Open connections per client (an IPv4 address, an IPv6 /64).
#[derive(Default)]
struct ClientCounts(Mutex<HashMap<IpAddr, usize>>);

fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl ClientCounts {
    fn acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let key = client_key(ip);
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = map.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot { counts: self.clone(), key })
    }
}

/// One counted connection; uncounted when dropped.
struct ClientSlot {
    counts: Arc<ClientCounts>,
    key: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_counted_per_address_and_per_ipv6_64() {
        let counts = Arc::new(ClientCounts::default());
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let first = counts.acquire(a, 2).expect("1st");
        let _second = counts.acquire(a, 2).expect("2nd");
        assert!(counts.acquire(a, 2).is_none(), "3rd from one address");
        assert!(counts.acquire("10.0.0.2".parse().expect("ip"), 2).is_some(), "another address is served");
        drop(first);
        assert!(counts.acquire(a, 2).is_some(), "a slot frees when its connection ends");
        let v6 = |s: &str| -> IpAddr { s.parse().expect("ip") };
        let _x = counts.acquire(v6("2001:db8::1"), 2).expect("1st of the /64");
        let _y = counts.acquire(v6("2001:db8::ffff:2"), 2).expect("2nd of the /64");
        assert!(counts.acquire(v6("2001:db8::3"), 2).is_none(), "a /64 is one client");
        assert_eq!(client_key(v6("::ffff:10.0.0.9")), v6("10.0.0.9"), "v4-mapped is the v4 address");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_expires_waiting_for_a_head_or_idle_but_not_with_a_request_in_flight() {
        let limits = ConnectionLimits {
            tls_handshake_timeout: Duration::from_secs(1),
            request_header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            request_body_timeout: Duration::from_secs(60),
            max_connections_per_client: 1,
        };
        // a fresh connection owes its first request head within the header timeout
        let a = Activity::new();
        let started = Instant::now();
        assert_eq!(a.expired(&limits).await, "request header timeout");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        // in flight: never expires; after the response, the idle timeout runs
        let a = Arc::new(Activity::new());
        a.request_started();
        let waiter = tokio::spawn({
            let a = a.clone();
            let limits = limits.clone();
            async move { (a.expired(&limits).await, Instant::now()) }
        });
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!waiter.is_finished(), "a long request is not cut");
        a.response_done();
        let idle_from = Instant::now();
        // a first byte of the next request switches to the header timeout, counted from that byte
        tokio::time::sleep(Duration::from_secs(30)).await;
        a.bytes_read();
        let byte_at = Instant::now();
        let (why, at) = waiter.await.expect("watchdog");
        assert_eq!(why, "request header timeout");
        assert_eq!(at - byte_at, Duration::from_secs(5));
        assert!(at - idle_from < limits.idle_timeout);
        // idle with no byte: the idle timeout
        let a = Activity::new();
        a.request_started();
        a.response_done();
        let from = Instant::now();
        assert_eq!(a.expired(&limits).await, "idle timeout");
        assert_eq!(from.elapsed(), Duration::from_secs(60));
    }
}
