//! WATCH: a chunked stream of `{"type": ..., "object": ...}` lines. Without a resourceVersion (or with "0") the
//! current state is sent first as ADDED events; with one, changes after it. Selectors see transitions (an object
//! that stops matching is DELETED for this watcher). A too-old resourceVersion is answered with HTTP 200 and one
//! in-stream ERROR event carrying a 410 Status, as clients expect. Bookmarks are sent when allowed.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{header, StatusCode};
use rkube_apimachinery::fields::Requirement as FieldRequirement;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::list::{list_objects, list_raw, wait_for_revision, Selectors};
use super::context::{set_type_meta, Ctx};
use crate::object;
use crate::registry::ResourceInfo;
use crate::request::{self, Query};
use crate::status::ApiError;
use crate::storage::{KeyValue, Revision, StorageError, WatchEvent};
use crate::table;

/// Longest a watch stays open when the client gives no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// How watch events are rendered.
#[derive(Clone)]
struct Render {
    info: &'static ResourceInfo,
    table: Option<&'static str>,
    query: Query,
}

impl Render {
    fn event(&self, kind: &str, mut obj: Value) -> Bytes {
        set_type_meta(&mut obj, self.info);
        let object = match self.table {
            Some(v) => table::table(self.info, crate::strategy::of(self.info).printer(), std::slice::from_ref(&obj), "", &self.query, v),
            None => obj,
        };
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, rev: Revision, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta});
        let mut line = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// An event line built from the stored bytes (no parse; the object already carries kind and apiVersion).
fn raw_event(kind: &str, raw: &[u8], rv: Revision) -> Bytes {
    let mut line = Vec::with_capacity(raw.len() + 64);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    object::write_with_rv(&mut line, raw, rv);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

fn error_event(e: &ApiError) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn decode(info: &ResourceInfo, kv: &KeyValue) -> Option<Value> {
    object::decode_for(info, kv).ok()
}

/// A watch on a collection (`?watch=true` or the legacy `/watch/` path), or on one object by name: the stream
/// described above, open until `timeoutSeconds` or the client leaves.
pub async fn watch(ctx: &Ctx) -> Result<Response, ApiError> {
    let info = ctx.info();
    let mut query = ctx.query.clone();
    // A watch on a named path (legacy /watch/.../name) watches that one object.
    if let Some(name) = &ctx.target.name {
        query.fields.requirements.push(FieldRequirement { path: "metadata.name".into(), value: name.clone(), equal: true });
    }
    let sel = Selectors::parse(info, &query)?;
    let ns = ctx.target.ns().map(str::to_string);
    let prefix = info.prefix_for(ns.as_deref());
    let render = Render {
        info,
        table: request::wants_table(&ctx.headers).then(|| request::table_version(&ctx.headers)),
        query: query.clone(),
    };
    let rv = match query.resource_version.as_deref() {
        None => None,
        Some(s) => Some(object::parse_rv(s).ok_or_else(|| ApiError::bad_request(format!("invalid resource version {s:?}")))?),
    };
    let initial = query.send_initial_events.unwrap_or(matches!(rv, None | Some(0)));
    let (mut first, start) = if initial {
        let mut q = query.clone();
        q.limit = None;
        q.continue_token = None;
        q.resource_version = None;
        q.resource_version_match = None;
        if render.table.is_none() && info.stored_as.is_none() {
            let page = list_raw(&ctx.state, info, ns.as_deref(), &q).await?;
            let lines: Vec<Bytes> = page.items.iter().map(|kv| raw_event("ADDED", &kv.value, kv.mod_revision)).collect();
            (lines, page.revision)
        } else {
            let page = list_objects(&ctx.state, info, ns.as_deref(), &q).await?;
            let lines: Vec<Bytes> = page.items.into_iter().map(|o| render.event("ADDED", o)).collect();
            (lines, page.revision)
        }
    } else {
        let rv = rv.unwrap_or(0);
        wait_for_revision(&ctx.state, rv).await?;
        (Vec::new(), rv)
    };
    if query.send_initial_events == Some(true) && query.allow_watch_bookmarks {
        first.push(render.bookmark(start, true));
    }
    let timeout = query.timeout_seconds.map(Duration::from_secs).unwrap_or(DEFAULT_TIMEOUT);
    let stream = match ctx.state.store.watch(&prefix, start).await {
        Ok(s) => s,
        Err(StorageError::Compacted { requested, compacted }) => {
            let e = ApiError::gone(format!("too old resource version: {requested} ({compacted})"));
            return Ok(respond(vec![error_event(&e)], None));
        }
        Err(e) => return Err(ApiError::from_storage(info, "", e)),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let bookmarks = query.allow_watch_bookmarks;
    let state = ctx.state.clone();
    state.metrics.watchers_inc();
    let mut stopping = state.stopping.subscribe();
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut stream = stream;
        loop {
            if *stopping.borrow() {
                break;
            }
            let ev = tokio::select! {
                _ = &mut deadline => break,
                _ = tx.closed() => break,
                _ = stopping.changed() => break,
                ev = stream.next() => ev,
            };
            let line = match ev {
                None => break,
                Some(Err(StorageError::Compacted { requested, compacted })) => {
                    let e = ApiError::gone(format!("too old resource version: {requested} ({compacted})"));
                    let _ = tx.send(error_event(&e)).await;
                    break;
                }
                Some(Err(e)) => {
                    let _ = tx.send(error_event(&ApiError::internal(e.to_string()))).await;
                    break;
                }
                Some(Ok(ev)) => convert(&render, &sel, bookmarks, ev),
            };
            if let Some(line) = line {
                if tx.send(line).await.is_err() {
                    break;
                }
            }
        }
        state.metrics.watchers_dec();
    });
    Ok(respond(first, Some(rx)))
}

