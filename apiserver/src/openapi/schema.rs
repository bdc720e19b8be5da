//! Schema definitions for every served kind and the types they use, generated once from k8s-openapi's
//! `JsonSchema` impls (descriptions come from the Kubernetes doc comments). Adds the
//! `x-kubernetes-group-version-kind` tags kubectl looks up kinds by, and the `x-kubernetes-patch-*` extensions
//! strategic merge patch uses. Also walks an object against the schema to find unknown fields.

use std::sync::OnceLock;

use k8s_openapi::api as k;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use super::patch_strategies::PATCH_FIELDS;
use crate::registry::RESOURCES;

/// All definitions by fully qualified name (refs point to `#/components/schemas/<name>`).
pub fn definitions() -> &'static Map<String, Value> {
    static DEFS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFS.get_or_init(generate)
}

macro_rules! gen_all {
    ($g:expr, $($t:ty),* $(,)?) => { $( $g.subschema_for::<$t>(); )* };
}

fn generate() -> Map<String, Value> {
    let mut g = SchemaSettings::openapi3()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    gen_all!(
        g,
        k::core::v1::Namespace,
        k::core::v1::Pod,
        k::core::v1::Service,
        k::core::v1::Endpoints,
        k::core::v1::Node,
        k::core::v1::ConfigMap,
        k::core::v1::Secret,
        k::core::v1::Event,
        k::core::v1::ReplicationController,
        k::core::v1::ServiceAccount,
        k::core::v1::LimitRange,
        k::core::v1::Binding,
        k::apps::v1::Deployment,
        k::apps::v1::ReplicaSet,
        k::apps::v1::StatefulSet,
        k::apps::v1::DaemonSet,
        k::apps::v1::ControllerRevision,
        k::batch::v1::Job,
        k::batch::v1::CronJob,
        k::coordination::v1::Lease,
        k::discovery::v1::EndpointSlice,
        k::networking::v1::Ingress,
        k::networking::v1::IngressClass,
        k::events::v1::Event,
        k::autoscaling::v1::Scale,
        k::policy::v1::Eviction,
        k::rbac::v1::Role,
        k::rbac::v1::RoleBinding,
        k::rbac::v1::ClusterRole,
        k::rbac::v1::ClusterRoleBinding,
        k::certificates::v1::CertificateSigningRequest,
        k::authorization::v1::SelfSubjectAccessReview,
        k::authorization::v1::SelfSubjectRulesReview,
        k::authorization::v1::SubjectAccessReview,
        k::authorization::v1::LocalSubjectAccessReview,
        k::authentication::v1::SelfSubjectReview,
        k::authentication::v1::TokenReview,
        meta::Status,
        meta::DeleteOptions,
        meta::APIResourceList,
        meta::ListMeta,
    );
    let mut defs = g.take_definitions(true);
    for r in RESOURCES {
        if let Some(Value::Object(d)) = defs.get_mut(r.definition) {
            // k8s-openapi's structs hold metadata by value, so the derived schema requires it; upstream's
            // never does (a TokenReview or SubjectAccessReview manifest often has none)
            if let Some(Value::Array(req)) = d.get_mut("required") {
                req.retain(|f| f != "metadata");
                if req.is_empty() {
                    d.remove("required");
                }
            }
            d.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
            );
        }
        defs.insert(
            format!("{}List", r.definition),
            json!({
                "description": format!("{}List is a list of {} objects.", r.kind, r.kind),
                "type": "object",
                "properties": {
                    "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"},
                    "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
                    "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"}], "description": "Standard list metadata."},
                    "items": {"description": format!("List of {} objects.", r.resource), "type": "array",
                              "items": {"$ref": format!("#/components/schemas/{}", r.definition)}},
                },
                "required": ["items"],
                "x-kubernetes-group-version-kind": [{"group": r.group, "version": r.version, "kind": format!("{}List", r.kind)}],
            }),
        );
    }
    for (def, gvk) in [
        ("io.k8s.api.autoscaling.v1.Scale", json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})),
        ("io.k8s.api.policy.v1.Eviction", json!({"group": "policy", "version": "v1", "kind": "Eviction"})),
        ("io.k8s.api.core.v1.Binding", json!({"group": "", "version": "v1", "kind": "Binding"})),
        ("io.k8s.apimachinery.pkg.apis.meta.v1.Status", json!({"group": "", "version": "v1", "kind": "Status"})),
        ("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", json!({"group": "", "version": "v1", "kind": "DeleteOptions"})),
    ] {
        if let Some(Value::Object(d)) = defs.get_mut(def) {
            d.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
        }
    }
    for pf in PATCH_FIELDS {
        let Some(prop) = defs.get_mut(pf.definition).and_then(|d| d.get_mut("properties")).and_then(|p| p.get_mut(pf.field)) else {
            continue;
        };
        if let Value::Object(p) = prop {
            if !pf.strategy.is_empty() {
                p.insert("x-kubernetes-patch-strategy".into(), json!(pf.strategy));
            }
            if !pf.merge_key.is_empty() {
                p.insert("x-kubernetes-patch-merge-key".into(), json!(pf.merge_key));
                p.insert("x-kubernetes-list-type".into(), json!("map"));
                p.insert("x-kubernetes-list-map-keys".into(), json!([pf.merge_key]));
            }
        }
    }
    defs
}

