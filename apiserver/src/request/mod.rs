//! What a resource request addresses and asks for: the path parsed against the resource table
//! (`/api/v1/namespaces/{ns}/pods/{name}/status`), the query parameters, body decoding (JSON or YAML) and the
//! response form the client accepts (plain JSON or a `meta.k8s.io` Table).

use http::HeaderMap;
use serde_json::Value;

use crate::registry::{self, ResourceInfo};
use crate::status::ApiError;

/// The resource a request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    pub info: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// Legacy `/watch/` path prefix.
    pub watch_path: bool,
}

impl Target {
    pub fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn key(&self) -> String {
        self.info.key(self.ns(), self.name.as_deref().unwrap_or_default())
    }
}

/// Parses the segments after `/api/v1` or `/apis/<group>/<version>`.
pub fn parse_target(group: &str, version: &str, segs: &[&str], full_path: &str) -> Result<Target, ApiError> {
    let mut segs = segs;
    let mut watch_path = false;
    if segs.first() == Some(&"watch") {
        watch_path = true;
        segs = &segs[1..];
    }
    let not_found = || ApiError::path_not_found(full_path);
    if segs.is_empty() {
        return Err(not_found());
    }
    // /namespaces/{ns}/{resource}[/{name}[/{sub}]]
    if segs[0] == "namespaces" && segs.len() >= 3 {
        if let Some(info) = registry::find(group, version, segs[2]).filter(|i| i.namespaced) {
            if segs.len() > 5 {
                return Err(not_found());
            }
            return Ok(Target {
                info,
                namespace: Some(segs[1].to_string()),
                name: segs.get(3).map(|s| s.to_string()),
                subresource: segs.get(4).map(|s| s.to_string()),
                watch_path,
            });
        }
    }
    let info = registry::find(group, version, segs[0]).ok_or_else(not_found)?;
    if segs.len() > 3 {
        // nodes/{name}/proxy/{path...} is the only deeper path.
        if !(info.resource == "nodes" && segs[2] == "proxy") {
            return Err(not_found());
        }
    }
    Ok(Target {
        info,
        namespace: None,
        name: segs.get(1).map(|s| s.to_string()),
        subresource: segs.get(2).map(|s| s.to_string()),
        watch_path,
    })
}

/// Query parameters understood on resource requests (unknown ones are ignored, as Kubernetes does).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub watch: bool,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    pub force: bool,
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub include_object: Option<String>,
    pub pretty: bool,
    /// Every parameter as given (for subresources like log/exec).
    pub raw: Vec<(String, String)>,
}

fn truthy(v: &str) -> bool {
    matches!(v, "true" | "1" | "True" | "TRUE" | "")
}

impl Query {
    pub fn parse(q: Option<&str>) -> Result<Query, ApiError> {
        let mut out = Query::default();
        let Some(q) = q else { return Ok(out) };
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            let v = v.to_string();
            match k.as_ref() {
                "watch" => out.watch = truthy(&v),
                "labelSelector" => out.label_selector = Some(v.clone()),
                "fieldSelector" => out.field_selector = Some(v.clone()),
                "limit" => {
                    let n: i64 = v.parse().map_err(|_| ApiError::bad_request(format!("invalid limit {v:?}")))?;
                    out.limit = if n > 0 { Some(n as usize) } else { None };
                }
                "continue" => out.continue_token = Some(v.clone()).filter(|s| !s.is_empty()),
                "resourceVersion" => out.resource_version = Some(v.clone()).filter(|s| !s.is_empty()),
                "resourceVersionMatch" => out.resource_version_match = Some(v.clone()).filter(|s| !s.is_empty()),
                "timeoutSeconds" => out.timeout_seconds = v.parse().ok(),
                "allowWatchBookmarks" => out.allow_watch_bookmarks = truthy(&v),
                "sendInitialEvents" => out.send_initial_events = Some(truthy(&v)),
                "dryRun" => {
                    if v != "All" && !v.is_empty() {
                        return Err(ApiError::bad_request(format!(
                            "Invalid dry run value: {v:?}: supported values: \"All\""
                        )));
                    }
                    out.dry_run = v == "All";
                }
                "fieldManager" => out.field_manager = Some(v.clone()),
                "fieldValidation" => {
                    if !matches!(v.as_str(), "Strict" | "Warn" | "Ignore" | "") {
                        return Err(ApiError::bad_request(format!(
                            "fieldValidation invalid value: {v}: must be one of Ignore, Warn or Strict"
                        )));
                    }
                    out.field_validation = Some(v.clone());
                }
                "force" => out.force = truthy(&v),
                "propagationPolicy" => out.propagation_policy = Some(v.clone()),
                "gracePeriodSeconds" => out.grace_period_seconds = v.parse().ok(),
                "includeObject" => out.include_object = Some(v.clone()),
                "pretty" => out.pretty = truthy(&v),
                _ => {}
            }
            out.raw.push((k.to_string(), v));
        }
        Ok(out)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Strict unless the client asked to Warn or Ignore (upstream's default for kubectl is Strict via the flag;
    /// for other clients it is Warn: unknown fields are dropped).
    pub fn strict(&self) -> bool {
        self.field_validation.as_deref() == Some("Strict")
    }
}

/// The media type of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    Json,
    Yaml,
    JsonPatch,
    MergePatch,
    StrategicMergePatch,
    ApplyPatch,
    Protobuf,
}

