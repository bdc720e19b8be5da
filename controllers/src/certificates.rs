//! Joining nodes, the controller side (upstream's csrapproving, csrsigning, tokencleaner and bootstrapsigner):
//!
//! - approving: a `kubernetes.io/kube-apiserver-client-kubelet` CSR that is a valid kubelet client request is
//!   approved (`AutoApproved`) when a SubjectAccessReview says its requester may create
//!   `certificatesigningrequests/selfnodeclient` (a node renewing its own certificate) or `.../nodeclient`
//!   (a bootstrap token filing for a new node); anything else is left for a human (`kubectl certificate approve`).
//! - signing: an approved, unsigned CSR for `kubernetes.io/kube-apiserver-client-kubelet` or
//!   `kubernetes.io/kube-apiserver-client` is signed with the cluster CA for its `expirationSeconds` (at least
//!   600 s, at most the signing duration); one that fails the signer's checks gets a `Failed` condition.
//! - tokencleaner: deletes bootstrap token Secrets once expired.
//! - bootstrapsigner: signs the `kubeconfig` of kube-public/cluster-info with every signing token
//!   (`jws-kubeconfig-<id>`), so `rkube join` can check what it fetched without trusting the connection.
//!
//! The decisions ([`approval_candidates`], [`signing_plan`], [`wanted_signatures`]) are pure; the reconcilers only
//! act on them. The CA comes in [`SigningCa`] (PEMs handed over by whoever starts the controllers: they never
//! read the apiserver's files).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use rkube_apimachinery::bootstrap_token as bt;
use rkube_apimachinery::certificates as csrs;

use crate::context::{is_not_found, ReconcileError};

/// Upstream's default `--cluster-signing-duration` (one year).
pub const DEFAULT_SIGNING_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// Upstream's signer backdates certificates this much for clock skew.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// The cluster CA the signer issues with.
#[derive(Clone)]
pub struct SigningCa {
    /// The CA certificate (PEM), the issuer of what is signed.
    pub cert_pem: String,
    /// The CA's private key (PEM).
    pub key_pem: String,
    /// The longest lifetime issued (`--cluster-signing-duration`).
    pub max_duration: Duration,
}

impl std::fmt::Debug for SigningCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCa").field("max_duration", &self.max_duration).finish_non_exhaustive()
    }
}

/// A way a CSR may be auto-approved: the subresource its requester must be allowed to create, and the
/// approval message (upstream's).
#[derive(Debug, PartialEq, Eq)]
pub struct Recognizer {
    /// The `certificatesigningrequests/<subresource>` the requester must be allowed to create.
    pub subresource: &'static str,
    /// The Approved condition's message.
    pub message: &'static str,
}

/// A node renewing its own client certificate (the requester is the node the CSR names).
pub const SELF_NODE_CLIENT: Recognizer =
    Recognizer { subresource: "selfnodeclient", message: "Auto approving self kubelet client certificate after SubjectAccessReview." };
/// A kubelet client certificate requested by someone other than the node it names (a joining node's bootstrap
/// token).
pub const NODE_CLIENT: Recognizer =
    Recognizer { subresource: "nodeclient", message: "Auto approving kubelet client certificate after SubjectAccessReview." };

fn has_condition(csr: &CertificateSigningRequest, ty: &str) -> bool {
    csr.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == ty))
}

fn issued(csr: &CertificateSigningRequest) -> bool {
    csr.status.as_ref().and_then(|s| s.certificate.as_ref()).is_some_and(|c| !c.0.is_empty())
}

fn usages(csr: &CertificateSigningRequest) -> Vec<String> {
    csr.spec.usages.clone().unwrap_or_default()
}

