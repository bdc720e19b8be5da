//! The dashboard's HTTP server: loopback only, every request checked for the token (in the URL's `token`
//! query parameter or, after the first page load, an HttpOnly cookie), the page and its assets embedded in the
//! binary, the live stream, and the inspections of a pod, a node and a Service and a pod's trace, fetched through
//! the apiserver (and its node proxy) with the caller's credentials.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rkube_kubelet::inspect::client::{self as inspect, InspectClientError};
use tokio::net::TcpListener;

use crate::token::Token;
use crate::{assets, stream, trace};

/// Why the dashboard could not listen or serve.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The port could not be bound on 127.0.0.1.
    #[error("listen on 127.0.0.1:{port}: {source} (pick another with --port, or --port 0 for any free one)")]
    Bind {
        /// The port asked for.
        port: u16,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed after the listener was bound.
    #[error("serve the dashboard on {addr}: {source}")]
    Serve {
        /// The address listened on.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// What every handler shares.
struct Shared {
    client: kube::Client,
    token: Token,
    /// `rkube_dashboard_<port>`: cookies do not tell ports apart, so two dashboards each keep their own
    cookie: String,
    port: u16,
}

/// A listener on 127.0.0.1 (never another address: the dashboard acts with the caller's credentials).
pub async fn bind(port: u16) -> Result<TcpListener, ServerError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await.map_err(|source| ServerError::Bind { port, source })
}

/// The URL to open: `http://127.0.0.1:<port>/?token=<token>`.
pub fn url(addr: SocketAddr, token: &Token) -> String {
    format!("http://{addr}/?token={}", token.as_str())
}

/// Serves until `shutdown` completes. Boxed here, so the router is compiled once, in this crate, and not again
/// in the binary that awaits it.
pub fn serve(
    listener: TcpListener,
    client: kube::Client,
    token: Token,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> futures::future::BoxFuture<'static, Result<(), ServerError>> {
    Box::pin(serve_until(listener, client, token, Box::pin(shutdown)))
}

async fn serve_until(listener: TcpListener, client: kube::Client, token: Token, shutdown: futures::future::BoxFuture<'static, ()>) -> Result<(), ServerError> {
    let addr = listener.local_addr().map_err(|source| ServerError::Serve { addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), source })?;
    let shared = Arc::new(Shared { client, token, cookie: format!("rkube_dashboard_{}", addr.port()), port: addr.port() });
    let app = router(shared);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.map_err(|source| ServerError::Serve { addr, source })
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", assets::APP_JS) }))
        .route("/assets/app.css", get(|| async { asset("text/css; charset=utf-8", assets::APP_CSS) }))
        .route("/api/stream", get(live))
        .route("/api/inspect/pods/{namespace}/{name}", get(inspect_pod))
        .route("/api/inspect/nodes/{name}", get(inspect_node))
        .route("/api/inspect/services/{namespace}/{name}", get(inspect_service))
        .route("/api/trace/pods/{namespace}/{name}", get(trace_pod))
        .route("/api/trace/pods/{namespace}/{name}/follow", get(follow_pod))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

/// The query's `token` parameter, if any.
fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|kv| kv.strip_prefix("token=")).map(str::to_string)
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').map(str::trim).find_map(|c| c.strip_prefix(name)?.strip_prefix('='))
}

/// Whether the Host header names this server (a page of another site that resolves its name to 127.0.0.1,
/// DNS rebinding, sends its own name).
fn host_allowed(host: Option<&str>, port: u16) -> bool {
    host.is_some_and(|h| h == format!("127.0.0.1:{port}") || h == format!("localhost:{port}"))
}

/// Every request: the right Host, and the token (URL or cookie), else 401 with nothing of the cluster. A
/// request that brought the token in the URL gets it back as an HttpOnly, SameSite=Strict cookie, so the page's
/// own requests need not carry it.
async fn guard(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    if !host_allowed(host, shared.port) {
        return (StatusCode::FORBIDDEN, format!("403 Forbidden: the dashboard answers http://127.0.0.1:{}/ only\n", shared.port)).into_response();
    }
    let from_url = query_token(req.uri().query()).filter(|t| shared.token.matches(t)).is_some();
    let from_cookie = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .filter_map(|h| cookie_value(h, &shared.cookie))
        .any(|t| shared.token.matches(t));
    if !from_url && !from_cookie {
        let mut resp = (StatusCode::UNAUTHORIZED, "401 Unauthorized: open the URL that rkube dashboard printed (it carries ?token=...)\n").into_response();
        secure_headers(&mut resp);
        return resp;
    }
    let mut resp = next.run(req).await;
    if from_url {
        let cookie = format!("{}={}; HttpOnly; SameSite=Strict; Path=/", shared.cookie, shared.token.as_str());
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    secure_headers(&mut resp);
    resp
}

/// No inline or foreign script, style or frame; the token-bearing URL is never sent on as a Referer; nothing
/// cached.
fn secure_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", assets::INDEX_HTML)
}

