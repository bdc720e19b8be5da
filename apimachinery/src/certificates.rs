//! CertificateSigningRequests (certificates.k8s.io/v1): the PEM request parsed once for the apiserver's
//! validation and the controllers' approval and signing, the well-known signer names, and upstream's check of
//! a kubelet client CSR (`ValidateKubeletClientCSR`). Pure.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// The signer of client certificates for the apiserver.
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// The signer of kubelets' client certificates (`system:node:<name>`).
pub const KUBE_APISERVER_CLIENT_KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of kubelets' serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// Upstream's floor for `spec.expirationSeconds`.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The usages a CSR may list (upstream's `KeyUsage` values).
pub const USAGES: &[&str] = &[
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement", "data encipherment",
    "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth", "client auth", "code signing",
    "email protection", "s/mime", "ipsec end system", "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
    "microsoft sgc", "netscape sgc",
];
/// The usages of a kubelet client certificate: these, or these without "key encipherment" (non-RSA keys).
pub const KUBELET_CLIENT_USAGES: &[&str] = &["client auth", "digital signature", "key encipherment"];

/// The usages of a kubelet serving certificate: these, or these without "key encipherment" (non-RSA keys).
pub const KUBELET_SERVING_USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];

/// Why a request does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// The PEM block is not a `CERTIFICATE REQUEST`.
    #[error("PEM block type must be CERTIFICATE REQUEST")]
    PemType,
    /// The DER inside does not parse as a PKCS#10 request.
    #[error("x509: malformed certificate request: {0}")]
    Malformed(String),
}

/// What a certificate request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedCsr {
    /// The subject's CN.
    pub common_name: String,
    /// The subject's O values, in order.
    pub organizations: Vec<String>,
    /// DNS names of the subjectAltName extension.
    pub dns_names: Vec<String>,
    /// IP addresses of the subjectAltName extension (4 or 16 bytes each).
    pub ip_addresses: Vec<Vec<u8>>,
    /// Email addresses of the subjectAltName extension.
    pub email_addresses: Vec<String>,
    /// URIs of the subjectAltName extension.
    pub uris: Vec<String>,
    /// The DER SubjectPublicKeyInfo of the requested key.
    pub spki_der: Vec<u8>,
}

/// Parses a PEM `CERTIFICATE REQUEST` (what `spec.request` holds, once base64-decoded).
pub fn parse_csr(pem: &[u8]) -> Result<ParsedCsr, CsrError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| CsrError::PemType)?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err(CsrError::PemType);
    }
    let (_, req) = X509CertificationRequest::from_der(&block.contents).map_err(|e| CsrError::Malformed(e.to_string()))?;
    let info = &req.certification_request_info;
    let strings = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| -> Vec<String> {
        it.filter_map(|a| a.as_str().ok()).map(str::to_string).collect()
    };
    let mut out = ParsedCsr {
        common_name: strings(&mut info.subject.iter_common_name()).into_iter().next().unwrap_or_default(),
        organizations: strings(&mut info.subject.iter_organization()),
        spki_der: info.subject_pki.raw.to_vec(),
        ..Default::default()
    };
    for ext in req.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => out.dns_names.push(d.to_string()),
                    GeneralName::IPAddress(ip) => out.ip_addresses.push(ip.to_vec()),
                    GeneralName::RFC822Name(e) => out.email_addresses.push(e.to_string()),
                    GeneralName::URI(u) => out.uris.push(u.to_string()),
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

/// Upstream's `ValidateKubeletClientCSR`: subject `system:node:<name>` in exactly `system:nodes`, no SANs,
/// the kubelet client usages. The error is upstream's text.
pub fn validate_kubelet_client(csr: &ParsedCsr, usages: &[String]) -> Result<(), String> {
    if csr.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if !csr.dns_names.is_empty() {
        return Err("DNS subjectAltNames are not allowed".into());
    }
    if !csr.email_addresses.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !csr.ip_addresses.is_empty() {
        return Err("IP subjectAltNames are not allowed".into());
    }
    if !csr.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !csr.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    let mut have: Vec<&str> = usages.iter().map(String::as_str).collect();
    have.sort_unstable();
    have.dedup();
    let no_rsa: Vec<&str> = KUBELET_CLIENT_USAGES.iter().copied().filter(|u| *u != "key encipherment").collect();
    if have != KUBELET_CLIENT_USAGES && have != no_rsa {
        return Err(format!("usages did not match [{}]", KUBELET_CLIENT_USAGES.join(" ")));
    }
    Ok(())
}

