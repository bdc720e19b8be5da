//! The reverse proxy: HTTP and HTTPS listeners (HTTP/1.x on both, HTTP/2 over TLS when the client's ALPN asks for
//! `h2`, as ingress-nginx: no cleartext HTTP/2 on the plain port), one routing decision per
//! request from what [`Live`] serves now, and the request forwarded to one endpoint of the chosen backend over
//! pooled HTTP/1.1 keep-alive connections. On the plain port, simple requests (no body, no upgrade: nearly all)
//! are read and answered by `http1` and forwarded by `upstream`, without hyper; the rest of a connection
//! from its first other request, HTTPS, and requests with a body go through hyper's server and client. Bodies
//! stream both ways as they arrive, but for a small answer of known
//! length ([`BUFFER_LIMIT`]), read whole and sent with its head in one write, as nginx's `proxy_buffering`; an
//! `Upgrade` (WebSocket and the like) gets a connection of its own to the endpoint and, once the endpoint
//! answers 101, the two sockets are spliced until either side closes.
//!
//! What a client gets when nothing can serve it: 404 when no rule matches and there is no default backend, 503
//! when the backend has no ready endpoint (or its Service or port is missing), 502 when the endpoint fails.
//! Each with a one-line plain-text body that says which.
//!
//! Must not: hold a [`Live`] snapshot across requests (a reload reaches the next request on every open
//! connection); close connections on a reload; pass hop-by-hop headers through.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::compile::Backend;
use crate::http1;
use crate::live::{Live, LiveView};
use crate::pool::Pool;
use crate::routing::Route;
use crate::upstream;

/// What the proxy answers with: the endpoint's body as it streams, or a short one of ours.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// How often a worker closes its pool's connections that have been idle too long. Short on purpose: this tick
/// keeps the worker's timer driver from ever sleeping towards a deadline further than 1 s away, and tokio wakes
/// its own driver (a write to its eventfd, and one more event to take) whenever a new timer is due before the
/// deadline the driver sleeps towards: without the tick that was every connect's timeout (5 s), once per request.
const REAP_PERIOD: Duration = Duration::from_secs(1);

/// How long a client has for the TLS handshake and for each request head.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting to an endpoint may take before the request fails with 502.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Hop-by-hop headers (RFC 9110 section 7.6.1): never forwarded (nor Upgrade, but for an upgrade).
pub(crate) const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// The headers the proxy sets itself ([`forwarded_headers`]): a client's own are replaced, never passed on.
pub(crate) static SET_BY_PROXY: [&HeaderName; 5] = [
    &X_FORWARDED_FOR,
    &X_FORWARDED_HOST,
    &X_FORWARDED_PORT,
    &X_FORWARDED_PROTO,
    &X_REAL_IP,
];

/// The threads that serve requests, as nginx's worker processes do: each runs its own single-threaded event loop
/// (a tokio current-thread runtime) that accepts from both listeners (its own copies of the same sockets), reads
/// the request, connects to the endpoint, and relays the answer, so a request never waits for a wake-up from
/// another thread; each keeps its own pool of keep-alive connections to endpoints (nginx's are per worker too).
/// The watches and the compile stay on the caller's runtime; what they build reaches the workers through
/// [`Live`].
///
/// Stopped (by [`Workers::stop`] or on drop): the workers stop accepting at once; connections that are open then
/// are served to their end, after which each thread exits.
pub struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
}

impl Workers {
    /// Starts `n` worker threads serving plain HTTP on `http` and HTTPS on `https` (non-blocking std listeners).
    pub fn start(
        n: usize,
        live: Arc<Live>,
        http: std::net::TcpListener,
        https: std::net::TcpListener,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Workers> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let workers = Workers { stop };
        // worker 0 takes the given sockets, each other one a socket of its own on the same addresses (SO_REUSEPORT,
        // [`crate::listen`]): the kernel gives a new connection to one worker, and wakes no other
        let (http_addr, https_addr) = (http.local_addr()?, https.local_addr()?);
        let mut given = Some((http, https));
        for i in 0..n.max(1) {
            let (http, https) = match given.take() {
                Some(both) => both,
                None => (
                    crate::listen_again(http_addr, "http").map_err(std::io::Error::other)?,
                    crate::listen_again(https_addr, "https").map_err(std::io::Error::other)?,
                ),
            };
            let (live, tls, mut stopped) = (live.clone(), tls.clone(), stopped.clone());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name(format!("ingress-{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        let (http, https) = match (
                            TcpListener::from_std(http),
                            TcpListener::from_std(https),
                        ) {
                            (Ok(a), Ok(b)) => (a, b),
                            (Err(e), _) | (_, Err(e)) => {
                                tracing::error!(worker = i, error = %e, "ingress: worker cannot listen");
                                return;
                            }
                        };
                        let proxy = Proxy::new(live);
                        tokio::select! {
                            _ = proxy.clone().serve_http(http) => {}
                            _ = proxy.clone().serve_https(https, tls) => {}
                            _ = proxy.clone().reap_every(REAP_PERIOD) => {}
                            _ = stopped.wait_for(|s| *s) => {}
                        }
                        // the listeners are closed; open connections (tasks of this runtime) run to their end,
                        // then the pool's idle connections go with the last reference to the proxy
                        drop(proxy);
                        let metrics = tokio::runtime::Handle::current().metrics();
                        while metrics.num_alive_tasks() > 0 {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    })
                })?;
        }
        Ok(workers)
    }

    /// Stops accepting (open connections are served to their end).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The listener a request came in on.
