//! Server-side apply (`kubectl apply --server-side`), simplified: the applied configuration is merged into the
//! live object with strategic-merge semantics, the set of fields it names is recorded for its field manager in
//! `metadata.managedFields` (FieldsV1), and fields the same manager applied before but no longer names are
//! removed. Conflicts with other managers are not detected yet (every apply behaves as `--force-conflicts`).

use serde_json::{json, Map, Value};

use super::strategic::{strategic_merge, Ctx};
use super::PatchError;

/// The FieldsV1 set of an applied configuration.
pub fn field_set(obj: &Value, definition: &str) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if matches!(k.as_str(), "apiVersion" | "kind") {
                continue;
            }
            if k == "metadata" {
                let mut meta = Map::new();
                if let Value::Object(mm) = v {
                    for (mk, mv) in mm {
                        if matches!(mk.as_str(), "labels" | "annotations" | "finalizers" | "ownerReferences") {
                            let (c, s) = Ctx::root(definition).field("metadata").0.field(mk);
                            meta.insert(format!("f:{mk}"), fields_of(mv, c, s.map(|s| s.merge_key)));
                        }
                    }
                }
                if !meta.is_empty() {
                    out.insert("f:metadata".into(), Value::Object(meta));
                }
                continue;
            }
            let (c, s) = Ctx::root(definition).field(k);
            out.insert(format!("f:{k}"), fields_of(v, c, s.map(|s| s.merge_key)));
        }
    }
    Value::Object(out)
}

fn fields_of(v: &Value, ctx: Ctx<'_>, merge_key: Option<&str>) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                let (c, s) = ctx.field(k);
                out.insert(format!("f:{k}"), fields_of(child, c, s.map(|s| s.merge_key)));
            }
            Value::Object(out)
        }
        Value::Array(items) => match merge_key {
            Some(key) if !key.is_empty() => {
                let mut out = Map::new();
                for item in items {
                    if let Some(kv) = item.get(key) {
                        let id = format!("k:{}", json!({ key: kv }));
                        let mut inner = match fields_of(item, ctx.items(), None) {
                            Value::Object(m) => m,
                            _ => Map::new(),
                        };
                        inner.insert(".".into(), json!({}));
                        out.insert(id, Value::Object(inner));
                    }
                }
                Value::Object(out)
            }
            Some(_) => {
                let mut out = Map::new();
                for item in items {
                    out.insert(format!("v:{item}"), json!({}));
                }
                Value::Object(out)
            }
            None => json!({}),
        },
        _ => json!({}),
    }
}

/// Removes from `live` the fields in `old` that are not in `new` (both FieldsV1 sets).
fn remove_dropped(live: &mut Value, old: &Value, new: &Value) {
    let (Value::Object(o), Some(Value::Object(target))) = (old, Some(&mut *live)) else { return };
    let empty = Map::new();
    let n = new.as_object().unwrap_or(&empty);
    for (k, sub_old) in o {
        if k == "." {
            continue;
        }
        let sub_new = n.get(k);
        if let Some(field) = k.strip_prefix("f:") {
            match sub_new {
                None => {
                    target.remove(field);
                }
                Some(sn) => {
                    if let Some(child) = target.get_mut(field) {
                        if child.is_array() {
                            remove_dropped_list(child, sub_old, sn);
                        } else {
                            remove_dropped(child, sub_old, sn);
                        }
                    }
                }
            }
        }
    }
}

fn remove_dropped_list(list: &mut Value, old: &Value, new: &Value) {
    let (Value::Array(items), Value::Object(o)) = (list, old) else { return };
    let empty = Map::new();
    let n = new.as_object().unwrap_or(&empty);
    for (k, sub_old) in o {
        if let Some(id) = k.strip_prefix("k:") {
            let Ok(Value::Object(idm)) = serde_json::from_str::<Value>(id) else { continue };
            let matches = |item: &Value| idm.iter().all(|(ik, iv)| item.get(ik) == Some(iv));
            match n.get(k) {
                None => items.retain(|i| !matches(i)),
                Some(sn) => {
                    for item in items.iter_mut().filter(|i| matches(i)) {
                        remove_dropped(item, sub_old, sn);
                    }
                }
            }
        } else if let Some(v) = k.strip_prefix("v:") {
            if !n.contains_key(k) {
                if let Ok(val) = serde_json::from_str::<Value>(v) {
                    items.retain(|i| *i != val);
                }
            }
        }
    }
}

/// Applies `applied` for `manager` to `live` (None when the object does not exist yet); returns the new object.
pub fn apply(live: Option<&Value>, applied: &Value, manager: &str, definition: &str, api_version: &str, now: &str) -> Result<Value, PatchError> {
    if !applied.is_object() {
        return Err(PatchError::Invalid("apply patch must be an object".to_string()));
    }
    let new_set = field_set(applied, definition);
    let mut result = match live {
        None => applied.clone(),
        Some(live) => {
            let mut out = live.clone();
            let previous = live
                .pointer("/metadata/managedFields")
                .and_then(Value::as_array)
                .and_then(|m| {
                    m.iter().find(|e| {
                        e.get("manager").and_then(Value::as_str) == Some(manager)
                            && e.get("operation").and_then(Value::as_str) == Some("Apply")
                    })
                })
                .and_then(|e| e.get("fieldsV1"))
                .cloned();
            if let Some(prev) = previous {
                remove_dropped(&mut out, &prev, &new_set);
            }
            let mut patch = applied.clone();
            if let Some(m) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
                m.remove("resourceVersion");
            }
            strategic_merge(&mut out, &patch, definition)?;
            out
        }
    };
    let mut managed: Vec<Value> = live
        .and_then(|l| l.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let entry = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": new_set,
    });
    let mine = |e: &Value| {
        e.get("manager").and_then(Value::as_str) == Some(manager) && e.get("operation").and_then(Value::as_str) == Some("Apply")
    };
    match managed.iter_mut().find(|e| mine(e)) {
        // Same fields as before: keep the entry (and its time) so an unchanged apply writes nothing.
        Some(e) if e.get("fieldsV1") == Some(&new_set) => {}
        Some(e) => *e = entry,
        None => managed.push(entry),
    }
    crate::object::meta_mut(&mut result).insert("managedFields".into(), Value::Array(managed));
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "io.k8s.api.apps.v1.Deployment";

    #[test]
    fn reapply_removes_dropped_fields_and_keeps_others() {
        let first = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "labels": {"a": "1", "b": "2"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i:1"}, {"name": "d", "image": "j"}]}}}});
        let live = apply(None, &first, "kubectl", D, "apps/v1", "t").expect("create");
        let mut live2 = live.clone();
        live2["status"] = json!({"replicas": 2});
        let second = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "labels": {"a": "1"}},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i:2"}]}}}});
        let out = apply(Some(&live2), &second, "kubectl", D, "apps/v1", "t").expect("apply");
        assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
        assert!(out["spec"].get("replicas").is_none());
        assert_eq!(out["spec"]["template"]["spec"]["containers"], json!([{"name": "c", "image": "i:2"}]));
        assert_eq!(out["status"]["replicas"], 2);
        assert_eq!(out["metadata"]["managedFields"].as_array().map(Vec::len), Some(1));
    }
}
