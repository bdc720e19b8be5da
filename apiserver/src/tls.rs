//! HTTPS for the apiserver: a self-signed cluster CA, a serving certificate for 127.0.0.1/localhost (and the
//! listen address), and an admin client certificate (CN kubernetes-admin, O system:masters), all kept as PEM
//! files under `<data-dir>/pki` (0700, keys 0600) and reused on restart. Clients must present a certificate signed by the CA.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the cluster's certificates could not be made, read or turned into a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen could not generate a key or sign a certificate.
    #[error("generate {what}: {source}")]
    Generate {
        /// What was being generated (`CA key`, `serving certificate`...).
        what: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// A PEM file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no certificate or key of the kind expected.
    #[error("{path}: not a valid PEM {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What it should have held (`certificate`, `private key`).
        what: &'static str,
    },
    /// rustls refused the certificates or key for its server or client configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// A key file or the pki directory could not be made private (0600/0700).
    #[error(transparent)]
    Private(#[from] crate::private_files::PrivateFileError),
}

/// The PEM files of the cluster's certificates.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The directory holding them (`<data-dir>/pki`).
    pub dir: PathBuf,
    /// The cluster CA's certificate, which clients trust and client certificates are checked against.
    pub ca_cert: String,
    /// The apiserver's serving certificate.
    pub server_cert: String,
    /// The serving certificate's key.
    pub server_key: String,
    /// The admin client certificate (CN kubernetes-admin, O system:masters) for the admin kubeconfig.
    pub admin_cert: String,
    /// The admin certificate's key.
    pub admin_key: String,
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io { path: path.to_path_buf(), source })
}

/// Writes a certificate (readable by all) or a key (`private`: 0600 from the first byte, `private_files`).
fn write(path: &Path, content: &str, private: bool) -> Result<(), TlsError> {
    if private {
        return Ok(crate::private_files::write(path, content.as_bytes())?);
    }
    std::fs::write(path, content).map_err(|source| TlsError::Io { path: path.to_path_buf(), source })
}

/// Private keys a PKI directory may hold (the cluster CA's, the apiserver's, the admin's, the service account
/// signing key, a kubelet's).
const KEY_FILES: &[&str] = &["ca.key", "apiserver.key", "admin.key", "sa.key", "kubelet.key"];

fn gen<T>(what: &'static str, r: Result<T, rcgen::Error>) -> Result<T, TlsError> {
    r.map_err(|source| TlsError::Generate { what, source })
}

/// Loads the PKI from `dir`, creating it on first use. `hosts` are extra names/IPs for the serving certificate.
pub fn ensure_pki(dir: &Path, hosts: &[String]) -> Result<Pki, TlsError> {
    let p = |n: &str| dir.join(n);
    // the directory 0700 and every key in it 0600, checked at each start (looser modes are fixed, with a warning)
    crate::private_files::ensure_dir(dir)?;
    for key in KEY_FILES {
        crate::private_files::check_file(&p(key))?;
    }
    if p("ca.crt").exists() && p("apiserver.crt").exists() && p("admin.crt").exists() {
        return Ok(Pki {
            dir: dir.to_path_buf(),
            ca_cert: read(&p("ca.crt"))?,
            server_cert: read(&p("apiserver.crt"))?,
            server_key: read(&p("apiserver.key"))?,
            admin_cert: read(&p("admin.crt"))?,
            admin_key: read(&p("admin.key"))?,
        });
    }
    let ca_key = gen("CA key", KeyPair::generate())?;
    let ca = gen("CA certificate", ca_params()?.self_signed(&ca_key))?;

    let server_key = gen("apiserver key", KeyPair::generate())?;
    let mut names = vec!["localhost".to_string(), "kubernetes".to_string(), "kubernetes.default".to_string()];
    names.extend(hosts.iter().filter(|h| h.parse::<IpAddr>().is_err()).cloned());
    let mut sp = gen("apiserver parameters", CertificateParams::new(names))?;
    sp.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    let mut ips: Vec<IpAddr> = vec!["127.0.0.1".parse().expect("literal IP")];
    ips.extend(hosts.iter().filter_map(|h| h.parse::<IpAddr>().ok()).filter(|ip| !ip.is_unspecified()));
    for ip in ips {
        sp.subject_alt_names.push(SanType::IpAddress(ip));
    }
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = gen("apiserver certificate", sp.signed_by(&server_key, &ca, &ca_key))?;

    let admin_key = gen("admin key", KeyPair::generate())?;
    let admin = gen("admin certificate", client_params("kubernetes-admin", &["system:masters".into()])?.signed_by(&admin_key, &ca, &ca_key))?;

    let pki = Pki {
        dir: dir.to_path_buf(),
        ca_cert: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        admin_cert: admin.pem(),
        admin_key: admin_key.serialize_pem(),
    };
    write(&p("ca.key"), &ca_key.serialize_pem(), true)?;
    write(&p("ca.crt"), &pki.ca_cert, false)?;
    write(&p("apiserver.key"), &pki.server_key, true)?;
    write(&p("apiserver.crt"), &pki.server_cert, false)?;
    write(&p("admin.key"), &pki.admin_key, true)?;
    write(&p("admin.crt"), &pki.admin_cert, false)?;
    tracing::info!(dir = %dir.display(), "created cluster CA and certificates");
    Ok(pki)
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut ca_params = gen("CA parameters", CertificateParams::new(Vec::<String>::new()))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "rkube-ca");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(ca_params)
}