#[derive(Debug, Clone)]
struct Listener {
    https: bool,
    /// Its port as the X-Forwarded-Port value, made once per worker (a request clones it, no allocation).
    port: HeaderValue,
}

impl Listener {
    fn new(https: bool, port: u16) -> Listener {
        Listener {
            https,
            port: HeaderValue::from(port),
        }
    }
}

/// The reverse proxy; one per worker thread, shared by both listeners.
pub struct Proxy {
    live: LiveView,
    /// Keep-alive connections to endpoints for requests without a body, spoken by [`upstream`].
    conns: Arc<Pool<upstream::Conn>>,
    /// Hyper's, for requests with a body.
    pool: Arc<Pool<HyperSender>>,
    /// HTTP/1.x, on both listeners. The protocol is known before the first read (the plain port speaks HTTP/1,
    /// TLS says by ALPN), so no read is spent sniffing for the HTTP/2 preface, as hyper-util's `auto` does
    /// (a 24-byte read of its own on every connection).
    http1: hyper::server::conn::http1::Builder,
    /// HTTP/2, for TLS clients that negotiated `h2`.
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

impl Proxy {
    /// A proxy serving what `live` holds, with an empty pool; its connections and their tasks run on the
    /// current (worker's) runtime.
    pub fn new(live: Arc<Live>) -> Arc<Proxy> {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new());
        Arc::new(Proxy {
            live: live.view(),
            conns: Arc::new(Pool::default()),
            pool: Arc::new(Pool::default()),
            http1,
            http2,
        })
    }