/// The recognizers a CSR matches, in the order to try them (upstream's: self first); empty when it is already
/// decided or issued, or not a kubelet client request.
pub fn approval_candidates(csr: &CertificateSigningRequest) -> Vec<&'static Recognizer> {
    if issued(csr) || has_condition(csr, "Approved") || has_condition(csr, "Denied") {
        return vec![];
    }
    if csr.spec.signer_name != csrs::KUBE_APISERVER_CLIENT_KUBELET {
        return vec![];
    }
    let Ok(parsed) = csrs::parse_csr(&csr.spec.request.0) else { return vec![] };
    if csrs::validate_kubelet_client(&parsed, &usages(csr)).is_err() {
        return vec![];
    }
    let mut out = Vec::new();
    if csr.spec.username.as_deref() == Some(parsed.common_name.as_str()) {
        out.push(&SELF_NODE_CLIENT);
    }
    out.push(&NODE_CLIENT);
    out
}

/// What the signer does with a CSR.
#[derive(Debug, PartialEq, Eq)]
pub enum SigningPlan {
    /// Not ours, not approved, denied, failed or already issued.
    Skip,
    /// Approved but the request breaks the signer's rules: a `Failed` condition with this message.
    Fail(String),
    /// Issue for this long.
    Sign(Duration),
}

/// Upstream's lifetime (the signer's `duration`): without `expirationSeconds` the signing duration; with it, the
/// signing duration if the request is longer, else at least 600 s. In that order, so a signing duration under
/// 10 minutes (`--cluster-signing-duration`, shortened in tests) is never exceeded.
pub fn lifetime(max: Duration, expiration_seconds: Option<i32>) -> Duration {
    let Some(s) = expiration_seconds else { return max };
    let requested = Duration::from_secs(u64::try_from(s).unwrap_or(0));
    if requested > max {
        max
    } else {
        requested.max(Duration::from_secs(600))
    }
}

/// What the signer does with `csr`: skip it (another signer's, not approved, denied, failed or already
/// issued), fail it (a request its signer's rules refuse) or sign it for the lifetime it gets under `max`.
pub fn signing_plan(csr: &CertificateSigningRequest, max: Duration) -> SigningPlan {
    let signer = csr.spec.signer_name.as_str();
    if !matches!(signer, csrs::KUBE_APISERVER_CLIENT_KUBELET | csrs::KUBE_APISERVER_CLIENT | csrs::KUBELET_SERVING) {
        return SigningPlan::Skip;
    }
    if issued(csr) || !has_condition(csr, "Approved") || has_condition(csr, "Denied") || has_condition(csr, "Failed") {
        return SigningPlan::Skip;
    }
    let parsed = match csrs::parse_csr(&csr.spec.request.0) {
        Ok(p) => p,
        Err(e) => return SigningPlan::Fail(e.to_string()),
    };
    let checked = match signer {
        csrs::KUBE_APISERVER_CLIENT_KUBELET => csrs::validate_kubelet_client(&parsed, &usages(csr)),
        csrs::KUBELET_SERVING => csrs::validate_kubelet_serving(&parsed, &usages(csr)),
        _ => csrs::validate_apiserver_client(&usages(csr)),
    };
    match checked {
        Err(e) => SigningPlan::Fail(e),
        Ok(()) => SigningPlan::Sign(lifetime(max, csr.spec.expiration_seconds)),
    }
}