/// A certificate and key (PEM).
#[derive(Debug, Clone)]
pub struct CertPair {
    /// The certificate, PEM.
    pub cert: String,
    /// Its private key, PEM.
    pub key: String,
}

impl CertPair {
    /// Writes `<dir>/<stem>.crt` and `<dir>/<stem>.key` (mode 0600), creating `dir` (mode 0700).
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(), TlsError> {
        crate::private_files::ensure_dir(dir)?;
        write(&dir.join(format!("{stem}.crt")), &self.cert, false)?;
        write(&dir.join(format!("{stem}.key")), &self.key, true)
    }
}

/// Certificates for the kubelet API, issued by the cluster CA of `pki`: the kubelet's serving certificate for
/// `node_ips` (and its `hostname`), and the client certificate the apiserver presents to kubelets.
pub fn issue_kubelet_certs(pki: &Pki, hostname: &str, node_ips: &[String]) -> Result<(CertPair, CertPair), TlsError> {
    let (ca, ca_key) = load_ca(pki)?;
    let serving_key = gen("kubelet key", KeyPair::generate())?;
    let serving = gen("kubelet certificate", kubelet_serving_params(hostname, node_ips)?.signed_by(&serving_key, &ca, &ca_key))?;
    Ok((CertPair { cert: serving.pem(), key: serving_key.serialize_pem() }, issue_kubelet_client(pki)?))
}

/// The user the apiserver's kubelet client certificate names.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// The client certificate the apiserver presents to kubelets (CN kube-apiserver-kubelet-client, no group),
/// issued by the cluster CA of `pki`. Kubelets admit it; on the API it holds only what the built-in binding
/// to `system:kubelet-api-admin` gives (nodes and their proxy, log, stats, metrics and spec), never
/// `system:masters`: a `nodes/proxy` request that reaches the apiserver itself gets nothing more than that.
pub fn issue_kubelet_client(pki: &Pki) -> Result<CertPair, TlsError> {
    issue_user(pki, KUBELET_CLIENT_USER, &[])
}

/// A client certificate for user `name` in `groups` (CN and O, what the apiserver reads the identity from; at
/// most one group),
/// issued by the cluster CA of `pki`: how `rkube kubeconfig` makes credentials for other users.
pub fn issue_user(pki: &Pki, name: &str, groups: &[String]) -> Result<CertPair, TlsError> {
    let (ca, ca_key) = load_ca(pki)?;
    let key = gen("client key", KeyPair::generate())?;
    let cert = gen("client certificate", client_params(name, groups)?.signed_by(&key, &ca, &ca_key))?;
    Ok(CertPair { cert: cert.pem(), key: key.serialize_pem() })
}

