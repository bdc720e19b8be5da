//! Strategic merge patch: a merge patch that knows Kubernetes' list semantics. Lists with a patch-merge key
//! (containers by `name`, ports by `containerPort`...) merge element by element; lists of primitives with the
//! `merge` strategy (finalizers) are unions; other lists are replaced. Directives: `$patch: replace|delete|merge`,
//! `$retainKeys`, `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`.

use serde_json::{Map, Value};

use super::PatchError;
use crate::openapi::schema::{definitions, ref_name, resolve};
pub use crate::openapi::patch_strategies::{strategy_of, PatchField, PATCH_FIELDS};

/// Schema context while walking: the definition name of the current object, if known.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    schema: Option<&'a Value>,
    definition: Option<&'a str>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn root(definition: &'a str) -> Ctx<'a> {
        let defs = definitions();
        Ctx { schema: defs.get(definition), definition: Some(definition) }
    }

    fn none() -> Ctx<'a> {
        Ctx { schema: None, definition: None }
    }

    pub(crate) fn field(&self, name: &str) -> (Ctx<'a>, Option<&'static PatchField>) {
        let defs = definitions();
        let strategy = self.definition.and_then(|d| strategy_of(d, name));
        let Some(schema) = self.schema else { return (Ctx::none(), strategy) };
        let schema = resolve(defs, schema);
        let prop = schema
            .get("properties")
            .and_then(|p| p.get(name))
            .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
        match prop {
            Some(p) => (Ctx::of(p), strategy),
            None => (Ctx::none(), strategy),
        }
    }

    fn of(schema: &'a Value) -> Ctx<'a> {
        let defs = definitions();
        Ctx { schema: Some(resolve(defs, schema)), definition: ref_name(schema) }
    }

    pub(crate) fn items(&self) -> Ctx<'a> {
        let defs = definitions();
        match self.schema.map(|s| resolve(defs, s)).and_then(|s| s.get("items")) {
            Some(i) => Ctx::of(i),
            None => Ctx::none(),
        }
    }
}

/// Applies a strategic merge patch to `target` (an object of the definition `definition`).
pub fn strategic_merge(target: &mut Value, patch: &Value, definition: &str) -> Result<(), PatchError> {
    if !patch.is_object() {
        return Err(PatchError::Invalid("strategic merge patch must be a JSON object".to_string()));
    }
    merge_map(target, patch, Ctx::root(definition), None)
}

fn merge_map(target: &mut Value, patch: &Value, ctx: Ctx<'_>, strategy: Option<&PatchField>) -> Result<(), PatchError> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut clean = p.clone();
            clean.remove("$patch");
            *target = Value::Object(clean);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(PatchError::Invalid(format!("unknown patch type: {other}"))),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { unreachable!("made an object above") };
    if let Some(keys) = p.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    } else if strategy.is_some_and(|s| s.strategy.contains("retainKeys")) {
        // Without the directive, retainKeys behaves like merge.
    }
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (t.get_mut(field), v.as_array()) {
                list.retain(|item| !del.contains(item));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let (child_ctx, child_strategy) = ctx.field(k);
        match v {
            Value::Object(_) => {
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                merge_map(entry, v, child_ctx, child_strategy)?;
                if entry.is_null() {
                    t.remove(k);
                }
            }
            Value::Array(items) => {
                let merge = child_strategy.is_some_and(|s| s.strategy.split(',').any(|x| x == "merge"));
                let replace_directive = items.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
                if !merge || replace_directive {
                    let cleaned: Vec<Value> = items
                        .iter()
                        .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("replace"))
                        .cloned()
                        .collect();
                    t.insert(k.clone(), Value::Array(cleaned));
                    continue;
                }
                let key = child_strategy.map(|s| s.merge_key).unwrap_or_default();
                let order = p.get(&format!("$setElementOrder/{k}")).and_then(Value::as_array);
                let entry = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                if !entry.is_array() {
                    *entry = Value::Array(Vec::new());
                }
                let Value::Array(list) = entry else { unreachable!("made an array above") };
                merge_list(list, items, key, child_ctx.items())?;
                if let Some(order) = order {
                    reorder(list, order, key);
                }
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
    Ok(())
}

fn merge_list(list: &mut Vec<Value>, items: &[Value], key: &str, item_ctx: Ctx<'_>) -> Result<(), PatchError> {
    if key.is_empty() {
        // Primitive list with merge strategy: union, `$patch: delete` elements are maps and not expected here.
        for item in items {
            if !list.contains(item) {
                list.push(item.clone());
            }
        }
        return Ok(());
    }
    for item in items {
        let Some(kv) = item.get(key) else {
            return Err(PatchError::Invalid(format!("map: {item} does not contain declared merge key: {key}")));
        };
        let pos = list.iter().position(|e| e.get(key) == Some(kv));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => merge_map(&mut list[i], item, item_ctx, None)?,
            (None, false) => {
                let mut fresh = Value::Null;
                merge_map(&mut fresh, item, item_ctx, None)?;
                list.push(fresh);
            }
        }
    }
    Ok(())
}

fn reorder(list: &mut [Value], order: &[Value], key: &str) {
    let rank = |v: &Value| -> usize {
        let id = if key.is_empty() { Some(v) } else { v.get(key) };
        order
            .iter()
            .position(|o| if key.is_empty() { Some(o) == id } else { o.get(key) == id })
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"}
        ]}}}});
        strategic_merge(&mut d, &patch, "io.k8s.api.apps.v1.Deployment").expect("applies");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}])
        );
    }

    #[test]
    fn finalizers_union_and_delete_from_primitive_list() {
        let mut p = json!({"metadata": {"finalizers": ["a"]}});
        strategic_merge(&mut p, &json!({"metadata": {"finalizers": ["b"]}}), "io.k8s.api.core.v1.Pod").expect("applies");
        assert_eq!(p["metadata"]["finalizers"], json!(["a", "b"]));
        strategic_merge(&mut p, &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}), "io.k8s.api.core.v1.Pod")
            .expect("applies");
        assert_eq!(p["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn unkeyed_lists_replace_and_retain_keys() {
        let mut d = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "x": [1, 2]}});
        strategic_merge(
            &mut d,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            "io.k8s.api.apps.v1.Deployment",
        )
        .expect("applies");
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        let mut s = json!({"spec": {"tolerations": [{"key": "a"}]}});
        strategic_merge(&mut s, &json!({"spec": {"tolerations": [{"key": "b"}]}}), "io.k8s.api.core.v1.Pod").expect("applies");
        assert_eq!(s["spec"]["tolerations"], json!([{"key": "b"}]));
    }

    #[test]
    fn labels_merge_and_null_deletes() {
        let mut o = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        strategic_merge(&mut o, &json!({"metadata": {"labels": {"a": null, "c": "3"}}}), "io.k8s.api.core.v1.ConfigMap")
            .expect("applies");
        assert_eq!(o["metadata"]["labels"], json!({"b": "2", "c": "3"}));
    }
}
