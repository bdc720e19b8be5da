//! RBAC objects (rbac.authorization.k8s.io/v1) with upstream's rules and messages: every policy rule names its
//! verbs and either resources (with API groups) or, in ClusterRoles only, non-resource URLs; a binding's roleRef
//! names a Role or ClusterRole of rbac.authorization.k8s.io and cannot change; subjects are ServiceAccounts
//! (with a name and, in ClusterRoleBindings, a namespace), Users or Groups.
//!
//! rkube stores and serves these so manifests that carry them apply as on any cluster, but does not enforce
//! them: every authenticated client may do everything, as upstream with `--authorization-mode=AlwaysAllow`.

use serde_json::Value;

use crate::status::Cause;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

pub(crate) fn validate_role(obj: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    let rules = obj.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, r) in rules.iter().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        if strings(r.get("verbs")).is_empty() {
            causes.push(Cause::required(at("verbs"), "verbs must contain at least one value"));
        }
        let urls = strings(r.get("nonResourceURLs"));
        if !urls.is_empty() {
            if namespaced {
                causes.push(Cause::invalid(at("nonResourceURLs"), &r["nonResourceURLs"], "namespaced rules cannot apply to non-resource URLs"));
            }
            if !strings(r.get("apiGroups")).is_empty() || !strings(r.get("resources")).is_empty() {
                causes.push(Cause::invalid(at("nonResourceURLs"), &r["nonResourceURLs"], "rules cannot apply to both regular resources and non-resource URLs"));
            }
            continue;
        }
        if r.get("apiGroups").and_then(Value::as_array).is_none_or(Vec::is_empty) {
            causes.push(Cause::required(at("apiGroups"), "resource rules must supply at least one api group"));
        }
        if strings(r.get("resources")).is_empty() {
            causes.push(Cause::required(at("resources"), "resource rules must supply at least one resource"));
        }
    }
}

pub(crate) fn validate_binding(obj: &Value, cluster: bool, causes: &mut Vec<Cause>) {
    let role_ref = obj.get("roleRef").unwrap_or(&Value::Null);
    let kinds: &[&str] = if cluster { &["ClusterRole"] } else { &["Role", "ClusterRole"] };
    match role_ref.get("kind").and_then(Value::as_str) {
        Some(k) if kinds.contains(&k) => {}
        Some(k) => causes.push(Cause::not_supported("roleRef.kind", &Value::String(k.into()), kinds)),
        None => causes.push(Cause::required("roleRef.kind", "")),
    }
    let group = role_ref.get("apiGroup").and_then(Value::as_str).unwrap_or_default();
    if group != RBAC_GROUP {
        causes.push(Cause::not_supported("roleRef.apiGroup", &Value::String(group.into()), &[RBAC_GROUP]));
    }
    if role_ref.get("name").and_then(Value::as_str).unwrap_or_default().is_empty() {
        causes.push(Cause::required("roleRef.name", ""));
    }
    let subjects = obj.get("subjects").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, x) in subjects.iter().enumerate() {
        let at = |f: &str| format!("subjects[{i}].{f}");
        let name = x.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            causes.push(Cause::required(at("name"), ""));
        }
        let group = x.get("apiGroup").and_then(Value::as_str).unwrap_or_default();
        match x.get("kind").and_then(Value::as_str) {
            Some("ServiceAccount") => {
                if !group.is_empty() {
                    causes.push(Cause::not_supported(at("apiGroup"), &Value::String(group.into()), &[""]));
                }
                if cluster && x.get("namespace").and_then(Value::as_str).unwrap_or_default().is_empty() {
                    causes.push(Cause::required(at("namespace"), ""));
                }
            }
            Some("User") | Some("Group") => {
                if group != RBAC_GROUP {
                    causes.push(Cause::not_supported(at("apiGroup"), &Value::String(group.into()), &[RBAC_GROUP]));
                }
            }
            Some(k) => causes.push(Cause::not_supported(at("kind"), &Value::String(k.into()), &["ServiceAccount", "User", "Group"])),
            None => causes.push(Cause::required(at("kind"), "")),
        }
    }
}

/// A binding's roleRef is fixed at creation (delete and re-create the binding to point it elsewhere).
pub(crate) fn validate_binding_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    let (n, o) = (new.get("roleRef").unwrap_or(&Value::Null), old.get("roleRef").unwrap_or(&Value::Null));
    if n != o {
        causes.push(Cause::invalid("roleRef", n, "cannot change roleRef"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn rules_need_verbs_and_resources_or_urls() {
        let mut c = Vec::new();
        validate_role(&json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}), true, &mut c);
        assert!(c.is_empty(), "{:?}", messages(&c));
        validate_role(&json!({"rules": [{"resources": ["pods"]}, {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}), true, &mut c);
        assert_eq!(messages(&c), vec![
            "rules[0].verbs: Required value: verbs must contain at least one value",
            "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
            "rules[1].nonResourceURLs: Invalid value: [\"/healthz\"]: namespaced rules cannot apply to non-resource URLs",
        ]);
        let mut c = Vec::new();
        validate_role(&json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}), false, &mut c);
        assert!(c.is_empty(), "a ClusterRole may: {:?}", messages(&c));
    }

    #[test]
    fn bindings_check_role_ref_and_subjects() {
        let ok = json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"},
                        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "x", "apiGroup": ""},
                                     {"kind": "User", "name": "jane", "apiGroup": RBAC_GROUP}]});
        let mut c = Vec::new();
        validate_binding(&ok, true, &mut c);
        assert!(c.is_empty(), "{:?}", messages(&c));
        let bad = json!({"roleRef": {"apiGroup": "rbac", "kind": "Role", "name": ""},
                         "subjects": [{"kind": "ServiceAccount", "name": "default", "apiGroup": ""}, {"kind": "Robot", "name": "r"}]});
        validate_binding(&bad, true, &mut c);
        assert_eq!(messages(&c), vec![
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
            "roleRef.apiGroup: Unsupported value: \"rbac\": supported values: \"rbac.authorization.k8s.io\"",
            "roleRef.name: Required value",
            "subjects[0].namespace: Required value",
            "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
        ]);
        let mut c = Vec::new();
        let mut moved = ok.clone();
        moved["roleRef"]["name"] = json!("edit");
        validate_binding_update(&moved, &ok, &mut c);
        assert_eq!(c.len(), 1);
        assert!(c[0].message.ends_with("cannot change roleRef"), "{}", c[0].message);
    }
}
