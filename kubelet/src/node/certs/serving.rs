//! The kubelet API's serving certificate from the cluster (upstream's `serverTLSBootstrap: true`,
//! `--rotate-server-certificates`): the kubelet files a CertificateSigningRequest as the node itself, signer
//! `kubernetes.io/kubelet-serving`, usages digital signature, key encipherment and server auth, subject
//! `O=system:nodes, CN=system:node:<name>`, subjectAltNames the Node's addresses (Hostname and DNS ones as DNS
//! names, InternalIP and ExternalIP as IP addresses). Nothing approves such a request but an administrator
//! (`kubectl certificate approve`), as upstream's csrapproving controller approves only client requests. Once
//! issued, the certificate is written to `<pki>/kubelet-server-current.pem` (certificate and key, 0600, by rename:
//! the next start loads it) and [`ServingCert`], the server's certificate resolver, switches to it for every new
//! handshake (no restart). It is renewed the same way at 70-90 % of its lifetime
//! ([`super::rotation_deadline`]), or at once when it no longer names the Node's addresses.
//!
//! Until one is issued the kubelet keeps serving the certificate it started with (its self-signed one). Upstream's
//! kubelet refuses every handshake instead ("no serving certificate available for the kubelet", and `kubectl
//! logs` answers "remote error: tls: internal error"); rkube keeps the node's logs and exec usable meanwhile, which
//! the apiserver allows since, like upstream's by default, it does not check kubelet serving certificates against
//! a CA (`rkube server`). A request not approved in 15 minutes (upstream's wait) is given up and a new one filed.
//!
//! The decisions are pure functions here ([`serving_template`], [`satisfies_template`], [`serving_deadline`],
//! [`starting_certificate`], [`retry_backoff`]), tested without an apiserver; [`ServingRotation`] only carries
//! them out.
//!
//! Must not: serve a certificate whose key it does not hold; switch to an issued certificate that does not name
//! this node and its addresses; approve its own request.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Node, NodeAddress};
use kube::Api;
use rustls::sign::CertifiedKey;

use super::{cert_info, certified_key, file_csr, jitter, CertError, CertInfo, Wait};

/// Where the issued certificate and its key are kept (upstream's `kubelet-server-current.pem` in the kubelet's
/// certificate directory).
pub const CURRENT_FILE: &str = "kubelet-server-current.pem";

/// The usages of a kubelet serving request (upstream's, for an ECDSA key they include key encipherment too).
pub const USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];

/// How long an unapproved request is waited for before a new one is filed (upstream's certificateWaitTimeout).
const WAIT_FOR_APPROVAL: Duration = Duration::from_secs(15 * 60);

/// The kubelet API's certificate and key, read at every TLS handshake and replaced while the server runs.
pub struct ServingCert {
    key: RwLock<Arc<CertifiedKey>>,
    pem: RwLock<(String, String)>,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert").field("serial", &self.info().map(|i| i.serial).unwrap_or_default()).finish_non_exhaustive()
    }
}

impl ServingCert {
    /// A resolver serving `cert_pem` (PEM chain) with `key_pem`; a certificate for another key is refused.
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<ServingCert, CertError> {
        Ok(ServingCert { key: RwLock::new(certified_key(cert_pem, key_pem)?), pem: RwLock::new((cert_pem.to_string(), key_pem.to_string())) })
    }

    /// Serves `cert_pem` with `key_pem` from the next handshake on (connections already open keep theirs).
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> Result<(), CertError> {
        let key = certified_key(cert_pem, key_pem)?;
        *self.key.write().unwrap_or_else(|e| e.into_inner()) = key;
        *self.pem.write().unwrap_or_else(|e| e.into_inner()) = (cert_pem.to_string(), key_pem.to_string());
        Ok(())
    }

