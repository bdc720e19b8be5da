//! Object metadata on generic JSON objects: accessors, and the system fields the server owns (uid,
//! creationTimestamp, generation, resourceVersion). Objects are stored as JSON without `resourceVersion`; it is
//! filled from the store's revision on every read.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::registry::ResourceInfo;
use crate::status::ApiError;
use crate::storage::{KeyValue, Revision, Store};

/// The current time as Kubernetes writes timestamps (RFC 3339, seconds, `Z`).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `metadata` of an object, created when absent (the object must be a JSON object).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// A string field of `obj`'s metadata (`name`, `namespace`, `uid`...), None when absent or not a string.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str)
}

/// `metadata.name`, `""` when absent.
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or_default()
}

/// `metadata.namespace`, None for cluster-scoped objects.
pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace")
}

/// `metadata.uid`, `""` before the server has given one.
pub fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid").unwrap_or_default()
}

/// `metadata.resourceVersion`, None when absent or empty (a client that sets none asks for no precondition).
pub fn resource_version(obj: &Value) -> Option<&str> {
    meta_str(obj, "resourceVersion").filter(|s| !s.is_empty())
}

/// `metadata.finalizers`: what must still happen before a deleted object is removed.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Whether the object has a `deletionTimestamp` (it is being deleted and waits for its finalizers or grace).
pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
}

/// Whether an object being deleted can now be removed from storage: no finalizers left, and for pods the
/// grace period is over (the kubelet deletes with grace 0), for namespaces their `spec.finalizers` are done.
pub fn ready_to_remove(resource: &str, obj: &Value) -> bool {
    if !is_deleting(obj) || !finalizers(obj).is_empty() {
        return false;
    }
    match resource {
        "pods" => obj.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0) == 0,
        "namespaces" => obj.pointer("/spec/finalizers").and_then(Value::as_array).is_none_or(|f| f.is_empty()),
        _ => true,
    }
}

/// Parses a stored value and fills in its resourceVersion.
pub fn decode(kv: &KeyValue) -> Result<Value, serde_json::Error> {
    let mut obj: Value = serde_json::from_slice(&kv.value)?;
    set_resource_version(&mut obj, kv.mod_revision);
    Ok(obj)
}

/// Parses a stored value as `info`'s resource (converting from its storage form) and fills its resourceVersion.
pub fn decode_for(info: &crate::registry::ResourceInfo, kv: &KeyValue) -> Result<Value, serde_json::Error> {
    let obj = decode(kv)?;
    Ok(match &info.stored_as {
        Some(s) => (s.from_storage)(obj),
        None => obj,
    })
}

/// Serializes `info`'s object for storage (in its storage form).
pub fn encode_for(info: &crate::registry::ResourceInfo, obj: &Value) -> Bytes {
    match &info.stored_as {
        Some(s) => encode(&(s.to_storage)(obj.clone())),
        None => encode(obj),
    }
}