/// A kubelet's client certificate for node `node`: CN `system:node:<node>`, O `system:nodes`, the identity the
/// Node authorizer and NodeRestriction admission hold to that node's own objects (what upstream's kubelet gets
/// from its bootstrap CSR).
pub fn issue_node(pki: &Pki, node: &str) -> Result<CertPair, TlsError> {
    if node.is_empty() {
        return Err(TlsError::Config("a node certificate needs a node name".into()));
    }
    // the names `auth::node` reads (this layer does not import it)
    issue_user(pki, &format!("system:node:{node}"), &["system:nodes".to_string()])
}

fn client_params(name: &str, groups: &[String]) -> Result<CertificateParams, TlsError> {
    let mut cp = gen("client parameters", CertificateParams::new(Vec::<String>::new()))?;
    cp.distinguished_name.push(DnType::CommonName, name);
    // rcgen keeps one value per attribute type: one group (O) per certificate; bind the user for more
    match groups {
        [] => {}
        [g] => cp.distinguished_name.push(DnType::OrganizationName, g.as_str()),
        _ => return Err(TlsError::Config(format!("a client certificate carries at most one group; got {groups:?}"))),
    }
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(cp)
}

/// A kubelet serving certificate signed by its own key, for a kubelet that joins without the cluster CA's key:
/// what upstream's kubelet makes when given no `--tls-cert-file`.
pub fn self_signed_kubelet_serving(hostname: &str, node_ips: &[String]) -> Result<CertPair, TlsError> {
    let key = gen("kubelet key", KeyPair::generate())?;
    let cert = gen("kubelet certificate", kubelet_serving_params(hostname, node_ips)?.self_signed(&key))?;
    Ok(CertPair { cert: cert.pem(), key: key.serialize_pem() })
}

fn kubelet_serving_params(hostname: &str, node_ips: &[String]) -> Result<CertificateParams, TlsError> {
    let mut sp = gen("kubelet parameters", CertificateParams::new(vec![hostname.to_string()]))?;
    sp.distinguished_name.push(DnType::CommonName, format!("{hostname}@kubelet"));
    for ip in node_ips.iter().filter_map(|h| h.parse::<IpAddr>().ok()) {
        sp.subject_alt_names.push(SanType::IpAddress(ip));
    }
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(sp)
}

/// The cluster CA as a signer: the stored key, and a certificate with the stored one's subject and key (so
/// what it signs chains to the stored certificate).
fn load_ca(pki: &Pki) -> Result<(rcgen::Certificate, KeyPair), TlsError> {
    let key_path = pki.dir.join("ca.key");
    let ca_key = KeyPair::from_pem(&read(&key_path)?).map_err(|_| TlsError::Pem { path: key_path.clone(), what: "CA key" })?;
    let ca = gen("CA certificate", ca_params()?.self_signed(&ca_key))?;
    Ok((ca, ca_key))
}

/// The rustls server configuration: our serving certificate, client certificates checked against the cluster
/// CA when presented (optional: bearer tokens and anonymous requests come without), HTTP/1.1 (watches are chunked HTTP/1.1 streams; kubectl falls back fine).
pub fn server_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let pem = |what| TlsError::Pem { path: pki.dir.clone(), what };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pki.server_cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| pem("certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).map_err(|_| pem("private key"))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pki.ca_cert.as_bytes()) {
        roots.add(ca.map_err(|_| pem("CA certificate"))?).map_err(|e| TlsError::Config(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // a certificate is checked when given; without one the request may still carry a bearer token
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ensure_pki(dir.path(), &["10.0.0.5".into()]).expect("create");
        let b = ensure_pki(dir.path(), &[]).expect("reload");
        assert_eq!(a.ca_cert, b.ca_cert);
        assert!(a.admin_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        server_config(&b).expect("rustls accepts the generated certificates");
    }
}