    /// Closes both pools' idle connections that are too old or were closed, every `period`, forever.
    async fn reap_every(self: Arc<Self>, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            self.conns.reap();
            self.pool.reap();
        }
    }

    /// Serves plain HTTP on `listener` until the task is dropped (open connections go on).
    pub async fn serve_http(self: Arc<Self>, listener: TcpListener) {
        let on = Listener::new(false, listener.local_addr().map(|a| a.port()).unwrap_or(80));
        loop {
            let Some((tcp, peer)) = accept(&listener).await else {
                continue;
            };
            let client = Client::new(peer, on.clone());
            tokio::spawn(self.clone().serve_plain(tcp, client));
        }
    }

    /// Serves HTTPS on `listener` until the task is dropped (open connections go on).
    pub async fn serve_https(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
    ) {
        let on = Listener::new(true, listener.local_addr().map(|a| a.port()).unwrap_or(443));
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let Some((tcp, peer)) = accept(&listener).await else {
                continue;
            };
            let (proxy, client) = (self.clone(), Client::new(peer, on.clone()));
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let stream =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "ingress: TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "ingress: TLS handshake timed out");
                            return;
                        }
                    };
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                proxy
                    .serve_connection(TokioIo::new(stream), client, h2)
                    .await
            });
        }
    }

    /// Serves a plain-HTTP client connection: its simple requests by [`http1`], and from the first request that is
    /// not, the rest of the connection by hyper.
    async fn serve_plain(self: Arc<Self>, tcp: TcpStream, client: Arc<Client>) {
        let mut conn = http1::ClientConn::new(tcp);
        loop {
            let next = conn.next_request(|req| (http1::Served::of(req), self.plan(req, &client)));
            let (served, plan) = match tokio::time::timeout(HEADER_READ_TIMEOUT, next).await {
                Ok(http1::Next::Request(request)) => request,
                Ok(http1::Next::Other) => break,
                Ok(http1::Next::Closed) | Err(_) => return,
            };
            let (parts, body) = match plan {
                Plan::Answer(status, body) => text_answer(status, body),
                Plan::Forward {
                    backend,
                    endpoint,
                    method,
                    head,
                } => {
                    let method = method.as_str();
                    match upstream::send(
                        &self.conns,
                        endpoint,
                        &head,
                        method,
                        CONNECT_TIMEOUT,
                        BUFFER_LIMIT,
                    )
                    .await
                    {
                        Ok((mut parts, body)) => {
                            strip_hop_by_hop(&mut parts.headers);
                            (parts, body)
                        }
                        Err(e) => {
                            let (status, body) = bad_gateway(&backend, endpoint, &e);
                            text_answer(status, body)
                        }
                    }
                }
            };
            if !conn.answer(parts, body, &served).await {
                return;
            }
        }
        // the connection's end is its close, without a shutdown(2) before (nginx's too), unless it was upgraded
        let http1::ClientConn { tcp, buf } = conn;
        let tcp = CloseOnly {
            tcp,
            upgrade_of: Some(client.clone()),
        };
        let io = http1::Rewind::new(buf.freeze(), tcp);
        self.serve_connection(TokioIo::new(io), client, false).await
    }

    /// Where a simple request goes, and its head for the endpoint; or the answer when it goes nowhere.
    fn plan(&self, req: &http1::Simple<'_>, client: &Client) -> Plan {
        match self.choose(req.host, req.path) {
            Err((status, body)) => Plan::Answer(status, body),
            Ok((backend, endpoint)) => {
                let from = http1::Forwarded {
                    ip: client.ip.as_ref().map(HeaderValue::as_bytes),
                    port: client.on.port.as_bytes(),
                    proto: if client.on.https { "https" } else { "http" },
                };
                Plan::Forward {
                    backend,
                    endpoint,
                    method: http::Method::from_bytes(req.method.as_bytes()).unwrap_or_default(),
                    head: http1::endpoint_head(req, &from),
                }
            }
        }
    }

    /// Serves one client connection, HTTP/2 when `h2`, else HTTP/1.x with upgrades.
    async fn serve_connection<I>(self: Arc<Self>, io: I, client: Arc<Client>, h2: bool)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let peer = client.peer;
        let proxy = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let (proxy, client) = (proxy.clone(), client.clone());
            async move { Ok::<_, Infallible>(proxy.handle(req, &client).await) }
        });
        let served = if h2 {
            self.http2.serve_connection(io, service).await
        } else {
            self.http1
                .serve_connection(io, service)
                .with_upgrades()
                .await
        };
        if let Err(e) = served {
            tracing::debug!(%peer, error = %e, "ingress: connection ended with an error");
        }
    }

    /// The backend a request for `host` and `path` goes to, and the endpoint of it that takes this one; or the
    /// answer when there is none: 404 when no rule matches and there is no default backend, 503 when the backend
    /// has no ready endpoint.
    fn choose(
        &self,
        host: &str,
        path: &str,
    ) -> Result<(Arc<Backend>, SocketAddr), (StatusCode, String)> {
        let live = self.live.get();
        let backend = match live.routes.route(host, path) {
            Route::Rule { backend, .. } | Route::Default(backend) => backend.clone(),
            Route::NotFound => {
                return Err((
                    StatusCode::NOT_FOUND,
                    format!("404 Not Found: no ingress rule matches host {host:?} path {path:?}, and no default backend is set\n"),
                ))
            }
        };
        drop(live);
        match backend.pick() {
            Some(endpoint) => Ok((backend, endpoint)),
            None => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "503 Service Unavailable: {}\n",
                    backend.unavailable_message()
                ),
            )),
        }
    }

    async fn handle(&self, mut req: Request<Incoming>, client: &Client) -> Response<ProxyBody> {
        // HTTP/2 carries the host in :authority, HTTP/1.1 in Host (whose value is shared with the request's read
        // buffer: taking it copies nothing)
        let host_value = match req.uri().authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => req.headers().get(header::HOST).cloned(),
        }
        .filter(|v| v.to_str().is_ok());
        let host = host_value
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (backend, endpoint) = match self.choose(host, req.uri().path()) {
            Ok(chosen) => chosen,
            Err((status, body)) => return text(status, body),
        };
        let upgrade = upgrade_protocol(req.headers());
        let client_upgrade = upgrade.is_some().then(|| {
            client.upgraded.store(true, Ordering::Relaxed);
            hyper::upgrade::on(&mut req)
        });
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(proto) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, proto.clone());
        }
        if !parts.headers.contains_key(header::HOST) {
            if let Some(v) = &host_value {
                parts.headers.insert(header::HOST, v.clone());
            }
        }
        forwarded_headers(&mut parts.headers, client, host_value);
        // HTTP/1.1 to the endpoint takes the origin form (path and query); HTTP/2 and absolute-form requests
        // carry the scheme and authority too
        if parts.uri.authority().is_some() || parts.uri.scheme().is_some() {
            parts.uri = match parts.uri.path_and_query() {
                Some(pq) => Uri::from(pq.clone()),
                None => Uri::from_static("/"),
            };
        }
        parts.version = Version::HTTP_11;
        // the answer as it streams, or read whole when small; an endpoint failing before or during it gives 502
        let answered = match client_upgrade {
            // nearly every request: no body (a GET, a HEAD...), over the proxy's own client
            None if hyper::body::Body::is_end_stream(&body) => {
                let head = upstream::encode_request(&parts);
                let method = parts.method.as_str();
                upstream::send(
                    &self.conns,
                    endpoint,
                    &head,
                    method,
                    CONNECT_TIMEOUT,
                    BUFFER_LIMIT,
                )
                .await
                .map(|(parts, body)| {
                    let body = match body {
                        upstream::Body::Whole(whole) => Either::Right(Full::new(whole)),
                        upstream::Body::Streamed(s) => Either::Left(UpstreamBody(Stream::Own(s))),
                    };
                    (parts, body)
                })
            }
            None => {
                self.forward_with_body(endpoint, Request::from_parts(parts, body))
                    .await
            }
            Some(client_upgrade) => {
                forward_upgrade(Request::from_parts(parts, body), endpoint, client_upgrade)
                    .await
                    .map(|resp| {
                        let (parts, body) = resp.into_parts();
                        let body = Stream::Hyper { body, back: None };
                        (parts, Either::Left(UpstreamBody(body)))
                    })
            }
        }
        .map(|(mut parts, body)| {
            if parts.status != StatusCode::SWITCHING_PROTOCOLS {
                strip_hop_by_hop(&mut parts.headers);
            }
            Response::from_parts(parts, body)
        });
        answered.unwrap_or_else(|e| {
            let (status, body) = bad_gateway(&backend, endpoint, &e);
            text(status, body)
        })
    }
}

