//! LIST with Kubernetes semantics: label and field selectors, `limit`/`continue` pages read at one revision,
//! `resourceVersion` + `resourceVersionMatch` (latest, any, exact), and Table output for kubectl.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::StatusCode;
use rkube_apimachinery::labels::Selector as LabelSelector;
use serde_json::{json, Value};

use super::context::{json_response, set_type_meta, Ctx};
use crate::object;
use crate::registry::ResourceInfo;
use crate::request::{self, Query};
use crate::selectors::FieldMatcher;
use crate::state::ApiState;
use crate::status::ApiError;
use crate::storage::{ListOptions, Revision, StorageError};
use crate::strategy;
use crate::table;

/// Parsed selectors of a list or watch.
pub struct Selectors {
    /// The label selector.
    pub labels: LabelSelector,
    /// The field selector, its fields checked against the kind's strategy.
    pub fields: FieldMatcher,
}

impl Selectors {
    /// The request's selectors for `info`'s kind: a field the kind's strategy does not list is a 400
    /// (`field label not supported: <field>`, as upstream).
    pub fn parse(info: &ResourceInfo, q: &Query) -> Result<Selectors, ApiError> {
        let fields = FieldMatcher::new(q.fields.clone(), strategy::of(info).selectable_fields(info))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Selectors { labels: q.labels.clone(), fields })
    }

    /// Whether `obj` (in the form the request's API serves it) matches both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches(obj)
    }
}

/// A continue token: the revision of the first page and the last key returned.
fn encode_continue(rev: Revision, key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!({"rv": rev, "start": key})).unwrap_or_default())
}

fn decode_continue(token: &str) -> Result<(Revision, String), ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid: the continue token is malformed");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((v["rv"].as_i64().ok_or_else(bad)?, v["start"].as_str().ok_or_else(bad)?.to_string()))
}

/// One page of matching objects.
pub struct Page {
    /// The matching objects, decoded and with their apiVersion and kind set.
    pub items: Vec<Value>,
    /// The revision the page was read at (the list's resourceVersion).
    pub revision: Revision,
    /// The token of the next page, None on the last one.
    pub continue_token: Option<String>,
}

/// One page of matching objects as stored (JSON without resourceVersion).
pub struct RawPage {
    /// The matching keys and their stored values.
    pub items: Vec<crate::storage::KeyValue>,
    /// The revision the page was read at.
    pub revision: Revision,
    /// The token of the next page, None on the last one.
    pub continue_token: Option<String>,
}

