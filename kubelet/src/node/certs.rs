//! The node's client certificate, renewed before it expires (upstream's kubelet client certificate manager,
//! `--rotate-certificates`): when a kubeconfig names the node's own `system:node:<name>` certificate (as the
//! `kubelet.conf` of `rkube join` does), the kubelet's API client presents whatever certificate is current, read
//! per TLS handshake ([`client`]), and [`Rotation::run`] files a new CertificateSigningRequest as the node itself
//! once 70-90 % of the certificate's lifetime has passed (upstream's jittered deadline). The csrapproving
//! controller approves a node renewing its own certificate (`selfnodeclient`), the signer issues it; the node
//! then writes it into its kubeconfig (0600, by rename) for the next start, switches to it, and closes every
//! connection opened with the old one, as upstream's kubelet does, so watches and requests go on with the new
//! certificate (never a restart).
//!
//! Lifetime is counted from when the node received the certificate (the kubeconfig's mtime at start) when that
//! is later than `notBefore`: the signer backdates `notBefore` by 5 minutes for clock skew, which upstream
//! counts, so a certificate shorter than about 17 minutes (`--cluster-signing-duration` in tests) would be due
//! for renewal on arrival and renewed in a loop.
//!
//! The kubelet's serving certificate, filed for and renewed the same way but approved by an administrator, is
//! [`serving`].
//!
//! Must not: rotate a credential that is not this node's (an admin or user certificate, a token: the client is
//! then kube's ordinary one and nothing is renewed); write the kubeconfig before the new certificate is issued
//! and checked against the node's name and new key; keep using an old connection after a rotation.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec};
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::client::ConfigExt;
use kube::Api;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;

pub mod serving;

/// Why the node's client or serving certificate could not be loaded, requested or renewed. At start it stops the
/// kubelet; during a rotation it is logged and the current certificate stays in use (retried later).
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The kubeconfig cannot be read or parsed, or has no user to put the new certificate in.
    #[error("kubeconfig {path}: {problem}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A certificate or key is not valid PEM / X.509, or they do not match; or a DNS name cannot go in one.
    #[error("node client certificate: {0}")]
    Certificate(String),
    /// The API client could not be built (bad cluster URL or CA).
    #[error("build the API client for {server}: {problem}")]
    Client {
        /// The apiserver URL the kubeconfig names.
        server: String,
        /// Why not.
        problem: String,
    },
    /// A CertificateSigningRequest could not be created or read, was denied or failed, was not signed in time,
    /// or was signed for another name.
    #[error("certificate signing request {name}: {problem}")]
    Request {
        /// The CSR's name (`<generateName>*` when creating it failed).
        name: String,
        /// What happened to it.
        problem: String,
    },
    /// The new key pair or its request could not be made.
    #[error("make the node's new key and request: {0}")]
    Key(#[from] rcgen::Error),
    /// The new certificate and key could not be written.
    #[error("write {path}: {source}")]
    Write {
        /// The file (or its temp file before the rename).
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What a certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's CN (`system:node:<name>` for a node's), empty if none.
    pub common_name: String,
    /// The subject's O values (`system:nodes` for a node's).
    pub organizations: Vec<String>,
    /// The start of its validity (the signer backdates it 5 minutes for clock skew).
    pub not_before: SystemTime,
    /// The end of its validity.
    pub not_after: SystemTime,
    /// The serial number as colon-separated hex bytes, which the kubelet logs on rotation.
    pub serial: String,
    /// The subjectAltName DNS names and IP addresses, in the certificate's order.
    pub dns_names: Vec<String>,
    /// The subjectAltName IP addresses (IPv4 and IPv6).
    pub ip_addresses: Vec<std::net::IpAddr>,
    /// Issuer and subject as RFC 4514 strings: a self-signed certificate names itself as its issuer.
    pub issuer: String,
    /// The subject, RFC 4514.
    pub subject: String,
}