/// Errors of the signer.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The CA certificate or key does not parse.
    #[error("load the cluster CA: {0}")]
    Ca(#[source] rcgen::Error),
    /// The request could not be read or signed.
    #[error("sign CSR {name}: {source}")]
    Sign {
        /// The CSR's name.
        name: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
}

/// Signs `request_pem` with the CA: the request's subject, subjectAltNames and key, `usages` as key usages and
/// extended key usages (client auth, server auth), valid from 5 minutes ago for `lifetime`.
pub fn sign(ca: &SigningCa, name: &str, request_pem: &str, usages: &[String], lifetime: Duration) -> Result<String, SigningError> {
    use rcgen::{CertificateParams, CertificateSigningRequestParams, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SerialNumber};
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(SigningError::Ca)?;
    let ca_cert = CertificateParams::from_ca_cert_pem(&ca.cert_pem).and_then(|p| p.self_signed(&ca_key)).map_err(SigningError::Ca)?;
    let err = |source| SigningError::Sign { name: name.to_string(), source };
    let mut req = CertificateSigningRequestParams::from_pem(request_pem).map_err(err)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = req.params.distinguished_name.clone();
    params.subject_alt_names = req.params.subject_alt_names.clone();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
    params.serial_number = Some(SerialNumber::from_slice(uuid_bytes().as_slice()));
    params.extended_key_usages = usages
        .iter()
        .filter_map(|u| match u.as_str() {
            "client auth" => Some(ExtendedKeyUsagePurpose::ClientAuth),
            "server auth" => Some(ExtendedKeyUsagePurpose::ServerAuth),
            _ => None,
        })
        .collect();
    params.key_usages = usages
        .iter()
        .filter_map(|u| match u.as_str() {
            "digital signature" => Some(KeyUsagePurpose::DigitalSignature),
            "key encipherment" => Some(KeyUsagePurpose::KeyEncipherment),
            _ => None,
        })
        .collect();
    req.params = params;
    let cert = req.signed_by(&ca_cert, &ca_key).map_err(err)?;
    Ok(cert.pem())
}

fn uuid_bytes() -> [u8; 16] {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f; // a positive serial
    b
}

/// The `jws-kubeconfig-<id>` entries cluster-info should hold for these token Secrets at `now`: one per
/// unexpired token usable for signing.
pub fn wanted_signatures(kubeconfig: &str, tokens: &[BTreeMap<String, String>], now: DateTime<Utc>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for data in tokens {
        let (Some(id), Some(secret)) = (data.get(bt::KEY_TOKEN_ID), data.get(bt::KEY_TOKEN_SECRET)) else { continue };
        if data.get(bt::KEY_USAGE_SIGNING).map(String::as_str) != Some("true") || bt::expired(data.get(bt::KEY_EXPIRATION).map(String::as_str), now) {
            continue;
        }
        out.insert(format!("{}{id}", bt::JWS_PREFIX), bt::detached_jws(kubeconfig, id, secret));
    }
    out
}

fn token_data(s: &Secret) -> Option<BTreeMap<String, String>> {
    if s.type_.as_deref() != Some(bt::SECRET_TYPE) {
        return None;
    }
    let data = s.data.as_ref()?;
    Some(data.iter().filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?))).collect())
}

struct Ctx {
    client: Client,
    ca: Option<SigningCa>,
}

async fn reconcile_csr(csr: Arc<CertificateSigningRequest>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let name = csr.name_any();
    for r in approval_candidates(&csr) {
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: csr.spec.username.clone(),
                uid: csr.spec.uid.clone(),
                groups: csr.spec.groups.clone(),
                extra: csr.spec.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some("certificates.k8s.io".into()),
                    resource: Some("certificatesigningrequests".into()),
                    subresource: Some(r.subresource.into()),
                    verb: Some("create".into()),
                    version: Some("*".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(ctx.client.clone())
            .create(&PostParams::default(), &sar)
            .await
            .map_err(ReconcileError::api(format!("subject access review for CSR {name}")))?;
        if answer.status.is_some_and(|s| s.allowed) {
            let mut conditions = csr.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
            let now = rkube_apimachinery::time::from_chrono(Utc::now());
            conditions.push(k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some("AutoApproved".into()),
                message: Some(r.message.into()),
                last_update_time: Some(now.clone()),
                last_transition_time: Some(now),
            });
            api.patch_subresource("approval", &name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"status": {"conditions": conditions}})))
                .await
                .map_err(ReconcileError::api(format!("approve CSR {name}")))?;
            tracing::info!(csr = %name, requester = ?csr.spec.username, via = r.subresource, "approved kubelet client CSR");
            return Ok(Action::await_change());
        }
    }
    let Some(ca) = &ctx.ca else { return Ok(Action::await_change()) };
    let patch = match signing_plan(&csr, ca.max_duration) {
        SigningPlan::Skip => return Ok(Action::await_change()),
        SigningPlan::Fail(message) => {
            let mut conditions = csr.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
            let now = rkube_apimachinery::time::from_chrono(Utc::now());
            conditions.push(k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition {
                type_: "Failed".into(),
                status: "True".into(),
                reason: Some("SignerValidationFailure".into()),
                message: Some(message.clone()),
                last_update_time: Some(now.clone()),
                last_transition_time: Some(now),
            });
            tracing::warn!(csr = %name, reason = %message, "CSR fails the signer's checks");
            serde_json::json!({"status": {"conditions": conditions}})
        }
        SigningPlan::Sign(lifetime) => {
            let pem = String::from_utf8_lossy(&csr.spec.request.0).into_owned();
            let cert = sign(ca, &name, &pem, &usages(&csr), lifetime).map_err(|e| ReconcileError::Invalid { what: format!("CSR {name}"), problem: e.to_string() })?;
            tracing::info!(csr = %name, signer = %csr.spec.signer_name, lifetime_s = lifetime.as_secs(), "signed CSR");
            serde_json::json!({"status": {"certificate": base64::engine::general_purpose::STANDARD.encode(cert)}})
        }
    };
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch)).await.map_err(ReconcileError::api(format!("write the status of CSR {name}")))?;
    Ok(Action::await_change())
}