/// Waits (briefly) until the store has reached `rv`, as Kubernetes does for a NotOlderThan read from the future.
pub async fn wait_for_revision(state: &ApiState, rv: Revision) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let cur = state.store.current_revision().await.map_err(|e| ApiError::internal(e.to_string()))?;
        if cur >= rv {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::timeout(format!("Too large resource version: {rv}, current: {cur}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn storage_err(info: &ResourceInfo, e: StorageError) -> ApiError {
    match e {
        StorageError::Compacted { requested, compacted } => ApiError::gone(format!(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter. (too old resource version: {requested} ({compacted}))"
        )),
        other => ApiError::from_storage(info, "", other),
    }
}

/// Reads one page of objects matching the request's selectors.
pub async fn list_objects(state: &ApiState, info: &ResourceInfo, ns: Option<&str>, q: &Query) -> Result<Page, ApiError> {
    let raw = list_raw(state, info, ns, q).await?;
    let mut items = Vec::with_capacity(raw.items.len());
    for kv in &raw.items {
        let mut obj = object::decode_for(info, kv).map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
        set_type_meta(&mut obj, info);
        items.push(obj);
    }
    Ok(Page { items, revision: raw.revision, continue_token: raw.continue_token })
}

/// Reads one page of stored objects matching the request's selectors (parsed only when there are selectors).
pub async fn list_raw(state: &ApiState, info: &ResourceInfo, ns: Option<&str>, q: &Query) -> Result<RawPage, ApiError> {
    let sel = Selectors::parse(info, q)?;
    let prefix = info.prefix_for(ns);
    let (mut revision, mut start_after) = match &q.continue_token {
        Some(t) => {
            let (rv, key) = decode_continue(t)?;
            if !key.starts_with(&prefix) {
                return Err(ApiError::bad_request("continue key is not valid: the continue token belongs to another list"));
            }
            (Some(rv), Some(key))
        }
        None => (None, None),
    };
    if q.continue_token.is_none() {
        if let Some(rv) = q.resource_version.as_deref() {
            let n = object::parse_rv(rv).ok_or_else(|| ApiError::bad_request(format!("invalid resource version {rv:?}")))?;
            match q.resource_version_match.as_deref() {
                Some("Exact") => {
                    if n == 0 {
                        return Err(ApiError::bad_request("resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\""));
                    }
                    revision = Some(n);
                }
                Some("NotOlderThan") | None => {
                    if n > 0 {
                        wait_for_revision(state, n).await?;
                    }
                }
                Some(other) => {
                    return Err(ApiError::bad_request(format!("unsupported resourceVersionMatch value {other:?}")));
                }
            }
        } else if q.resource_version_match.is_some() {
            return Err(ApiError::bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided"));
        }
    }
    // metadata.name=X narrows the list to one key.
    let only_name = sel.fields.required_value("metadata.name").map(str::to_string);
    let all = sel.labels.is_empty() && sel.fields.is_empty();
    let limit = q.limit;
    let mut items = Vec::new();
    let mut list_rev: Revision;
    let mut token = None;
    loop {
        let want = limit.map(|l| l.saturating_sub(items.len()));
        let opts = ListOptions {
            prefix: match (&only_name, ns) {
                (Some(n), Some(ns)) if info.namespaced => info.key(Some(ns), n),
                (Some(n), _) if !info.namespaced => info.key(None, n),
                _ => prefix.clone(),
            },
            start_after: start_after.clone(),
            limit: want,
            revision,
        };
        let page = state.store.list(opts).await.map_err(|e| storage_err(info, e))?;
        list_rev = page.revision;
        revision = Some(page.revision);
        let last_key = page.items.last().map(|kv| kv.key.clone());
        for kv in &page.items {
            if only_name.is_some() && !kv.key.ends_with(&format!("/{}", only_name.as_deref().unwrap_or_default())) {
                continue;
            }
            let keep = if all {
                true
            } else {
                let obj = object::decode_for(info, kv).map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
                sel.matches(&obj)
            };
            if keep {
                items.push(kv.clone());
            }
        }
        if !page.more {
            break;
        }
        start_after = last_key.clone();
        if limit.is_some_and(|l| items.len() >= l) {
            token = last_key.map(|k| encode_continue(list_rev, &k));
            break;
        }
    }
    Ok(RawPage { items, revision: list_rev, continue_token: token })
}

/// GET on a collection (not a watch, which is `watch`'s): the list as JSON, or as a Table for kubectl.
pub async fn list(ctx: &Ctx) -> Result<Response, ApiError> {
    let info = ctx.info();
    if info.stored_as.is_some() && !request::wants_table(&ctx.headers) {
        // Stored in another form: convert each object.
        let page = list_objects(&ctx.state, info, ctx.target.ns(), &ctx.query).await?;
        let mut meta = json!({"resourceVersion": page.revision.to_string()});
        if let Some(c) = &page.continue_token {
            meta["continue"] = json!(c);
        }
        let body = json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": meta, "items": page.items});
        return Ok(json_response(StatusCode::OK, &body));
    }
    if request::wants_table(&ctx.headers) {
        let page = list_objects(&ctx.state, info, ctx.target.ns(), &ctx.query).await?;
        let mut t = table::table(info, crate::strategy::of(info).printer(), &page.items, "", &ctx.query, request::table_version(&ctx.headers));
        t["metadata"]["resourceVersion"] = json!(page.revision.to_string());
        if let Some(c) = &page.continue_token {
            t["metadata"]["continue"] = json!(c);
        }
        return Ok(json_response(StatusCode::OK, &t));
    }
    let page = list_raw(&ctx.state, info, ctx.target.ns(), &ctx.query).await?;
    let mut meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    // Written directly: stored objects are spliced in with their resourceVersion, never parsed.
    let size: usize = page.items.iter().map(|kv| kv.value.len() + 32).sum();
    let mut body = Vec::with_capacity(size + 256);
    body.extend_from_slice(format!("{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":", info.kind, info.api_version()).as_bytes());
    body.extend_from_slice(&serde_json::to_vec(&meta).unwrap_or_default());
    body.extend_from_slice(b",\"items\":[");
    for (i, kv) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        object::write_with_rv(&mut body, &kv.value, kv.mod_revision);
    }
    body.extend_from_slice(b"]}");
    Ok((StatusCode::OK, [(http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "/registry/core/pods/default/a");
        assert_eq!(decode_continue(&t).expect("valid"), (42, "/registry/core/pods/default/a".to_string()));
        assert!(decode_continue("!!").is_err());
    }
}
