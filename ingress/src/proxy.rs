//! The reverse proxy: HTTP and HTTPS listeners (HTTP/1.1 and HTTP/2 from clients), one routing decision per
//! request from what [`Live`] serves now, and the request forwarded to one endpoint of the chosen backend over
//! pooled HTTP/1.1 keep-alive connections. Bodies stream both ways as they arrive (nothing is buffered); an
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
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::live::Live;
use crate::routing::Route;

/// What the proxy answers with: the endpoint's body as it streams, or a short one of ours.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// How long a client has for the TLS handshake and for each request head.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting to an endpoint may take before the request fails with 502.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Hop-by-hop headers (RFC 9110 section 7.6.1): never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
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

/// The listener a request came in on.
#[derive(Debug, Clone, Copy)]
struct Listener {
    https: bool,
    port: u16,
}

/// The reverse proxy; one per node, shared by both listeners.
pub struct Proxy {
    live: Arc<Live>,
    client: hyper_util::client::legacy::Client<HttpConnector, Incoming>,
    server: hyper_util::server::conn::auto::Builder<TokioExecutor>,
}

impl Proxy {
    pub fn new(live: Arc<Live>) -> Arc<Proxy> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .build(connector);
        let mut server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        server
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        server.http2().timer(TokioTimer::new());
        Arc::new(Proxy {
            live,
            client,
            server,
        })
    }

    /// Serves plain HTTP on `listener` until the task is dropped (open connections go on).
    pub async fn serve_http(self: Arc<Self>, listener: TcpListener) {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(80);
        loop {
            let Some((tcp, peer)) = accept(&listener).await else {
                continue;
            };
            let proxy = self.clone();
            tokio::spawn(async move {
                proxy
                    .serve_connection(TokioIo::new(tcp), peer, Listener { https: false, port })
                    .await
            });
        }
    }

    /// Serves HTTPS on `listener` until the task is dropped (open connections go on).
    pub async fn serve_https(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
    ) {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(443);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let Some((tcp, peer)) = accept(&listener).await else {
                continue;
            };
            let proxy = self.clone();
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
                proxy
                    .serve_connection(TokioIo::new(stream), peer, Listener { https: true, port })
                    .await
            });
        }
    }

    async fn serve_connection<I>(self: Arc<Self>, io: I, peer: SocketAddr, on: Listener)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let proxy = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, peer, on).await) }
        });
        if let Err(e) = self
            .server
            .serve_connection_with_upgrades(io, service)
            .await
        {
            tracing::debug!(%peer, error = %e, "ingress: connection ended with an error");
        }
    }

    async fn handle(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        on: Listener,
    ) -> Response<ProxyBody> {
        // HTTP/2 carries the host in :authority, HTTP/1.1 in Host
        let host = match req.uri().authority() {
            Some(a) => a.as_str().to_string(),
            None => req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string(),
        };
        let live = self.live.get();
        let backend = match live.routes.route(&host, req.uri().path()) {
            Route::Rule { backend, .. } | Route::Default(backend) => backend.clone(),
            Route::NotFound => {
                return text(
                    StatusCode::NOT_FOUND,
                    format!("404 Not Found: no ingress rule matches host {:?} path {:?}, and no default backend is set\n", host, req.uri().path()),
                )
            }
        };
        drop(live);
        let Some(endpoint) = backend.pick() else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "503 Service Unavailable: {}\n",
                    backend.unavailable_message()
                ),
            );
        };
        let upgrade = upgrade_protocol(req.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(proto) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, proto.clone());
        }
        if !parts.headers.contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(&host) {
                parts.headers.insert(header::HOST, v);
            }
        }
        forwarded_headers(&mut parts.headers, peer, &host, on);
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = match Uri::builder()
            .scheme("http")
            .authority(endpoint.to_string())
            .path_and_query(pq)
            .build()
        {
            Ok(u) => u,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("400 Bad Request: {e}\n")),
        };
        parts.version = Version::HTTP_11;
        let out = Request::from_parts(parts, body);
        let result = match client_upgrade {
            None => self.client.request(out).await.map_err(|e| e.to_string()),
            Some(client_upgrade) => forward_upgrade(out, endpoint, client_upgrade).await,
        };
        match result {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                if parts.status != StatusCode::SWITCHING_PROTOCOLS {
                    strip_hop_by_hop(&mut parts.headers);
                    parts.headers.remove(header::UPGRADE);
                }
                Response::from_parts(parts, Either::Left(body))
            }
            Err(e) => {
                tracing::debug!(backend = %backend.name, %endpoint, error = %e, "ingress: endpoint failed");
                text(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "502 Bad Gateway: service {} endpoint {endpoint}: {e}\n",
                        backend.name
                    ),
                )
            }
        }
    }
}

/// One accepted connection; None (after a short pause, so a full fd table does not spin) when accept failed.
async fn accept(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok((tcp, peer)) => {
            let _ = tcp.set_nodelay(true);
            Some((tcp, peer))
        }
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

/// The headers ingress-nginx sets for the endpoint: who the client is and what it asked for. A client's own
/// X-Forwarded-* are replaced, not trusted.
fn forwarded_headers(h: &mut HeaderMap, peer: SocketAddr, host: &str, on: Listener) {
    let ip = peer.ip().to_canonical().to_string();
    if let Ok(v) = HeaderValue::from_str(&ip) {
        h.insert(X_FORWARDED_FOR.clone(), v.clone());
        h.insert(X_REAL_IP.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert(X_FORWARDED_HOST.clone(), v);
    }
    h.insert(X_FORWARDED_PORT.clone(), HeaderValue::from(on.port));
    h.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if on.https { "https" } else { "http" }),
    );
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
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
    fn forwarded_headers_replace_the_clients() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        let peer: SocketAddr = "[::ffff:10.1.2.3]:5555".parse().expect("addr");
        forwarded_headers(
            &mut h,
            peer,
            "a.example",
            Listener {
                https: true,
                port: 443,
            },
        );
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-real-ip"], "10.1.2.3");
        assert_eq!(h["x-forwarded-host"], "a.example");
        assert_eq!(h["x-forwarded-port"], "443");
        assert_eq!(h["x-forwarded-proto"], "https");
    }
}