/// Parses the first certificate of `pem`.
pub fn cert_info(pem: &str) -> Result<CertInfo, CertError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| CertError::Certificate(format!("not a PEM certificate: {e}")))?;
    let cert = block.parse_x509().map_err(|e| CertError::Certificate(format!("not an X.509 certificate: {e}")))?;
    let time = |t: &x509_parser::time::ASN1Time| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0));
    let subject = cert.subject();
    let (mut dns_names, mut ip_addresses) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                    4 => ip_addresses.push(std::net::IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                    16 => ip_addresses.push(std::net::IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let info = CertInfo {
        common_name: subject.iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or_default().to_string(),
        organizations: subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect(),
        not_before: time(&cert.validity().not_before),
        not_after: time(&cert.validity().not_after),
        serial: cert.raw_serial_as_string(),
        dns_names,
        ip_addresses,
        issuer: cert.issuer().to_string(),
        subject: subject.to_string(),
    };
    Ok(info)
}

/// Whether `info` is node `node`'s own client certificate (`CN=system:node:<node>`, `O=system:nodes`), the one
/// kind the kubelet renews.
pub fn is_node_certificate(info: &CertInfo, node: &str) -> bool {
    info.common_name == format!("system:node:{node}") && info.organizations.iter().any(|o| o == "system:nodes")
}

/// When to file the renewal: upstream's `nextRotationDeadline`, `wait.Jitter(total, 0.2) - 0.3 * total`, that is
/// 70 % of the lifetime plus up to a fifth of the whole lifetime (`jitter` in [0, 1): 70-90 %), the lifetime
/// counted from `received` when that is after `not_before` (see the module doc).
pub fn rotation_deadline(not_before: SystemTime, not_after: SystemTime, received: SystemTime, jitter: f64) -> SystemTime {
    let start = not_before.max(received.min(not_after));
    let total = not_after.duration_since(start).unwrap_or_default();
    start + total.mul_f64(0.7 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// A number in [0, 1) from the standard library's randomly seeded hasher (no RNG crate for one draw).
pub(crate) fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The certificate and key the client presents now; bumping `generation` ends every connection made before.
struct Current {
    key: RwLock<Arc<CertifiedKey>>,
    pem: RwLock<(String, String)>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Current").field("generation", &*self.generation.borrow()).finish_non_exhaustive()
    }
}

pub(crate) fn certified_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, CertError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| CertError::Certificate("the certificate is not valid PEM".into()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| CertError::Certificate("the key is not valid PEM".into()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| CertError::Certificate(format!("the key: {e}")))?;
    let ck = CertifiedKey::new(certs, signing);
    // a certificate for another key would fail every handshake: refuse it here
    ck.keys_match().map_err(|e| CertError::Certificate(format!("the certificate is not for the key: {e}")))?;
    Ok(Arc::new(ck))
}

impl rustls::client::ResolvesClientCert for Current {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _sigschemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.key.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// TCP, then TLS with the current certificate, to the apiserver; each connection ends at the next rotation.
#[derive(Clone)]
struct Connector {
    tls: tokio_rustls::TlsConnector,
    generation: tokio::sync::watch::Receiver<u64>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl tower::Service<hyper::Uri> for Connector {
    type Response = Conn;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Conn>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let tls = self.tls.clone();
        let mut generation = self.generation.clone();
        Box::pin(async move {
            let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
            if uri.scheme_str() != Some("https") {
                return Err(invalid(format!("{uri}: the node's client certificate needs an https:// server")));
            }
            let host = uri.host().ok_or_else(|| invalid(format!("{uri}: no host")))?.trim_matches(['[', ']']).to_string();
            let port = uri.port_u16().unwrap_or(443);
            // connections made from now on belong to this generation
            generation.borrow_and_update();
            let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((host.as_str(), port)))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect to {host}:{port}")))??;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(host.clone()).map_err(|e| invalid(format!("server name {host}: {e}")))?;
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(name, tcp))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("TLS handshake with {host}:{port}")))??;
            let rotated: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
                // a closed channel (the client is going away) is no rotation
                if generation.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            });
            Ok(Conn { io: TokioIo::new(stream), rotated: Some(rotated) })
        })
    }
}

