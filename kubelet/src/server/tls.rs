//! HTTPS for the kubelet API (issue 6: "HTTPS, authenticated"; issue 12: authorized): a serving certificate
//! for the node's address, client certificates verified against the cluster CA, and every request through
//! [`super::auth`]: the certificate's user (or a bearer token's, by TokenReview) must be allowed by a
//! SubjectAccessReview, as upstream's kubelet with `--authorization-mode=Webhook`. The apiserver gets in as
//! `kube-apiserver-kubelet-client` (bound to `system:kubelet-api-admin`) when it proxies logs, exec, attach and
//! port-forward. The PEMs come from whoever runs the kubelet (`rkube up` issues them from the cluster CA);
//! without them the API stays plain HTTP. The serving certificate is read per handshake from
//! [`ServingCert`], which [`crate::node::certs::serving`] replaces once the cluster issues one (no restart).
//!
//! Must not: serve a request that [`super::auth::check`] did not pass; complete a handshake with a
//! certificate the client CA did not sign (a client without one gets through the handshake, as upstream's, and
//! then 401 unless its bearer token is good); leave a handshake or a request head waiting forever.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

pub use crate::node::certs::serving::ServingCert;

/// The kubelet's certificate and key (replaceable while it serves), and the CA its clients' certificates must
/// chain to (PEM).
#[derive(Clone, Debug)]
pub struct ApiTls {
    /// The serving certificate and key, read at each handshake (the serving certificate rotation replaces them).
    pub serving: Arc<ServingCert>,
    /// The cluster CA, PEM: client certificates must chain to it.
    pub client_ca_pem: String,
}

impl ApiTls {
    /// Serving `cert_pem` with `key_pem` (checked: PEM, and the certificate is the key's), clients checked
    /// against `client_ca_pem`.
    pub fn new(cert_pem: &str, key_pem: &str, client_ca_pem: &str) -> Result<ApiTls, ApiTlsError> {
        let serving = ServingCert::new(cert_pem, key_pem).map_err(ApiTlsError::Serving)?;
        Ok(ApiTls { serving: Arc::new(serving), client_ca_pem: client_ca_pem.to_string() })
    }
}

