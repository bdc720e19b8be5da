//! Subresources served by the kubelet: `pods/log` is proxied to the kubelet of the pod's node
//! (`GET http://<node InternalIP>:<kubelet port>/containerLogs/<ns>/<pod>/<container>?follow=...`), streaming
//! the response back. The kubelet port comes from the Node's `status.daemonEndpoints.kubeletEndpoint.Port`.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use http::{header, StatusCode};
use serde_json::Value;

use crate::handlers::context::{read_object, Ctx};
use crate::registry;
use crate::status::ApiError;

pub use crate::config::KubeletClientTls;


impl KubeletClientTls {
    fn rustls_config(&self) -> Result<std::sync::Arc<rustls::ClientConfig>, ApiError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |what: &str| ApiError::internal(format!("kubelet client TLS: {what} is not valid PEM"));
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()).collect::<Result<_, _>>().map_err(|_| bad("the client certificate"))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|_| bad("the client key"))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let builder = match &self.ca_pem {
            Some(ca_pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                    roots.add(ca.map_err(|_| bad("the kubelet CA"))?).map_err(|e| ApiError::internal(format!("kubelet CA: {e}")))?;
                }
                builder.with_root_certificates(roots)
            }
            None => builder.dangerous().with_custom_certificate_verifier(std::sync::Arc::new(AnyKubeletCert(provider))),
        };
        let mut config = builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| ApiError::internal(format!("kubelet client certificate: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(std::sync::Arc::new(config))
    }

    fn reqwest_client(&self) -> Result<reqwest::Client, ApiError> {
        let id = reqwest::Identity::from_pem(format!("{}\n{}", self.cert_pem, self.key_pem).as_bytes())
            .map_err(|e| ApiError::internal(format!("kubelet client certificate: {e}")))?;
        let builder = reqwest::Client::builder().use_rustls_tls().identity(id);
        let builder = match &self.ca_pem {
            Some(ca_pem) => builder.add_root_certificate(
                reqwest::Certificate::from_pem(ca_pem.as_bytes()).map_err(|e| ApiError::internal(format!("kubelet CA: {e}")))?,
            ),
            None => builder.danger_accept_invalid_certs(true),
        };
        builder
            .build()
            .map_err(|e| ApiError::internal(format!("kubelet client: {e}")))
    }
}

/// Accepts any kubelet serving certificate but still checks the handshake's signatures against it (see
/// [`KubeletClientTls`]).
#[derive(Debug)]
struct AnyKubeletCert(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyKubeletCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `kubelet_url` with the scheme this apiserver uses for kubelets (https when it has a client certificate).
fn with_scheme(url: String, tls: Option<&KubeletClientTls>) -> String {
    match tls {
        Some(_) => url.replacen("http://", "https://", 1),
        None => url,
    }
}

/// Default kubelet port when the node does not report one.
pub const DEFAULT_KUBELET_PORT: i64 = 10250;

/// The kubelet base URL (`http://ip:port`) of a node object.
pub fn kubelet_url(node: &Value) -> Option<String> {
    let addrs = node.pointer("/status/addresses").and_then(Value::as_array)?;
    let ip = ["InternalIP", "ExternalIP", "Hostname"].iter().find_map(|t| {
        addrs
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(t))
            .and_then(|a| a.get("address").and_then(Value::as_str))
    })?;
    let port = node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port").and_then(Value::as_i64).unwrap_or(DEFAULT_KUBELET_PORT);
    Some(format!("http://{ip}:{port}"))
}

