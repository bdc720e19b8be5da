//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), which kubectl 1.31+
//! sends for its `kubectl create <kind>` generators. The envelope is the `k8s\0` magic followed by a
//! `runtime.Unknown` (typeMeta, raw); `raw` is the object in Kubernetes' generated.proto layout. Only the
//! messages those generators produce are described here (field numbers from Kubernetes' generated.proto);
//! fields not described are skipped, and a kind not described is answered 415 so the client can send JSON.
//! Responses are always JSON.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::status::ApiError;

/// How one field is decoded.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    /// A plain int: zero means unset (Go's omitempty).
    Int,
    /// A pointer int: zero is a value.
    PInt,
    Bool,
    Msg(&'static str),
    MapStr,
    MapBytes,
    /// map<string, Quantity>
    MapQuantity,
    Time,
    IntOrString,
    /// bytes, base64 in JSON
    Bytes,
}

/// (number, JSON name, type, repeated)
type Field = (u32, &'static str, Ty, bool);

const fn f(n: u32, name: &'static str, ty: Ty) -> Field {
    (n, name, ty, false)
}

const fn r(n: u32, name: &'static str, ty: Ty) -> Field {
    (n, name, ty, true)
}

fn fields(msg: &str) -> Option<&'static [Field]> {
    use Ty::*;
    Some(match msg {
        "ObjectMeta" => const { &[
            f(1, "name", Str),
            f(2, "generateName", Str),
            f(3, "namespace", Str),
            f(5, "uid", Str),
            f(6, "resourceVersion", Str),
            f(7, "generation", Int),
            f(8, "creationTimestamp", Time),
            f(11, "labels", MapStr),
            f(12, "annotations", MapStr),
            r(13, "ownerReferences", Msg("OwnerReference")),
            r(14, "finalizers", Str),
        ] },
        "OwnerReference" => const { &[
            f(1, "kind", Str),
            f(3, "name", Str),
            f(4, "uid", Str),
            f(5, "apiVersion", Str),
            f(6, "controller", Bool),
            f(7, "blockOwnerDeletion", Bool),
        ] },
        "LabelSelector" => const { &[f(1, "matchLabels", MapStr), r(2, "matchExpressions", Msg("LabelSelectorRequirement"))] },
        "LabelSelectorRequirement" => const { &[f(1, "key", Str), f(2, "operator", Str), r(3, "values", Str)] },
        // rbac.authorization.k8s.io/v1 (`kubectl create role|clusterrole|rolebinding|clusterrolebinding`)
        "Role" => const { &[f(1, "metadata", Msg("ObjectMeta")), r(2, "rules", Msg("PolicyRule"))] },
        "ClusterRole" => const {
            &[f(1, "metadata", Msg("ObjectMeta")), r(2, "rules", Msg("PolicyRule")), f(3, "aggregationRule", Msg("AggregationRule"))]
        },
        "AggregationRule" => const { &[r(1, "clusterRoleSelectors", Msg("LabelSelector"))] },
        "PolicyRule" => const {
            &[r(1, "verbs", Str), r(2, "apiGroups", Str), r(3, "resources", Str), r(4, "resourceNames", Str), r(5, "nonResourceURLs", Str)]
        },
        "RoleBinding" | "ClusterRoleBinding" => const {
            &[f(1, "metadata", Msg("ObjectMeta")), r(2, "subjects", Msg("Subject")), f(3, "roleRef", Msg("RoleRef"))]
        },
        "Subject" => const { &[f(1, "kind", Str), f(2, "apiGroup", Str), f(3, "name", Str), f(4, "namespace", Str)] },
        "RoleRef" => const { &[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)] },
        // authorization.k8s.io/v1 and authentication.k8s.io/v1 reviews (`kubectl auth can-i`, `kubectl auth whoami`)
        "SelfSubjectAccessReview" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("SelfSubjectAccessReviewSpec"))] },
        "SelfSubjectAccessReviewSpec" => const {
            &[f(1, "resourceAttributes", Msg("ResourceAttributes")), f(2, "nonResourceAttributes", Msg("NonResourceAttributes"))]
        },
        "SubjectAccessReview" | "LocalSubjectAccessReview" => const {
            &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("SubjectAccessReviewSpec"))]
        },
        "SubjectAccessReviewSpec" => const { &[
            f(1, "resourceAttributes", Msg("ResourceAttributes")),
            f(2, "nonResourceAttributes", Msg("NonResourceAttributes")),
            f(3, "user", Str),
            r(4, "groups", Str),
            f(6, "uid", Str),
        ] },
        "ResourceAttributes" => const { &[
            f(1, "namespace", Str),
            f(2, "verb", Str),
            f(3, "group", Str),
            f(4, "version", Str),
            f(5, "resource", Str),
            f(6, "subresource", Str),
            f(7, "name", Str),
        ] },
        "NonResourceAttributes" => const { &[f(1, "path", Str), f(2, "verb", Str)] },
        "SelfSubjectRulesReview" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("SelfSubjectRulesReviewSpec"))] },
        "SelfSubjectRulesReviewSpec" => const { &[f(1, "namespace", Str)] },
        "SelfSubjectReview" => const { &[f(1, "metadata", Msg("ObjectMeta"))] },
        "TokenReview" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("TokenReviewSpec"))] },
        "TokenReviewSpec" => const { &[f(1, "token", Str), r(2, "audiences", Str)] },
        // `kubectl create token`
        "TokenRequest" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("TokenRequestSpec"))] },
        "TokenRequestSpec" => const {
            &[r(1, "audiences", Str), f(3, "boundObjectRef", Msg("BoundObjectReference")), f(4, "expirationSeconds", PInt)]
        },
        "BoundObjectReference" => const { &[f(1, "kind", Str), f(2, "apiVersion", Str), f(3, "name", Str), f(4, "uid", Str)] },
        // networking.k8s.io/v1 (`kubectl create ingress`); IngressRule's inline IngressRuleValue is field 2
        "Ingress" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("IngressSpec"))] },
        "IngressSpec" => const { &[
            f(1, "defaultBackend", Msg("IngressBackend")),
            r(2, "tls", Msg("IngressTLS")),
            r(3, "rules", Msg("IngressRule")),
            f(4, "ingressClassName", Str),
        ] },
        "IngressTLS" => const { &[r(1, "hosts", Str), f(2, "secretName", Str)] },
        "IngressRule" => const { &[f(1, "host", Str), f(2, INGRESS_RULE_VALUE, Msg("IngressRuleValue"))] },
        "IngressRuleValue" => const { &[f(1, "http", Msg("HTTPIngressRuleValue"))] },
        "HTTPIngressRuleValue" => const { &[r(1, "paths", Msg("HTTPIngressPath"))] },
        "HTTPIngressPath" => const { &[f(1, "path", Str), f(2, "backend", Msg("IngressBackend")), f(3, "pathType", Str)] },
        "IngressBackend" => const {
            &[f(3, "resource", Msg("IngressTypedLocalObjectReference")), f(4, "service", Msg("IngressServiceBackend"))]
        },
        "IngressTypedLocalObjectReference" => const { &[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)] },
        "IngressServiceBackend" => const { &[f(1, "name", Str), f(2, "port", Msg("ServiceBackendPort"))] },
        "ServiceBackendPort" => const { &[f(1, "name", Str), f(2, "number", Int)] },
        "ConfigMap" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "data", MapStr), f(3, "binaryData", MapBytes), f(4, "immutable", Bool)] },
        "Secret" => const { &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "data", MapBytes),
            f(3, "type", Str),
            f(4, "stringData", MapStr),
            f(5, "immutable", Bool),
        ] },
        "Namespace" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("NamespaceSpec"))] },
        "NamespaceSpec" => const { &[r(1, "finalizers", Str)] },
        "ServiceAccount" => const { &[
            f(1, "metadata", Msg("ObjectMeta")),
            r(2, "secrets", Msg("ObjectReference")),
            r(3, "imagePullSecrets", Msg("LocalObjectReference")),
            f(4, "automountServiceAccountToken", Bool),
        ] },
        "ObjectReference" => const { &[
            f(1, "kind", Str),
            f(2, "namespace", Str),
            f(3, "name", Str),
            f(4, "uid", Str),
            f(5, "apiVersion", Str),
            f(6, "resourceVersion", Str),
            f(7, "fieldPath", Str),
        ] },
        "LocalObjectReference" => const { &[f(1, "name", Str)] },
        // kubectl certificate approve|deny (1.31+) writes /approval as protobuf; spec.extra (a map of ExtraValue)
        // is not decoded: /approval and /status keep the stored spec
        "CertificateSigningRequest" => const { &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "spec", Msg("CertificateSigningRequestSpec")),
            f(3, "status", Msg("CertificateSigningRequestStatus")),
        ] },
        "CertificateSigningRequestSpec" => const { &[
            f(1, "request", Bytes),
            f(2, "username", Str),
            f(3, "uid", Str),
            r(4, "groups", Str),
            r(5, "usages", Str),
            f(7, "signerName", Str),
            f(8, "expirationSeconds", PInt),
        ] },
        "CertificateSigningRequestStatus" => const { &[r(1, "conditions", Msg("CertificateSigningRequestCondition")), f(2, "certificate", Bytes)] },
        "CertificateSigningRequestCondition" => const { &[
            f(1, "type", Str),
            f(2, "reason", Str),
            f(3, "message", Str),
            f(4, "lastUpdateTime", Time),
            f(5, "lastTransitionTime", Time),
            f(6, "status", Str),
        ] },
        "Pod" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("PodSpec"))] },
        "Deployment" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("DeploymentSpec"))] },
        "DeploymentSpec" => const { &[
            f(1, "replicas", PInt),
            f(2, "selector", Msg("LabelSelector")),
            f(3, "template", Msg("PodTemplateSpec")),
            f(4, "strategy", Msg("DeploymentStrategy")),
            f(5, "minReadySeconds", Int),
            f(6, "revisionHistoryLimit", PInt),
            f(7, "paused", Bool),
            f(9, "progressDeadlineSeconds", PInt),
        ] },
        "DeploymentStrategy" => const { &[f(1, "type", Str), f(2, "rollingUpdate", Msg("RollingUpdateDeployment"))] },
        "RollingUpdateDeployment" => const { &[f(1, "maxUnavailable", IntOrString), f(2, "maxSurge", IntOrString)] },
        "PodTemplateSpec" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("PodSpec"))] },
        "PodSpec" => const { &[
            r(2, "containers", Msg("Container")),
            f(3, "restartPolicy", Str),
            f(4, "terminationGracePeriodSeconds", PInt),
            f(5, "activeDeadlineSeconds", PInt),
            f(6, "dnsPolicy", Str),
            f(7, "nodeSelector", MapStr),
            f(8, "serviceAccountName", Str),
            f(10, "nodeName", Str),
            f(11, "hostNetwork", Bool),
            r(15, "imagePullSecrets", Msg("LocalObjectReference")),
            f(16, "hostname", Str),
            f(17, "subdomain", Str),
            f(19, "schedulerName", Str),
            r(20, "initContainers", Msg("Container")),
            r(22, "tolerations", Msg("Toleration")),
            f(24, "priorityClassName", Str),
        ] },
        "Container" => const { &[
            f(1, "name", Str),
            f(2, "image", Str),
            r(3, "command", Str),
            r(4, "args", Str),
            f(5, "workingDir", Str),
            r(6, "ports", Msg("ContainerPort")),
            r(7, "env", Msg("EnvVar")),
            f(8, "resources", Msg("ResourceRequirements")),
            r(9, "volumeMounts", Msg("VolumeMount")),
            f(13, "terminationMessagePath", Str),
            f(14, "imagePullPolicy", Str),
            f(16, "stdin", Bool),
            f(17, "stdinOnce", Bool),
            f(18, "tty", Bool),
            f(20, "terminationMessagePolicy", Str),
        ] },
        "ContainerPort" => const { &[f(1, "name", Str), f(2, "hostPort", Int), f(3, "containerPort", Int), f(4, "protocol", Str), f(5, "hostIP", Str)] },
        "EnvVar" => const { &[f(1, "name", Str), f(2, "value", Str)] },
        "ResourceRequirements" => const { &[f(1, "limits", MapQuantity), f(2, "requests", MapQuantity)] },
        "VolumeMount" => const { &[f(1, "name", Str), f(2, "readOnly", Bool), f(3, "mountPath", Str), f(4, "subPath", Str)] },
        "Toleration" => const { &[f(1, "key", Str), f(2, "operator", Str), f(3, "value", Str), f(4, "effect", Str), f(5, "tolerationSeconds", PInt)] },
        "Job" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("JobSpec"))] },
        "JobSpec" => const { &[
            f(1, "parallelism", PInt),
            f(2, "completions", PInt),
            f(3, "activeDeadlineSeconds", PInt),
            f(4, "selector", Msg("LabelSelector")),
            f(5, "manualSelector", Bool),
            f(6, "template", Msg("PodTemplateSpec")),
            f(7, "backoffLimit", PInt),
            f(8, "ttlSecondsAfterFinished", PInt),
            f(9, "completionMode", Str),
            f(10, "suspend", Bool),
        ] },
        "CronJob" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("CronJobSpec"))] },
        "CronJobSpec" => const { &[
            f(1, "schedule", Str),
            f(2, "startingDeadlineSeconds", PInt),
            f(3, "concurrencyPolicy", Str),
            f(4, "suspend", Bool),
            f(5, "jobTemplate", Msg("JobTemplateSpec")),
            f(6, "successfulJobsHistoryLimit", PInt),
            f(7, "failedJobsHistoryLimit", PInt),
            f(8, "timeZone", Str),
        ] },
        "JobTemplateSpec" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("JobSpec"))] },
        "Service" => const { &[f(1, "metadata", Msg("ObjectMeta")), f(2, "spec", Msg("ServiceSpec"))] },
        "ServiceSpec" => const { &[
            r(1, "ports", Msg("ServicePort")),
            f(2, "selector", MapStr),
            f(3, "clusterIP", Str),
            f(4, "type", Str),
            r(5, "externalIPs", Str),
            f(7, "sessionAffinity", Str),
            f(10, "externalName", Str),
            f(11, "externalTrafficPolicy", Str),
        ] },
        "ServicePort" => const { &[f(1, "name", Str), f(2, "protocol", Str), f(3, "port", Int), f(4, "targetPort", IntOrString), f(5, "nodePort", Int)] },
        _ => return None,
    })
}