/// Upstream's check of a `kubernetes.io/kubelet-serving` request (`ValidateKubeletServingCSR`, in its order):
/// subject O `system:nodes`, at least one DNS or IP subjectAltName and no email or URI ones, the serving usages,
/// CN `system:node:<name>`. The kubelet files these for its HTTPS server (upstream's `serverTLSBootstrap`);
/// nothing approves them automatically, as upstream: an administrator does (`kubectl certificate approve`).
pub fn validate_kubelet_serving(csr: &ParsedCsr, usages: &[String]) -> Result<(), String> {
    if csr.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if csr.dns_names.is_empty() && csr.ip_addresses.is_empty() {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if !csr.email_addresses.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !csr.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    let mut have: Vec<&str> = usages.iter().map(String::as_str).collect();
    have.sort_unstable();
    have.dedup();
    let no_rsa: Vec<&str> = KUBELET_SERVING_USAGES.iter().copied().filter(|u| *u != "key encipherment").collect();
    if have != KUBELET_SERVING_USAGES && have != no_rsa {
        return Err(format!("usages did not match [{}]", KUBELET_SERVING_USAGES.join(" ")));
    }
    if !csr.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    Ok(())
}

/// Upstream's check of a `kubernetes.io/kube-apiserver-client` request: only client usages.
pub fn validate_apiserver_client(usages: &[String]) -> Result<(), String> {
    for u in usages {
        if !KUBELET_CLIENT_USAGES.contains(&u.as_str()) {
            return Err(format!("invalid usage for client certificate: {u}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // `openssl req -new -key <(openssl ecparam -name prime256v1 -genkey) -subj "/O=system:nodes/CN=system:node:n1"`
    const NODE_CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIHhMIGJAgEAMCcxFTATBgNVBAoMDHN5c3RlbTpub2RlczEOMAwGA1UEAwwFc3lz
dGVtOm5vZGU6bjFZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABKgQvKe0I4hvNPmN
-----END CERTIFICATE REQUEST-----
";

    #[test]
    fn not_a_request_is_refused_with_upstreams_words() {
        assert_eq!(parse_csr(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), Err(CsrError::PemType));
        assert_eq!(parse_csr(b"garbage"), Err(CsrError::PemType));
        assert!(matches!(parse_csr(NODE_CSR.as_bytes()), Err(CsrError::Malformed(_))), "a truncated request");
    }

    fn node(cn: &str, orgs: &[&str]) -> ParsedCsr {
        ParsedCsr { common_name: cn.into(), organizations: orgs.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    fn u(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kubelet_serving_requests_are_checked_as_upstream() {
        let usages = u(&["digital signature", "key encipherment", "server auth"]);
        let mut ok = node("system:node:n1", &["system:nodes"]);
        ok.ip_addresses = vec![vec![10, 0, 0, 2]];
        assert_eq!(validate_kubelet_serving(&ok, &usages), Ok(()));
        assert_eq!(validate_kubelet_serving(&ok, &u(&["server auth", "digital signature", "server auth"])), Ok(()), "no RSA: no key encipherment");
        let mut dns = node("system:node:n1", &["system:nodes"]);
        dns.dns_names = vec!["n1".into()];
        assert_eq!(validate_kubelet_serving(&dns, &usages), Ok(()));
        let refused = |c: &ParsedCsr, us: &[String]| validate_kubelet_serving(c, us).expect_err("refused");
        assert_eq!(refused(&node("system:node:n1", &["system:nodes"]), &usages), "DNS or IP subjectAltName is required");
        let mut org = ok.clone();
        org.organizations = vec!["system:masters".into()];
        assert_eq!(refused(&org, &usages), "subject organization is not system:nodes");
        let mut email = ok.clone();
        email.email_addresses = vec!["a@b".into()];
        assert_eq!(refused(&email, &usages), "Email subjectAltNames are not allowed");
        let mut uri = ok.clone();
        uri.uris = vec!["spiffe://x".into()];
        assert_eq!(refused(&uri, &usages), "URI subjectAltNames are not allowed");
        assert_eq!(refused(&ok, &u(&["digital signature", "key encipherment", "client auth"])), "usages did not match [digital signature key encipherment server auth]");
        assert_eq!(refused(&ok, &u(&["digital signature", "key encipherment", "server auth", "client auth"])), "usages did not match [digital signature key encipherment server auth]");
        let mut cn = ok.clone();
        cn.common_name = "n1".into();
        assert_eq!(refused(&cn, &usages), "subject common name does not begin with system:node:");
    }

    #[test]
    fn kubelet_client_requests_are_checked_as_upstream() {
        let ok = node("system:node:n1", &["system:nodes"]);
        assert_eq!(validate_kubelet_client(&ok, &u(&["digital signature", "key encipherment", "client auth"])), Ok(()));
        assert_eq!(validate_kubelet_client(&ok, &u(&["digital signature", "client auth"])), Ok(()));
        assert_eq!(
            validate_kubelet_client(&ok, &u(&["client auth", "server auth"])),
            Err("usages did not match [client auth digital signature key encipherment]".into())
        );
        assert_eq!(validate_kubelet_client(&node("system:node:n1", &["system:masters"]), &u(KUBELET_CLIENT_USAGES)), Err("subject organization is not system:nodes".into()));
        assert_eq!(validate_kubelet_client(&node("admin", &["system:nodes"]), &u(KUBELET_CLIENT_USAGES)), Err("subject common name does not begin with system:node:".into()));
        let mut with_dns = ok.clone();
        with_dns.dns_names.push("n1".into());
        assert_eq!(validate_kubelet_client(&with_dns, &u(KUBELET_CLIENT_USAGES)), Err("DNS subjectAltNames are not allowed".into()));
        assert!(validate_apiserver_client(&u(&["client auth"])).is_ok());
        assert_eq!(validate_apiserver_client(&u(&["server auth"])), Err("invalid usage for client certificate: server auth".into()));
    }
}