/// One TLS connection to the apiserver, failed (reads and writes) once the certificate it was made with is
/// rotated out; hyper then drops it and the next request connects with the new one.
struct Conn {
    io: TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    /// Ready once rotated; None after that.
    rotated: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Conn {
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let done = match self.rotated.as_mut() {
            Some(f) => f.as_mut().poll(cx).is_ready(),
            None => true,
        };
        if done {
            self.rotated = None;
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the node's client certificate was rotated; reconnecting with the new one"));
        }
        Ok(())
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: hyper::rt::ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// The node's certificate and key in a kubeconfig: its current context's user's `client-certificate-data` and
/// `client-key-data` (PEM), or None when the user has no embedded certificate.
fn embedded_identity(kc: &serde_yaml::Value) -> Option<(String, String)> {
    let user = current_user(kc)?;
    let decode = |k: &str| B64.decode(user.get(k)?.as_str()?.trim()).ok().and_then(|b| String::from_utf8(b).ok());
    Some((decode("client-certificate-data")?, decode("client-key-data")?))
}

/// The `user` mapping of the current context's user.
fn current_user(kc: &serde_yaml::Value) -> Option<&serde_yaml::Value> {
    let ctx_name = kc.get("current-context")?.as_str()?;
    let ctx = kc.get("contexts")?.as_sequence()?.iter().find(|c| c.get("name").and_then(|n| n.as_str()) == Some(ctx_name))?;
    let user_name = ctx.get("context")?.get("user")?.as_str()?;
    kc.get("users")?.as_sequence()?.iter().find(|u| u.get("name").and_then(|n| n.as_str()) == Some(user_name))?.get("user")
}

/// `kc` with the current user's certificate and key replaced.
pub fn with_identity(kc: &serde_yaml::Value, cert_pem: &str, key_pem: &str) -> Option<serde_yaml::Value> {
    let mut kc = kc.clone();
    let ctx_name = kc.get("current-context")?.as_str()?.to_string();
    let user_name = kc
        .get("contexts")?
        .as_sequence()?
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(ctx_name.as_str()))?
        .get("context")?
        .get("user")?
        .as_str()?
        .to_string();
    let user = kc
        .get_mut("users")?
        .as_sequence_mut()?
        .iter_mut()
        .find(|u| u.get("name").and_then(|n| n.as_str()) == Some(user_name.as_str()))?
        .get_mut("user")?
        .as_mapping_mut()?;
    user.insert("client-certificate-data".into(), B64.encode(cert_pem).into());
    user.insert("client-key-data".into(), B64.encode(key_pem).into());
    Some(kc)
}

/// Renews the node's certificate for as long as the kubelet runs ([`Rotation::run`]).
pub struct Rotation {
    client: kube::Client,
    path: PathBuf,
    node: String,
    current: Arc<Current>,
    received: SystemTime,
}

/// The kubelet's API client from `kubeconfig`. When it holds node `node`'s own embedded client certificate,
/// the client presents the current one per handshake and comes with the [`Rotation`] that renews it; any other
/// credential gives kube's ordinary client and no rotation.
pub async fn client(kubeconfig: &Path, node: &str) -> Result<(kube::Client, Option<Rotation>), CertError> {
    let kc_err = |problem: String| CertError::Kubeconfig { path: kubeconfig.to_path_buf(), problem };
    let text = std::fs::read_to_string(kubeconfig).map_err(|e| kc_err(e.to_string()))?;
    let raw: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| kc_err(format!("does not parse: {e}")))?;
    let parsed = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| kc_err(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(parsed, &kube::config::KubeConfigOptions::default()).await.map_err(|e| kc_err(e.to_string()))?;
    let server = config.cluster_url.to_string();
    let identity = embedded_identity(&raw).and_then(|(c, k)| cert_info(&c).ok().filter(|i| is_node_certificate(i, node)).map(|_| (c, k)));
    let Some((cert_pem, key_pem)) = identity else {
        tracing::info!(kubeconfig = %kubeconfig.display(), node, "the kubeconfig's credential is not this node's own certificate: not rotated");
        let client = kube::Client::try_from(config).map_err(|e| CertError::Client { server, problem: e.to_string() })?;
        return Ok((client, None));
    };
    let client_err = |problem: String| CertError::Client { server: server.clone(), problem };
    let mut roots = rustls::RootCertStore::empty();
    for der in config.root_cert.iter().flatten() {
        roots.add(CertificateDer::from(der.clone())).map_err(|e| client_err(format!("the cluster CA: {e}")))?;
    }
    if roots.is_empty() {
        return Err(client_err("the kubeconfig names no cluster CA (certificate-authority-data)".into()));
    }
    let (generation, generation_rx) = tokio::sync::watch::channel(0u64);
    let current = Arc::new(Current { key: RwLock::new(certified_key(&cert_pem, &key_pem)?), pem: RwLock::new((cert_pem, key_pem)), generation });
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| client_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_cert_resolver(current.clone());
    let connector = Connector { tls: tokio_rustls::TlsConnector::from(Arc::new(tls)), generation: generation_rx };
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build::<_, kube::client::Body>(connector);
    let client = kube::client::ClientBuilder::new(http, config.default_namespace.clone()).with_layer(&config.base_uri_layer()).build();
    let received = std::fs::metadata(kubeconfig).and_then(|m| m.modified()).unwrap_or_else(|_| SystemTime::now());
    let rotation = Rotation { client: client.clone(), path: kubeconfig.to_path_buf(), node: node.to_string(), current, received };
    Ok((client, Some(rotation)))
}

/// How long to wait before trying a failed renewal again: a tenth of what is left, between 1 s and 5 min.
fn retry_after(not_after: SystemTime) -> Duration {
    let left = not_after.duration_since(SystemTime::now()).unwrap_or_default();
    (left / 10).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

impl Rotation {
    /// The serial of the certificate in use.
    pub fn serial(&self) -> String {
        let pem = self.current.pem.read().unwrap_or_else(|e| e.into_inner()).0.clone();
        cert_info(&pem).map(|i| i.serial).unwrap_or_default()
    }

    /// Renews the certificate at each deadline, until the kubelet stops. Boxed here, so it is compiled once, in
    /// this crate, and not again in the binary that spawns it.
    pub fn run(self) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(self.renew_forever())
    }

    async fn renew_forever(mut self) {
        loop {
            let pem = self.current.pem.read().unwrap_or_else(|e| e.into_inner()).0.clone();
            let info = match cert_info(&pem) {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!(error = %e, "node client certificate unreadable: not rotated");
                    return;
                }
            };
            let deadline = rotation_deadline(info.not_before, info.not_after, self.received, jitter());
            let wait = deadline.duration_since(SystemTime::now()).unwrap_or_default();
            tracing::info!(
                serial = %info.serial,
                expires = %chrono::DateTime::<chrono::Utc>::from(info.not_after).to_rfc3339(),
                renew_in_s = wait.as_secs_f64(),
                "node client certificate"
            );
            tokio::time::sleep(wait).await;
            loop {
                match self.renew().await {
                    Ok(serial) => {
                        tracing::info!(old = %info.serial, new = %serial, kubeconfig = %self.path.display(), "rotated the node client certificate");
                        self.received = SystemTime::now();
                        break;
                    }
                    Err(e) => {
                        let again = retry_after(info.not_after);
                        tracing::warn!(error = %e, retry_in_s = again.as_secs_f64(), "renewing the node client certificate failed");
                        tokio::time::sleep(again).await;
                    }
                }
            }
        }
    }

