//! HTTPS for the kubelet API (issue 6: "HTTPS, authenticated"): a serving certificate for the node's address
//! and a required client certificate signed by the cluster CA, which the apiserver presents when it proxies
//! logs, exec, attach and port-forward. The PEMs come from whoever runs the kubelet (`rkube up` issues them
//! from the cluster CA); without them the API stays plain HTTP.
//!
//! Must not: accept a client without a certificate signed by `client_ca_pem`.

use std::sync::Arc;

use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The kubelet's certificate and key, and the CA its clients' certificates must chain to (PEM).
#[derive(Clone, Debug)]
pub struct ApiTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiTlsError {
    #[error("kubelet API TLS: {what} is not valid PEM")]
    Pem { what: &'static str },
    #[error("kubelet API TLS: {0}")]
    Config(String),
}

/// rustls configuration: our certificate, client certificates required and verified against the CA.
pub fn server_config(t: &ApiTls) -> Result<Arc<rustls::ServerConfig>, ApiTlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(t.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| ApiTlsError::Pem { what: "the serving certificate" })?;
    let key = PrivateKeyDer::from_pem_slice(t.key_pem.as_bytes()).map_err(|_| ApiTlsError::Pem { what: "the serving key" })?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(t.client_ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|_| ApiTlsError::Pem { what: "the client CA" })?)
            .map_err(|e| ApiTlsError::Config(format!("client CA: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ApiTlsError::Config(format!("client verifier: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiTlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| ApiTlsError::Config(format!("serving certificate: {e}")))?;
    // HTTP/1.1 only: SPDY and WebSocket upgrades need it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` over TLS on `listener` (HTTP/1.1 with upgrades) until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, tls: Arc<rustls::ServerConfig>) {
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
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "kubelet API: TLS handshake refused");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(e) = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service).await {
                tracing::debug!(%peer, error = %e, "kubelet API: connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};

    /// A certificate and its key (PEM).
    type Pair = (String, String);

    /// (CA pem, server cert+key for 127.0.0.1, client cert+key, a stranger's client cert+key).
    fn certs() -> (String, Pair, Pair, Pair) {
        let ca_key = KeyPair::generate().expect("key");
        let mut cp = CertificateParams::new(Vec::<String>::new()).expect("params");
        cp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = cp.self_signed(&ca_key).expect("ca");
        let leaf = |server: bool, signer: Option<(&rcgen::Certificate, &KeyPair)>| {
            let key = KeyPair::generate().expect("key");
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            if server {
                p.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            } else {
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            let cert = match signer {
                Some((c, k)) => p.signed_by(&key, c, k).expect("sign"),
                None => p.self_signed(&key).expect("self-sign"),
            };
            (cert.pem(), key.serialize_pem())
        };
        (ca.pem(), leaf(true, Some((&ca, &ca_key))), leaf(false, Some((&ca, &ca_key))), leaf(false, None))
    }

    #[tokio::test]
    async fn only_clients_with_a_certificate_from_the_ca_get_in() {
        let (ca, (scert, skey), (ccert, ckey), (xcert, xkey)) = certs();
        let tls = server_config(&ApiTls { cert_pem: scert, key_pem: skey, client_ca_pem: ca.clone() }).expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        let server = tokio::spawn(serve(listener, app, tls));
        let client = |identity: Option<(String, String)>| {
            let mut b = reqwest::Client::builder()
                .use_rustls_tls()
                .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca"));
            if let Some((c, k)) = identity {
                b = b.identity(reqwest::Identity::from_pem(format!("{c}{k}").as_bytes()).expect("identity"));
            }
            b.build().expect("client")
        };
        let url = format!("https://{addr}/healthz");
        let ok = client(Some((ccert, ckey))).get(&url).send().await.expect("with a CA-signed certificate");
        assert_eq!(ok.text().await.expect("body"), "ok");
        assert!(client(None).get(&url).send().await.is_err(), "no client certificate: refused");
        assert!(client(Some((xcert, xkey))).get(&url).send().await.is_err(), "a certificate from another CA: refused");
        server.abort();
        assert!(matches!(
            server_config(&ApiTls { cert_pem: "junk".into(), key_pem: "junk".into(), client_ca_pem: ca }),
            Err(ApiTlsError::Pem { .. })
        ));
    }
}