async fn reconcile_token(secret: Arc<Secret>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let Some(data) = token_data(&secret) else { return Ok(Action::await_change()) };
    let expiration = data.get(bt::KEY_EXPIRATION).map(String::as_str);
    let now = Utc::now();
    if !bt::expired(expiration, now) {
        // back when it expires
        let left = expiration.and_then(|e| DateTime::parse_from_rfc3339(e).ok()).map(|t| (t.with_timezone(&Utc) - now).to_std().unwrap_or_default());
        return Ok(left.map_or_else(Action::await_change, |d| Action::requeue(d + Duration::from_secs(1))));
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), bt::NAMESPACE);
    let name = secret.name_any();
    let dp = DeleteParams { preconditions: Some(Preconditions { uid: secret.uid(), resource_version: None }), ..Default::default() };
    match api.delete(&name, &dp).await {
        Ok(_) => tracing::info!(secret = %name, "deleted expired bootstrap token"),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(ReconcileError::api(format!("delete expired bootstrap token secret {name}"))(e)),
    }
    Ok(Action::await_change())
}

async fn reconcile_cluster_info(cm: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    if cm.name_any() != bt::CLUSTER_INFO {
        return Ok(Action::await_change());
    }
    let Some(kubeconfig) = cm.data.as_ref().and_then(|d| d.get("kubeconfig")) else { return Ok(Action::await_change()) };
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), bt::NAMESPACE)
        .list(&ListParams::default())
        .await
        .map_err(ReconcileError::api("list bootstrap token secrets"))?;
    let tokens: Vec<BTreeMap<String, String>> = secrets.items.iter().filter_map(token_data).collect();
    let wanted = wanted_signatures(kubeconfig, &tokens, Utc::now());
    let current: BTreeMap<String, String> =
        cm.data.iter().flatten().filter(|(k, _)| k.starts_with(bt::JWS_PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect();
    if current == wanted {
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let mut data = serde_json::Map::new();
    for k in current.keys().filter(|k| !wanted.contains_key(*k)) {
        data.insert(k.clone(), serde_json::Value::Null);
    }
    for (k, v) in &wanted {
        data.insert(k.clone(), serde_json::json!(v));
    }
    Api::<ConfigMap>::namespaced(ctx.client.clone(), bt::PUBLIC_NAMESPACE)
        .patch(bt::CLUSTER_INFO, &PatchParams::default(), &Patch::Merge(serde_json::json!({"data": data})))
        .await
        .map_err(ReconcileError::api("sign kube-public/cluster-info"))?;
    tracing::info!(signatures = wanted.len(), "signed cluster-info");
    Ok(Action::requeue(Duration::from_secs(60)))
}

fn error_policy<K>(_obj: Arc<K>, err: &ReconcileError, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "certificates controller: reconcile failed, retrying");
    Action::requeue(Duration::from_secs(2))
}

async fn drain<S: futures::Stream<Item = T>, T>(s: S) {
    use futures::StreamExt;
    s.for_each(|_| async {}).await;
}

/// Runs the approver and signer (signing only with `ca`), the token cleaner and the bootstrap signer until one
/// stops; returns its name.
pub async fn run(client: Client, ca: Option<SigningCa>) -> &'static str {
    let ctx = Arc::new(Ctx { client: client.clone(), ca });
    let wc = watcher::Config::default();
    let csr = Controller::new(Api::<CertificateSigningRequest>::all(client.clone()), wc.clone()).run(reconcile_csr, error_policy, ctx.clone());
    let tokens = Controller::new(Api::<Secret>::namespaced(client.clone(), bt::NAMESPACE), wc.clone()).run(reconcile_token, error_policy, ctx.clone());
    let info = Controller::new(Api::<ConfigMap>::namespaced(client.clone(), bt::PUBLIC_NAMESPACE), wc.clone())
        .watches(Api::<Secret>::namespaced(client.clone(), bt::NAMESPACE), wc, |_s: Secret| {
            Some(ObjectRef::<ConfigMap>::new(bt::CLUSTER_INFO).within(bt::PUBLIC_NAMESPACE))
        })
        .run(reconcile_cluster_info, error_policy, ctx);
    tokio::select! {
        _ = drain(csr) => "csr-approving-signing",
        _ = drain(tokens) => "tokencleaner",
        _ = drain(info) => "bootstrapsigner",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::{CertificateSigningRequestCondition, CertificateSigningRequestSpec, CertificateSigningRequestStatus};
    use k8s_openapi::ByteString;

    fn request(cn: &str, org: &str) -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.distinguished_name.push(rcgen::DnType::OrganizationName, org);
        p.serialize_request(&key).expect("csr").pem().expect("pem")
    }

    fn csr(cn: &str, org: &str, username: &str, signer: &str, usages: &[&str], conditions: &[&str]) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(request(cn, org).into_bytes()),
                signer_name: signer.into(),
                username: Some(username.into()),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                ..Default::default()
            },
            status: Some(CertificateSigningRequestStatus {
                conditions: Some(
                    conditions.iter().map(|t| CertificateSigningRequestCondition { type_: t.to_string(), status: "True".into(), ..Default::default() }).collect(),
                ),
                certificate: None,
            }),
            ..Default::default()
        }
    }

    const KUBELET: &str = csrs::KUBE_APISERVER_CLIENT_KUBELET;
    const USAGES: &[&str] = &["digital signature", "client auth"];

    #[test]
    fn a_parsed_request_names_its_subject() {
        let p = csrs::parse_csr(request("system:node:n1", "system:nodes").as_bytes()).expect("parses");
        assert_eq!((p.common_name.as_str(), p.organizations.as_slice()), ("system:node:n1", ["system:nodes".to_string()].as_slice()));
    }

    #[test]
    fn approval_is_tried_only_for_kubelet_client_requests() {
        // a bootstrap token asking for a new node: nodeclient only
        let new_node = csr("system:node:n1", "system:nodes", "system:bootstrap:abcdef", KUBELET, USAGES, &[]);
        assert_eq!(approval_candidates(&new_node), vec![&NODE_CLIENT]);
        // the node renewing its own: selfnodeclient first
        let renewal = csr("system:node:n1", "system:nodes", "system:node:n1", KUBELET, USAGES, &[]);
        assert_eq!(approval_candidates(&renewal), vec![&SELF_NODE_CLIENT, &NODE_CLIENT]);
        // decided already, another signer, another subject, server usages: left alone
        for (c, why) in [
            (csr("system:node:n1", "system:nodes", "u", KUBELET, USAGES, &["Approved"]), "approved"),
            (csr("system:node:n1", "system:nodes", "u", KUBELET, USAGES, &["Denied"]), "denied"),
            (csr("system:node:n1", "system:nodes", "u", csrs::KUBE_APISERVER_CLIENT, USAGES, &[]), "other signer"),
            (csr("admin", "system:masters", "u", KUBELET, USAGES, &[]), "not a node"),
            (csr("system:node:n1", "system:nodes", "u", KUBELET, &["server auth", "digital signature"], &[]), "usages"),
        ] {
            assert!(approval_candidates(&c).is_empty(), "{why}");
        }
    }

    #[test]
    fn signing_follows_approval_and_the_signers_rules() {
        let max = DEFAULT_SIGNING_DURATION;
        assert_eq!(signing_plan(&csr("system:node:n1", "system:nodes", "u", KUBELET, USAGES, &[]), max), SigningPlan::Skip, "pending");
        assert_eq!(signing_plan(&csr("system:node:n1", "system:nodes", "u", KUBELET, USAGES, &["Approved"]), max), SigningPlan::Sign(max));
        assert_eq!(signing_plan(&csr("system:node:n1", "system:nodes", "u", KUBELET, USAGES, &["Approved", "Failed"]), max), SigningPlan::Skip);
        assert_eq!(signing_plan(&csr("x", "y", "u", "example.com/other", USAGES, &["Approved"]), max), SigningPlan::Skip, "not our signer");
        assert_eq!(
            signing_plan(&csr("admin", "system:nodes", "u", KUBELET, USAGES, &["Approved"]), max),
            SigningPlan::Fail("subject common name does not begin with system:node:".into())
        );
        assert_eq!(signing_plan(&csr("alice", "devs", "u", csrs::KUBE_APISERVER_CLIENT, &["client auth"], &["Approved"]), max), SigningPlan::Sign(max));
        let mut short = csr("system:node:n1", "system:nodes", "u", KUBELET, USAGES, &["Approved"]);
        short.spec.expiration_seconds = Some(60);
        assert_eq!(signing_plan(&short, max), SigningPlan::Sign(Duration::from_secs(600)), "upstream's floor");
        assert_eq!(lifetime(max, Some(3600)), Duration::from_secs(3600));
        assert_eq!(lifetime(Duration::from_secs(7200), Some(100_000)), Duration::from_secs(7200), "capped at the signing duration");
        assert_eq!(lifetime(Duration::from_secs(20), None), Duration::from_secs(20), "a short signing duration is used as is");
        assert_eq!(lifetime(Duration::from_secs(20), Some(3600)), Duration::from_secs(20), "and never exceeded");
    }

    /// A kubelet serving request: CN system:node:n1, O system:nodes, SANs n1 and 10.0.0.2.
    /// A self-signed CA named test-ca with the default signing duration.
    fn test_ca() -> SigningCa {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, "test-ca");
        let ca_cert = p.self_signed(&ca_key).expect("ca");
        SigningCa { cert_pem: ca_cert.pem(), key_pem: ca_key.serialize_pem(), max_duration: DEFAULT_SIGNING_DURATION }
    }

    fn serving_request() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(vec!["n1".to_string()]).expect("params");
        p.subject_alt_names.push(rcgen::SanType::IpAddress("10.0.0.2".parse().expect("ip")));
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, "system:node:n1");
        p.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
        p.serialize_request(&key).expect("csr").pem().expect("pem")
    }

    const SERVING_USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];

    #[test]
    fn kubelet_serving_requests_wait_for_an_administrator_then_are_signed() {
        let max = DEFAULT_SIGNING_DURATION;
        let mut c = csr("system:node:n1", "system:nodes", "system:node:n1", csrs::KUBELET_SERVING, SERVING_USAGES, &[]);
        c.spec.request = ByteString(serving_request().into_bytes());
        // never approved by the controllers, even filed by the node itself (upstream approves none)
        assert!(approval_candidates(&c).is_empty());
        assert_eq!(signing_plan(&c, max), SigningPlan::Skip, "pending until kubectl certificate approve");
        let mut approved = c.clone();
        approved.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![CertificateSigningRequestCondition { type_: "Approved".into(), status: "True".into(), ..Default::default() }]),
            certificate: None,
        });
        assert_eq!(signing_plan(&approved, max), SigningPlan::Sign(max));
        // approved but without a subjectAltName: the signer's check fails it, in upstream's words
        let mut bare = csr("system:node:n1", "system:nodes", "system:node:n1", csrs::KUBELET_SERVING, SERVING_USAGES, &["Approved"]);
        assert_eq!(signing_plan(&bare, max), SigningPlan::Fail("DNS or IP subjectAltName is required".into()));
        bare.spec.request = ByteString(serving_request().into_bytes());
        bare.spec.usages = Some(vec!["digital signature".into(), "client auth".into()]);
        assert_eq!(signing_plan(&bare, max), SigningPlan::Fail("usages did not match [digital signature key encipherment server auth]".into()));
    }

    #[test]
    fn a_serving_certificate_keeps_the_requests_names_and_is_for_server_auth() {
        let ca = test_ca();
        let usages: Vec<String> = SERVING_USAGES.iter().map(|u| u.to_string()).collect();
        let pem = sign(&ca, "n1-serving", &serving_request(), &usages, Duration::from_secs(3600)).expect("signed");
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
        let cert = block.parse_x509().expect("x509");
        let eku = cert.extended_key_usage().expect("eku").expect("an EKU extension").value;
        assert!(eku.server_auth && !eku.client_auth, "server auth only: {eku:?}");
        let san = cert.subject_alternative_name().expect("san").expect("a SAN extension").value;
        use x509_parser::extensions::GeneralName;
        let dns = san.general_names.iter().any(|n| matches!(n, GeneralName::DNSName("n1")));
        let ip = san.general_names.iter().any(|n| matches!(n, GeneralName::IPAddress(b) if *b == [10, 0, 0, 2]));
        assert!(dns && ip, "the request's DNS and IP names: {:?}", san.general_names);
        let (_, ca_block) = x509_parser::pem::parse_x509_pem(ca.cert_pem.as_bytes()).expect("ca pem");
        cert.verify_signature(Some(ca_block.parse_x509().expect("ca x509").public_key())).expect("signed by the CA");
        // a client certificate is still for client auth only
        let client_usages = vec!["digital signature".to_string(), "client auth".to_string()];
        let client = sign(&ca, "n1", &request("system:node:n1", "system:nodes"), &client_usages, Duration::from_secs(3600)).expect("signed");
        let (_, block) = x509_parser::pem::parse_x509_pem(client.as_bytes()).expect("pem");
        let cert = block.parse_x509().expect("x509");
        let eku = cert.extended_key_usage().expect("eku").expect("an EKU extension").value;
        assert!(eku.client_auth && !eku.server_auth, "client auth only: {eku:?}");
    }

    #[test]
    fn signed_certificates_carry_the_request_and_chain_to_the_ca() {
        let ca = test_ca();
        let usages = vec!["digital signature".to_string(), "client auth".to_string()];
        let pem = sign(&ca, "n1", &request("system:node:n1", "system:nodes"), &usages, Duration::from_secs(3600)).expect("signed");
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
        let cert = block.parse_x509().expect("x509");
        assert_eq!(cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()), Some("system:node:n1"));
        assert_eq!(cert.issuer().iter_common_name().next().and_then(|c| c.as_str().ok()), Some("test-ca"));
        let secs = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert_eq!(secs, 3600 + 300, "the lifetime asked for, backdated 5 minutes");
        let (_, ca_block) = x509_parser::pem::parse_x509_pem(ca.cert_pem.as_bytes()).expect("ca pem");
        let ca_parsed = ca_block.parse_x509().expect("ca x509");
        cert.verify_signature(Some(ca_parsed.public_key())).expect("signed by the CA");
    }

    #[test]
    fn cluster_info_is_signed_per_signing_token() {
        let now = Utc::now();
        let token = |id: &str, signing: &str, exp: &str| -> BTreeMap<String, String> {
            [(bt::KEY_TOKEN_ID, id), (bt::KEY_TOKEN_SECRET, "0123456789abcdef"), (bt::KEY_USAGE_SIGNING, signing), (bt::KEY_EXPIRATION, exp)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let later = (now + chrono::Duration::hours(1)).to_rfc3339();
        let earlier = (now - chrono::Duration::hours(1)).to_rfc3339();
        let got = wanted_signatures("kc", &[token("aaaaaa", "true", &later), token("bbbbbb", "false", &later), token("cccccc", "true", &earlier)], now);
        assert_eq!(got.keys().collect::<Vec<_>>(), vec!["jws-kubeconfig-aaaaaa"]);
        assert_eq!(got["jws-kubeconfig-aaaaaa"], bt::detached_jws("kc", "aaaaaa", "0123456789abcdef"));
    }
}
