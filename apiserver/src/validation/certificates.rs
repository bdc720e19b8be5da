//! CertificateSigningRequest validation with upstream's rules and words (`pkg/apis/certificates/validation`):
//! the request parses as a PEM `CERTIFICATE REQUEST`, usages are given, known and not repeated, the signer
//! name has the `example.com/signer-name` form, `expirationSeconds` is at least 600, Approved and Denied
//! exclude each other and appear once; on update the spec and an issued certificate do not change.

use base64::Engine;
use rkube_apimachinery::certificates as csr;
use serde_json::{json, Value};

use crate::status::Cause;

pub(crate) fn validate_csr(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let request = spec.get("request").and_then(Value::as_str).unwrap_or_default();
    let parsed = base64::engine::general_purpose::STANDARD
        .decode(request)
        .map_err(|_| csr::CsrError::PemType)
        .and_then(|pem| csr::parse_csr(&pem));
    if let Err(e) = parsed {
        causes.push(Cause::invalid("spec.request", &json!(request), &e.to_string()));
    }
    let usages: Vec<&str> = spec.get("usages").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    if usages.is_empty() {
        causes.push(Cause::required("spec.usages", ""));
    }
    for (i, u) in usages.iter().enumerate() {
        if !csr::USAGES.contains(u) {
            let mut supported = csr::USAGES.to_vec();
            supported.sort_unstable();
            causes.push(Cause::not_supported(format!("spec.usages[{i}]"), &json!(u), &supported));
        } else if usages[..i].contains(u) {
            causes.push(Cause { reason: "FieldValueDuplicate", field: format!("spec.usages[{i}]"), message: format!("Duplicate value: {}", json!(u)) });
        }
    }
    let signer = spec.get("signerName").and_then(Value::as_str).unwrap_or_default();
    if signer.is_empty() {
        causes.push(Cause::required("spec.signerName", ""));
    } else if signer == "kubernetes.io/legacy-unknown" {
        causes.push(Cause::invalid("spec.signerName", &json!(signer), "the legacy signerName is not allowed via this API version"));
    } else if !signer.split_once('/').is_some_and(|(domain, path)| !domain.is_empty() && domain.contains('.') && !path.is_empty()) {
        causes.push(Cause::invalid("spec.signerName", &json!(signer), "must be a fully qualified domain and path of the form 'example.com/signer-name'"));
    }
    if let Some(secs) = spec.get("expirationSeconds").and_then(Value::as_i64).filter(|s| *s < csr::MIN_EXPIRATION_SECONDS) {
        causes.push(Cause::invalid("spec.expirationSeconds", &json!(secs), "may not specify a duration less than 600 seconds (10 minutes)"));
    }
    validate_conditions(obj, causes);
    if let Some(old) = old {
        if old.get("spec") != obj.get("spec") {
            causes.push(Cause::invalid("spec", &Value::String("...".into()), "field is immutable"));
        }
        let cert = |o: &Value| o.pointer("/status/certificate").and_then(Value::as_str).unwrap_or_default().to_string();
        if !cert(old).is_empty() && cert(old) != cert(obj) {
            causes.push(Cause::invalid("status.certificate", &json!("<certificate data>"), "updates may not modify existing certificate content"));
        }
    }
}

fn validate_conditions(obj: &Value, causes: &mut Vec<Cause>) {
    let conditions = obj.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut seen: Vec<&str> = Vec::new();
    for (i, c) in conditions.iter().enumerate() {
        let ty = c.get("type").and_then(Value::as_str).unwrap_or_default();
        if ty.is_empty() {
            causes.push(Cause::required(format!("status.conditions[{i}].type"), ""));
            continue;
        }
        if matches!(ty, "Approved" | "Denied" | "Failed") {
            if seen.contains(&ty) {
                causes.push(Cause { reason: "FieldValueDuplicate", field: format!("status.conditions[{i}].type"), message: format!("Duplicate value: {}", json!(ty)) });
            }
            seen.push(ty);
        }
        let status = c.get("status").and_then(Value::as_str).unwrap_or_default();
        if matches!(ty, "Approved" | "Denied") && status != "True" {
            causes.push(Cause::not_supported(format!("status.conditions[{i}].status"), &json!(status), &["True"]));
        }
    }
    if seen.contains(&"Approved") && seen.contains(&"Denied") {
        causes.push(Cause::invalid("status.conditions", &Value::String("...".into()), "Approved and Denied conditions are mutually exclusive"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(obj: &Value) -> Vec<String> {
        let mut c = Vec::new();
        validate_csr(obj, None, &mut c);
        c.into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn bad_requests_are_named_per_field() {
        let bad = json!({"spec": {"request": "bm90IGEgcmVxdWVzdA==", "usages": ["client auth", "flying", "client auth"], "expirationSeconds": 60}});
        let got = fields(&bad);
        assert!(got.iter().any(|f| f == "spec.request: Invalid value: \"bm90IGEgcmVxdWVzdA==\": PEM block type must be CERTIFICATE REQUEST"), "{got:?}");
        assert!(got.iter().any(|f| f.starts_with("spec.usages[1]: Unsupported value: \"flying\"")), "{got:?}");
        assert!(got.iter().any(|f| f == "spec.usages[2]: Duplicate value: \"client auth\""), "{got:?}");
        assert!(got.iter().any(|f| f == "spec.signerName: Required value"), "{got:?}");
        assert!(got.iter().any(|f| f == "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)"), "{got:?}");
        let no_domain = json!({"spec": {"signerName": "signer", "usages": []}});
        assert!(fields(&no_domain).iter().any(|f| f.starts_with("spec.signerName: Invalid value: \"signer\": must be a fully qualified")));
    }

    #[test]
    fn approved_and_denied_exclude_each_other() {
        let both = json!({"status": {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]}});
        assert!(fields(&both).iter().any(|f| f.ends_with("Approved and Denied conditions are mutually exclusive")));
        let twice = json!({"status": {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Approved", "status": "True"}]}});
        assert!(fields(&twice).iter().any(|f| f == "status.conditions[1].type: Duplicate value: \"Approved\""));
    }
}
