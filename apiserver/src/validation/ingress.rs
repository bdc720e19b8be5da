//! networking.k8s.io/v1 Ingress and IngressClass, with upstream's rules and words
//! (`pkg/apis/networking/validation`): every path needs a `pathType`; `Exact` and `Prefix` paths are absolute
//! and free of `//`, `/./`, `/../`, `%2f` and a trailing `/..` or `/.`; a backend is a Service (name and port
//! name or number) or a resource, never both; hosts are DNS names (a wildcard only as `*.` in front), never IP
//! addresses; an Ingress has rules or a default backend; an IngressClass names its controller as a
//! domain-prefixed path, which cannot change.
//!
//! Must not: look at other objects (whether the Service or Secret exists is the ingress controller's business,
//! reported as events, as upstream).

use rkube_apimachinery::validation as names;
use serde_json::{json, Value};

use crate::status::Cause;

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];
const WILDCARD_ERROR: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const CONTROLLER_MAX: usize = 250;

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Upstream's `ValidateIngressCreate`/`ValidateIngressUpdate` on the spec (and, on create, the class
/// annotation agreeing with `ingressClassName`).
pub fn validate_ingress(obj: &Value, create: bool, causes: &mut Vec<Cause>) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let rules = spec.get("rules").and_then(Value::as_array);
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_none_or(Vec::is_empty) && default_backend.is_none() {
        causes.push(Cause::invalid(
            "spec",
            spec.get("rules").unwrap_or(&null),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default_backend {
        validate_backend(b, "spec.defaultBackend", causes);
    }
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let p = format!("spec.rules[{i}]");
        if let Some(host) = s(rule, "host").filter(|h| !h.is_empty()) {
            if host.parse::<std::net::IpAddr>().is_ok() {
                causes.push(Cause::invalid(
                    format!("{p}.host"),
                    &json!(host),
                    "must be a DNS name, not an IP address",
                ));
            } else if let Some(e) = host_error(host) {
                causes.push(Cause::invalid(format!("{p}.host"), &json!(host), &e));
            }
        }
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
            continue;
        };
        let paths = http.get("paths").and_then(Value::as_array);
        if paths.is_none_or(Vec::is_empty) {
            causes.push(Cause::required(format!("{p}.http.paths"), ""));
        }
        for (j, path) in paths.into_iter().flatten().enumerate() {
            validate_path(path, &format!("{p}.http.paths[{j}]"), causes);
        }
    }
    for (i, tls) in spec
        .get("tls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, host) in tls
            .get("hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let h = host.as_str().unwrap_or_default();
            if let Some(e) = host_error(h) {
                causes.push(Cause::invalid(
                    format!("spec.tls[{i}].hosts[{j}]"),
                    host,
                    &e,
                ));
            }
        }
        if let Some(name) = s(tls, "secretName").filter(|n| !n.is_empty()) {
            if let Some(e) = names::dns1123_subdomain_error(name) {
                causes.push(Cause::invalid(
                    format!("spec.tls[{i}].secretName"),
                    &json!(name),
                    &e,
                ));
            }
        }
    }
    let class = s(spec, "ingressClassName");
    if let Some(c) = class {
        if let Some(e) = names::dns1123_subdomain_error(c) {
            causes.push(Cause::invalid("spec.ingressClassName", &json!(c), &e));
        }
    }
    let annotation = obj
        .pointer("/metadata/annotations")
        .and_then(|a| s(a, LEGACY_CLASS_ANNOTATION));
    if let (true, Some(a), Some(c)) = (create, annotation, class) {
        if a != c {
            causes.push(Cause::invalid(
                format!("annotations.{LEGACY_CLASS_ANNOTATION}"),
                &json!(a),
                "must match `ingressClassName` when both are specified",
            ));
        }
    }
}

fn host_error(host: &str) -> Option<String> {
    if host.contains('*') {
        let ok = host
            .strip_prefix("*.")
            .is_some_and(|rest| names::dns1123_subdomain_error(rest).is_none());
        if host.len() > 253 {
            return Some("must be no more than 253 characters".into());
        }
        return (!ok).then(|| WILDCARD_ERROR.to_string());
    }
    names::dns1123_subdomain_error(host)
}