/// Who a client connection is, for the headers of each of its requests.
struct Client {
    peer: SocketAddr,
    /// The peer's address as a header value (IPv4-mapped IPv6 as IPv4).
    ip: Option<HeaderValue>,
    on: Listener,
    /// Whether a request on it asked to upgrade (its connection's half-close is then passed on: [`CloseOnly`]).
    upgraded: AtomicBool,
}

impl Client {
    /// Made once per connection: the client's address as X-Forwarded-For and X-Real-IP carry it.
    fn new(peer: SocketAddr, on: Listener) -> Arc<Client> {
        Arc::new(Client {
            peer,
            ip: HeaderValue::from_str(&peer.ip().to_canonical().to_string()).ok(),
            on,
            upgraded: AtomicBool::new(false),
        })
    }
}

impl Proxy {
    /// Forwards a request with a body over hyper's client (its body streams to the endpoint as it arrives), on
    /// an idle connection of the pool or a new one; a pooled connection that turns out to be closed before the
    /// request went out is replaced by a new one. The answer's body streams back, or is read whole when small.
    async fn forward_with_body(
        &self,
        endpoint: SocketAddr,
        req: Request<Incoming>,
    ) -> Result<(http::response::Parts, ProxyBody), String> {
        let mut req = req;
        let (sender, resp) = 'sent: {
            while let Some(mut sender) = self.pool.take(endpoint) {
                // ready at once, unless its connection is still taking in the end of the previous answer
                if sender.ready().await.is_err() {
                    continue;
                }
                match sender.try_send_request(req).await {
                    Ok(resp) => break 'sent (sender, resp),
                    Err(mut e) => match e.take_message() {
                        Some(r) => req = r,
                        None => return Err(e.into_error().to_string()),
                    },
                }
            }
            let mut sender = connect(endpoint).await?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            (sender, resp)
        };
        // the connection rides along in the body, back to the pool at the body's end when the endpoint keeps it
        let back = upstream::keeps_alive(resp.version(), resp.headers())
            .then(|| (self.pool.clone(), endpoint, sender));
        let (parts, body) = resp.into_parts();
        if !buffered(&parts) {
            let body = Stream::Hyper { body, back };
            return Ok((parts, Either::Left(UpstreamBody(body))));
        }
        let whole = http_body_util::BodyExt::collect(UpstreamBody(Stream::Hyper { body, back }))
            .await
            .map_err(|e| e.to_string())?;
        Ok((parts, Either::Right(Full::new(whole.to_bytes()))))
    }
}

/// Answers of a known length up to this are read whole before they are passed on (nginx's `proxy_buffering`, on by
/// default, does the same within its buffers' 32-64 KiB).
const BUFFER_LIMIT: u64 = 64 * 1024;

/// Whether an answer is read whole before it is passed on: a known, small length (not an upgrade, not a stream of
/// unknown length such as server-sent events). An endpoint that writes its head and its body apart (busybox httpd:
/// a write for the head, then the file) would otherwise reach the client as two writes, and the client's read of
/// the head alone as one wake-up more; whole, the head and the body leave in one write.
fn buffered(parts: &http::response::Parts) -> bool {
    parts.status != StatusCode::SWITCHING_PROTOCOLS
        && parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n <= BUFFER_LIMIT)
}

/// A new HTTP/1.1 connection to `endpoint`, driven by a task of the current worker.
async fn connect(
    endpoint: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Incoming>, String> {
    let tcp = upstream::connect_tcp(endpoint, CONNECT_TIMEOUT).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(CloseOnly {
        tcp,
        upgrade_of: None,
    }))
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%endpoint, error = %e, "ingress: connection to the endpoint failed");
        }
    });
    Ok(sender)
}

/// A connection whose end is the close when hyper drops it, without a shutdown(2) before: hyper shuts the write
/// side down when it ends a connection (an HTTP/1.0 client's after each answer; an endpoint's when it answers
/// `Connection: close`, as busybox httpd after every answer, or the pool lets it go) and drops it right after,
/// so the shutdown was one syscall more per connection for a FIN the close sends anyway (nginx closes its
/// connections so too). A client connection on which an upgrade was asked for (`upgrade_of`) passes shutdowns
/// on: an upgraded connection's half-close reaches the other side. Endpoint connections for upgrades are never
/// wrapped.
struct CloseOnly {
    tcp: TcpStream,
    upgrade_of: Option<Arc<Client>>,
}

