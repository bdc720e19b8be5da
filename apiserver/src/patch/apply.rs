//! Server-side apply (`kubectl apply --server-side`), simplified: the applied configuration is merged into the
//! live object with strategic-merge semantics, the set of fields it names is recorded for its field manager in
//! `metadata.managedFields` (FieldsV1), and fields the same manager applied before but no longer names are
//! removed. Applying a value different from the live one to a field another *apply* manager owns is a conflict
//! (409) unless forced, in which case the field changes owner. Non-apply writes do not record ownership yet.

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

/// One step of a FieldsV1 path.
#[derive(Debug, Clone)]
enum Step {
    Field(String),
    Key(serde_json::Map<String, Value>),
    Val(Value),
}

/// Leaf paths of a FieldsV1 set.
fn leaves(set: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    let Some(m) = set.as_object() else { return };
    let children: Vec<(&String, &Value)> = m.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if children.is_empty() {
        if !prefix.is_empty() {
            out.push(prefix.clone());
        }
        return;
    }
    for (k, v) in children {
        let step = if let Some(f) = k.strip_prefix("f:") {
            Step::Field(f.to_string())
        } else if let Some(key) = k.strip_prefix("k:") {
            match serde_json::from_str::<Value>(key) {
                Ok(Value::Object(o)) => Step::Key(o),
                _ => continue,
            }
        } else if let Some(val) = k.strip_prefix("v:") {
            Step::Val(serde_json::from_str(val).unwrap_or(Value::Null))
        } else {
            continue;
        };
        prefix.push(step);
        leaves(v, prefix, out);
        prefix.pop();
    }
}

fn lookup<'a>(obj: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut cur = obj;
    for step in path {
        cur = match step {
            Step::Field(f) => cur.get(f)?,
            Step::Key(k) => cur.as_array()?.iter().find(|i| k.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))?,
            Step::Val(v) => cur.as_array()?.iter().find(|i| *i == v)?,
        };
    }
    Some(cur)
}

fn render(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Step::Key(k) => {
                let parts: Vec<String> = k.iter().map(|(kk, kv)| format!("{kk}={kv}")).collect();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            Step::Val(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

/// Removes one leaf path from a FieldsV1 set (and parents left empty).
fn remove_leaf(set: &mut Value, path: &[Step]) {
    let Some((first, rest)) = path.split_first() else { return };
    let key = match first {
        Step::Field(f) => format!("f:{f}"),
        Step::Key(k) => format!("k:{}", Value::Object(k.clone())),
        Step::Val(v) => format!("v:{v}"),
    };
    let Some(m) = set.as_object_mut() else { return };
    if rest.is_empty() {
        m.remove(&key);
        return;
    }
    if let Some(child) = m.get_mut(&key) {
        remove_leaf(child, rest);
        if child.as_object().is_some_and(|c| c.keys().all(|k| k == ".")) {
            m.remove(&key);
        }
    }
}

/// Checks `applied` against the fields other apply managers own in `live`; returns the conflicts (manager,
/// path) and, when `force`, the managedFields with those fields taken away from their owners.
fn conflicts(live: &Value, applied: &Value, new_set: &Value, manager: &str, managed: &mut [Value], force: bool) -> Vec<(String, String)> {
    let mut mine = Vec::new();
    leaves(new_set, &mut Vec::new(), &mut mine);
    let mut found = Vec::new();
    for entry in managed.iter_mut() {
        let other = entry.get("manager").and_then(Value::as_str).unwrap_or_default().to_string();
        if other == manager || entry.get("operation").and_then(Value::as_str) != Some("Apply") {
            continue;
        }
        let Some(theirs) = entry.get("fieldsV1").cloned() else { continue };
        let mut their_leaves = Vec::new();
        leaves(&theirs, &mut Vec::new(), &mut their_leaves);
        for path in &mine {
            let shared = their_leaves.iter().any(|t| render(t) == render(path));
            if !shared {
                continue;
            }
            let differs = lookup(applied, path) != lookup(live, path);
            if !differs {
                continue;
            }
            found.push((other.clone(), render(path)));
            if force {
                if let Some(fs) = entry.get_mut("fieldsV1") {
                    remove_leaf(fs, path);
                }
            }
        }
    }
    found
}

/// Applies `applied` for `manager` to `live` (None when the object does not exist yet); returns the new object.
pub fn apply(live: Option<&Value>, applied: &Value, manager: &str, definition: &str, api_version: &str, now: &str) -> Result<Value, PatchError> {
    apply_with(live, applied, manager, definition, api_version, now, true)
}

/// Like [`apply`]; without `force`, changing a field another apply manager owns is a `Conflict`.
pub fn apply_with(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    definition: &str,
    api_version: &str,
    now: &str,
    force: bool,
) -> Result<Value, PatchError> {
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
    if let Some(live) = live {
        let found = conflicts(live, applied, &new_set, manager, &mut managed, force);
        if !found.is_empty() && !force {
            let n = found.len();
            let list: Vec<String> = found.iter().map(|(m, p)| format!("conflict with \"{m}\" using {api_version}: {p}")).collect();
            return Err(PatchError::Conflict(format!(
                "Apply failed with {n} conflict{}: {}",
                if n == 1 { "" } else { "s" },
                list.join("\n")
            )));
        }
        // Managers whose every field was taken over by a forced apply drop out.
        managed.retain(|e| e.get("fieldsV1").and_then(Value::as_object).is_none_or(|m| !m.is_empty()));
    }
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
    fn a_second_manager_conflicts_unless_forced() {
        let first = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"}, "spec": {"replicas": 2}});
        let live = apply(None, &first, "a", D, "apps/v1", "t").expect("create");
        let same = apply_with(Some(&live), &first, "b", D, "apps/v1", "t", false).expect("same value is shared, not a conflict");
        assert_eq!(same["metadata"]["managedFields"].as_array().map(Vec::len), Some(2));
        let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"}, "spec": {"replicas": 5}});
        let err = apply_with(Some(&live), &other, "b", D, "apps/v1", "t", false).expect_err("conflict");
        assert_eq!(err, PatchError::Conflict("Apply failed with 1 conflict: conflict with \"a\" using apps/v1: .spec.replicas".into()));
        let forced = apply_with(Some(&live), &other, "b", D, "apps/v1", "t", true).expect("forced");
        assert_eq!(forced["spec"]["replicas"], 5);
        let owners: Vec<&str> = forced["metadata"]["managedFields"].as_array().into_iter().flatten().filter_map(|e| e["manager"].as_str()).collect();
        assert_eq!(owners, vec!["b"], "a lost its only field");
    }

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