/// Sets `metadata.resourceVersion` to `rv`, the revision the object was read or written at.
pub fn set_resource_version(obj: &mut Value, rv: Revision) {
    meta_mut(obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
}

/// Writes a stored object's JSON with `metadata.resourceVersion` set, without parsing it into a tree: finds the
/// top-level `metadata` object and inserts the field after its `{`. Falls back to a parse when the layout is
/// unexpected. Lists and watches use this so 10,000 objects cost a copy each, not a parse and a re-encode.
pub fn write_with_rv(out: &mut Vec<u8>, raw: &[u8], rv: Revision) {
    match metadata_open_brace(raw) {
        Some(i) => {
            out.extend_from_slice(&raw[..=i]);
            out.extend_from_slice(b"\"resourceVersion\":\"");
            out.extend_from_slice(rv.to_string().as_bytes());
            out.push(b'"');
            let rest = &raw[i + 1..];
            let next = rest.iter().find(|b| !b.is_ascii_whitespace());
            if next != Some(&b'}') {
                out.push(b',');
            }
            out.extend_from_slice(rest);
        }
        None => {
            let mut v: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
            if v.is_object() {
                set_resource_version(&mut v, rv);
            }
            let _ = serde_json::to_writer(&mut *out, &v);
        }
    }
}

/// Index of the `{` that opens the top-level `metadata` object of a JSON object.
fn metadata_open_brace(raw: &[u8]) -> Option<usize> {
    let mut depth = 0i32;
    let mut i = 0;
    let n = raw.len();
    while i < n {
        match raw[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < n && raw[i] != b'"' {
                    if raw[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let key = raw.get(start..i)?;
                i += 1;
                if depth == 1 {
                    let mut j = i;
                    while j < n && raw[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if j < n && raw[j] == b':' {
                        j += 1;
                        while j < n && raw[j].is_ascii_whitespace() {
                            j += 1;
                        }
                        if key == b"metadata" {
                            return (j < n && raw[j] == b'{').then_some(j);
                        }
                    }
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Serializes an object for storage (without resourceVersion, which the store's revision supplies).
pub fn encode(obj: &Value) -> Bytes {
    let mut copy = obj.clone();
    if let Some(m) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
    Bytes::from(serde_json::to_vec(&copy).unwrap_or_default())
}

/// Everything but `metadata` and `status`: the part whose change bumps `generation`.
pub fn spec_part(obj: &Value) -> Value {
    match obj {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A random suffix for generateName (5 chars of Kubernetes' consonant/digit alphabet).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4();
    bytes.as_bytes()[..5].iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect()
}

/// Parses a revision from a resourceVersion string.
pub fn parse_rv(s: &str) -> Option<Revision> {
    s.parse::<Revision>().ok().filter(|r| *r >= 0)
}

/// The object stored at `key`, decoded, with its key-value (revision), if it is there. `name` names it in errors.
pub async fn read(store: &dyn Store, info: &ResourceInfo, key: &str, name: &str) -> Result<Option<(Value, KeyValue)>, ApiError> {
    let kv = store.get(key).await.map_err(|e| ApiError::from_storage(info, name, e))?;
    match kv {
        None => Ok(None),
        Some(kv) => {
            let obj = decode_for(info, &kv).map_err(|e| ApiError::internal(format!("stored object {key} is not JSON: {e}")))?;
            Ok(Some((obj, kv)))
        }
    }
}

/// One stored object of `info`, decoded as `T`, if it is there (and decodes): what the authenticators and the
/// authorizer look up (service accounts, bound pods, roles).
pub async fn read_as<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    let found = read(store, info, &info.key(ns, name), name).await?;
    Ok(found.and_then(|(obj, _)| serde_json::from_value(obj).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_drops_resource_version_and_decode_restores_it() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "7"}, "spec": {}});
        let bytes = encode(&obj);
        assert!(!String::from_utf8_lossy(&bytes).contains("resourceVersion"));
        let kv = KeyValue { key: "k".into(), value: bytes, create_revision: 3, mod_revision: 9 };
        assert_eq!(decode(&kv).expect("json")["metadata"]["resourceVersion"], "9");
    }

    #[test]
    fn splicing_the_resource_version_matches_a_parse() {
        for raw in [
            r#"{"apiVersion":"v1","data":{"x":"\"metadata\":{"},"kind":"ConfigMap","metadata":{"name":"a"}}"#,
            r#"{"kind":"X","metadata":{}}"#,
            r#"{ "metadata" : { "name" : "b" }, "spec": {"metadata": {}}}"#,
            r#"{"kind":"NoMeta"}"#,
        ] {
            let mut out = Vec::new();
            write_with_rv(&mut out, raw.as_bytes(), 42);
            let got: Value = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{raw}: {e}: {}", String::from_utf8_lossy(&out)));
            let mut want: Value = serde_json::from_str(raw).expect("json");
            set_resource_version(&mut want, 42);
            assert_eq!(got, want, "{raw}");
        }
    }

    #[test]
    fn generate_name_suffix_is_five_chars() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