/// Upstream's `validateHTTPIngressPath`: a path without a type stops there, as upstream returns early.
fn validate_path(path: &Value, p: &str, causes: &mut Vec<Cause>) {
    let Some(path_type) = path.get("pathType").filter(|t| !t.is_null()) else {
        causes.push(Cause::required(
            format!("{p}.pathType"),
            "pathType must be specified",
        ));
        return;
    };
    let value = s(path, "path").unwrap_or_default();
    let shown = json!(value);
    match path_type.as_str() {
        Some("Exact" | "Prefix") => {
            if !value.starts_with('/') {
                causes.push(Cause::invalid(
                    format!("{p}.path"),
                    &shown,
                    "must be an absolute path",
                ));
            }
            if !value.is_empty() {
                for seq in INVALID_PATH_SEQUENCES {
                    if value.contains(seq) {
                        causes.push(Cause::invalid(
                            format!("{p}.path"),
                            &shown,
                            &format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suffix in INVALID_PATH_SUFFIXES {
                    if value.ends_with(suffix) {
                        causes.push(Cause::invalid(
                            format!("{p}.path"),
                            &shown,
                            &format!("cannot end with '{suffix}'"),
                        ));
                    }
                }
            }
        }
        Some("ImplementationSpecific") => {
            if !value.is_empty() && !value.starts_with('/') {
                causes.push(Cause::invalid(
                    format!("{p}.path"),
                    &shown,
                    "must be an absolute path",
                ));
            }
        }
        _ => causes.push(Cause::not_supported(
            format!("{p}.pathType"),
            path_type,
            PATH_TYPES,
        )),
    }
    match path.get("backend").filter(|b| !b.is_null()) {
        Some(b) => validate_backend(b, &format!("{p}.backend"), causes),
        None => validate_backend(&json!({}), &format!("{p}.backend"), causes),
    }
}

/// Upstream's `validateIngressBackend`.
fn validate_backend(b: &Value, p: &str, causes: &mut Vec<Cause>) {
    let resource = b.get("resource").filter(|r| !r.is_null());
    let service = b.get("service").filter(|r| !r.is_null());
    match (resource, service) {
        (Some(_), Some(_)) => causes.push(Cause::invalid(
            p,
            &json!(""),
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => {
            if let Some(g) = s(r, "apiGroup") {
                if let Some(e) = names::dns1123_subdomain_error(g) {
                    causes.push(Cause::invalid(
                        format!("{p}.resource.apiGroup"),
                        &json!(g),
                        &e,
                    ));
                }
            }
            match s(r, "kind").filter(|k| !k.is_empty()) {
                None => causes.push(Cause::required(
                    format!("{p}.resource.kind"),
                    "kind is required",
                )),
                Some(k) => {
                    if let Some(e) = names::path_segment_error(k) {
                        causes.push(Cause::invalid(format!("{p}.resource.kind"), &json!(k), &e));
                    }
                }
            }
            match s(r, "name").filter(|k| !k.is_empty()) {
                None => causes.push(Cause::required(
                    format!("{p}.resource.name"),
                    "name is required",
                )),
                Some(n) => {
                    if let Some(e) = names::path_segment_error(n) {
                        causes.push(Cause::invalid(format!("{p}.resource.name"), &json!(n), &e));
                    }
                }
            }
        }
        (None, Some(svc)) => {
            match s(svc, "name").filter(|n| !n.is_empty()) {
                None => causes.push(Cause::required(format!("{p}.service.name"), "")),
                Some(n) => {
                    if let Some(e) = names::dns1035_label_error(n) {
                        causes.push(Cause::invalid(format!("{p}.service.name"), &json!(n), &e));
                    }
                }
            }
            let port = svc.get("port");
            let name = port.and_then(|x| s(x, "name")).filter(|n| !n.is_empty());
            let number = port
                .and_then(|x| x.get("number"))
                .and_then(Value::as_i64)
                .filter(|n| *n != 0);
            match (name, number) {
                (Some(_), Some(_)) => causes.push(Cause::invalid(
                    p,
                    &json!(""),
                    "cannot set both port name & port number",
                )),
                (Some(n), None) => {
                    for e in port_name_errors(n) {
                        causes.push(Cause::invalid(
                            format!("{p}.service.port.name"),
                            &json!(n),
                            &e,
                        ));
                    }
                }
                (None, Some(n)) => {
                    if !(1..=65535).contains(&n) {
                        causes.push(Cause::invalid(
                            format!("{p}.service.port.number"),
                            &json!(n),
                            "must be between 1 and 65535, inclusive",
                        ));
                    }
                }
                (None, None) => causes.push(Cause::required(p, "port name or number is required")),
            }
        }
        (None, None) => causes.push(Cause::invalid(
            p,
            &json!(""),
            "resource or service backend is required",
        )),
    }
}

/// Upstream's `IsValidPortName` (an IANA service name), every message that applies.
fn port_name_errors(port: &str) -> Vec<String> {
    let mut out = Vec::new();
    if port.len() > 15 {
        out.push("must be no more than 15 characters".to_string());
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        out.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !port.bytes().any(|b| b.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        out.push("must not contain consecutive hyphens (-)".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        out.push("must not begin or end with a hyphen (-)".to_string());
    }
    out
}

/// Upstream's `ValidateIngressClass` spec part: `spec.controller` is a domain-prefixed path, and (on update)
/// immutable.
pub fn validate_ingress_class(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let controller = obj
        .pointer("/spec/controller")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if controller.len() > CONTROLLER_MAX {
        causes.push(Cause::too_long("spec.controller", CONTROLLER_MAX));
    }
    if controller.is_empty() {
        causes.push(Cause::required("spec.controller", ""));
    } else {
        let ok = controller.split_once('/').is_some_and(|(host, path)| {
            !host.is_empty() && !path.is_empty() && names::dns1123_subdomain_error(host).is_none()
        });
        if !ok {
            causes.push(Cause::invalid(
                "spec.controller",
                &json!(controller),
                "must be a domain-prefixed path (such as \"acme.io/foo\")",
            ));
        }
    }
    if let Some(old) = old {
        let before = old
            .pointer("/spec/controller")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if before != controller {
            causes.push(Cause::invalid(
                "spec.controller",
                &json!(controller),
                "field is immutable",
            ));
        }
    }
    if let Some(params) = obj.pointer("/spec/parameters").filter(|p| !p.is_null()) {
        if s(params, "kind").is_none_or(str::is_empty) {
            causes.push(Cause::required("spec.parameters.kind", "kind is required"));
        }
        if s(params, "name").is_none_or(str::is_empty) {
            causes.push(Cause::required("spec.parameters.name", "name is required"));
        }
        match s(params, "scope") {
            Some("Cluster") => {
                if params.get("namespace").is_some_and(|n| !n.is_null()) {
                    causes.push(Cause::forbidden(
                        "spec.parameters.namespace",
                        "`parameters.scope` is set to 'Cluster'",
                    ));
                }
            }
            Some("Namespace") => {
                if s(params, "namespace").is_none_or(str::is_empty) {
                    causes.push(Cause::required(
                        "spec.parameters.namespace",
                        "`parameters.scope` is set to 'Namespace'",
                    ));
                }
            }
            Some(other) => causes.push(Cause::not_supported(
                "spec.parameters.scope",
                &json!(other),
                &["Cluster", "Namespace"],
            )),
            None => causes.push(Cause::required("spec.parameters.scope", "")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn causes_of(spec: Value) -> Vec<String> {
        let mut out = Vec::new();
        validate_ingress(
            &json!({"metadata": {"name": "i"}, "spec": spec}),
            true,
            &mut out,
        );
        out.iter().map(Cause::render).collect()
    }

    fn svc(name: &str, port: Value) -> Value {
        json!({"service": {"name": name, "port": port}})
    }

    #[test]
    fn paths_as_upstream() {
        let one = |path: Value| {
            causes_of(json!({"rules": [{"host": "a.example", "http": {"paths": [path]}}]}))
        };
        let b = svc("web", json!({"number": 80}));
        assert_eq!(
            one(json!({"path": "/", "pathType": "Prefix", "backend": b})),
            Vec::<String>::new()
        );
        assert_eq!(
            one(json!({"path": "api", "pathType": "Prefix", "backend": b})),
            ["spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path"]
        );
        assert_eq!(
            one(json!({"path": "/a", "backend": b})),
            ["spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"]
        );
        assert_eq!(
            one(json!({"path": "/a//b/..", "pathType": "Exact", "backend": b})),
            [
                "spec.rules[0].http.paths[0].path: Invalid value: \"/a//b/..\": must not contain '//'",
                "spec.rules[0].http.paths[0].path: Invalid value: \"/a//b/..\": cannot end with '/..'",
            ]
        );
        assert_eq!(
            one(json!({"path": "", "pathType": "ImplementationSpecific", "backend": b})),
            Vec::<String>::new()
        );
        assert_eq!(
            one(json!({"path": "/", "pathType": "Regex", "backend": b})),
            ["spec.rules[0].http.paths[0].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\""]
        );
    }

    #[test]
    fn backends_as_upstream() {
        let one = |b: Value| causes_of(json!({"defaultBackend": b}));
        assert_eq!(
            one(svc("web", json!({"name": "http"}))),
            Vec::<String>::new()
        );
        assert_eq!(
            one(json!({})),
            ["spec.defaultBackend: Invalid value: \"\": resource or service backend is required"]
        );
        assert_eq!(
            one(svc("web", json!({"name": "http", "number": 80}))),
            ["spec.defaultBackend: Invalid value: \"\": cannot set both port name & port number"]
        );
        assert_eq!(
            one(svc("web", json!({}))),
            ["spec.defaultBackend: Required value: port name or number is required"]
        );
        assert_eq!(
            one(svc("web", json!({"number": 70000}))),
            ["spec.defaultBackend.service.port.number: Invalid value: 70000: must be between 1 and 65535, inclusive"]
        );
        assert_eq!(
            one(json!({"resource": {"kind": "Bucket", "name": "b"}, "service": {"name": "web", "port": {"number": 80}}})),
            ["spec.defaultBackend: Invalid value: \"\": cannot set both resource and service backends"]
        );
        assert_eq!(
            one(json!({"resource": {"kind": "Bucket", "name": "b", "apiGroup": "example.com"}})),
            Vec::<String>::new()
        );
        assert_eq!(
            causes_of(json!({})),
            ["spec: Invalid value: null: either `defaultBackend` or `rules` must be specified"]
        );
    }

    #[test]
    fn hosts_and_tls() {
        let c = causes_of(json!({
            "rules": [{"host": "10.0.0.1"}, {"host": "*.a.example"}, {"host": "a.*.example"}],
            "tls": [{"hosts": ["Bad_Host"], "secretName": "tls-a"}],
        }));
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c[0], "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address");
        assert!(
            c[1].starts_with(
                "spec.rules[2].host: Invalid value: \"a.*.example\": a wildcard DNS-1123 subdomain"
            ),
            "{}",
            c[1]
        );
        assert!(
            c[2].starts_with(
                "spec.tls[0].hosts[0]: Invalid value: \"Bad_Host\": a lowercase RFC 1123 subdomain"
            ),
            "{}",
            c[2]
        );
    }

    #[test]
    fn the_typed_form_fills_only_what_validation_reports() {
        let obj = json!({"spec": {"rules": [{"http": {"paths": [{"path": "/", "backend": {"service": {"port": {"number": 80}}}}]}}]}});
        let t = crate::registry::ingress_typed_form(&obj);
        assert_eq!(
            t.pointer("/spec/rules/0/http/paths/0/pathType"),
            Some(&json!(""))
        );
        assert_eq!(
            t.pointer("/spec/rules/0/http/paths/0/backend/service/name"),
            Some(&json!(""))
        );
        let mut out = Vec::new();
        validate_ingress(&obj, true, &mut out);
        assert_eq!(
            out.len(),
            1,
            "the backend is not looked at once pathType is missing, as upstream"
        );
    }

    #[test]
    fn ingress_class_controller() {
        let check = |spec: Value, old: Option<Value>| {
            let mut out = Vec::new();
            validate_ingress_class(&json!({"spec": spec}), old.as_ref(), &mut out);
            out.iter().map(Cause::render).collect::<Vec<_>>()
        };
        assert_eq!(
            check(json!({"controller": "rkube.io/ingress-controller"}), None),
            Vec::<String>::new()
        );
        assert_eq!(check(json!({}), None), ["spec.controller: Required value"]);
        assert_eq!(
            check(json!({"controller": "nginx"}), None),
            ["spec.controller: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"]
        );
        assert_eq!(
            check(
                json!({"controller": "b.io/x"}),
                Some(json!({"spec": {"controller": "a.io/x"}}))
            ),
            ["spec.controller: Invalid value: \"b.io/x\": field is immutable"]
        );
    }
}