pub fn body_type(headers: &HeaderMap) -> Result<BodyType, ApiError> {
    let ct = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let base = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    Ok(match base.as_str() {
        "" | "application/json" | "*/*" | "text/plain" => BodyType::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" => BodyType::Yaml,
        "application/json-patch+json" => BodyType::JsonPatch,
        "application/merge-patch+json" => BodyType::MergePatch,
        "application/strategic-merge-patch+json" => BodyType::StrategicMergePatch,
        "application/apply-patch+yaml" | "application/apply-patch+json" => BodyType::ApplyPatch,
        "application/vnd.kubernetes.protobuf" => BodyType::Protobuf,
        _ => return Err(ApiError::unsupported_media_type(ct)),
    })
}

/// Decodes a JSON or YAML body into a JSON value; malformed input is a 400 naming the problem.
pub fn decode_body(body: &[u8], yaml: bool) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if !yaml {
        if let Ok(v) = serde_json::from_slice::<Value>(body) {
            return Ok(v);
        }
    }
    // YAML is a superset of JSON; a JSON error is reported as such when the body looks like JSON.
    let trimmed = body.iter().position(|b| !b.is_ascii_whitespace()).map(|i| body[i]);
    if !yaml && matches!(trimmed, Some(b'{') | Some(b'[')) {
        let e = serde_json::from_slice::<Value>(body).err().map(|e| e.to_string()).unwrap_or_default();
        return Err(ApiError::bad_request(format!("error decoding JSON: {e}")));
    }
    serde_yaml::from_slice::<Value>(body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// Whether the client wants a `meta.k8s.io/v1` Table (kubectl get's Accept header).
pub fn wants_table(headers: &HeaderMap) -> bool {
    accept(headers).split(',').any(|part| {
        let p = part.replace(' ', "");
        p.contains("as=Table") && p.contains("g=meta.k8s.io") && (p.contains("v=v1;") || p.ends_with("v=v1") || p.contains("v=v1beta1"))
    })
}

/// The version of the Table the client asked for first (`v1` or `v1beta1`).
pub fn table_version(headers: &HeaderMap) -> &'static str {
    for part in accept(headers).split(',') {
        let p = part.replace(' ', "");
        if p.contains("as=Table") {
            return if p.contains("v=v1beta1") { "v1beta1" } else { "v1" };
        }
    }
    "v1"
}

/// Whether the client wants YAML output.
pub fn wants_yaml(headers: &HeaderMap) -> bool {
    let a = accept(headers);
    a.starts_with("application/yaml") && !a.contains("json")
}

pub fn accept(headers: &HeaderMap) -> &str {
    headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_targets() {
        let t = parse_target("", "v1", &["namespaces", "default", "pods", "web", "status"], "/p").expect("pod status");
        assert_eq!(t.info.resource, "pods");
        assert_eq!(t.ns(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse_target("", "v1", &["namespaces", "kube-system"], "/p").expect("namespace");
        assert_eq!(t.info.resource, "namespaces");
        assert_eq!(t.name.as_deref(), Some("kube-system"));
        let t = parse_target("", "v1", &["namespaces", "x", "status"], "/p").expect("namespace status");
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse_target("apps", "v1", &["deployments"], "/p").expect("all deployments");
        assert!(t.namespace.is_none() && t.name.is_none());
        let t = parse_target("", "v1", &["watch", "namespaces", "d", "pods"], "/p").expect("legacy watch");
        assert!(t.watch_path);
        assert!(parse_target("", "v1", &["widgets"], "/p").is_err());
    }

    #[test]
    fn table_accept_header_is_recognised() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .expect("header"),
        );
        assert!(wants_table(&h));
        h.insert(http::header::ACCEPT, "application/json".parse().expect("header"));
        assert!(!wants_table(&h));
    }

    #[test]
    fn bodies_decode_from_json_and_yaml() {
        assert_eq!(decode_body(b"{\"a\":1}", false).expect("json")["a"], 1);
        assert_eq!(decode_body(b"a: 1\n", false).expect("yaml")["a"], 1);
        let e = decode_body(b"{\"a\":", false).expect_err("truncated");
        assert_eq!(e.code, 400);
    }
}