/// `pods/log`: the container's log, read from the kubelet of the pod's node (`container`, `follow`,
/// `previous`, `tailLines`... passed on).
pub async fn pod_log(ctx: &Ctx, pod: &Value) -> Result<Response, ApiError> {
    let pods = ctx.info();
    let name = ctx.name();
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let container = match ctx.query.get("container") {
        Some(c) if !c.is_empty() => c.to_string(),
        _ if containers.len() == 1 => containers[0].clone(),
        _ => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!("container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating")));
    }
    let nodes = registry::builtin::NODES;
    let Some((node_obj, _)) = read_object(&ctx.state, nodes, &nodes.key(None, node), node).await? else {
        return Err(ApiError::not_found(nodes, node));
    };
    let tls = ctx.state.config.kubelet_client.as_ref();
    let base = with_scheme(kubelet_url(&node_obj).ok_or_else(|| ApiError::internal(format!("node {node} reports no address")))?, tls);
    let mut url = format!("{base}/containerLogs/{}/{name}/{container}", ctx.target.ns().unwrap_or_default());
    let passthrough: Vec<String> = ctx
        .query
        .raw
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "follow" | "tailLines" | "sinceSeconds" | "sinceTime" | "timestamps" | "previous" | "limitBytes"))
        .map(|(k, v)| format!("{k}={}", form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()))
        .collect();
    if !passthrough.is_empty() {
        url.push('?');
        url.push_str(&passthrough.join("&"));
    }
    let client = match tls {
        Some(t) => t.reqwest_client()?,
        None => reqwest::Client::new(),
    };
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| ApiError::internal(format!("get logs of pod {name} from kubelet {base}: {e}")))?;
    if !resp.status().is_success() {
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let _ = pods;
        return Err(ApiError::new(if code == 404 { 404 } else { 500 }, if code == 404 { "NotFound" } else { "InternalError" }, text.trim().to_string()));
    }
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], Body::from_stream(stream)).into_response())
}

/// Headers not passed on to the kubelet: the client's credentials are for the apiserver only, and the
/// connection-level ones are rewritten by hyper (except the upgrade pair, which must reach the kubelet).
const DROPPED_REQUEST_HEADERS: &[&str] = &["host", "authorization", "proxy-authorization", "keep-alive", "te", "trailer", "transfer-encoding"];

/// Names of the containers of a pod (regular, init and ephemeral).
fn container_names(pod: &Value) -> (Vec<String>, Vec<String>) {
    let names = |p: &str| -> Vec<String> {
        pod.pointer(p)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    };
    let regular = names("/spec/containers");
    let mut all = regular.clone();
    all.extend(names("/spec/initContainers"));
    all.extend(names("/spec/ephemeralContainers"));
    (regular, all)
}

/// `pods/{exec,attach,portforward}`: checks the pod and container as upstream does (errors are Status objects
/// kubectl prints), then proxies the upgrade request to the kubelet of the pod's node and splices the two
/// connections after its `101 Switching Protocols`. The apiserver never interprets SPDY or WebSocket frames.
pub async fn pod_stream(
    state: std::sync::Arc<crate::state::ApiState>,
    ns: &str,
    name: &str,
    sub: &str,
    query: &crate::request::Query,
    req: http::Request<Body>,
) -> Response {
    match pod_stream_inner(&state, ns, name, sub, query, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn pod_stream_inner(
    state: &crate::state::ApiState,
    ns: &str,
    name: &str,
    sub: &str,
    query: &crate::request::Query,
    req: http::Request<Body>,
) -> Result<Response, ApiError> {
    let pods = registry::builtin::PODS;
    let Some((pod, _)) = read_object(state, pods, &pods.key(Some(ns), name), name).await? else {
        return Err(ApiError::not_found(pods, name));
    };
    let query = &query.raw;
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default().to_string();
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let path = if sub == "portforward" {
        if phase == "Succeeded" || phase == "Failed" {
            return Err(ApiError::bad_request(format!("cannot port-forward to a completed pod; current phase is {phase}")));
        }
        format!("/portForward/{}/{}", enc(ns), enc(name))
    } else {
        let (regular, all) = container_names(&pod);
        let container = match query.iter().find(|(k, _)| k == "container").map(|(_, v)| v.clone()).filter(|c| !c.is_empty()) {
            Some(c) => c,
            None if regular.len() == 1 => regular[0].clone(),
            None => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    regular.join(" ")
                )))
            }
        };
        if !all.contains(&container) {
            return Err(ApiError::bad_request(format!("container {container} is not valid for pod {name}")));
        }
        if phase == "Succeeded" || phase == "Failed" {
            return Err(ApiError::bad_request(format!("cannot {sub} into a container in a completed pod; current phase is {phase}")));
        }
        format!("/{sub}/{}/{}/{}", enc(ns), enc(name), enc(&container))
    };
    if node.is_empty() {
        return Err(ApiError::bad_request(format!("pod {name} is not scheduled to a node yet")));
    }
    let rest: Vec<String> = query.iter().filter(|(k, _)| k != "container").map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    let path_and_query = if rest.is_empty() { path } else { format!("{path}?{}", rest.join("&")) };
    let base = node_kubelet(state, &node).await?;
    forward(req, &base, None, &path_and_query, state.config.kubelet_client.as_ref()).await
}

