//! JSON Patch (RFC 6902): add, remove, replace, move, copy, test over JSON pointers.

use serde_json::Value;

use super::PatchError;

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> Result<(String, String), PatchError> {
    if path.is_empty() {
        return Ok((String::new(), String::new()));
    }
    if !path.starts_with('/') {
        return Err(PatchError::Invalid(format!("invalid JSON pointer {path:?}")));
    }
    let idx = path.rfind('/').unwrap_or(0);
    Ok((path[..idx].to_string(), unescape(&path[idx + 1..])))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    let target = doc
        .pointer_mut(&parent)
        .ok_or_else(|| PatchError::Invalid(format!("add operation does not apply: doc is missing path: \"{path}\"")))?;
    match target {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last.parse().map_err(|_| PatchError::Invalid(format!("invalid array index {last:?}")))?;
            if i > a.len() {
                return Err(PatchError::Invalid(format!("add operation does not apply: index {i} out of bounds")));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(PatchError::Invalid(format!("add operation does not apply: doc is missing path: \"{path}\""))),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = split(path)?;
    let missing = || PatchError::Invalid(format!("remove operation does not apply: doc is missing path: \"{path}\""));
    let target = doc.pointer_mut(&parent).ok_or_else(missing)?;
    match target {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i >= a.len() {
                return Err(missing());
            }
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

fn get(doc: &Value, path: &str, op: &str) -> Result<Value, PatchError> {
    doc.pointer(path)
        .cloned()
        .ok_or_else(|| PatchError::Invalid(format!("{op} operation does not apply: doc is missing path: \"{path}\"")))
}

/// Applies a JSON Patch document (an array of operations) to `doc`.
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| PatchError::Invalid("json patch must be an array of operations".to_string()))?;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Invalid(format!("operation {op} is missing path")))?;
        let value = || op.get("value").cloned().ok_or_else(|| PatchError::Invalid(format!("operation {kind} is missing value")));
        let from = || op.get("from").and_then(Value::as_str).ok_or_else(|| PatchError::Invalid(format!("operation {kind} is missing from")));
        match kind {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                get(doc, path, "replace")?;
                if path.is_empty() {
                    *doc = value()?;
                } else if let Some(t) = doc.pointer_mut(path) {
                    *t = value()?;
                }
            }
            "move" => {
                let v = remove(doc, from()?)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let v = get(doc, from()?, "copy")?;
                add(doc, path, v)?;
            }
            "test" => {
                let actual = get(doc, path, "test")?;
                if actual != value()? {
                    return Err(PatchError::TestFailed(format!("testing value {path} failed")));
                }
            }
            other => return Err(PatchError::Invalid(format!("unexpected operation {other:?}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations() {
        let mut d = json!({"a": {"b": [1, 2]}, "c": 1});
        json_patch(
            &mut d,
            &json!([
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "replace", "path": "/c", "value": 2},
                {"op": "remove", "path": "/a/b/0"},
                {"op": "copy", "from": "/c", "path": "/d"},
                {"op": "move", "from": "/d", "path": "/e~1f"},
                {"op": "test", "path": "/c", "value": 2}
            ]),
        )
        .expect("applies");
        assert_eq!(d, json!({"a": {"b": [2, 3]}, "c": 2, "e/f": 2}));
        assert!(matches!(json_patch(&mut d, &json!([{"op": "test", "path": "/c", "value": 9}])), Err(PatchError::TestFailed(_))));
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/zz"}])).is_err());
    }
}
