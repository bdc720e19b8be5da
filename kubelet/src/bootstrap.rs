//! TLS bootstrap, the node's side of `rkube join` (kubeadm's token discovery plus the kubelet's
//! `--bootstrap-kubeconfig`): fetch kube-public/cluster-info without trusting the connection, trust its CA only
//! if its public key matches a `--discovery-token-ca-cert-hash` pin (and the token's JWS signature of it, when the
//! cluster signed it), then file a CertificateSigningRequest for `system:node:<name>` as the bootstrap token's
//! user, wait for it to be approved and signed, and write `<data-dir>/kubelet.conf` (0600) with the node's own
//! credential. Nothing is written on the node before the CA is verified; the only file it writes is kubelet.conf,
//! once the certificate is there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rkube_apimachinery::bootstrap_token as bt;
use rkube_apimachinery::certificates as csrs;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// What `rkube join` asks for.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// `https://host:port` of the apiserver.
    pub server: String,
    /// `<id>.<secret>`.
    pub token: String,
    /// `sha256:<hex>` pins of the CA's SubjectPublicKeyInfo.
    pub ca_cert_hashes: Vec<String>,
    /// `--discovery-token-unsafe-skip-ca-verification`: trust the CA of cluster-info without a pin.
    pub unsafe_skip_ca_verification: bool,
    /// The name to join as: the certificate is for `system:node:<node_name>`.
    pub node_name: String,
    /// Where kubelet.conf goes.
    pub data_dir: PathBuf,
    /// How long to wait for discovery and for the certificate.
    pub timeout: Duration,
}

/// Why `rkube join` stopped; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// `--token` is not a bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`).
    #[error("--token: {0}")]
    Token(#[from] bt::TokenError),
    /// A `--discovery-token-ca-cert-hash` that is not `sha256:` and 64 hex digits.
    #[error("--discovery-token-ca-cert-hash {0:?}: give sha256:<64 hex digits> (the SHA-256 of the CA's SubjectPublicKeyInfo)")]
    HashFormat(String),
    /// Neither a CA pin nor the explicit choice to go without one.
    #[error("no --discovery-token-ca-cert-hash given: pin the cluster CA with it (printed by `rkube token create --print-join-command`), or pass --discovery-token-unsafe-skip-ca-verification")]
    NoPin,
    /// The node's kubeconfig exists already; joining again would replace its identity.
    #[error("{0} already exists: this node has joined already; run `rkube kubelet --kubeconfig {0}`, or remove it to join again")]
    AlreadyJoined(PathBuf),
    /// A request did not complete (connection, TLS against the pinned CA), or the client or CA could not be
    /// loaded.
    #[error("{what} {url}: {source}")]
    Http {
        /// The step that failed (`fetch cluster-info`, `file the node's CSR`...).
        what: &'static str,
        /// The URL requested.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The apiserver answered with an unsuccessful status.
    #[error("{what} {url}: HTTP {status}: {body}")]
    Status {
        /// The step that failed (`fetch cluster-info`, `file the node's CSR`...).
        what: &'static str,
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The apiserver's message (its Status `message`, else the body).
        body: String,
    },
    /// The cluster-info ConfigMap, or an answer, is not what a join expects (no kubeconfig, no CA, not JSON...).
    #[error("cluster-info: {0}")]
    ClusterInfo(String),
    /// The CA in cluster-info matches none of the pins: maybe not the cluster meant.
    #[error("cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{found}\" are pinned (--discovery-token-ca-cert-hash); check the hash, or that --server is the cluster you mean")]
    Unpinned {
        /// The `sha256:` pin of the CA that was found.
        found: String,
    },
    /// cluster-info carries no signature for this token id: the token is unknown or expired (retried until the
    /// timeout, as the signer may not have signed it yet).
    #[error("token id {0:?} is invalid for this cluster or it has expired. Use \"rkube token create\" on the control-plane node to create a new valid token")]
    NoSignature(String),
    /// The signature does not verify with the token: cluster-info may have been tampered with.
    #[error("failed to verify JWS signature of received cluster info object, can't trust this API Server")]
    BadSignature,
    /// The node's CertificateSigningRequest was denied or failed (`how`), with the approver's reason.
    #[error("certificate signing request {name} was {how}: {reason}")]
    Refused {
        /// The CSR's name.
        name: String,
        /// `denied` or `not signed`.
        how: &'static str,
        /// The condition's reason and message.
        reason: String,
    },
    /// The CSR was not approved and signed within [`JoinOptions::timeout`].
    #[error("timed out after {secs}s waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The timeout in seconds.
        secs: u64,
    },
    /// The node's key pair or its request could not be made.
    #[error("make the node key and request: {0}")]
    Key(#[from] rcgen::Error),
    /// Writing the node's kubeconfig (which holds its key) failed.
    #[error("write {path}: {source}")]
    Write {
        /// The file that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// `sha256:<hex>` of the SubjectPublicKeyInfo of the first certificate in `pem` (kubeadm's CA pin).
pub fn ca_cert_hash(pem: &[u8]) -> Result<String, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = block.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(cert.tbs_certificate.subject_pki.raw))))
}