    /// The certificate and key served now (PEM).
    pub fn pem(&self) -> (String, String) {
        self.pem.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What the certificate served now says.
    pub fn info(&self) -> Result<CertInfo, CertError> {
        cert_info(&self.pem().0)
    }
}

impl rustls::server::ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// What the node's serving certificate must say: upstream's template, from the Node's addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingTemplate {
    /// `system:node:<node>`.
    pub common_name: String,
    /// `system:nodes`.
    pub organization: String,
    /// The Node's Hostname, InternalDNS and ExternalDNS addresses.
    pub dns_names: BTreeSet<String>,
    /// The Node's InternalIP and ExternalIP addresses.
    pub ips: BTreeSet<IpAddr>,
}

/// Upstream's template for node `node`: `CN=system:node:<node>, O=system:nodes`; Hostname, InternalDNS and
/// ExternalDNS addresses as DNS names, InternalIP and ExternalIP ones as IP addresses (each once). None until
/// the Node has an IP address (upstream's validateAtLeastOneIP: no request without one).
pub fn serving_template(node: &str, addresses: &[NodeAddress]) -> Option<ServingTemplate> {
    let mut t = ServingTemplate {
        common_name: format!("system:node:{node}"),
        organization: "system:nodes".into(),
        dns_names: BTreeSet::new(),
        ips: BTreeSet::new(),
    };
    for a in addresses.iter().filter(|a| !a.address.is_empty()) {
        match a.type_.as_str() {
            "Hostname" | "InternalDNS" | "ExternalDNS" => {
                t.dns_names.insert(a.address.clone());
            }
            "InternalIP" | "ExternalIP" => {
                if let Ok(ip) = a.address.parse() {
                    t.ips.insert(ip);
                }
            }
            _ => {}
        }
    }
    (!t.ips.is_empty()).then_some(t)
}

/// Whether `cert` is what `t` asks for: the same CN, organizations, DNS names and IP addresses (as sets; upstream's
/// certSatisfiesTemplate). A certificate for fewer or more names than the Node has is renewed.
pub fn satisfies_template(cert: &CertInfo, t: &ServingTemplate) -> bool {
    let orgs: BTreeSet<&str> = cert.organizations.iter().map(String::as_str).collect();
    cert.common_name == t.common_name
        && orgs == BTreeSet::from([t.organization.as_str()])
        && cert.dns_names.iter().cloned().collect::<BTreeSet<_>>() == t.dns_names
        && cert.ip_addresses.iter().copied().collect::<BTreeSet<_>>() == t.ips
}

/// When to file the next request: now when there is no issued certificate or it does not satisfy the template,
/// else the jittered 70-90 % point of its lifetime (counted from `received`, see [`super::rotation_deadline`]).
pub fn serving_deadline(current: Option<&CertInfo>, t: &ServingTemplate, received: SystemTime, now: SystemTime, jitter: f64) -> SystemTime {
    match current {
        Some(c) if satisfies_template(c, t) => super::rotation_deadline(c.not_before, c.not_after, received, jitter),
        _ => now,
    }
}

/// Which certificate counts as issued at start: the stored one (`kubelet-server-current.pem`), else the one the
/// kubelet was started with, whichever first is signed by the cluster CA (`ca_subject`, its issuer) and not
/// expired; None when neither is (a self-signed one: a request is filed at once).
pub fn starting_certificate<'a>(stored: Option<&'a CertInfo>, given: Option<&'a CertInfo>, ca_subject: &str, now: SystemTime) -> Option<&'a CertInfo> {
    [stored, given].into_iter().flatten().find(|c| c.issuer == ca_subject && c.issuer != c.subject && c.not_after > now)
}

/// How long to wait after the `attempt`-th failure in a row (from 1): 2 s doubling up to 5 minutes, so a denied
/// request or an unreachable apiserver does not become a stream of new requests.
pub fn retry_backoff(attempt: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempt.min(16))).min(Duration::from_secs(300))
}