/// Resolves a schema through `$ref` and single-element `allOf` wrappers.
pub fn resolve<'a>(defs: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or_default();
            match defs.get(name) {
                Some(s) => {
                    schema = s;
                    continue;
                }
                None => return schema,
            }
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            if all.len() == 1 {
                schema = &all[0];
                continue;
            }
        }
        break;
    }
    schema
}

/// The definition name a schema refers to, if any.
pub fn ref_name(schema: &Value) -> Option<&str> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next();
    }
    schema.get("allOf").and_then(Value::as_array).filter(|a| a.len() == 1).and_then(|a| ref_name(&a[0]))
}

/// Field paths in `obj` that the schema of `definition` does not know (`spec.foo`, `spec.containers[0].bar`).
pub fn unknown_fields(definition: &str, obj: &Value) -> Vec<String> {
    let defs = definitions();
    let mut out = Vec::new();
    if let Some(schema) = defs.get(definition) {
        walk(defs, schema, obj, "", &mut out);
    }
    out
}

fn walk(defs: &Map<String, Value>, schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    let schema = resolve(defs, schema);
    if schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true) {
        return;
    }
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if let Some(s) = props.and_then(|ps| ps.get(k)) {
                    walk(defs, s, child, &p, out);
                } else if let Some(a) = additional {
                    walk(defs, a, child, &p, out);
                } else if props.is_some() {
                    out.push(p);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(defs, item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_carry_docs_and_gvk() {
        let defs = definitions();
        let d = defs.get("io.k8s.api.apps.v1.Deployment").expect("deployment schema");
        assert_eq!(d["x-kubernetes-group-version-kind"][0]["kind"], "Deployment");
        let strategy = defs.get("io.k8s.api.apps.v1.DeploymentStrategy").expect("strategy schema");
        assert!(strategy["description"].as_str().is_some_and(|s| s.contains("replace existing pods")));
        let spec = defs.get("io.k8s.api.core.v1.PodSpec").expect("pod spec");
        assert_eq!(spec["properties"]["containers"]["x-kubernetes-patch-merge-key"], "name");
    }

    #[test]
    fn unknown_fields_are_found_with_paths() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "labels": {"x": "y"}},
            "spec": {"replicaz": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i", "bogus": true}]}}}});
        let u = unknown_fields("io.k8s.api.apps.v1.Deployment", &obj);
        assert_eq!(u, vec!["spec.replicaz".to_string(), "spec.template.spec.containers[0].bogus".to_string()]);
    }
}
