//! Resource request handling: one entry point parses the path and query, then each verb lives in its own module.
//! Shared here: reading objects, the guarded read-modify-write loop every update path uses, namespace checks,
//! and JSON/Table responses.

pub mod create;
pub mod delete;
pub mod get;
pub mod list;
pub mod patch;
pub mod update;
pub mod watch;

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;

use crate::auth::{self, User};
use crate::object;
use crate::registry::{self, ResourceInfo};
use crate::request::{self, Query, Target};
use crate::server::ApiState;
use crate::status::ApiError;
use crate::storage::{KeyValue, Revision, StorageError};

/// Largest request body accepted (Kubernetes' limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Everything a verb handler needs about one request.
pub struct Ctx {
    pub state: Arc<ApiState>,
    /// Who the request acts as (after impersonation).
    pub user: Arc<User>,
    pub target: Target,
    pub query: Query,
    pub headers: HeaderMap,
    pub path: String,
}

impl Ctx {
    pub fn info(&self) -> &'static ResourceInfo {
        self.target.info
    }

    pub fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    /// For Roles and bindings: refuses `obj` if it grants more than the requesting user holds.
    pub async fn check_escalation(&self, obj: &Value) -> Result<(), ApiError> {
        auth::rbac::check_escalation(&self.state, &self.user, self.info(), self.target.ns().unwrap_or_default(), obj).await
    }
}

/// What the request asks, as authorization read it: the query parsed once and the verb decided from it.
pub struct Asked {
    pub query: Query,
    /// The verb authorization checked (`get`, `list`, `watch`, `create`...).
    pub verb: String,
}

/// Entry point for `/api/...` and `/apis/...` resource paths; `asked` is what authorization allowed.
pub async fn resource_request(state: Arc<ApiState>, user: Arc<User>, method: Method, uri: Uri, asked: Asked, headers: HeaderMap, body: Body) -> Response {
    let path = uri.path().to_string();
    let started = std::time::Instant::now();
    let result = route(state.clone(), user, &method, &uri, asked, headers, body).await;
    let (response, resource, verb) = match result {
        Ok((r, res, verb)) => (r, res, verb),
        Err((e, res, verb)) => {
            if e.code >= 500 {
                tracing::warn!(%method, path, code = e.code, message = %e.message, "request failed");
            } else {
                tracing::debug!(%method, path, code = e.code, message = %e.message, "request rejected");
            }
            (e.into_response(), res, verb)
        }
    };
    state.metrics.observe(verb, resource, response.status().as_u16(), started.elapsed());
    response
}

type Routed = Result<(Response, &'static str, &'static str), (ApiError, &'static str, &'static str)>;

async fn route(state: Arc<ApiState>, user: Arc<User>, method: &Method, uri: &Uri, asked: Asked, headers: HeaderMap, body: Body) -> Routed {
    let path = uri.path();
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err((ApiError::path_not_found(path), "", "")),
    };
    if registry::group_version(group) != Some(version) {
        return Err((ApiError::path_not_found(path), "", ""));
    }
    let target = request::parse_target(group, version, rest, path).map_err(|e| (e, "", ""))?;
    let resource = target.info.resource;
    let verb = static_verb(&asked.verb);
    let ctx = Ctx { state, user, target, query: asked.query, headers, path: path.to_string() };
    if !ctx.info().verbs.contains(&verb) {
        let e = ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method} {path})"));
        return Err((e, resource, verb));
    }
    if ctx.info().is_create_only() {
        let body = read_body(&ctx, body).await.map_err(|e| (e, resource, verb))?;
        let result = async {
            let obj = create::decode_object(&ctx, &body)?;
            let answered = auth::review::create(&ctx.state, &ctx.user, ctx.info(), ctx.target.ns(), obj).await?;
            Ok(json_response(StatusCode::CREATED, &answered))
        };
        return result.await.map(|r| (r, resource, verb)).map_err(|e| (e, resource, verb));
    }
    let result = match (method.as_str(), verb) {
        (_, "watch") => watch::watch(&ctx).await,
        ("GET", "get") => get::get(&ctx).await,
        ("GET", "list") => list::list(&ctx).await,
        ("POST", _) => create::create(&ctx, read_body(&ctx, body).await.map_err(|e| (e, resource, verb))?).await,
        ("PUT", _) => update::update(&ctx, read_body(&ctx, body).await.map_err(|e| (e, resource, verb))?).await,
        ("PATCH", _) => patch::patch(&ctx, read_body(&ctx, body).await.map_err(|e| (e, resource, verb))?).await,
        ("DELETE", "delete") => delete::delete(&ctx, read_body(&ctx, body).await.map_err(|e| (e, resource, verb))?).await,
        ("DELETE", "deletecollection") => {
            delete::delete_collection(&ctx, read_body(&ctx, body).await.map_err(|e| (e, resource, verb))?).await
        }
        _ => Err(ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method} {path})"))),
    };
    match result {
        Ok(r) => Ok((r, resource, verb)),
        Err(e) => Err((e, resource, verb)),
    }
}

/// The verb authorization decided, as the static name metrics and the resource table use.
fn static_verb(verb: &str) -> &'static str {
    const VERBS: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
    VERBS.iter().find(|v| **v == verb).copied().unwrap_or("unknown")
}