/// A new ECDSA P-256 key and a PEM request for `t` (subject and subjectAltNames): (key PEM, request PEM).
pub fn serving_request(t: &ServingTemplate) -> Result<(String, String), CertError> {
    let key = rcgen::KeyPair::generate()?;
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::OrganizationName, t.organization.clone());
    p.distinguished_name.push(rcgen::DnType::CommonName, t.common_name.clone());
    for d in &t.dns_names {
        let name = rcgen::Ia5String::try_from(d.as_str()).map_err(|e| CertError::Certificate(format!("DNS name {d:?}: {e}")))?;
        p.subject_alt_names.push(rcgen::SanType::DnsName(name));
    }
    for ip in &t.ips {
        p.subject_alt_names.push(rcgen::SanType::IpAddress(*ip));
    }
    let csr = p.serialize_request(&key)?.pem()?;
    Ok((key.serialize_pem(), csr))
}

/// Reads `<dir>/kubelet-server-current.pem` (certificate then key): None when it is missing or unusable.
fn load_stored(dir: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(dir.join(CURRENT_FILE)).ok()?;
    // the key begins at the first PEM block whose label names a private key
    let key_at = text.match_indices("-----BEGIN").map(|(i, _)| i).find(|&i| text[i..].lines().next().is_some_and(|l| l.contains("PRIVATE KEY")))?;
    let (cert, key) = text.split_at(key_at);
    certified_key(cert, key).ok()?;
    Some((cert.to_string(), key.to_string()))
}

