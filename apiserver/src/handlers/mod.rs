//! Resource request handling: one entry point parses the path and query, then each verb lives in its own module.
//! Shared here: reading objects, the guarded read-modify-write loop every update path uses, namespace checks,
//! and JSON/Table responses.

pub mod context;
pub mod create;
pub mod delete;
pub mod get;
pub mod list;
pub mod patch;
pub mod service_alloc;
pub mod service_claims;
pub mod trace;
pub mod update;
pub mod watch;

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};

use crate::auth::{self, User};
use crate::registry;
use crate::request::{self, Query};
use crate::state::ApiState;
use crate::status::ApiError;

pub use context::{check_namespace, guarded_update, json_response, read_object, set_type_meta, Ctx, Written};

/// Largest request body accepted (Kubernetes' limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What the request asks, as authorization read it: the query parsed once and the verb decided from it.
pub struct Asked {
    /// The query parameters, parsed once for authorization and the handler.
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
    let sub = ctx.target.subresource.as_deref().unwrap_or_default();
    crate::admission::node_restriction::admit_verb(&ctx.user, ctx.info(), sub, verb, ctx.name()).map_err(|e| (e, resource, verb))?;
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