/// How much of an oversized body is read (and dropped) so the client gets the 413 instead of a reset.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// Reads the request body, at most [`MAX_BODY_BYTES`] of it, within the configured body timeout (a body sent
/// a byte at a time holds a connection as a half-sent head would; upstream's request timeout bounds it alike).
async fn read_body(ctx: &Ctx, body: Body) -> Result<Bytes, ApiError> {
    use futures::StreamExt;
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = bytes::BytesMut::new();
        let mut total = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
            total += chunk.len();
            if total > DRAIN_BYTES {
                break;
            }
            if total <= MAX_BODY_BYTES {
                buf.extend_from_slice(&chunk);
            }
        }
        if total > MAX_BODY_BYTES {
            return Err(ApiError::too_large(MAX_BODY_BYTES));
        }
        Ok(buf.freeze())
    };
    let limit = ctx.state.config.limits.request_body_timeout;
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| ApiError::timeout("request did not complete within requested timeout - context deadline exceeded"))?
}

/// A JSON response.
pub fn json_response(code: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Reads one object, with its stored revision.
pub async fn read_object(state: &ApiState, info: &ResourceInfo, key: &str, name: &str) -> Result<Option<(Value, KeyValue)>, ApiError> {
    let kv = state.store.get(key).await.map_err(|e| ApiError::from_storage(info, name, e))?;
    match kv {
        None => Ok(None),
        Some(kv) => {
            let obj = object::decode_for(info, &kv).map_err(|e| ApiError::internal(format!("stored object {key} is not JSON: {e}")))?;
            Ok(Some((obj, kv)))
        }
    }
}

/// Fails with 404 unless namespace `ns` exists; 403 if it is terminating and `creating`.
pub async fn check_namespace(state: &ApiState, info: &ResourceInfo, ns: &str, name: &str, creating: bool) -> Result<(), ApiError> {
    let ns_info = registry::find("", "v1", "namespaces").expect("namespaces are in the table");
    match read_object(state, ns_info, &ns_info.key(None, ns), ns).await? {
        None => Err(ApiError::not_found(ns_info, ns)),
        Some((obj, _)) if creating && object::is_deleting(&obj) => Err(ApiError::forbidden(
            info,
            name,
            &format!("unable to create new content in namespace {ns} because it is being terminated"),
        )),
        Some(_) => Ok(()),
    }
}

/// The outcome of a guarded write.
pub enum Written {
    /// The object as stored (or as it would be, for a dry run).
    Stored(Value),
    /// The update removed the last finalizer of an object being deleted, so it is gone now.
    Deleted(Value),
}

/// Read-modify-write with optimistic concurrency. `modify` gets the current object and returns the new one; a
/// `precondition` revision must match the current one (409 otherwise); without it, conflicts are retried.
/// A write that changes nothing is not stored (the resourceVersion stays).
pub async fn guarded_update<F>(ctx: &Ctx, precondition: Option<Revision>, mut modify: F) -> Result<Written, ApiError>
where
    F: FnMut(&Value) -> Result<Value, ApiError>,
{
    let info = ctx.info();
    let name = ctx.name().to_string();
    let key = ctx.target.key();
    for _ in 0..16 {
        let Some((cur, kv)) = read_object(&ctx.state, info, &key, &name).await? else {
            return Err(ApiError::not_found(info, &name));
        };
        if let Some(p) = precondition {
            if p != kv.mod_revision {
                return Err(ApiError::modified(info, &name));
            }
        }
        let mut new = modify(&cur)?;
        ctx.check_escalation(&new).await?;
        object::set_resource_version(&mut new, kv.mod_revision);
        if new == cur {
            return Ok(Written::Stored(cur));
        }
        let finalized = object::ready_to_remove(info.resource, &new);
        if ctx.query.dry_run {
            return Ok(if finalized { Written::Deleted(new) } else { Written::Stored(new) });
        }
        if finalized {
            match ctx.state.store.delete(&key, Some(kv.mod_revision)).await {
                Ok((_, rev)) => {
                    object::set_resource_version(&mut new, rev);
                    return Ok(Written::Deleted(new));
                }
                Err(StorageError::Conflict { .. }) if precondition.is_none() => continue,
                Err(e) => return Err(ApiError::from_storage(info, &name, e)),
            }
        }
        match ctx.state.store.update(&key, object::encode_for(info, &new), kv.mod_revision).await {
            Ok(kv2) => {
                object::set_resource_version(&mut new, kv2.mod_revision);
                return Ok(Written::Stored(new));
            }
            Err(StorageError::Conflict { .. }) if precondition.is_none() => continue,
            Err(e) => return Err(ApiError::from_storage(info, &name, e)),
        }
    }
    Err(ApiError::modified(info, &name))
}

/// Sets `apiVersion` and `kind` of a stored object to the resource's.
pub fn set_type_meta(obj: &mut Value, info: &ResourceInfo) {
    if let Value::Object(m) = obj {
        // Keep apiVersion/kind first in output, as Kubernetes does.
        let rest = std::mem::take(m);
        m.insert("kind".into(), Value::String(info.kind.to_string()));
        m.insert("apiVersion".into(), Value::String(info.api_version()));
        for (k, v) in rest {
            if k != "kind" && k != "apiVersion" {
                m.insert(k, v);
            }
        }
    }
}