impl AsyncRead for CloseOnly {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for CloseOnly {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match &self.upgrade_of {
            Some(client) if client.upgraded.load(Ordering::Relaxed) => {
                std::pin::Pin::new(&mut self.tcp).poll_shutdown(cx)
            }
            _ => std::task::Poll::Ready(Ok(())),
        }
    }
}

/// An endpoint's answer body as it streams to the client.
pub struct UpstreamBody(Stream);

type HyperSender = hyper::client::conn::http1::SendRequest<Incoming>;

enum Stream {
    /// Read by the proxy's own client; its connection goes back to its pool at the body's end.
    Own(upstream::StreamedBody),
    /// Read by hyper's client, carrying its connection back to the pool once the body has been read to its end
    /// (a body dropped before its end takes its connection with it); none for an upgrade.
    Hyper {
        body: Incoming,
        back: Option<(Arc<Pool<HyperSender>>, SocketAddr, HyperSender)>,
    },
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        let (body, back) = match &mut self.0 {
            Stream::Own(body) => return std::pin::Pin::new(body).poll_frame(cx),
            Stream::Hyper { body, back } => (body, back),
        };
        let polled = std::pin::Pin::new(&mut *body).poll_frame(cx);
        // the end: no more frames, or (a known length) the last one, after which hyper asks no more
        let ended = match &polled {
            std::task::Poll::Ready(None) => true,
            std::task::Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
            _ => false,
        };
        if ended {
            if let Some((pool, endpoint, sender)) = back.take() {
                if !sender.is_closed() {
                    pool.put_back(endpoint, sender);
                }
            }
        }
        polled.map_err(BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Stream::Own(body) => body.is_end_stream(),
            Stream::Hyper { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match &self.0 {
            Stream::Own(body) => body.size_hint(),
            Stream::Hyper { body, .. } => body.size_hint(),
        }
    }
}

/// One accepted connection; None (after a short pause, so a full fd table does not spin) when accept failed.
async fn accept(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    match listener.accept().await {
        // TCP_NODELAY comes from the listener ([`crate::listen`]): one setsockopt less per connection
        Ok((tcp, peer)) => Some((tcp, peer)),
        Err(e) => {
            tracing::warn!(error = %e, "ingress: accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Sends an upgrade request on a connection of its own and, on 101, splices the client's upgraded connection
/// with the endpoint's.
async fn forward_upgrade(
    req: Request<Incoming>,
    endpoint: SocketAddr,
    client_upgrade: hyper::upgrade::OnUpgrade,
) -> Result<Response<Incoming>, String> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(%endpoint, error = %e, "ingress: upgrade connection to the endpoint failed");
        }
    });
    let mut resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let endpoint_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (client, backend) = match tokio::join!(client_upgrade, endpoint_upgrade) {
                (Ok(c), Ok(b)) => (c, b),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::debug!(%endpoint, error = %e, "ingress: upgrade did not complete");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut backend = TokioIo::new(backend);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                tracing::debug!(%endpoint, error = %e, "ingress: upgraded connection ended with an error");
            }
        });
    }
    Ok(resp)
}

/// The protocol a request asks to upgrade to (`Connection: upgrade` with an `Upgrade` header).
fn upgrade_protocol(h: &HeaderMap) -> Option<HeaderValue> {
    let wants = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    wants.then(|| h.get(header::UPGRADE).cloned()).flatten()
}

/// Removes hop-by-hop headers, and those the Connection header names, and Upgrade.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named.iter().chain(HOP_BY_HOP.iter()) {
        h.remove(n);
    }
    h.remove(header::UPGRADE);
}

/// The headers ingress-nginx sets for the endpoint: who the client is and what it asked for (`host`: the
/// request's Host or :authority, empty when it has none). A client's own X-Forwarded-* are replaced, not
/// trusted. The values are the connection's and the listener's, cloned (no allocation per request).
fn forwarded_headers(h: &mut HeaderMap, client: &Client, host: Option<HeaderValue>) {
    if let Some(ip) = &client.ip {
        h.insert(X_FORWARDED_FOR.clone(), ip.clone());
        h.insert(X_REAL_IP.clone(), ip.clone());
    }
    h.insert(
        X_FORWARDED_HOST.clone(),
        host.unwrap_or(HeaderValue::from_static("")),
    );
    h.insert(X_FORWARDED_PORT.clone(), client.on.port.clone());
    h.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if client.on.https { "https" } else { "http" }),
    );
}

/// What a simple request comes to.
enum Plan {
    /// An answer of ours (404, 503).
    Answer(StatusCode, String),
    /// To `endpoint` of `backend`, with this head.
    Forward {
        backend: Arc<Backend>,
        endpoint: SocketAddr,
        method: http::Method,
        head: Vec<u8>,
    },
}