    /// One renewal: a new key, a CSR as this node, the issued certificate checked, written, then used.
    async fn renew(&self) -> Result<String, CertError> {
        let (key_pem, request_pem) = crate::bootstrap::node_request(&self.node)?;
        let (name, cert_pem) = file_csr(
            &self.client,
            "node-csr-",
            rkube_apimachinery::certificates::KUBE_APISERVER_CLIENT_KUBELET,
            &["digital signature", "client auth"],
            request_pem,
            Wait { until: Duration::from_secs(300), poll: Duration::from_millis(500), timeout: "not approved and signed within 5 minutes (`kubectl get csr`)" },
            |name| tracing::info!(csr = %name, node = %self.node, "filed a certificate signing request to renew the node client certificate"),
        )
        .await?;
        let req_err = |problem: String| CertError::Request { name: name.clone(), problem };
        let info = cert_info(&cert_pem)?;
        if !is_node_certificate(&info, &self.node) {
            return Err(req_err(format!("the issued certificate is for {:?} {:?}, not system:node:{}", info.common_name, info.organizations, self.node)));
        }
        let key = certified_key(&cert_pem, &key_pem)?;
        self.write_kubeconfig(&cert_pem, &key_pem)?;
        *self.current.key.write().unwrap_or_else(|e| e.into_inner()) = key;
        *self.current.pem.write().unwrap_or_else(|e| e.into_inner()) = (cert_pem, key_pem);
        // connections made with the old certificate end; the next request reconnects with the new one
        self.current.generation.send_modify(|g| *g += 1);
        Ok(info.serial)
    }