fn check_pin_format(pin: &str) -> Result<(), BootstrapError> {
    let ok = pin.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok { Ok(()) } else { Err(BootstrapError::HashFormat(pin.to_string())) }
}

/// The CA PEM a cluster-info kubeconfig carries, checked against the pins and the token's signature.
/// Pure: what `join` decides about what it fetched.
pub fn verify_cluster_info(data: &Value, token: &str, pins: &[String], skip_pin: bool) -> Result<String, BootstrapError> {
    let (id, secret) = bt::parse(token)?;
    let kubeconfig = data.get("kubeconfig").and_then(Value::as_str).ok_or_else(|| BootstrapError::ClusterInfo("no kubeconfig key".into()))?;
    // the signature first: without it the content is anyone's
    let sig = data.get(format!("{}{id}", bt::JWS_PREFIX)).and_then(Value::as_str).ok_or_else(|| BootstrapError::NoSignature(id.into()))?;
    if sig != bt::detached_jws(kubeconfig, id, secret) {
        return Err(BootstrapError::BadSignature);
    }
    let kc: Value = serde_yaml::from_str(kubeconfig).map_err(|e| BootstrapError::ClusterInfo(format!("kubeconfig does not parse: {e}")))?;
    let ca_b64 = kc
        .pointer("/clusters/0/cluster/certificate-authority-data")
        .and_then(Value::as_str)
        .ok_or_else(|| BootstrapError::ClusterInfo("the kubeconfig has no certificate-authority-data".into()))?;
    let ca = B64.decode(ca_b64.trim()).map_err(|_| BootstrapError::ClusterInfo("certificate-authority-data is not base64".into()))?;
    let found = ca_cert_hash(&ca).map_err(BootstrapError::ClusterInfo)?;
    if !skip_pin && !pins.iter().any(|p| p.eq_ignore_ascii_case(&found)) {
        return Err(BootstrapError::Unpinned { found });
    }
    String::from_utf8(ca).map_err(|_| BootstrapError::ClusterInfo("certificate-authority-data is not PEM".into()))
}