/// The answer when an endpoint fails, logged.
fn bad_gateway(backend: &Backend, endpoint: SocketAddr, e: &str) -> (StatusCode, String) {
    tracing::debug!(backend = %backend.name, %endpoint, error = %e, "ingress: endpoint failed");
    (
        StatusCode::BAD_GATEWAY,
        format!(
            "502 Bad Gateway: service {} endpoint {endpoint}: {e}\n",
            backend.name
        ),
    )
}

/// An answer of ours: `status`, and `body` as plain text.
fn text_parts(status: StatusCode, body: String) -> (http::response::Parts, Bytes) {
    let mut parts = Response::new(()).into_parts().0;
    parts.status = status;
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    (parts, Bytes::from(body))
}

/// [`text_parts`] for hyper's server.
fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let (parts, body) = text_parts(status, body);
    Response::from_parts(parts, Either::Right(Full::new(body)))
}

/// [`text_parts`] for [`http1`].
fn text_answer(status: StatusCode, body: String) -> (http::response::Parts, upstream::Body) {
    let (parts, body) = text_parts(status, body);
    (parts, upstream::Body::Whole(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped_and_named_ones_too() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn upgrade_needs_connection_upgrade_and_an_upgrade_header() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(upgrade_protocol(&h), None, "Upgrade alone is no upgrade");
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(
            upgrade_protocol(&h),
            Some(HeaderValue::from_static("websocket"))
        );
        h.remove(header::UPGRADE);
        assert_eq!(upgrade_protocol(&h), None);
    }

    #[test]
    fn small_answers_of_known_length_are_read_whole_and_the_rest_streams() {
        let parts = |status: u16, length: Option<&str>| {
            let mut b = Response::builder().status(status);
            if let Some(l) = length {
                b = b.header(header::CONTENT_LENGTH, l);
            }
            b.body(()).expect("response").into_parts().0
        };
        assert!(buffered(&parts(200, Some("6"))), "a small body");
        assert!(buffered(&parts(404, Some("0"))), "an empty one");
        assert!(buffered(&parts(200, Some("65536"))), "up to the limit");
        assert!(!buffered(&parts(200, Some("65537"))), "over it: streamed");
        assert!(
            !buffered(&parts(200, None)),
            "unknown length (chunked, server-sent events): streamed"
        );
        assert!(
            !buffered(&parts(200, Some("six"))),
            "a length that is not one: streamed"
        );
        assert!(!buffered(&parts(101, Some("0"))), "an upgrade: never");
    }

    #[test]
    fn keep_alive_as_the_endpoint_answers() {
        let resp = |version, connection: Option<&'static str>| {
            let mut r = Response::new(());
            *r.version_mut() = version;
            if let Some(c) = connection {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static(c));
            }
            r
        };
        let keeps_alive = |r: &Response<()>| upstream::keeps_alive(r.version(), r.headers());
        assert!(keeps_alive(&resp(Version::HTTP_11, None)));
        assert!(keeps_alive(&resp(Version::HTTP_11, Some("keep-alive"))));
        assert!(!keeps_alive(&resp(Version::HTTP_11, Some("Close"))));
        assert!(!keeps_alive(&resp(
            Version::HTTP_11,
            Some("x-private, close")
        )));
        assert!(!keeps_alive(&resp(Version::HTTP_10, None)));
        assert!(keeps_alive(&resp(Version::HTTP_10, Some("Keep-Alive"))));
    }

    /// What the controller would compile for one rule (Host bench.example, `/` Prefix) to `endpoint`.
    fn one_rule(endpoint: SocketAddr) -> crate::compile::Compiled {
        use crate::compile::{compile, Snapshot, CONTROLLER};
        let ingress = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"ingressClassName": "rkube", "rules": [{"host": "bench.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "bench", "port": {"number": 80}}}}]}}]}
        }))
        .expect("ingress");
        let class = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "rkube"}, "spec": {"controller": CONTROLLER}}),
        )
        .expect("class");
        let service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"ports": [{"port": 80, "targetPort": endpoint.port()}]}
        }))
        .expect("service");
        let slice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bench-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "bench"}},
            "addressType": "IPv4",
            "ports": [{"port": endpoint.port()}],
            "endpoints": [{"addresses": [endpoint.ip().to_string()]}]
        }))
        .expect("slice");
        compile(Snapshot {
            ingresses: &[ingress],
            classes: &[class],
            services: &[service],
            slices: &[slice],
            secrets: &[],
        })
    }

    /// One worker serving [`one_rule`] to `endpoint` on 127.0.0.1, and its plain port's address.
    fn one_worker(endpoint: SocketAddr) -> (Workers, SocketAddr) {
        let live = Arc::new(Live::new(crate::tls::default_certificate().expect("cert")));
        live.swap(one_rule(endpoint));
        let http = crate::listen("127.0.0.1:0".parse().expect("addr"), "http").expect("http");
        let https = crate::listen("127.0.0.1:0".parse().expect("addr"), "https").expect("https");
        let http_addr = http.local_addr().expect("http addr");
        let tls = crate::tls::server_config(live.clone()).expect("tls");
        let workers = Workers::start(1, live, http, https, tls).expect("workers");
        (workers, http_addr)
    }

    /// An endpoint (hyper's server) that answers each request with what it got: the method and target, the
    /// headers as `name: value` lines, a blank line and the body; `/chunked` in two chunks of unknown length.
    async fn echo_endpoint() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind endpoint");
        let addr = listener.local_addr().expect("endpoint addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let mut text = format!("{} {}\n", req.method(), req.uri());
                        for (n, v) in req.headers() {
                            text += &format!("{n}: {}\n", v.to_str().unwrap_or("?"));
                        }
                        text += "\n";
                        let chunked = req.uri().path() == "/chunked";
                        let body = http_body_util::BodyExt::collect(req.into_body())
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        text += &String::from_utf8_lossy(&body);
                        let body: http_body_util::combinators::BoxBody<Bytes, Infallible> =
                            if chunked {
                                let frames = futures::stream::iter([
                                    Ok(hyper::body::Frame::data(Bytes::from("part one, "))),
                                    Ok(hyper::body::Frame::data(Bytes::from("part two"))),
                                ]);
                                http_body_util::BodyExt::boxed(http_body_util::StreamBody::new(
                                    frames,
                                ))
                            } else {
                                http_body_util::BodyExt::boxed(Full::new(Bytes::from(text)))
                            };
                        Ok::<_, Infallible>(Response::new(body))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        addr
    }

    /// Writes `request` on a new connection to `addr`, then reads until the connection closes or `until` is in
    /// what was read (within 5 s).
    async fn exchange_raw(addr: SocketAddr, request: &[u8], until: Option<&str>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(request).await.expect("write");
        let mut got = Vec::new();
        let read = async {
            let mut chunk = [0u8; 4096];
            loop {
                let n = tcp.read(&mut chunk).await.expect("read");
                got.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&got);
                if n == 0 || until.is_some_and(|u| text.contains(u)) {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("answered within 5 s");
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test]
    async fn pipelined_simple_requests_are_answered_in_order_with_the_headers_ingress_nginx_sets() {
        let (_workers, addr) = one_worker(echo_endpoint().await);
        let got = exchange_raw(
            addr,
            b"GET /one?x=1 HTTP/1.1\r\nHost: bench.example\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nTE: trailers\r\nAccept: */*\r\n\r\n\
              HEAD /two HTTP/1.1\r\nHost: bench.example\r\n\r\n\
              GET /three HTTP/1.1\r\nHost: bench.example\r\nConnection: close\r\n\r\n",
            None,
        )
        .await;
        let answers: Vec<&str> = got.split("HTTP/1.1 200 OK\r\n").skip(1).collect();
        assert_eq!(
            answers.len(),
            3,
            "three answers, then the close the client asked for: {got}"
        );
        let first = answers[0];
        assert!(first.contains("GET /one?x=1\n"), "{first}");
        assert!(
            first.contains("x-forwarded-for: 127.0.0.1\n"),
            "the client's own is replaced: {first}"
        );
        for header in [
            "x-real-ip: 127.0.0.1",
            "x-forwarded-host: bench.example",
            "x-forwarded-proto: http",
            "accept: */*",
        ] {
            assert!(first.to_lowercase().contains(header), "{header} in {first}");
        }
        for dropped in ["x-secret", "connection", "\nte: ", "6.6.6.6"] {
            assert!(
                !first.to_lowercase().contains(dropped),
                "{dropped} is not passed on: {first}"
            );
        }
        assert!(first.contains("date: "), "{first}");
        assert!(
            answers[1].contains("content-length: "),
            "HEAD keeps the length: {}",
            answers[1]
        );
        assert!(
            answers[1].ends_with("\r\n\r\n"),
            "and has no body: {:?}",
            answers[1]
        );
        assert!(
            answers[2].contains("connection: close\r\n"),
            "{}",
            answers[2]
        );
        assert!(answers[2].contains("GET /three\n"), "{}", answers[2]);
    }

    #[tokio::test]
    async fn http10_closes_unless_asked_and_gets_unknown_lengths_until_close() {
        let (_workers, addr) = one_worker(echo_endpoint().await);
        let got = exchange_raw(
            addr,
            b"GET /a HTTP/1.0\r\nHost: bench.example\r\n\r\n",
            None,
        )
        .await;
        assert!(
            got.starts_with("HTTP/1.1 200 OK\r\n") && got.contains("GET /a\n"),
            "{got}"
        );
        let got = exchange_raw(
            addr,
            b"GET /chunked HTTP/1.0\r\nHost: bench.example\r\n\r\n",
            None,
        )
        .await;
        assert!(!got.contains("transfer-encoding"), "{got}");
        assert!(
            got.ends_with("\r\n\r\npart one, part two"),
            "until close: {got:?}"
        );
        let got = exchange_raw(
            addr,
            b"GET /a HTTP/1.0\r\nHost: bench.example\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nHost: bench.example\r\n\r\n",
            None,
        )
        .await;
        assert!(got.contains("connection: keep-alive\r\n"), "{got}");
        assert!(
            got.contains("GET /a\n") && got.contains("GET /b\n"),
            "{got}"
        );
    }

    #[tokio::test]
    async fn an_unknown_length_goes_chunked_to_http11() {
        let (_workers, addr) = one_worker(echo_endpoint().await);
        let got = exchange_raw(
            addr,
            b"GET /chunked HTTP/1.1\r\nHost: bench.example\r\n\r\n",
            Some("0\r\n\r\n"),
        )
        .await;
        assert!(got.contains("transfer-encoding: chunked\r\n"), "{got}");
        assert!(
            got.ends_with("\r\n\r\na\r\npart one, \r\n8\r\npart two\r\n0\r\n\r\n"),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_request_with_a_body_is_handed_to_hyper_with_what_was_read() {
        let (_workers, addr) = one_worker(echo_endpoint().await);
        // a simple request first, then one with a body: the second (and the rest) goes to hyper
        let got = exchange_raw(
            addr,
            b"GET /first HTTP/1.1\r\nHost: bench.example\r\n\r\n\
              POST /form HTTP/1.1\r\nHost: bench.example\r\nContent-Length: 5\r\n\r\nhello\
              GET /last HTTP/1.1\r\nHost: bench.example\r\nConnection: close\r\n\r\n",
            None,
        )
        .await;
        assert!(got.contains("GET /first\n"), "{got}");
        assert!(
            got.contains("POST /form\n") && got.contains("\n\nhello"),
            "{got}"
        );
        assert!(got.contains("GET /last\n"), "{got}");
        let got = exchange_raw(addr, b"NOT HTTP AT ALL\r\n\r\n", None).await;
        assert!(got.starts_with("HTTP/1.1 400"), "hyper's 400: {got}");
    }

    #[tokio::test]
    async fn no_rule_is_404_and_a_dead_endpoint_502_on_a_connection_kept_open() {
        let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let dead_addr = dead.local_addr().expect("addr");
        drop(dead);
        let (_workers, addr) = one_worker(dead_addr);
        let got = exchange_raw(
            addr,
            b"GET /x HTTP/1.1\r\nHost: other.example\r\n\r\nGET /y HTTP/1.1\r\nHost: bench.example\r\nConnection: close\r\n\r\n",
            None,
        )
        .await;
        assert!(got.starts_with("HTTP/1.1 404 Not Found\r\n"), "{got}");
        assert!(
            got.contains("no ingress rule matches host \"other.example\" path \"/x\""),
            "{got}"
        );
        assert!(
            got.contains("content-type: text/plain; charset=utf-8\r\n"),
            "{got}"
        );
        assert!(got.contains("HTTP/1.1 502 Bad Gateway\r\n"), "{got}");
        assert!(got.contains("connect: "), "{got}");
    }

    /// Requests through a worker to an endpoint that keeps connections alive, or closes each: how many
    /// connections the endpoint accepted for `requests` requests sent one after another on one client connection.
    async fn endpoint_connections(endpoint_keeps_alive: bool, requests: usize) -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let endpoint = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind endpoint");
        let endpoint_addr = endpoint.local_addr().expect("endpoint addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = endpoint.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(endpoint_keeps_alive)
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        let (workers, http_addr) = one_worker(endpoint_addr);

        let tcp = TcpStream::connect(http_addr).await.expect("connect");
        let (mut client, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        for i in 0..requests {
            let req = Request::builder()
                .uri("/")
                .header(header::HOST, "bench.example")
                .body(http_body_util::Empty::<Bytes>::new())
                .expect("request");
            let resp = client.send_request(req).await.expect("response");
            assert_eq!(resp.status(), StatusCode::OK, "request {i}");
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .expect("body")
                .to_bytes();
            assert_eq!(&body[..], b"ok", "request {i}");
            // the connection goes back to the pool once the body has been relayed: wait for the next one
            client.ready().await.expect("client connection ready");
        }
        workers.stop();
        accepted.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_kept_alive_endpoint_connection_is_reused() {
        assert_eq!(endpoint_connections(true, 3).await, 1);
    }

    #[tokio::test]
    async fn an_endpoint_that_closes_gets_a_new_connection_per_request() {
        assert_eq!(endpoint_connections(false, 3).await, 3);
    }

    #[test]
    fn forwarded_headers_replace_the_clients() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        let peer: SocketAddr = "[::ffff:10.1.2.3]:5555".parse().expect("addr");
        let client = Client::new(peer, Listener::new(true, 443));
        forwarded_headers(&mut h, &client, Some(HeaderValue::from_static("a.example")));
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-real-ip"], "10.1.2.3");
        assert_eq!(h["x-forwarded-host"], "a.example");
        assert_eq!(h["x-forwarded-port"], "443");
        assert_eq!(h["x-forwarded-proto"], "https");
    }
}