    /// The kubeconfig with the new certificate and key, written 0600 by rename (a restart starts with them).
    fn write_kubeconfig(&self, cert_pem: &str, key_pem: &str) -> Result<(), CertError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let kc_err = |problem: String| CertError::Kubeconfig { path: self.path.clone(), problem };
        let text = std::fs::read_to_string(&self.path).map_err(|e| kc_err(e.to_string()))?;
        let raw: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| kc_err(format!("does not parse: {e}")))?;
        let updated = with_identity(&raw, cert_pem, key_pem).ok_or_else(|| kc_err("its current context's user is gone".into()))?;
        let out = serde_yaml::to_string(&updated).map_err(|e| kc_err(e.to_string()))?;
        let tmp = self.path.with_extension("rotate.tmp");
        let werr = |source| CertError::Write { path: tmp.clone(), source };
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(werr)?;
        f.write_all(out.as_bytes()).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        std::fs::rename(&tmp, &self.path).map_err(|source| CertError::Write { path: self.path.clone(), source })
    }
}


/// How long [`file_csr`] waits for a request to be issued, how often it looks, and what it says when it gives up.
pub(crate) struct Wait {
    /// How long to wait for the certificate.
    pub until: Duration,
    /// How often to read the request.
    pub poll: Duration,
    /// The error's words when `until` has passed.
    pub timeout: &'static str,
}