/// A kubeconfig for `user` with an embedded client certificate.
pub fn render_kubeconfig(server: &str, ca_pem: &str, user: &str, cert_pem: &str, key_pem: &str) -> String {
    let kc = json!({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "default-cluster", "cluster": {"server": server, "certificate-authority-data": B64.encode(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": B64.encode(cert_pem), "client-key-data": B64.encode(key_pem)}}],
        "contexts": [{"name": "default-context", "context": {"cluster": "default-cluster", "user": user}}],
        "current-context": "default-context",
    });
    serde_yaml::to_string(&kc).unwrap_or_default()
}

/// The node's key and a PEM request for `system:node:<name>` in `system:nodes`.
pub fn node_request(node: &str) -> Result<(String, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
    p.distinguished_name.push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    let csr = p.serialize_request(&key)?.pem()?;
    Ok((key.serialize_pem(), csr))
}

async fn send(what: &'static str, req: reqwest::RequestBuilder, url: &str) -> Result<Value, BootstrapError> {
    let resp = req.send().await.map_err(|source| BootstrapError::Http { what, url: url.into(), source })?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(|source| BootstrapError::Http { what, url: url.into(), source })?;
    if !(200..300).contains(&status) {
        let msg = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["message"].as_str().map(str::to_string)).unwrap_or(body);
        return Err(BootstrapError::Status { what, url: url.into(), status, body: msg });
    }
    serde_json::from_str(&body).map_err(|e| BootstrapError::ClusterInfo(format!("{what}: the answer is not JSON: {e}")))
}

/// The whole TLS bootstrap; returns the path of the kubelet.conf written. Boxed here, so it is compiled once, in
/// this crate, and not again in the binary that awaits it.
pub fn join(o: &JoinOptions) -> futures::future::BoxFuture<'_, Result<PathBuf, BootstrapError>> {
    Box::pin(bootstrap(o))
}

async fn bootstrap(o: &JoinOptions) -> Result<PathBuf, BootstrapError> {
    bt::parse(&o.token)?;
    for p in &o.ca_cert_hashes {
        check_pin_format(p)?;
    }
    if o.ca_cert_hashes.is_empty() && !o.unsafe_skip_ca_verification {
        return Err(BootstrapError::NoPin);
    }
    let conf = o.data_dir.join("kubelet.conf");
    if conf.exists() {
        return Err(BootstrapError::AlreadyJoined(conf));
    }
    let server = o.server.trim_end_matches('/');
    let deadline = tokio::time::Instant::now() + o.timeout;
    // discovery: nothing about the connection is trusted; the pin and the signature are what count
    let insecure = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|source| BootstrapError::Http { what: "build a client", url: server.into(), source })?;
    let url = format!("{server}/api/v1/namespaces/{}/configmaps/{}", bt::PUBLIC_NAMESPACE, bt::CLUSTER_INFO);
    let ca_pem = loop {
        let cm = send("fetch cluster-info", insecure.get(&url), &url).await?;
        match verify_cluster_info(&cm["data"], &o.token, &o.ca_cert_hashes, o.unsafe_skip_ca_verification) {
            // the bootstrap signer may not have signed with a new token yet
            Err(BootstrapError::NoSignature(id)) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(token_id = %id, "cluster-info not signed for this token yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => break other?,
        }
    };
    tracing::info!(server, "cluster CA verified by its pin and the token's signature");
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).map_err(|source| BootstrapError::Http { what: "load the cluster CA", url: server.into(), source })?;
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|source| BootstrapError::Http { what: "build a client", url: server.into(), source })?;
    let (key_pem, request_pem) = node_request(&o.node_name)?;
    let csr = json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "node-csr-"},
        "spec": {"request": B64.encode(&request_pem), "signerName": csrs::KUBE_APISERVER_CLIENT_KUBELET,
                 "usages": ["digital signature", "client auth"]},
    });
    let collection = format!("{server}/apis/certificates.k8s.io/v1/certificatesigningrequests");
    let created = send("file the node's CSR", client.post(&collection).bearer_auth(&o.token).json(&csr), &collection).await?;
    let name = created.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    tracing::info!(csr = %name, node = %o.node_name, "filed the node's certificate signing request; waiting for approval and signing");
    let one = format!("{collection}/{name}");
    let cert_pem = loop {
        let cur = send("read the node's CSR", client.get(&one).bearer_auth(&o.token), &one).await?;
        for c in cur.pointer("/status/conditions").and_then(Value::as_array).into_iter().flatten() {
            let how = match c["type"].as_str() {
                Some("Denied") => "denied",
                Some("Failed") => "not signed",
                _ => continue,
            };
            let reason = format!("{} {}", c["reason"].as_str().unwrap_or_default(), c["message"].as_str().unwrap_or_default());
            return Err(BootstrapError::Refused { name, how, reason: reason.trim().to_string() });
        }
        if let Some(cert) = cur.pointer("/status/certificate").and_then(Value::as_str).filter(|c| !c.is_empty()) {
            let pem = B64.decode(cert).map_err(|_| BootstrapError::ClusterInfo(format!("CSR {name}: the certificate is not base64")))?;
            break String::from_utf8_lossy(&pem).into_owned();
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BootstrapError::Timeout { what: format!("CSR {name} to be approved and signed (`kubectl get csr {name}`)"), secs: o.timeout.as_secs() });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let user = format!("system:node:{}", o.node_name);
    write_private(&o.data_dir, &conf, &render_kubeconfig(server, &ca_pem, &user, &cert_pem, &key_pem))?;
    tracing::info!(path = %conf.display(), user, "wrote the node's kubeconfig");
    Ok(conf)
}

