//! What a resource request addresses and asks for: the path parsed against the resource table
//! (`/api/v1/namespaces/{ns}/pods/{name}/status`), the query parameters ([`query`], parsed once for
//! authorization and handlers alike), body decoding (JSON or YAML) and the response form the client accepts
//! (plain JSON or a `meta.k8s.io` Table).

use http::HeaderMap;
use serde_json::Value;

use crate::registry::{self, ResourceInfo};
use crate::status::ApiError;

pub mod origin;
pub mod query;

pub use query::Query;

/// The resource a request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    /// The addressed resource's row in the resource table.
    pub info: &'static ResourceInfo,
    /// The namespace in the path, if any (None for cluster-scoped resources and all-namespace lists).
    pub namespace: Option<String>,
    /// The object's name, None for a collection.
    pub name: Option<String>,
    /// The subresource after the name (`status`, `scale`, `log`, `exec`, `proxy`...).
    pub subresource: Option<String>,
    /// Legacy `/watch/` path prefix.
    pub watch_path: bool,
}

impl Target {
    /// The namespace in the path, borrowed.
    pub fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The storage key of the addressed object (of its collection when no name is given).
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
    // /namespaces/{ns}/{resource}[/{name}[/{sub}]]; /namespaces/{ns}/{status|finalize} is the namespace's own
    // subresource, and nothing else is (authorization reads the path the same way: auth::attributes)
    if segs[0] == "namespaces" && segs.len() >= 3 && !matches!(segs[2], "status" | "finalize") {
        let info = registry::find(group, version, segs[2]).filter(|i| i.namespaced).ok_or_else(not_found)?;
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

/// The media type of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
    /// `application/json-patch+json` (RFC 6902).
    JsonPatch,
    /// `application/merge-patch+json` (RFC 7386).
    MergePatch,
    /// `application/strategic-merge-patch+json` (Kubernetes' strategic merge patch).
    StrategicMergePatch,
    /// `application/apply-patch+yaml` (server-side apply).
    ApplyPatch,
    /// `application/vnd.kubernetes.protobuf`.
    Protobuf,
}

/// What create, update and the POST subresources take (upstream's list, in its order).
pub const OBJECT_MEDIA_TYPES: &[&str] = &["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"];
/// What PATCH takes (upstream's list for built-in kinds; `application/apply-patch+json` is taken too).
pub const PATCH_MEDIA_TYPES: &[&str] =
    &["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"];

/// The media type of the body (parameters such as `charset` ignored); no Content-Type is JSON, upstream's
/// default. Anything the API does not speak, `text/plain` and the form types a cross-site browser POST can send
/// included, is upstream's 415 listing `accepted`.
pub fn body_type(headers: &HeaderMap, accepted: &[&str]) -> Result<BodyType, ApiError> {
    let ct = headers.get(http::header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?")).unwrap_or("");
    let base = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let bt = match base.as_str() {
        "" | "application/json" => BodyType::Json,
        "application/yaml" => BodyType::Yaml,
        "application/json-patch+json" => BodyType::JsonPatch,
        "application/merge-patch+json" => BodyType::MergePatch,
        "application/strategic-merge-patch+json" => BodyType::StrategicMergePatch,
        "application/apply-patch+yaml" | "application/apply-patch+json" => BodyType::ApplyPatch,
        "application/vnd.kubernetes.protobuf" => BodyType::Protobuf,
        _ => return Err(ApiError::unsupported_media_type(accepted)),
    };
    let taken = match bt {
        BodyType::Json => base.is_empty() || accepted.contains(&"application/json"),
        BodyType::ApplyPatch => accepted.contains(&"application/apply-patch+yaml"),
        _ => accepted.contains(&base.as_str()),
    };
    if !taken {
        return Err(ApiError::unsupported_media_type(accepted));
    }
    Ok(bt)
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

/// The request's `Accept` header (`""` when absent or not text).
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

    /// Authorization (`auth::attributes`) and the handler read every path shape the same way: same resource,
    /// subresource, name and namespace; a path one of them cannot place is refused by the handler.
    #[test]
    fn authorization_and_handler_read_paths_alike() {
        use crate::auth::attributes::Attributes;
        let cases = [
            "/api/v1/namespaces/d/pods",
            "/api/v1/namespaces/d/pods/p",
            "/api/v1/namespaces/d/pods/p/status",
            "/api/v1/namespaces/d/pods/p/log",
            "/api/v1/namespaces/x",
            "/api/v1/namespaces/x/status",
            "/api/v1/namespaces/x/finalize",
            "/api/v1/namespaces",
            "/api/v1/pods",
            "/api/v1/nodes",
            "/api/v1/nodes/n/status",
            "/api/v1/nodes/n/proxy/a/b",
            "/apis/apps/v1/namespaces/d/deployments/w/scale",
            "/api/v1/watch/namespaces/d/pods",
            "/api/v1/watch/namespaces/d/pods/p",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/x",
        ];
        for path in cases {
            let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
            let (g, v, rest) = match segs.as_slice() {
                ["api", v, rest @ ..] => ("", *v, rest),
                ["apis", g, v, rest @ ..] => (*g, *v, rest),
                _ => unreachable!(),
            };
            let t = parse_target(g, v, rest, path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let a = Attributes::from_request(&http::Method::GET, path, &Query::default());
            assert_eq!(a.resource, t.info.resource, "{path}");
            assert_eq!(a.subresource, t.subresource.clone().unwrap_or_default(), "{path}");
            assert_eq!(a.name, t.name.clone().unwrap_or_default(), "{path}");
            let ns = if t.info.resource == "namespaces" { t.name.clone() } else { t.namespace.clone() };
            assert_eq!(a.namespace, ns.unwrap_or_default(), "{path}");
        }
        for (rest, path) in [
            (&["namespaces", "x", "nodes"][..], "a cluster-scoped resource under a namespace"),
            (&["namespaces", "x", "widgets"][..], "an unknown resource under a namespace"),
            (&["namespaces", "x", "status", "y"][..], "too deep"),
        ] {
            assert!(parse_target("", "v1", rest, "/p").is_err(), "{path}: {rest:?}");
        }
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
