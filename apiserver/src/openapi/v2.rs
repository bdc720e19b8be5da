//! OpenAPI v2 (Swagger 2.0): the same paths and definitions as v3, with refs under `#/definitions/`. Served as
//! JSON, or as the gnostic protobuf kubectl asks for (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`).

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use super::proto;
use super::schema::definitions;
use super::v3::all_paths;

/// Rewrites a v3 schema into v2 form: refs under `#/definitions/`, single-ref `allOf` collapsed, no `nullable`.
fn to_v2(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            if let Some(Value::Array(all)) = m.get("allOf") {
                if all.len() == 1 && all[0].get("$ref").is_some() {
                    for (k, val) in m {
                        if k != "allOf" {
                            out.insert(k.clone(), to_v2(val));
                        }
                    }
                    out.insert("$ref".into(), to_v2(&all[0]["$ref"]));
                    return Value::Object(out);
                }
            }
            for (k, val) in m {
                if k == "nullable" {
                    continue;
                }
                out.insert(k.clone(), to_v2(val));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(to_v2).collect()),
        Value::String(s) if s.starts_with("#/components/schemas/") => Value::String(s.replace("#/components/schemas/", "#/definitions/")),
        other => other.clone(),
    }
}

/// v3 operations to v2: parameters get `type` instead of `schema`, request bodies become `body` parameters.
fn op_to_v2(op: &Value) -> Value {
    let mut o = op.clone();
    let mut params: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| json!({"name": p["name"], "in": "query", "type": "string", "uniqueItems": true, "description": p["description"]}))
        .collect();
    if let Some(body) = op.get("requestBody") {
        let schema = body["content"].as_object().and_then(|c| c.values().next()).map(|c| to_v2(&c["schema"])).unwrap_or(json!({}));
        params.push(json!({"name": "body", "in": "body", "required": true, "schema": schema}));
        if let Some(m) = o.as_object_mut() {
            m.remove("requestBody");
        }
    }
    o["parameters"] = Value::Array(params);
    let resp_schema = to_v2(&op["responses"]["200"]["content"]["application/json"]["schema"]);
    o["responses"] = json!({"200": {"description": "OK", "schema": resp_schema}});
    o["consumes"] = json!(["*/*"]);
    o["produces"] = json!(["application/json", "application/yaml"]);
    o
}

/// The v2 document as JSON.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let defs: Map<String, Value> = definitions().iter().map(|(k, v)| (k.clone(), to_v2(v))).collect();
        let paths: Map<String, Value> = all_paths(None)
            .into_iter()
            .map(|(p, item)| {
                let ops: Map<String, Value> = item.as_object().into_iter().flatten().map(|(verb, op)| (verb.clone(), op_to_v2(op))).collect();
                (p, Value::Object(ops))
            })
            .collect();
        let mut defs = defs;
        defs.insert(
            "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
            json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}),
        );
        json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": crate::discovery::GIT_VERSION},
            "paths": paths,
            "definitions": defs,
        })
    })
}

fn protobuf() -> &'static [u8] {
    static PB: OnceLock<Vec<u8>> = OnceLock::new();
    PB.get_or_init(|| proto::encode_document(document()))
}

/// Answers `/openapi/v2` in protobuf when asked (kubectl), JSON otherwise.
pub fn respond(headers: &HeaderMap) -> Response {
    let accept = crate::request::accept(headers);
    if accept.contains("protobuf") {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")],
            protobuf().to_vec(),
        )
            .into_response();
    }
    let body = serde_json::to_vec(document()).unwrap_or_default();
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_point_at_definitions() {
        let doc = document();
        let d = &doc["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(d["$ref"], "#/definitions/io.k8s.api.apps.v1.DeploymentStrategy");
        assert!(!serde_json::to_string(doc).unwrap_or_default().contains("#/components/schemas"));
    }
}
