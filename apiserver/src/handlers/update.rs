//! PUT: replace an object (optimistic concurrency on `metadata.resourceVersion`, unconditional without one), its
//! `status`, its `scale`, or a namespace's `finalize` list.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use super::create::{decode_object, field_validation};
use super::get::scale_of;
use super::context::{guarded_update, guarded_update_with, json_response, set_type_meta, Ctx, WriteHook, Written};
use crate::admission::{prepare_update, Part};
use crate::object;
use crate::status::ApiError;

/// PUT of an object or of its `status`/`scale` subresource: the body replaces what that part may change, after
/// admission, a resourceVersion precondition when given, and the kind's update validation.
pub async fn update(ctx: &Ctx, body: Bytes) -> Result<Response, ApiError> {
    let info = ctx.info();
    if ctx.target.name.is_none() {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            ctx.path
        )));
    }
    let new = decode_object(ctx, &body)?;
    let precondition = match object::resource_version(&new) {
        Some(rv) => Some(object::parse_rv(rv).ok_or_else(|| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?),
        None => None,
    };
    let validation = field_validation(ctx);
    let services = super::service_alloc::for_update(ctx).await?;
    let written = match ctx.target.subresource.as_deref() {
        None => {
            let hook = services.as_ref().map(|s| s as &dyn WriteHook);
            guarded_update_with(ctx, precondition, hook, |cur| {
                let next = prepare_update(info, cur, new.clone(), Part::Main, validation)?;
                super::service_alloc::on_update(info, cur, next, services.as_ref())
            })
            .await?
        }
        Some(sub @ ("status" | "approval")) if info.subresource(sub).is_some() => {
            guarded_update(ctx, precondition, |cur| {
                let next = crate::strategy::of(info).for_subresource(info, Some(sub), cur, new.clone());
                prepare_update(info, cur, next, Part::Status, validation)
            })
            .await?
        }
        Some("finalize") if info.resource == "namespaces" => {
            guarded_update(ctx, precondition, |cur| {
                let mut next = cur.clone();
                next["spec"]["finalizers"] = new.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
                prepare_update(info, cur, next, Part::Main, validation)
            })
            .await?
        }
        Some("scale") if info.subresource("scale").is_some() => {
            let replicas = new.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
            let written = guarded_update(ctx, precondition, |cur| {
                let mut next = cur.clone();
                next["spec"]["replicas"] = json!(replicas);
                prepare_update(info, cur, next, Part::Main, validation)
            })
            .await?;
            let obj = match written {
                Written::Stored(o) | Written::Deleted(o) => o,
            };
            return Ok(json_response(StatusCode::OK, &scale_of(&obj)));
        }
        Some(_) => return Err(ApiError::path_not_found(&ctx.path)),
    };
    let mut obj = match written {
        Written::Stored(o) | Written::Deleted(o) => o,
    };
    set_type_meta(&mut obj, info);
    Ok(json_response(StatusCode::OK, &obj))
}