/// The kubelet base URL of node `node`.
async fn node_kubelet(state: &crate::state::ApiState, node: &str) -> Result<String, ApiError> {
    let nodes = registry::builtin::NODES;
    let Some((node_obj, _)) = read_object(state, nodes, &nodes.key(None, node), node).await? else {
        return Err(ApiError::not_found(nodes, node));
    };
    let url = kubelet_url(&node_obj).ok_or_else(|| ApiError::internal(format!("node {node} reports no address for its kubelet")))?;
    Ok(with_scheme(url, state.config.kubelet_client.as_ref()))
}

/// `nodes/{name}/proxy/{path}`: any method, to `http://<kubelet>/{path}?{query}`, unless the node's address is
/// one generic proxying must not reach (see [`proxy_refusal`]).
pub async fn node_proxy(state: std::sync::Arc<crate::state::ApiState>, node: &str, rest: &str, req: http::Request<Body>) -> Response {
    let result = async {
        let base = node_kubelet(&state, node).await?;
        let dial = proxyable_target(&state, node, &base).await?;
        let mut pq = format!("/{}", rest.trim_start_matches('/'));
        if let Some(q) = req.uri().query() {
            pq.push('?');
            pq.push_str(q);
        }
        forward(req, &base, Some(dial), &pq, state.config.kubelet_client.as_ref()).await
    }
    .await;
    result.unwrap_or_else(|e| e.into_response())
}

/// Why generic proxying may not dial `addr`, if it may not. As upstream's `nodes/proxy` (and `pods/proxy`,
/// `services/proxy`): only global unicast addresses (Go's `IsGlobalUnicast`: no loopback, link-local (cloud
/// metadata at 169.254.169.254 included), multicast, unspecified or broadcast address), plus 0.0.0.0/8, which
/// Linux dials as this host; and, beyond upstream, never this apiserver's own listening address (`own`; any
/// local address on its port when it listens on all of them).
///
/// This is for the generic proxy only: logs, exec, attach and port-forward go to fixed kubelet paths
/// (`/containerLogs`, `/exec`...) that name nothing on an apiserver, so a node whose kubelet is on loopback
/// (tests, one-machine setups) keeps them, as upstream does.
pub fn proxy_refusal(addr: SocketAddr, own: SocketAddr) -> Option<&'static str> {
    refusal(addr, own, &is_local_address)
}

fn refusal(addr: SocketAddr, own: SocketAddr, is_local: &dyn Fn(IpAddr) -> bool) -> Option<&'static str> {
    let ip = match addr.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let global_unicast = match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_link_local() || v4.is_multicast() || v4.is_broadcast() || v4.octets()[0] == 0),
        IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || v6.is_unicast_link_local()),
    };
    if !global_unicast {
        return Some("not a global unicast address (loopback, link-local, multicast or unspecified)");
    }
    let own_ip = match own.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let ours = addr.port() == own.port() && if own_ip.is_unspecified() { is_local(ip) } else { ip == own_ip };
    ours.then_some("the apiserver's own address")
}

/// Whether `ip` is an address of this host (binding to it works).
fn is_local_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The address to dial for a node proxy request to `base`: every address its host resolves to must be allowed
/// ([`proxy_refusal`]); upstream's 400 `address not allowed` otherwise. The checked address is the one dialled,
/// so a second resolution cannot swap it.
async fn proxyable_target(state: &crate::state::ApiState, node: &str, base: &str) -> Result<SocketAddr, ApiError> {
    let authority = base.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| ApiError::bad_request(format!("address of node {node} ({authority}) does not resolve: {e}")))?
        .collect();
    let first = *addrs.first().ok_or_else(|| ApiError::bad_request("No addresses for hostname"))?;
    for addr in &addrs {
        if let Some(why) = proxy_refusal(*addr, state.local_addr) {
            tracing::info!(node, %addr, why, "nodes/proxy refused");
            return Err(ApiError::bad_request("address not allowed"));
        }
    }
    Ok(first)
}