/// Writes the certificate and key to `<dir>/kubelet-server-current.pem`, 0600, by rename.
fn store(dir: &Path, cert_pem: &str, key_pem: &str) -> Result<PathBuf, CertError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = dir.join(CURRENT_FILE);
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CertError::Write { path, source }
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(werr(dir))?;
    let tmp = dir.join(format!("{CURRENT_FILE}.tmp"));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(werr(&tmp))?;
    let mut text = cert_pem.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(key_pem);
    f.write_all(text.as_bytes()).map_err(werr(&tmp))?;
    f.sync_all().map_err(werr(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(werr(&path))?;
    Ok(path)
}

/// Files, waits for and switches to the node's serving certificate for as long as the kubelet runs
/// ([`ServingRotation::run`]).
pub struct ServingRotation {
    client: kube::Client,
    node: String,
    dir: PathBuf,
    cert: Arc<ServingCert>,
    /// The issued certificate in use; None while the kubelet serves the one it started with.
    current: Option<CertInfo>,
    received: SystemTime,
}

impl ServingRotation {
    /// The rotation of `cert`, the resolver the kubelet API serves with, for node `node` whose client is
    /// `client`, keeping the issued certificate in `dir`. The stored certificate, when it is the cluster CA's
    /// (`ca_pem`) and still valid, is served at once; else the one `cert` holds counts as issued when it is.
    pub fn new(client: kube::Client, node: &str, dir: &Path, cert: Arc<ServingCert>, ca_pem: &str) -> Result<ServingRotation, CertError> {
        let ca = cert_info(ca_pem)?;
        let now = SystemTime::now();
        let stored = load_stored(dir).and_then(|(c, k)| Some((cert_info(&c).ok()?, c, k)));
        let given = cert.info().ok();
        let current = starting_certificate(stored.as_ref().map(|s| &s.0), given.as_ref(), &ca.subject, now).cloned();
        let mut received = now;
        if let (Some(c), Some((info, cert_pem, key_pem))) = (&current, &stored) {
            if c == info {
                cert.replace(cert_pem, key_pem)?;
                received = std::fs::metadata(dir.join(CURRENT_FILE)).and_then(|m| m.modified()).unwrap_or(now);
                tracing::info!(serial = %info.serial, file = %dir.join(CURRENT_FILE).display(), "kubelet serving certificate loaded");
            }
        }
        Ok(ServingRotation { client, node: node.to_string(), dir: dir.to_path_buf(), cert, current, received })
    }

    /// The Node's addresses as the kubelet last reported them, waited for until it has an IP address.
    async fn template(&self) -> ServingTemplate {
        let nodes: Api<Node> = Api::all(self.client.clone());
        loop {
            match nodes.get_opt(&self.node).await {
                Ok(Some(n)) => {
                    let addresses = n.status.and_then(|s| s.addresses).unwrap_or_default();
                    if let Some(t) = serving_template(&self.node, &addresses) {
                        return t;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(node = %self.node, error = %e, "read the Node for its addresses"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Requests, waits for and switches certificates at each deadline, until the kubelet stops. Boxed here, so it
    /// is compiled once, in this crate, and not again in the binary that spawns it.
    pub fn run(self) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(self.renew_forever())
    }

    async fn renew_forever(mut self) {
        let mut failures = 0;
        loop {
            let template = self.template().await;
            let now = SystemTime::now();
            let deadline = serving_deadline(self.current.as_ref(), &template, self.received, now, jitter());
            let wait = deadline.duration_since(now).unwrap_or_default();
            match &self.current {
                Some(c) => tracing::info!(
                    serial = %c.serial,
                    expires = %chrono::DateTime::<chrono::Utc>::from(c.not_after).to_rfc3339(),
                    renew_in_s = wait.as_secs_f64(),
                    "kubelet serving certificate"
                ),
                None => tracing::info!(node = %self.node, "no kubelet serving certificate from the cluster yet: serving the self-signed one until a request is approved"),
            }
            tokio::time::sleep(wait).await;
            match self.renew(&template).await {
                Ok(info) => {
                    failures = 0;
                    tracing::info!(old = %self.current.as_ref().map(|c| c.serial.as_str()).unwrap_or("self-signed"), new = %info.serial, "switched to the new kubelet serving certificate");
                    self.current = Some(info);
                    self.received = SystemTime::now();
                }
                Err(e) => {
                    failures += 1;
                    let again = retry_backoff(failures);
                    tracing::warn!(error = %e, retry_in_s = again.as_secs_f64(), "kubelet serving certificate not renewed");
                    tokio::time::sleep(again).await;
                }
            }
        }
    }

    /// One request: a new key, a CSR as this node, waited for until issued, checked, stored, then served.
    async fn renew(&self, template: &ServingTemplate) -> Result<CertInfo, CertError> {
        let (key_pem, request_pem) = serving_request(template)?;
        let (name, cert_pem) = file_csr(
            &self.client,
            "csr-",
            rkube_apimachinery::certificates::KUBELET_SERVING,
            USAGES,
            request_pem,
            Wait { until: WAIT_FOR_APPROVAL, poll: Duration::from_secs(1), timeout: "not approved within 15 minutes (`kubectl certificate approve`); filing a new one" },
            |name| tracing::info!(csr = %name, node = %self.node, "filed a kubelet serving certificate request: an administrator approves it with `kubectl certificate approve {name}`"),
        )
        .await?;
        let req_err = |problem: String| CertError::Request { name: name.clone(), problem };
        let info = cert_info(&cert_pem)?;
        if !satisfies_template(&info, template) {
            return Err(req_err(format!(
                "the issued certificate names {:?} {:?} {:?} {:?}, not what was asked ({template:?})",
                info.common_name, info.organizations, info.dns_names, info.ip_addresses
            )));
        }
        // checks the key before anything is written
        certified_key(&cert_pem, &key_pem)?;
        let path = store(&self.dir, &cert_pem, &key_pem)?;
        self.cert.replace(&cert_pem, &key_pem)?;
        tracing::info!(csr = %name, serial = %info.serial, file = %path.display(), "kubelet serving certificate issued");
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn addr(t: &str, a: &str) -> NodeAddress {
        NodeAddress { type_: t.into(), address: a.into() }
    }

    fn template() -> ServingTemplate {
        serving_template("n1", &[addr("InternalIP", "10.0.0.5"), addr("Hostname", "n1")]).expect("an IP")
    }

    fn cert(cn: &str, dns: &[&str], ips: &[&str]) -> CertInfo {
        CertInfo {
            common_name: cn.into(),
            organizations: vec!["system:nodes".into()],
            not_before: at(1_000),
            not_after: at(2_000),
            serial: "01".into(),
            dns_names: dns.iter().map(|d| d.to_string()).collect(),
            ip_addresses: ips.iter().map(|i| i.parse().expect("ip")).collect(),
            issuer: "CN=rkube-ca".into(),
            subject: format!("O=system:nodes, CN={cn}"),
        }
    }

    #[test]
    fn the_template_names_the_nodes_addresses_as_upstream() {
        let t = template();
        assert_eq!(t.common_name, "system:node:n1");
        assert_eq!(t.organization, "system:nodes");
        assert_eq!(t.dns_names, BTreeSet::from(["n1".to_string()]));
        assert_eq!(t.ips, BTreeSet::from(["10.0.0.5".parse::<IpAddr>().expect("ip")]));
        // every DNS kind, every IP kind, each once; other kinds and empty addresses left out
        let t = serving_template(
            "n1",
            &[
                addr("Hostname", "n1"),
                addr("InternalDNS", "n1.lan"),
                addr("ExternalDNS", "n1.example"),
                addr("InternalIP", "10.0.0.5"),
                addr("ExternalIP", "192.0.2.7"),
                addr("InternalIP", "10.0.0.5"),
                addr("InternalIP", "fd00::5"),
                addr("Hostname", ""),
                addr("Other", "x"),
            ],
        )
        .expect("an IP");
        assert_eq!(t.dns_names.into_iter().collect::<Vec<_>>(), ["n1", "n1.example", "n1.lan"]);
        assert_eq!(t.ips.len(), 3);
        // no IP yet (the Node not reported, or a name only): nothing to request
        assert_eq!(serving_template("n1", &[addr("Hostname", "n1")]), None);
        assert_eq!(serving_template("n1", &[addr("InternalIP", "not-an-ip")]), None);
    }

    #[test]
    fn a_certificate_satisfies_the_template_only_with_exactly_its_names() {
        let t = template();
        assert!(satisfies_template(&cert("system:node:n1", &["n1"], &["10.0.0.5"]), &t));
        assert!(!satisfies_template(&cert("system:node:n2", &["n1"], &["10.0.0.5"]), &t), "another node's");
        assert!(!satisfies_template(&cert("system:node:n1", &["n1"], &["10.0.0.6"]), &t), "an address the node no longer has");
        assert!(!satisfies_template(&cert("system:node:n1", &["n1"], &[]), &t), "missing the IP");
        assert!(!satisfies_template(&cert("system:node:n1", &["n1", "extra"], &["10.0.0.5"]), &t), "a name too many");
        let mut wrong_org = cert("system:node:n1", &["n1"], &["10.0.0.5"]);
        wrong_org.organizations = vec!["system:masters".into()];
        assert!(!satisfies_template(&wrong_org, &t));
        // the kubelet's self-signed certificate (CN <node>@kubelet): never counts
        assert!(!satisfies_template(&cert("n1@kubelet", &["n1"], &["10.0.0.5"]), &t));
    }

    #[test]
    fn a_request_is_filed_at_once_without_a_fitting_certificate_else_at_70_to_90_percent() {
        let t = template();
        let now = at(1_100);
        assert_eq!(serving_deadline(None, &t, now, now, 0.5), now, "none issued yet");
        let moved = cert("system:node:n1", &["n1"], &["10.0.0.9"]);
        assert_eq!(serving_deadline(Some(&moved), &t, at(1_000), now, 0.5), now, "the node's address changed");
        let good = cert("system:node:n1", &["n1"], &["10.0.0.5"]);
        assert_eq!(serving_deadline(Some(&good), &t, at(1_000), now, 0.0), at(1_700));
        assert_eq!(serving_deadline(Some(&good), &t, at(1_000), now, 1.0), at(1_900));
        assert_eq!(serving_deadline(Some(&good), &t, at(1_000), now, 0.5), at(1_800));
    }

    #[test]
    fn at_start_the_stored_then_the_given_certificate_counts_when_the_cluster_ca_signed_it() {
        let ca = "CN=rkube-ca";
        let now = at(1_500);
        let stored = cert("system:node:n1", &["n1"], &["10.0.0.5"]);
        let mut given = stored.clone();
        given.serial = "02".into();
        assert_eq!(starting_certificate(Some(&stored), Some(&given), ca, now), Some(&stored));
        assert_eq!(starting_certificate(None, Some(&given), ca, now), Some(&given), "rkube up's, issued from the CA at start");
        let mut expired = stored.clone();
        expired.not_after = at(1_400);
        assert_eq!(starting_certificate(Some(&expired), Some(&given), ca, now), Some(&given));
        let mut self_signed = given.clone();
        self_signed.issuer = self_signed.subject.clone();
        assert_eq!(starting_certificate(None, Some(&self_signed), ca, now), None, "a self-signed one: request at once");
        let mut other_ca = given.clone();
        other_ca.issuer = "CN=another".into();
        assert_eq!(starting_certificate(None, Some(&other_ca), ca, now), None);
        assert_eq!(starting_certificate(None, None, ca, now), None);
    }

    #[test]
    fn failures_back_off_from_2_seconds_to_5_minutes() {
        assert_eq!(retry_backoff(1), Duration::from_secs(2));
        assert_eq!(retry_backoff(2), Duration::from_secs(4));
        assert_eq!(retry_backoff(8), Duration::from_secs(256));
        assert_eq!(retry_backoff(9), Duration::from_secs(300));
        assert_eq!(retry_backoff(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn a_request_and_its_issued_certificate_are_checked_stored_and_served() {
        let t = template();
        let (key_pem, request_pem) = serving_request(&t).expect("request");
        // the request says what the template says (the signer's own parser)
        let parsed = rkube_apimachinery::certificates::parse_csr(request_pem.as_bytes()).expect("parses");
        assert_eq!(parsed.common_name, "system:node:n1");
        assert_eq!(parsed.organizations, ["system:nodes"]);
        assert_eq!(parsed.dns_names, ["n1"]);
        assert_eq!(parsed.ip_addresses, [vec![10u8, 0, 0, 5]]);
        let usages: Vec<String> = USAGES.iter().map(|u| u.to_string()).collect();
        rkube_apimachinery::certificates::validate_kubelet_serving(&parsed, &usages).expect("the signer takes it");
        // a CA signs it as the cluster's signer would: subject and names kept
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut cp = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        cp.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        cp.distinguished_name.push(rcgen::DnType::CommonName, "rkube-ca");
        let ca = cp.self_signed(&ca_key).expect("ca");
        // the request's subject and names on a certificate for its key, as the signer copies them
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
        p.distinguished_name.push(rcgen::DnType::CommonName, "system:node:n1");
        p.subject_alt_names = vec![
            rcgen::SanType::DnsName(rcgen::Ia5String::try_from("n1").expect("ia5")),
            rcgen::SanType::IpAddress("10.0.0.5".parse().expect("ip")),
        ];
        let issued = p.signed_by(&rcgen::KeyPair::from_pem(&key_pem).expect("key"), &ca, &ca_key).expect("sign").pem();
        let info = cert_info(&issued).expect("parses");
        assert!(satisfies_template(&info, &t), "{info:?}");
        let ca_info = cert_info(&ca.pem()).expect("ca");
        assert_eq!(starting_certificate(None, Some(&info), &ca_info.subject, SystemTime::now()), Some(&info));
        // stored 0600 and loaded back; served by the resolver after a replace
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        let path = store(&pki, &issued, &key_pem).expect("store");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        assert_eq!(load_stored(&pki), Some((issued.trim_end().to_string() + "\n", key_pem.clone())));
        let (other_key, _) = serving_request(&t).expect("request");
        let self_signed = {
            let k = rcgen::KeyPair::from_pem(&other_key).expect("key");
            rcgen::CertificateParams::new(vec!["n1".to_string()]).expect("params").self_signed(&k).expect("cert").pem()
        };
        let serving = ServingCert::new(&self_signed, &other_key).expect("resolver");
        assert!(serving.replace(&issued, &other_key).is_err(), "a certificate for another key is refused");
        assert_eq!(serving.pem().0, self_signed, "and the old one kept");
        serving.replace(&issued, &key_pem).expect("replace");
        assert_eq!(serving.info().expect("info").serial, info.serial);
        // a garbled file is no certificate
        std::fs::write(&path, "junk").expect("write");
        assert_eq!(load_stored(&pki), None);
    }
}
