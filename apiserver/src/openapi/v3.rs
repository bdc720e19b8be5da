//! OpenAPI v3: `/openapi/v3` lists one document per group-version; each document has the paths of that
//! group-version (with `x-kubernetes-group-version-kind` and the `fieldValidation`/`dryRun`/`fieldManager`
//! parameters kubectl checks for) and every schema definition under `components.schemas`.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use serde_json::{json, Map, Value};

use super::schema::definitions;
use crate::registry::{self, ResourceInfo};
use crate::status::ApiError;

/// Query parameters documented on write operations.
pub const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "pretty"];

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn op_id(verb: &str, r: &ResourceInfo, suffix: &str) -> String {
    let group: String = r
        .group
        .split('.')
        .next()
        .map(|g| {
            let mut c = g.chars();
            c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
        })
        .unwrap_or_default();
    let group = if r.group.is_empty() { "Core".to_string() } else { group };
    let v = {
        let mut c = r.version.chars();
        c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
    };
    let scope = if r.namespaced { "Namespaced" } else { "" };
    format!("{verb}{group}{v}{scope}{}{suffix}", r.kind)
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "description": format!("{name} query parameter"), "schema": {"type": "string", "uniqueItems": true}})
}

fn schema_ref(def: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{def}")})
}

#[allow(clippy::too_many_arguments)] // one call site per operation kind; a struct would only rename the list
fn operation(verb: &str, action: &str, r: &ResourceInfo, body_def: Option<&str>, resp_def: &str, kind: &str, params: &[&str], suffix: &str) -> Value {
    let mut op = json!({
        "tags": [r.api_version().replace('/', "_")],
        "description": format!("{action} {}", r.kind),
        "operationId": op_id(verb, r, suffix),
        "parameters": params.iter().map(|p| param(p)).collect::<Vec<_>>(),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref(resp_def)}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": kind},
    });
    if let Some(def) = body_def {
        let types: &[&str] = if verb == "patch" {
            &[
                "application/apply-patch+yaml",
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ]
        } else {
            &["*/*"]
        };
        let content: Map<String, Value> = types.iter().map(|t| (t.to_string(), json!({"schema": schema_ref(def)}))).collect();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

/// The paths of one resource: collection, item, and status/scale subresources.
fn resource_paths(r: &ResourceInfo, paths: &mut Map<String, Value>) {
    let base = if r.group.is_empty() { format!("/api/{}", r.version) } else { format!("/apis/{}/{}", r.group, r.version) };
    let coll = if r.namespaced { format!("{base}/namespaces/{{namespace}}/{}", r.resource) } else { format!("{base}/{}", r.resource) };
    let item = format!("{coll}/{{name}}");
    let list_def = format!("{}List", r.definition);
    let patch_def = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
    let list_params = ["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "resourceVersionMatch", "watch", "timeoutSeconds", "allowWatchBookmarks", "sendInitialEvents"];
    let mut patch_params: Vec<&str> = WRITE_PARAMS.to_vec();
    patch_params.push("force");
    if r.is_create_only() {
        let post = operation("create", "post", r, Some(r.definition), r.definition, r.kind, WRITE_PARAMS, "");
        paths.insert(coll, json!({ "post": post }));
        return;
    }
    paths.insert(
        coll,
        json!({
            "get": operation("list", "list", r, None, &list_def, r.kind, &list_params, ""),
            "post": operation("create", "post", r, Some(r.definition), r.definition, r.kind, WRITE_PARAMS, ""),
            "delete": operation("deletecollection", "deletecollection", r, None, "io.k8s.apimachinery.pkg.apis.meta.v1.Status", r.kind, &["labelSelector", "fieldSelector", "dryRun"], ""),
        }),
    );
    paths.insert(
        item,
        json!({
            "get": operation("read", "get", r, None, r.definition, r.kind, &["pretty"], ""),
            "put": operation("replace", "put", r, Some(r.definition), r.definition, r.kind, WRITE_PARAMS, ""),
            "patch": operation("patch", "patch", r, Some(patch_def), r.definition, r.kind, &patch_params, ""),
            "delete": operation("delete", "delete", r, None, "io.k8s.apimachinery.pkg.apis.meta.v1.Status", r.kind, &["dryRun", "gracePeriodSeconds", "propagationPolicy"], ""),
        }),
    );
    if r.has_status {
        paths.insert(
            format!("{}/{{name}}/status", if r.namespaced { format!("{base}/namespaces/{{namespace}}/{}", r.resource) } else { format!("{base}/{}", r.resource) }),
            json!({
                "get": operation("read", "get", r, None, r.definition, r.kind, &["pretty"], "Status"),
                "put": operation("replace", "put", r, Some(r.definition), r.definition, r.kind, WRITE_PARAMS, "Status"),
                "patch": operation("patch", "patch", r, Some(patch_def), r.definition, r.kind, &patch_params, "Status"),
            }),
        );
    }
    if r.subresource("scale").is_some() {
        let scale = "io.k8s.api.autoscaling.v1.Scale";
        let mut get = operation("read", "get", r, None, scale, "Scale", &["pretty"], "Scale");
        let mut put = operation("replace", "put", r, Some(scale), scale, "Scale", WRITE_PARAMS, "Scale");
        let mut patch = operation("patch", "patch", r, Some(patch_def), scale, "Scale", &patch_params, "Scale");
        for op in [&mut get, &mut put, &mut patch] {
            op["x-kubernetes-group-version-kind"] = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
        }
        paths.insert(
            format!("{}/{{name}}/scale", if r.namespaced { format!("{base}/namespaces/{{namespace}}/{}", r.resource) } else { format!("{base}/{}", r.resource) }),
            json!({"get": get, "put": put, "patch": patch}),
        );
    }
}

/// Every path of every served resource (shared with v2).
pub fn all_paths(group: Option<(&str, &str)>) -> Map<String, Value> {
    let mut paths = Map::new();
    for r in registry::RESOURCES {
        if group.is_some_and(|(g, v)| g != r.group || v != r.version) {
            continue;
        }
        resource_paths(r, &mut paths);
    }
    paths
}

struct Doc {
    body: Vec<u8>,
    hash: String,
}

fn docs() -> &'static BTreeMap<String, Doc> {
    static DOCS: OnceLock<BTreeMap<String, Doc>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut schemas = definitions().clone();
        schemas.insert(
            "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
            json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}),
        );
        let mut out = BTreeMap::new();
        for g in registry::groups() {
            let v = registry::group_version(g).unwrap_or("v1");
            let doc = json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": crate::discovery::GIT_VERSION},
                "paths": all_paths(Some((g, v))),
                "components": {"schemas": schemas},
            });
            let body = serde_json::to_vec(&doc).unwrap_or_default();
            let mut h = DefaultHasher::new();
            body.hash(&mut h);
            out.insert(gv_path(g, v), Doc { body, hash: format!("{:016X}", h.finish()) });
        }
        out
    })
}

/// `/openapi/v3`: the index of group-version documents.
pub fn index() -> Response {
    let paths: Map<String, Value> = docs()
        .iter()
        .map(|(p, d)| (p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", d.hash)})))
        .collect();
    crate::handlers::json_response(StatusCode::OK, &json!({"paths": paths}))
}

/// `/openapi/v3/<api/v1 | apis/g/v>`.
pub fn document(path: &str) -> Response {
    match docs().get(path) {
        Some(d) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, immutable")],
            d.body.clone(),
        )
            .into_response(),
        None => ApiError::path_not_found(&format!("/openapi/v3/{path}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_carry_gvk_and_field_validation() {
        let paths = all_paths(Some(("apps", "v1")));
        let item = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        assert_eq!(item["patch"]["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        let names: Vec<&str> = item["patch"]["parameters"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
        assert!(names.contains(&"fieldValidation"));
        assert!(paths.contains_key("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"));
        assert!(docs().contains_key("api/v1") && docs().contains_key("apis/apps/v1"));
    }
}