/// False when a `metadata.name=` selector already rules the key out (no parse needed).
fn name_may_match(sel: &Selectors, key: &str) -> bool {
    match sel.fields.required_value("metadata.name") {
        Some(n) => key.rsplit('/').next() == Some(n),
        None => true,
    }
}

fn convert(render: &Render, sel: &Selectors, bookmarks: bool, ev: WatchEvent) -> Option<Bytes> {
    let all = sel.labels.is_empty() && sel.fields.is_empty();
    let key = match &ev {
        WatchEvent::Put { kv, .. } => Some(kv.key.as_str()),
        WatchEvent::Delete { prev, .. } => Some(prev.key.as_str()),
        WatchEvent::Progress { .. } => None,
    };
    if key.is_some_and(|k| !name_may_match(sel, k)) {
        return None;
    }
    match ev {
        WatchEvent::Put { kv, prev } => {
            if all {
                let kind = if prev.is_some() { "MODIFIED" } else { "ADDED" };
                if render.table.is_none() && render.info.stored_as.is_none() {
                    return Some(raw_event(kind, &kv.value, kv.mod_revision));
                }
                return Some(render.event(kind, decode(render.info, &kv)?));
            }
            let new = decode(render.info, &kv)?;
            let new_m = sel.matches(&new);
            let old_m = prev.as_ref().and_then(|p| decode(render.info, p)).is_some_and(|o| sel.matches(&o));
            match (old_m, new_m) {
                (true, true) => Some(render.event("MODIFIED", new)),
                (false, true) => Some(render.event("ADDED", new)),
                (true, false) => Some(render.event("DELETED", new)),
                (false, false) => None,
            }
        }
        WatchEvent::Delete { prev, revision } => {
            let mut obj = decode(render.info, &prev)?;
            object::set_resource_version(&mut obj, revision);
            (all || sel.matches(&obj)).then(|| render.event("DELETED", obj))
        }
        WatchEvent::Progress { revision } => bookmarks.then(|| render.bookmark(revision, false)),
    }
}

fn respond(first: Vec<Bytes>, rx: Option<mpsc::Receiver<Bytes>>) -> Response {
    let head = futures::stream::iter(first.into_iter().map(Ok::<Bytes, Infallible>));
    let body = match rx {
        Some(rx) => {
            let tail = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx)) });
            Body::from_stream(head.chain(tail))
        }
        None => Body::from_stream(head),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache, private")], body).into_response()
}
