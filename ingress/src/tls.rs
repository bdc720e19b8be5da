//! TLS for the ingress: certificates from `kubernetes.io/tls` Secrets (`tls.crt`, `tls.key`), chosen per
//! connection by SNI from what [`Live`] serves now (so a new or renewed Secret takes effect at the next
//! handshake, with no listener restart), and a self-signed default certificate for hosts without one, as
//! ingress-nginx serves its "Fake Certificate".
//!
//! Must not: refuse a handshake because a host has no certificate (the default one is served); read Secrets
//! itself (they come through the controller's watch).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::live::Live;
use crate::routing::normalize_host;

/// Why a TLS Secret cannot be served (the message goes into the Ingress's event).
#[derive(Debug, thiserror::Error)]
pub enum TlsSecretError {
    /// The Secret has no such key (`tls.crt` or `tls.key`).
    #[error("no {0} in the secret")]
    Missing(&'static str),
    /// `tls.crt` is not PEM, or holds no certificate.
    #[error("tls.crt holds no PEM certificate")]
    BadCertificate,
    /// `tls.key` holds no PEM private key.
    #[error("tls.key holds no PEM private key")]
    BadKey,
    /// rustls refused the pair: the key is not the certificate's, or of a kind it does not take (its words).
    #[error("tls.key and tls.crt do not go together: {0}")]
    Mismatch(String),
}

/// Why the default certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DefaultCertError {
    /// rcgen could not generate the key or the certificate.
    #[error("ingress: make the default self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// What rcgen made did not load into rustls.
    #[error("ingress: load the default self-signed certificate: {0}")]
    Load(#[from] TlsSecretError),
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificate and key of a TLS Secret, checked to belong together.
pub fn certified_key(secret: &Secret) -> Result<CertifiedKey, TlsSecretError> {
    let data = |k: &'static str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| b.0.as_slice())
            .ok_or(TlsSecretError::Missing(k))
    };
    from_pem(data("tls.crt")?, data("tls.key")?)
}

fn from_pem(crt: &[u8], key: &[u8]) -> Result<CertifiedKey, TlsSecretError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsSecretError::BadCertificate)?;
    if certs.is_empty() {
        return Err(TlsSecretError::BadCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| TlsSecretError::BadKey)?;
    CertifiedKey::from_der(certs, key, &provider())
        .map_err(|e| TlsSecretError::Mismatch(e.to_string()))
}

/// A self-signed certificate and key (PEM) for `hosts`.
pub fn self_signed(hosts: &[String]) -> Result<(String, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "rkube Ingress Controller Default Certificate",
    );
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The default certificate: self-signed, made at start.
pub fn default_certificate() -> Result<Arc<CertifiedKey>, DefaultCertError> {
    let (crt, key) = self_signed(&["ingress.local".to_string()])?;
    Ok(Arc::new(from_pem(crt.as_bytes(), key.as_bytes())?))
}

/// Picks the certificate for a handshake by its SNI name.
#[derive(Debug)]
struct SniResolver(Arc<Live>);

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.0.get();
        let by_name = hello
            .server_name()
            .and_then(|sni| current.certs.lookup(&normalize_host(sni)).cloned());
        Some(by_name.unwrap_or_else(|| self.0.default_cert.clone()))
    }
}

/// The rustls configuration of the HTTPS listener: certificates by SNI from `live`; HTTP/2 and HTTP/1.1.
pub fn server_config(live: Arc<Live>) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver(live)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