/// Sends `req` (method, headers, body) to `base` + `path_and_query` over one HTTP/1.1 connection (to `dial`
/// when given, else to `base`'s host as it resolves). A 101 answer is passed on and the two upgraded
/// connections are spliced until either side closes; any other answer is streamed back as it is.
pub async fn forward(
    req: http::Request<Body>,
    base: &str,
    dial: Option<SocketAddr>,
    path_and_query: &str,
    tls: Option<&KubeletClientTls>,
) -> Result<Response, ApiError> {
    let authority = base.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_string();
    let connected = match dial {
        Some(addr) => tokio::net::TcpStream::connect(addr).await,
        None => tokio::net::TcpStream::connect(&authority).await,
    };
    let tcp = connected.map_err(|e| ApiError::new(503, "ServiceUnavailable", format!("error dialing the kubelet at {authority}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => forward_over(tcp, req, &authority, path_and_query).await,
        Some(t) => {
            let host = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(&authority).trim_matches(|c| c == '[' || c == ']');
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| ApiError::internal(format!("kubelet address {host}: {e}")))?;
            let stream = tokio_rustls::TlsConnector::from(t.rustls_config()?)
                .connect(name, tcp)
                .await
                .map_err(|e| ApiError::new(503, "ServiceUnavailable", format!("TLS handshake with the kubelet at {authority}: {e}")))?;
            forward_over(stream, req, &authority, path_and_query).await
        }
    }
}

async fn forward_over<IO>(io: IO, mut req: http::Request<Body>, authority: &str, path_and_query: &str) -> Result<Response, ApiError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let authority = authority.to_string();
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| ApiError::new(503, "ServiceUnavailable", format!("HTTP handshake with the kubelet at {authority}: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet proxy connection ended");
        }
    });
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (parts, body) = req.into_parts();
    let mut out = http::Request::builder().method(parts.method.clone()).uri(path_and_query);
    for (k, v) in parts.headers.iter() {
        if !DROPPED_REQUEST_HEADERS.contains(&k.as_str()) {
            out = out.header(k, v);
        }
    }
    out = out.header(header::HOST, authority.as_str());
    let out = out.body(body).map_err(|e| ApiError::internal(format!("build the request to the kubelet: {e}")))?;
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| ApiError::new(503, "ServiceUnavailable", format!("request to the kubelet at {authority}: {e}")))?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let kubelet_upgrade = hyper::upgrade::on(&mut resp);
        let mut answer = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
        for (k, v) in resp.headers() {
            answer = answer.header(k, v);
        }
        tokio::spawn(async move {
            let (client, kubelet) = match tokio::try_join!(client_upgrade, kubelet_upgrade) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "stream proxy: upgrade failed");
                    return;
                }
            };
            let mut client = hyper_util::rt::TokioIo::new(client);
            let mut kubelet = hyper_util::rt::TokioIo::new(kubelet);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
                tracing::debug!(error = %e, "stream proxy: connection ended");
            }
        });
        return answer.body(Body::empty()).map_err(|e| ApiError::internal(format!("build the 101 answer: {e}")));
    }
    let (parts, body) = resp.into_parts();
    let mut answer = Response::builder().status(parts.status);
    for (k, v) in parts.headers.iter() {
        if k != header::TRANSFER_ENCODING && k != header::CONNECTION {
            answer = answer.header(k, v);
        }
    }
    // A kubelet error before any upgrade is plain text: turn it into the Status kubectl prints.
    if !parts.status.is_success() && !parts.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes().starts_with(b"application/json")).unwrap_or(false) {
        let bytes = http_body_util_collect(body).await;
        let msg = String::from_utf8_lossy(&bytes).trim().to_string();
        let code = parts.status.as_u16();
        let reason = match code {
            400 => "BadRequest",
            403 => "Forbidden",
            404 => "NotFound",
            _ => "InternalError",
        };
        return Err(ApiError::new(code, reason, msg));
    }
    answer.body(Body::new(body)).map_err(|e| ApiError::internal(format!("build the proxied answer: {e}")))
}