/// Why the kubelet API's TLS could not be set up; the kubelet fails to start with it.
#[derive(Debug, thiserror::Error)]
pub enum ApiTlsError {
    /// A PEM input does not parse.
    #[error("kubelet API TLS: {what} is not valid PEM")]
    Pem {
        /// Which input (`the client CA`).
        what: &'static str,
    },
    /// The serving certificate or key is invalid, or they do not match.
    #[error("kubelet API TLS: the serving certificate: {0}")]
    Serving(#[source] crate::node::certs::CertError),
    /// rustls refused the CA or the configuration.
    #[error("kubelet API TLS: {0}")]
    Config(String),
}

/// How long a client has for the TLS handshake, and then for each request head.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// rustls configuration: our certificate, whichever [`ServingCert`] holds at each handshake; client certificates
/// optional, and verified against the CA when given (a client without one is left to [`super::auth`]: a bearer
/// token, or 401).
pub fn server_config(t: &ApiTls) -> Result<Arc<rustls::ServerConfig>, ApiTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(t.client_ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|_| ApiTlsError::Pem { what: "the client CA" })?)
            .map_err(|e| ApiTlsError::Config(format!("client CA: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ApiTlsError::Config(format!("client verifier: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiTlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(t.serving.clone());
    // HTTP/1.1 only: SPDY and WebSocket upgrades need it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` over TLS on `listener` (HTTP/1.1 with upgrades) until the task is dropped, every request
/// authenticated and authorized by `auth` first.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, tls: Arc<rustls::ServerConfig>, auth: Arc<super::auth::Filter>) {
    let app = app.layer(axum::middleware::from_fn_with_state(auth, super::auth::check));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "kubelet API: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "kubelet API: TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "kubelet API: TLS handshake timed out");
                    return;
                }
            };
            // who the certificate names, for every request on this connection (a certificate without a CN names
            // nobody: the request needs a token then, as upstream)
            let user = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| super::auth::User::from_certificate(c));
            let app = app.layer(axum::Extension(super::auth::PeerUser(user.map(Arc::new))));
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
            if let Err(e) = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service).await {
                tracing::debug!(%peer, error = %e, "kubelet API: connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};

    /// A certificate and its key (PEM).
    type Pair = (String, String);

    struct Certs {
        ca: String,
        server: Pair,
        /// Subject `CN=<name>, O=<group>` signed by the CA, per name.
        clients: std::collections::HashMap<&'static str, Pair>,
        /// CA-signed, no CN.
        nameless: Pair,
        /// CN=carol, signed by itself.
        stranger: Pair,
    }

    fn certs() -> Certs {
        let ca_key = KeyPair::generate().expect("key");
        let mut cp = CertificateParams::new(Vec::<String>::new()).expect("params");
        cp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = cp.self_signed(&ca_key).expect("ca");
        let leaf = |server: bool, subject: Option<(&str, Option<&str>)>, signed: bool| {
            let key = KeyPair::generate().expect("key");
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.distinguished_name = rcgen::DistinguishedName::new();
            if let Some((cn, o)) = subject {
                p.distinguished_name.push(DnType::CommonName, cn);
                if let Some(o) = o {
                    p.distinguished_name.push(DnType::OrganizationName, o);
                }
            }
            if server {
                p.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            } else {
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            let cert = if signed { p.signed_by(&key, &ca, &ca_key).expect("sign") } else { p.self_signed(&key).expect("self-sign") };
            (cert.pem(), key.serialize_pem())
        };
        let mut clients = std::collections::HashMap::new();
        clients.insert("admin", leaf(false, Some(("admin", Some("system:masters"))), true));
        clients.insert("alice", leaf(false, Some(("alice", Some("devs"))), true));
        clients.insert("carol", leaf(false, Some(("carol", None)), true));
        Certs {
            ca: ca.pem(),
            server: leaf(true, Some(("kubelet", None)), true),
            clients,
            nameless: leaf(false, None, true),
            stranger: leaf(false, Some(("carol", None)), false),
        }
    }

    #[tokio::test]
    async fn every_request_is_authenticated_then_authorized_by_a_subject_access_review() {
        let c = certs();
        let tls = server_config(&ApiTls::new(&c.server.0, &c.server.1, &c.ca).expect("pem")).expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route("/exec/{ns}/{pod}/{c}", axum::routing::any(|| async { "ran" }))
            .route("/stats/summary", axum::routing::get(|| async { "{}" }))
            .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "404 page not found") });
        let (fake, kube) = crate::server::auth::testing::start().await;
        let server = tokio::spawn(serve(listener, app, tls, crate::server::auth::Filter::new(kube, "n1")));
        let client = |identity: Option<&Pair>| {
            let mut b = reqwest::Client::builder()
                .use_rustls_tls()
                .add_root_certificate(reqwest::Certificate::from_pem(c.ca.as_bytes()).expect("ca"));
            if let Some((cert, key)) = identity {
                b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).expect("identity"));
            }
            b.build().expect("client")
        };
        let base = format!("https://{addr}");
        let answer = |r: reqwest::Response| async move {
            let code = r.status().as_u16();
            (code, r.text().await.expect("body"))
        };
        // allowed by the review: the handler answers
        let carol = client(Some(&c.clients["carol"]));
        assert_eq!(answer(carol.get(format!("{base}/healthz")).send().await.expect("get")).await, (200, "ok".into()));
        assert_eq!(answer(carol.post(format!("{base}/exec/default/web/c")).send().await.expect("post")).await, (200, "ran".into()));
        let admin = client(Some(&c.clients["admin"]));
        assert_eq!(answer(admin.put(format!("{base}/exec/default/web/c")).send().await.expect("put")).await, (200, "ran".into()));
        // a certificate of the CA without a grant: upstream's 403, and the handler never ran
        let alice = client(Some(&c.clients["alice"]));
        for (method, path, verb) in [(reqwest::Method::POST, "/exec/default/web/c", "create"), (reqwest::Method::GET, "/healthz", "get"), (reqwest::Method::GET, "/nope", "get")] {
            let got = answer(alice.request(method.clone(), format!("{base}{path}")).send().await.expect("send")).await;
            assert_eq!(got, (403, format!("Forbidden (user=alice, verb={verb}, resource=nodes, subresource=proxy)")), "{method} {path}");
        }
        // carol may not read stats: another subresource, another answer
        let got = answer(carol.get(format!("{base}/stats/summary")).send().await.expect("get")).await;
        assert_eq!(got, (403, "Forbidden (user=carol, verb=get, resource=nodes, subresource=stats)".into()));
        // no certificate: 401 for every path, known or not; a good bearer token is its user's
        let nobody = client(None);
        for path in ["/healthz", "/exec/default/web/c", "/nope"] {
            assert_eq!(answer(nobody.get(format!("{base}{path}")).send().await.expect("get")).await, (401, "Unauthorized".into()), "{path}");
        }
        let got = answer(nobody.get(format!("{base}/healthz")).bearer_auth("forged").send().await.expect("get")).await;
        assert_eq!(got, (401, "Unauthorized".into()));
        let got = answer(nobody.get(format!("{base}/stats/summary")).bearer_auth(crate::server::auth::testing::GOOD_TOKEN).send().await.expect("get")).await;
        assert_eq!(got, (200, "{}".into()));
        let got = answer(nobody.get(format!("{base}/healthz")).bearer_auth(crate::server::auth::testing::GOOD_TOKEN).send().await.expect("get")).await;
        assert_eq!(got, (403, format!("Forbidden (user={}, verb=get, resource=nodes, subresource=proxy)", crate::server::auth::testing::TOKEN_USER)));
        // a CA-signed certificate naming nobody: as no certificate
        let got = answer(client(Some(&c.nameless)).get(format!("{base}/healthz")).send().await.expect("get")).await;
        assert_eq!(got, (401, "Unauthorized".into()));
        // a certificate from another CA: not even a handshake
        assert!(client(Some(&c.stranger)).get(format!("{base}/healthz")).send().await.is_err(), "a certificate from another CA: refused");
        // the apiserver cannot answer: upstream's 500, nothing served
        fake.broken.store(true, std::sync::atomic::Ordering::SeqCst);
        let got = answer(alice.delete(format!("{base}/exec/default/web/c")).send().await.expect("delete")).await;
        assert_eq!(got, (500, "Authorization error (user=alice, verb=delete, resource=nodes, subresource=proxy)".into()));
        server.abort();
        assert!(matches!(ApiTls::new("junk", "junk", &c.ca), Err(ApiTlsError::Serving(_))));
        let good = ApiTls::new(&c.server.0, &c.server.1, &c.ca).expect("pem");
        assert!(server_config(&ApiTls { client_ca_pem: "junk".into(), ..good }).is_err(), "no client CA");
    }

    #[tokio::test]
    async fn a_replaced_serving_certificate_is_presented_from_the_next_handshake() {
        let c = certs();
        let api = ApiTls::new(&c.server.0, &c.server.1, &c.ca).expect("pem");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        let (_fake, kube) = crate::server::auth::testing::start().await;
        let server = tokio::spawn(serve(listener, app, server_config(&api).expect("config"), crate::server::auth::Filter::new(kube, "n1")));
        // a second CA and a serving certificate from it, as the cluster's signer issues one
        let ca2_key = KeyPair::generate().expect("key");
        let mut cp = CertificateParams::new(Vec::<String>::new()).expect("params");
        cp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca2 = cp.self_signed(&ca2_key).expect("ca");
        let key2 = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert2 = p.signed_by(&key2, &ca2, &ca2_key).expect("sign");
        // a fresh client per check, so each is a new handshake
        let trusting = |ca: &str| {
            let (cert, key) = &c.clients["carol"];
            reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca"))
                .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).expect("identity"))
                .build()
                .expect("client")
        };
        let url = format!("https://{addr}/healthz");
        assert_eq!(trusting(&c.ca).get(&url).send().await.expect("first certificate").status(), 200);
        assert!(trusting(&ca2.pem()).get(&url).send().await.is_err(), "not yet the second CA's");
        api.serving.replace(&cert2.pem(), &key2.serialize_pem()).expect("replace");
        assert_eq!(trusting(&ca2.pem()).get(&url).send().await.expect("the new certificate").status(), 200);
        assert!(trusting(&c.ca).get(&url).send().await.is_err(), "the old certificate is no longer presented");
        server.abort();
    }
}