/// A cursor over protobuf bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("invalid protobuf body: {what}"))
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(bad("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], ApiError> {
        let len = self.varint()? as usize;
        let end = self.pos.checked_add(len).filter(|e| *e <= self.buf.len()).ok_or_else(|| bad("truncated field"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Reads the next (field number, wire type) key.
    fn key(&mut self) -> Result<(u32, u8), ApiError> {
        let k = self.varint()?;
        Ok(((k >> 3) as u32, (k & 7) as u8))
    }

    fn skip(&mut self, wire: u8) -> Result<(), ApiError> {
        match wire {
            0 => {
                self.varint()?;
            }
            1 => self.pos += 8,
            2 => {
                self.bytes()?;
            }
            5 => self.pos += 4,
            w => return Err(bad(&format!("unsupported wire type {w}"))),
        }
        if self.pos > self.buf.len() {
            return Err(bad("truncated field"));
        }
        Ok(())
    }
}

fn string(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("string is not UTF-8"))
}

/// Reads a map entry message { key = 1, value = 2 } with a string key.
fn map_entry(b: &[u8]) -> Result<(String, &[u8]), ApiError> {
    let mut r = Reader::new(b);
    let (mut k, mut v): (String, &[u8]) = (String::new(), &[]);
    while !r.done() {
        let (n, w) = r.key()?;
        match (n, w) {
            (1, 2) => k = string(r.bytes()?)?,
            (2, 2) => v = r.bytes()?,
            _ => r.skip(w)?,
        }
    }
    Ok((k, v))
}

fn decode_time(b: &[u8]) -> Result<Value, ApiError> {
    let mut r = Reader::new(b);
    let mut secs = 0i64;
    while !r.done() {
        let (n, w) = r.key()?;
        match (n, w) {
            (1, 0) => secs = r.varint()? as i64,
            _ => r.skip(w)?,
        }
    }
    if secs <= 0 {
        return Ok(Value::Null);
    }
    Ok(chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or(Value::Null))
}

fn decode_int_or_string(b: &[u8]) -> Result<Value, ApiError> {
    let mut r = Reader::new(b);
    let (mut ty, mut i, mut s) = (0u64, 0i64, String::new());
    while !r.done() {
        let (n, w) = r.key()?;
        match (n, w) {
            (1, 0) => ty = r.varint()?,
            (2, 0) => i = r.varint()? as i32 as i64,
            (3, 2) => s = string(r.bytes()?)?,
            _ => r.skip(w)?,
        }
    }
    Ok(if ty == 1 { json!(s) } else { json!(i) })
}

fn decode_msg(msg: &str, b: &[u8]) -> Result<Value, ApiError> {
    let Some(spec) = fields(msg) else { return Ok(json!({})) };
    let mut out = Map::new();
    let mut r = Reader::new(b);
    while !r.done() {
        let (n, w) = r.key()?;
        let Some(&(_, name, ty, repeated)) = spec.iter().find(|(num, ..)| *num == n) else {
            r.skip(w)?;
            continue;
        };
        let value = match (ty, w) {
            (Ty::Int, 0) => match r.varint()? as i64 {
                0 => continue,
                n => json!(n),
            },
            (Ty::PInt, 0) => json!(r.varint()? as i64),
            (Ty::Bool, 0) => match r.varint()? {
                0 => continue,
                _ => json!(true),
            },
            (Ty::Str, 2) => match string(r.bytes()?)? {
                e if e.is_empty() && !repeated => continue,
                v => json!(v),
            },
            (Ty::Msg(m), 2) => decode_msg(m, r.bytes()?)?,
            (Ty::Time, 2) => match decode_time(r.bytes()?)? {
                Value::Null => continue,
                t => t,
            },
            (Ty::IntOrString, 2) => decode_int_or_string(r.bytes()?)?,
            (Ty::Bytes, 2) => match r.bytes()? {
                b if b.is_empty() => continue,
                b => json!(base64::engine::general_purpose::STANDARD.encode(b)),
            },
            (Ty::MapStr | Ty::MapBytes | Ty::MapQuantity, 2) => {
                let (k, v) = map_entry(r.bytes()?)?;
                let val = match ty {
                    Ty::MapStr => json!(string(v)?),
                    Ty::MapBytes => json!(base64::engine::general_purpose::STANDARD.encode(v)),
                    _ => {
                        // Quantity { string = 1 }
                        let (_, q) = map_entry_value_string(v)?;
                        json!(q)
                    }
                };
                let entry = out.entry(name.to_string()).or_insert_with(|| json!({}));
                entry[k] = val;
                continue;
            }
            _ => {
                r.skip(w)?;
                continue;
            }
        };
        if repeated {
            let entry = out.entry(name.to_string()).or_insert_with(|| json!([]));
            if let Some(a) = entry.as_array_mut() {
                a.push(value);
            }
        } else {
            out.insert(name.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

/// Quantity { string = 1 }.
fn map_entry_value_string(b: &[u8]) -> Result<((), String), ApiError> {
    let mut r = Reader::new(b);
    let mut s = String::new();
    while !r.done() {
        let (n, w) = r.key()?;
        match (n, w) {
            (1, 2) => s = string(r.bytes()?)?,
            _ => r.skip(w)?,
        }
    }
    Ok(((), s))
}

/// The JSON name an IngressRule's IngressRuleValue is decoded under before it is inlined.
const INGRESS_RULE_VALUE: &str = "ingressRuleValue";

/// IngressRuleValue is inline in an IngressRule's JSON (`rules[].http`), a message of its own in protobuf.
fn inline_ingress_rule_values(obj: &mut Value) {
    for rule in obj.pointer_mut("/spec/rules").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(Value::Object(inner)) = rule.as_object_mut().and_then(|m| m.remove(INGRESS_RULE_VALUE)) {
            for (k, v) in inner {
                rule[k] = v;
            }
        }
    }
}

/// Decodes a protobuf request body into the JSON object it encodes.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body.strip_prefix(b"k8s\0").ok_or_else(|| bad("missing the k8s protobuf magic prefix"))?;
    let mut r = Reader::new(rest);
    let (mut api_version, mut kind, mut raw): (String, String, &[u8]) = (String::new(), String::new(), &[]);
    while !r.done() {
        let (n, w) = r.key()?;
        match (n, w) {
            (1, 2) => {
                let mut tm = Reader::new(r.bytes()?);
                while !tm.done() {
                    let (tn, tw) = tm.key()?;
                    match (tn, tw) {
                        (1, 2) => api_version = string(tm.bytes()?)?,
                        (2, 2) => kind = string(tm.bytes()?)?,
                        _ => tm.skip(tw)?,
                    }
                }
            }
            (2, 2) => raw = r.bytes()?,
            _ => r.skip(w)?,
        }
    }
    if fields(&kind).is_none() {
        let mut e = ApiError::unsupported_media_type(&["application/json", "application/yaml"]);
        e.message.push_str(&format!(" (a {kind} is not taken as application/vnd.kubernetes.protobuf)"));
        return Err(e);
    }
    let mut obj = decode_msg(&kind, raw)?;
    if kind == "Ingress" {
        inline_ingress_rule_values(&mut obj);
    }
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32, w: u8) -> Vec<u8> {
        let mut v = Vec::new();
        let mut k = (u64::from(n) << 3) | u64::from(w);
        loop {
            let b = (k & 0x7f) as u8;
            k >>= 7;
            if k == 0 {
                v.push(b);
                break;
            }
            v.push(b | 0x80);
        }
        v
    }

    fn ld(n: u32, data: &[u8]) -> Vec<u8> {
        let mut v = key(n, 2);
        v.push(data.len() as u8);
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let meta = [ld(1, b"c1"), ld(11, &[ld(1, b"app"), ld(2, b"web")].concat())].concat();
        let cm = [ld(1, &meta), ld(2, &[ld(1, b"k"), ld(2, b"v")].concat())].concat();
        let type_meta = [ld(1, b"v1"), ld(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), ld(1, &type_meta), ld(2, &cm)].concat();
        let obj = decode(&body).expect("decodes");
        assert_eq!(obj, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "labels": {"app": "web"}}, "data": {"k": "v"}}));
    }

    #[test]
    fn decodes_an_ingress_with_its_inline_rule_value() {
        let port = [key(2, 0), vec![80]].concat();
        let svc = [ld(1, b"web"), ld(2, &port)].concat();
        let backend = ld(4, &svc);
        let path = [ld(1, b"/api"), ld(2, &backend), ld(3, b"Prefix")].concat();
        let rule = [ld(1, b"a.example"), ld(2, &ld(1, &ld(1, &path)))].concat();
        let spec = [ld(3, &rule), ld(4, b"rkube"), ld(2, &[ld(1, b"a.example"), ld(2, b"tls-a")].concat())].concat();
        let raw = [ld(1, &ld(1, b"web")), ld(2, &spec)].concat();
        let tm = [ld(1, b"networking.k8s.io/v1"), ld(2, b"Ingress")].concat();
        let body = [b"k8s\0".to_vec(), ld(1, &tm), ld(2, &raw)].concat();
        let obj = decode(&body).expect("decoded");
        assert_eq!(
            obj["spec"],
            json!({"ingressClassName": "rkube", "tls": [{"hosts": ["a.example"], "secretName": "tls-a"}],
                   "rules": [{"host": "a.example", "http": {"paths": [
                       {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]})
        );
    }

    #[test]
    fn unknown_kinds_and_garbage_are_rejected() {
        let type_meta = [ld(1, b"v1"), ld(2, b"Widget")].concat();
        let body = [b"k8s\0".to_vec(), ld(1, &type_meta)].concat();
        assert_eq!(decode(&body).expect_err("unknown kind").code, 415);
        assert_eq!(decode(b"k8s\0\x0a\xff").expect_err("truncated").code, 400);
        assert_eq!(decode(b"{}").expect_err("no magic").code, 400);
    }
}