async fn http_body_util_collect(body: hyper::body::Incoming) -> Vec<u8> {
    use futures::StreamExt;
    let mut out = Vec::new();
    let mut stream = Body::new(body).into_data_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        out.extend_from_slice(&chunk);
        if out.len() > 64 * 1024 {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    /// A kubelet stand-in: answers one upgrade request with 101, reports the request head it saw, then echoes
    /// what arrives upper-cased.
    async fn fake_kubelet() -> (u16, tokio::sync::oneshot::Receiver<String>) {
        fake_kubelet_with(None).await
    }

    async fn fake_kubelet_with(tls: Option<tokio_rustls::TlsAcceptor>) -> (u16, tokio::sync::oneshot::Receiver<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.expect("accept");
            match tls {
                None => serve_one(s, tx).await,
                Some(acceptor) => serve_one(acceptor.accept(s).await.expect("TLS handshake with the apiserver"), tx).await,
            }
        });
        (port, rx)
    }

    async fn serve_one<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: S, tx: tokio::sync::oneshot::Sender<String>) {
        {
            let mut r = BufReader::new(s);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).await.expect("read") == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let _ = tx.send(head);
            let mut s = r.into_inner();
            s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
                .await
                .expect("101");
            let mut buf = [0u8; 64];
            loop {
                let n = s.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                let up: Vec<u8> = buf[..n].to_ascii_uppercase();
                if s.write_all(&up).await.is_err() || s.flush().await.is_err() {
                    break;
                }
            }
        }
    }

    async fn server() -> (crate::ApiServer, String) {
        server_with(None).await
    }

    async fn server_with(kubelet_client: Option<KubeletClientTls>) -> (crate::ApiServer, String) {
        let store: Arc<dyn crate::storage::Store> = Arc::new(crate::memory_store::MemoryStore::new());
        let mut config = crate::ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
        config.kubelet_client = kubelet_client;
        let s = crate::ApiServer::start(store, config).await.expect("start");
        let url = s.url();
        (s, url)
    }

    async fn send(method: reqwest::Method, url: &str, ct: &str, body: Value) -> reqwest::Response {
        reqwest::Client::new().request(method, url).header("content-type", ct).body(body.to_string()).send().await.expect("request")
    }

    async fn make_pod(base: &str, kubelet_port: u16) {
        let node = serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
        assert!(send(reqwest::Method::POST, &format!("{base}/api/v1/nodes"), "application/json", node).await.status().is_success());
        let status = serde_json::json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}}}});
        let r = send(reqwest::Method::PATCH, &format!("{base}/api/v1/nodes/n1/status"), "application/merge-patch+json", status).await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}, {"name": "d", "image": "busybox"}]}});
        assert!(send(reqwest::Method::POST, &format!("{base}/api/v1/namespaces/default/pods"), "application/json", pod).await.status().is_success());
    }

    /// Sends an exec upgrade through the apiserver; returns the connection after the 101.
    async fn upgrade_exec(base: &str) -> tokio::net::TcpStream {
        let authority = base.trim_start_matches("http://");
        let mut conn = tokio::net::TcpStream::connect(authority).await.expect("connect");
        let req = format!(
            "POST /api/v1/namespaces/default/pods/p/exec?command=ls&container=c HTTP/1.1\r\nHost: {authority}\r\n\
             Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n"
        );
        conn.write_all(req.as_bytes()).await.expect("write");
        let mut r = BufReader::new(conn);
        let mut line = String::new();
        r.read_line(&mut line).await.expect("status");
        assert!(line.starts_with("HTTP/1.1 101"), "{line}");
        while line != "\r\n" {
            line.clear();
            r.read_line(&mut line).await.expect("header");
        }
        r.into_inner()
    }

    /// A kubelet's TLS side: `serving` as its certificate, client certificates from `client_ca` required.
    fn kubelet_acceptor(serving: &crate::tls::CertPair, client_ca: &str) -> tokio_rustls::TlsAcceptor {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(client_ca.as_bytes()).expect("ca")).expect("add");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().expect("verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(serving.cert.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(serving.key.as_bytes()).expect("key"),
            )
            .expect("server config");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// Exec through the apiserver to a kubelet behind `acceptor`; the bytes come back changed by the kubelet.
    async fn exec_over_tls(acceptor: tokio_rustls::TlsAcceptor, tls: KubeletClientTls) {
        let (kubelet_port, seen) = fake_kubelet_with(Some(acceptor)).await;
        let (_server, base) = server_with(Some(tls)).await;
        make_pod(&base, kubelet_port).await;
        let mut conn = upgrade_exec(&base).await;
        let head = seen.await.expect("kubelet saw the request over TLS");
        assert!(head.starts_with("POST /exec/default/p/c?command=ls HTTP/1.1"), "{head}");
        conn.write_all(b"over-tls").await.expect("write");
        let mut buf = [0u8; 8];
        tokio::time::timeout(std::time::Duration::from_secs(5), conn.read_exact(&mut buf)).await.expect("in time").expect("read");
        assert_eq!(&buf, b"OVER-TLS");
    }

    #[test]
    fn generic_proxying_reaches_global_unicast_addresses_that_are_not_the_apiserver() {
        let own: SocketAddr = "127.0.0.1:6443".parse().expect("addr");
        let refused = |a: &str| proxy_refusal(a.parse().expect("addr"), own).is_some();
        for a in [
            "127.0.0.1:6443", "127.0.0.1:10250", "127.1.2.3:80", "[::1]:10250", "[::ffff:127.0.0.1]:6443", "169.254.169.254:80",
            "[fe80::1]:10250", "224.0.0.1:80", "255.255.255.255:80", "0.0.0.0:6443", "0.1.2.3:80", "[::]:10250",
        ] {
            assert!(refused(a), "{a} must be refused");
        }
        for a in ["10.0.0.5:10250", "192.168.1.9:10250", "172.16.0.1:6443", "8.8.8.8:10250", "[2001:db8::1]:10250"] {
            assert!(!refused(a), "{a} is a node address");
        }
        // listening on all addresses: any address of this host on the apiserver's port is the apiserver
        let all: SocketAddr = "0.0.0.0:6443".parse().expect("addr");
        let host_has = |ip: IpAddr| ip == "10.0.0.5".parse::<IpAddr>().expect("ip");
        assert_eq!(refusal("10.0.0.5:6443".parse().expect("addr"), all, &host_has), Some("the apiserver's own address"));
        assert_eq!(refusal("10.0.0.5:10250".parse().expect("addr"), all, &host_has), None, "another port is a kubelet");
        assert_eq!(refusal("10.0.0.6:6443".parse().expect("addr"), all, &host_has), None, "not an address of this host");
        assert!(is_local_address("127.0.0.1".parse().expect("ip")) && !is_local_address("192.0.2.1".parse().expect("ip")));
        let specific: SocketAddr = "10.0.0.5:6443".parse().expect("addr");
        assert!(proxy_refusal("10.0.0.5:6443".parse().expect("addr"), specific).is_some());
    }

    #[tokio::test]
    async fn kubelets_are_reached_over_https_with_the_apiserver_client_certificate() {
        let dir = tempfile::tempdir().expect("tmp");
        let pki = crate::tls::ensure_pki(dir.path(), &[]).expect("pki");
        let (serving, client) = crate::tls::issue_kubelet_certs(&pki, "n1", &["127.0.0.1".into()]).expect("kubelet certs");
        let tls = KubeletClientTls { ca_pem: Some(pki.ca_cert.clone()), cert_pem: client.cert, key_pem: client.key };
        exec_over_tls(kubelet_acceptor(&serving, &pki.ca_cert), tls).await;
    }

    /// A joined kubelet signs its own serving certificate: accepted only when the apiserver has no kubelet CA
    /// (upstream's default), refused when it has one.
    #[tokio::test]
    async fn a_self_signed_kubelet_is_reached_only_without_a_kubelet_ca() {
        let dir = tempfile::tempdir().expect("tmp");
        let pki = crate::tls::ensure_pki(dir.path(), &[]).expect("pki");
        let client = crate::tls::issue_kubelet_client(&pki).expect("client cert");
        let serving = crate::tls::self_signed_kubelet_serving("n1", &["127.0.0.1".into()]).expect("self-signed");
        let tls = KubeletClientTls { ca_pem: None, cert_pem: client.cert.clone(), key_pem: client.key.clone() };
        exec_over_tls(kubelet_acceptor(&serving, &pki.ca_cert), tls).await;

        let (kubelet_port, _seen) = fake_kubelet_with(Some(kubelet_acceptor(&serving, &pki.ca_cert))).await;
        let strict = KubeletClientTls { ca_pem: Some(pki.ca_cert.clone()), cert_pem: client.cert, key_pem: client.key };
        let (_server, base) = server_with(Some(strict)).await;
        make_pod(&base, kubelet_port).await;
        let r = reqwest::Client::new()
            .post(format!("{base}/api/v1/namespaces/default/pods/p/exec?command=ls&container=c"))
            .header("connection", "Upgrade")
            .header("upgrade", "SPDY/3.1")
            .header("x-stream-protocol-version", "v4.channel.k8s.io")
            .send()
            .await
            .expect("request");
        assert!(!r.status().is_informational() && !r.status().is_success(), "an unverified kubelet was used: {}", r.status());
        let body = r.text().await.unwrap_or_default();
        assert!(body.contains("kubelet") || body.contains("certificate") || body.contains("TLS"), "the error names the cause: {body}");
    }

    #[tokio::test]
    async fn exec_upgrade_is_spliced_to_the_kubelet_and_bad_requests_get_statuses() {
        let (kubelet_port, seen) = fake_kubelet().await;
        let (_server, base) = server().await;
        make_pod(&base, kubelet_port).await;

        // errors before any upgrade are Status objects with kubectl's messages
        let get = |path: &str| {
            let url = format!("{base}{path}");
            async move {
                let r = reqwest::Client::new().post(url).send().await.expect("post");
                (r.status().as_u16(), r.json::<Value>().await.expect("status json"))
            }
        };
        let (code, st) = get("/api/v1/namespaces/default/pods/missing/exec?command=ls").await;
        assert_eq!((code, st["reason"].as_str()), (404, Some("NotFound")));
        let (code, st) = get("/api/v1/namespaces/default/pods/p/exec?command=ls&container=zz").await;
        assert_eq!(code, 400);
        assert_eq!(st["message"], "container zz is not valid for pod p");
        let (code, st) = get("/api/v1/namespaces/default/pods/p/exec?command=ls").await;
        assert_eq!(code, 400);
        assert_eq!(st["message"], "a container name must be specified for pod p, choose one of: [c d]");

        // the upgrade: 101 passed back, bytes spliced both ways
        let authority = base.trim_start_matches("http://");
        let mut conn = tokio::net::TcpStream::connect(authority).await.expect("connect");
        let req = format!(
            "POST /api/v1/namespaces/default/pods/p/exec?command=echo&command=a%20b&container=d&stdout=true HTTP/1.1\r\nHost: {authority}\r\n\
             Authorization: Bearer secret\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n"
        );
        conn.write_all(req.as_bytes()).await.expect("write");
        let mut r = BufReader::new(conn);
        let mut status_line = String::new();
        r.read_line(&mut status_line).await.expect("status");
        assert!(status_line.starts_with("HTTP/1.1 101"), "{status_line}");
        let mut saw_protocol = false;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.expect("header");
            if line == "\r\n" {
                break;
            }
            saw_protocol |= line.to_ascii_lowercase().starts_with("x-stream-protocol-version: v4.channel.k8s.io");
        }
        assert!(saw_protocol, "the kubelet's chosen protocol reaches the client");
        let head = tokio::time::timeout(std::time::Duration::from_secs(5), seen).await.expect("kubelet saw a request").expect("head");
        assert!(head.starts_with("POST /exec/default/p/d?command=echo&command=a+b&stdout=true HTTP/1.1"), "{head}");
        assert!(head.to_ascii_lowercase().contains("upgrade: spdy/3.1"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("authorization"), "client credentials stay at the apiserver: {head}");
        let mut conn = r.into_inner();
        conn.write_all(b"spliced").await.expect("write");
        let mut buf = [0u8; 7];
        tokio::time::timeout(std::time::Duration::from_secs(5), conn.read_exact(&mut buf)).await.expect("echo in time").expect("read");
        assert_eq!(&buf, b"SPLICED");
    }
}