/// Writes `content` to `path` with mode 0600 from the first byte, creating `dir` (0700) if needed.
fn write_private(dir: &Path, path: &Path, content: &str) -> Result<(), BootstrapError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let err = |source| BootstrapError::Write { path: path.to_path_buf(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
    let tmp = path.with_extension("conf.tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(err)?;
    f.write_all(content.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "abcdef.0123456789abcdef";

    fn ca() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = p.self_signed(&key).expect("ca").pem();
        let hash = ca_cert_hash(pem.as_bytes()).expect("hash");
        (pem, hash)
    }

    fn cluster_info(ca_pem: &str, sign_with: Option<&str>) -> Value {
        let kc = render_kubeconfig("https://127.0.0.1:6443", ca_pem, "u", "c", "k");
        let mut data = json!({"kubeconfig": kc});
        if let Some(t) = sign_with {
            let (id, secret) = bt::parse(t).expect("token");
            data[format!("jws-kubeconfig-{id}")] = json!(bt::detached_jws(&kc, id, secret));
        }
        data
    }

    #[test]
    fn the_ca_is_trusted_only_by_pin_and_signature() {
        let (pem, hash) = ca();
        assert!(hash.starts_with("sha256:") && hash.len() == 7 + 64);
        assert_eq!(verify_cluster_info(&cluster_info(&pem, Some(TOKEN)), TOKEN, &[hash.clone()], false).expect("pinned"), pem);
        let (_, other) = ca();
        assert!(matches!(verify_cluster_info(&cluster_info(&pem, Some(TOKEN)), TOKEN, &[other.clone()], false), Err(BootstrapError::Unpinned { found }) if found == hash));
        assert!(verify_cluster_info(&cluster_info(&pem, Some(TOKEN)), TOKEN, &[other], true).is_ok(), "unsafe skip");
        assert!(matches!(verify_cluster_info(&cluster_info(&pem, None), TOKEN, &[hash.clone()], false), Err(BootstrapError::NoSignature(_))));
        assert!(matches!(
            verify_cluster_info(&cluster_info(&pem, Some("abcdef.0123456789abcdee")), TOKEN, &[hash], false),
            Err(BootstrapError::BadSignature)
        ));
    }

    #[test]
    fn pins_and_requests_have_the_right_shape() {
        assert!(check_pin_format(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(check_pin_format("sha256:abc").is_err());
        assert!(check_pin_format(&"a".repeat(64)).is_err());
        let (_, req) = node_request("n1").expect("request");
        let parsed = csrs::parse_csr(req.as_bytes()).expect("parses");
        assert_eq!(parsed.common_name, "system:node:n1");
        assert!(csrs::validate_kubelet_client(&parsed, &["digital signature".into(), "client auth".into()]).is_ok());
    }

    #[tokio::test]
    async fn bad_input_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("node");
        let o = JoinOptions {
            server: "https://127.0.0.1:1".into(),
            token: "not-a-token".into(),
            ca_cert_hashes: vec![],
            unsafe_skip_ca_verification: false,
            node_name: "n1".into(),
            data_dir: data_dir.clone(),
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(join(&o).await, Err(BootstrapError::Token(_))));
        let o = JoinOptions { token: TOKEN.into(), ..o };
        assert!(matches!(join(&o).await, Err(BootstrapError::NoPin)));
        assert!(!data_dir.exists());
    }
}