async fn live(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    tracing::info!("dashboard: a page opened the live stream");
    Sse::new(stream::cluster_stream(&shared.client)).keep_alive(KeepAlive::default())
}

/// `rkube inspect pod`'s document as JSON, or `{"error": ...}` with the status that fits.
async fn inspect_pod(State(shared): State<Arc<Shared>>, Path((namespace, name)): Path<(String, String)>) -> Response {
    inspected(inspect::fetch_pod(&shared.client, &namespace, &name).await)
}

/// `rkube inspect node NAME`'s document.
async fn inspect_node(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    inspected(inspect::fetch_node(&shared.client, Some(&name)).await)
}

/// `rkube inspect service NAME -n NS`'s document (the first Ready node's proxy rules).
async fn inspect_service(State(shared): State<Arc<Shared>>, Path((namespace, name)): Path<(String, String)>) -> Response {
    inspected(inspect::fetch_service(&shared.client, &namespace, &name, None).await)
}

/// An inspection as JSON, or `{"error": ...}` with the message `rkube inspect` prints and the status that fits.
fn inspected<T: serde::Serialize>(r: Result<T, InspectClientError>) -> Response {
    match r {
        Ok(doc) => axum::Json(doc).into_response(),
        Err(e) => {
            let status = match &e {
                InspectClientError::PodNotFound { .. } | InspectClientError::NodeNotFound { .. } | InspectClientError::ServiceNotFound { .. } => {
                    StatusCode::NOT_FOUND
                }
                InspectClientError::NotScheduled { .. } | InspectClientError::NotStarted { .. } | InspectClientError::NoReadyNode { .. } => {
                    StatusCode::CONFLICT
                }
                _ => StatusCode::BAD_GATEWAY,
            };
            error_response(status, &e)
        }
    }
}

fn error_response(status: StatusCode, e: &dyn std::fmt::Display) -> Response {
    (status, axum::Json(serde_json::json!({ "error": e.to_string() }))).into_response()
}

/// `rkube trace pod`'s timeline with each step's words, or `{"error": ...}`.
async fn trace_pod(State(shared): State<Arc<Shared>>, Path((namespace, name)): Path<(String, String)>) -> Response {
    match trace::fetch_pod_trace(&shared.client, &namespace, &name).await {
        Ok(t) => axum::Json(t).into_response(),
        Err(e) => error_response(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY), &e),
    }
}

/// The pod's new steps live, as server-sent events ([`trace::follow_stream`]).
async fn follow_pod(State(shared): State<Arc<Shared>>, Path((namespace, name)): Path<(String, String)>) -> impl IntoResponse {
    Sse::new(trace::follow_stream(shared.client.clone(), namespace, name)).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_from_the_query_and_the_cookie() {
        assert_eq!(query_token(Some("a=1&token=abc")).as_deref(), Some("abc"));
        assert_eq!(query_token(Some("xtoken=abc")), None);
        assert_eq!(query_token(None), None);
        assert_eq!(cookie_value("a=b; rkube_dashboard_80=tok; c=d", "rkube_dashboard_80"), Some("tok"));
        assert_eq!(cookie_value("rkube_dashboard_8000=tok", "rkube_dashboard_80"), None);
    }

    #[test]
    fn an_inspection_that_fails_answers_the_status_that_fits() {
        let cases: [(InspectClientError, u16, &str); 4] = [
            (InspectClientError::NodeNotFound { node: "n9".into() }, 404, "node n9 not found"),
            (InspectClientError::ServiceNotFound { service: "default/nope".into(), ns: "default".into() }, 404, "service default/nope not found"),
            (InspectClientError::NoReadyNode { service: "default/web".into() }, 409, "no Ready node"),
            (InspectClientError::Fetch { what: "node n1".into(), node: "n1".into(), message: "503".into() }, 502, "inspect node n1 on node n1: 503"),
        ];
        for (e, status, text) in cases {
            let resp = inspected::<()>(Err(e));
            assert_eq!(resp.status().as_u16(), status, "{text}");
        }
        let t = rkube_trace::fetch::TraceFetchError::NoContext { pod: "default/p".into(), annotation: "rkube.io/traceparent" };
        assert_eq!(t.status(), 409);
        assert!(t.to_string().starts_with("pod default/p has no trace context (annotation rkube.io/traceparent)"), "{t}");
    }

    #[test]
    fn only_this_servers_own_host_names_are_allowed() {
        assert!(host_allowed(Some("127.0.0.1:8001"), 8001));
        assert!(host_allowed(Some("localhost:8001"), 8001));
        assert!(!host_allowed(Some("evil.example:8001"), 8001));
        assert!(!host_allowed(Some("127.0.0.1:8002"), 8001));
        assert!(!host_allowed(None, 8001));
    }
}