/// Files a CertificateSigningRequest (`generate_name`, `signer`, `usages`, the PEM `request`) as this node's
/// client, says so through `filed` (with the request's name), and waits until it is issued: returns its name and
/// the certificate's PEM. Denied, Failed or not issued within `wait.until` is an error naming the request.
pub(crate) async fn file_csr(
    client: &kube::Client,
    generate_name: &str,
    signer: &str,
    usages: &[&str],
    request: String,
    wait: Wait,
    filed: impl FnOnce(&str),
) -> Result<(String, String), CertError> {
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta { generate_name: Some(generate_name.into()), ..Default::default() },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: signer.into(),
            usages: Some(usages.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let created = api
        .create(&PostParams::default(), &csr)
        .await
        .map_err(|e| CertError::Request { name: format!("{generate_name}*"), problem: format!("create: {e}") })?;
    let name = created.metadata.name.clone().unwrap_or_default();
    filed(&name);
    let req_err = |problem: String| CertError::Request { name: name.clone(), problem };
    let give_up = tokio::time::Instant::now() + wait.until;
    loop {
        let cur = api.get(&name).await.map_err(|e| req_err(format!("read: {e}")))?;
        let status = cur.status.unwrap_or_default();
        if let Some(c) = status.conditions.iter().flatten().find(|c| c.type_ == "Denied" || c.type_ == "Failed") {
            return Err(req_err(format!("{}: {} {}", c.type_, c.reason.as_deref().unwrap_or_default(), c.message.as_deref().unwrap_or_default())));
        }
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            let pem = String::from_utf8(cert.0).map_err(|_| req_err("the issued certificate is not PEM".into()))?;
            return Ok((name, pem));
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(req_err(wait.timeout.into()));
        }
        tokio::time::sleep(wait.poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    /// `got` within a millisecond of `want` (the fraction is a float).
    fn near(got: SystemTime, want: SystemTime) -> bool {
        let d = got.duration_since(want).or_else(|_| want.duration_since(got)).unwrap_or_default();
        d < Duration::from_millis(1)
    }

    #[test]
    fn the_deadline_is_70_to_90_percent_of_the_lifetime() {
        // a certificate received when issued: upstream's deadline from notBefore
        let (nb, na) = (at(1_000_000), at(1_000_000 + 1000));
        assert!(near(rotation_deadline(nb, na, nb, 0.0), at(1_000_700)));
        assert!(near(rotation_deadline(nb, na, nb, 1.0), at(1_000_900)));
        assert!(near(rotation_deadline(nb, na, nb, 0.5), at(1_000_800)));
    }

    #[test]
    fn a_backdated_short_certificate_counts_from_when_it_arrived() {
        // notBefore 5 minutes back, 20 s left: counted from notBefore it is due at once, and would be forever
        let (nb, received, na) = (at(10_000 - 300), at(10_000), at(10_020));
        assert!(near(rotation_deadline(nb, na, received, 0.0), at(10_014)));
        assert!(near(rotation_deadline(nb, na, received, 1.0), at(10_018)));
        // received before notBefore (a clock step): notBefore counts
        assert!(near(rotation_deadline(at(10_000), at(10_100), at(9_000), 0.0), at(10_070)));
        // received after it expired: due now
        assert_eq!(rotation_deadline(nb, na, at(20_000), 0.5), na);
    }

    #[test]
    fn only_the_nodes_own_certificate_is_rotated() {
        let info = |cn: &str, o: &str| CertInfo {
            common_name: cn.into(),
            organizations: vec![o.into()],
            not_before: at(0),
            not_after: at(1),
            serial: String::new(),
            dns_names: vec![],
            ip_addresses: vec![],
            issuer: String::new(),
            subject: String::new(),
        };
        assert!(is_node_certificate(&info("system:node:n1", "system:nodes"), "n1"));
        assert!(!is_node_certificate(&info("system:node:n2", "system:nodes"), "n1"), "another node's");
        assert!(!is_node_certificate(&info("kubernetes-admin", "system:masters"), "n1"), "the admin's");
        assert!(!is_node_certificate(&info("system:node:n1", "system:masters"), "n1"));
    }

    #[test]
    fn the_kubeconfig_gets_the_new_identity_and_keeps_the_rest() {
        let kc = crate::bootstrap::render_kubeconfig("https://10.0.0.1:6443", "CA", "system:node:n1", "OLD-CERT", "OLD-KEY");
        let raw: serde_yaml::Value = serde_yaml::from_str(&kc).expect("yaml");
        assert_eq!(embedded_identity(&raw), Some(("OLD-CERT".into(), "OLD-KEY".into())));
        let new = with_identity(&raw, "NEW-CERT", "NEW-KEY").expect("current user");
        assert_eq!(embedded_identity(&new), Some(("NEW-CERT".into(), "NEW-KEY".into())));
        assert_eq!(new["clusters"], raw["clusters"]);
        assert_eq!(new["current-context"], raw["current-context"]);
    }

    #[test]
    fn a_real_node_certificate_is_read_and_matched_to_its_key() {
        let (key_pem, _) = crate::bootstrap::node_request("n1").expect("request");
        let key = rcgen::KeyPair::from_pem(&key_pem).expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
        p.distinguished_name.push(rcgen::DnType::CommonName, "system:node:n1");
        let cert = p.self_signed(&key).expect("cert").pem();
        let info = cert_info(&cert).expect("parses");
        assert!(is_node_certificate(&info, "n1"));
        assert!(certified_key(&cert, &key_pem).is_ok());
        let (other_key, _) = crate::bootstrap::node_request("n1").expect("request");
        assert!(certified_key(&cert, &other_key).is_err(), "a certificate for another key is refused");
    }
}
