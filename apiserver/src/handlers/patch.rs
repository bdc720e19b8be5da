//! PATCH in every format Kubernetes accepts (JSON Patch, merge patch, strategic merge patch, server-side apply),
//! on an object, its `status` or its `scale`. Apply creates the object when it does not exist.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use super::create::{create_object, field_validation};
use super::get::scale_of;
use super::context::{guarded_update_with, json_response, read_object, set_type_meta, Ctx, WriteHook, Written};
use crate::admission::{prepare_update, Part};
use crate::object;
use crate::patch::{apply, json, merge, strategic, PatchError};
use crate::request::{self, BodyType};
use crate::status::{ApiError, Cause};

fn patch_error(e: PatchError) -> ApiError {
    match e {
        PatchError::Invalid(m) => ApiError::bad_request(m),
        PatchError::TestFailed(m) => ApiError::new(422, "Invalid", m),
        PatchError::Conflict(m) => ApiError::new(409, "Conflict", m),
    }
}

/// PATCH of an object or its subresource in any of the four patch types (JSON, merge, strategic merge,
/// server-side apply): the patched object goes through the same admission and guarded write as an update.
pub async fn patch(ctx: &Ctx, body: Bytes) -> Result<Response, ApiError> {
    let info = ctx.info();
    if ctx.target.name.is_none() {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            ctx.path
        )));
    }
    let bt = request::body_type(&ctx.headers, request::PATCH_MEDIA_TYPES)?;
    let patch = match bt {
        BodyType::JsonPatch | BodyType::MergePatch | BodyType::StrategicMergePatch => {
            serde_json::from_slice::<Value>(&body).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
        }
        BodyType::ApplyPatch => request::decode_body(&body, true)?,
        _ => return Err(ApiError::unsupported_media_type(request::PATCH_MEDIA_TYPES)),
    };
    let part = match ctx.target.subresource.as_deref() {
        None => Part::Main,
        Some("status") if info.has_status => Part::Status,
        Some("approval") if info.subresource("approval").is_some() => Part::Status,
        Some("scale") if info.subresource("scale").is_some() => Part::Main,
        Some(_) => return Err(ApiError::path_not_found(&ctx.path)),
    };
    let scale = ctx.target.subresource.as_deref() == Some("scale");
    let services = super::service_alloc::for_update(ctx).await?;
    let validation = field_validation(ctx);
    let manager = ctx.query.field_manager.clone().unwrap_or_default();
    let now = object::now_rfc3339();
    if bt == BodyType::ApplyPatch {
        if manager.is_empty() {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        if !scale && part == Part::Main {
            let existing = read_object(&ctx.state, info, &ctx.target.key(), ctx.name()).await?;
            if existing.is_none() {
                let mut applied = apply::apply(None, &patch, &manager, info.definition, &info.api_version(), &now).map_err(patch_error)?;
                if object::name(&applied).is_empty() {
                    object::meta_mut(&mut applied).insert("name".into(), json!(ctx.name()));
                }
                if object::name(&applied) != ctx.name() {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({}) does not match the name on the URL ({})",
                        object::name(&applied),
                        ctx.name()
                    )));
                }
                ctx.check_escalation(&applied).await?;
                let obj = create_object(&ctx.state, info, ctx.target.ns(), applied, validation, ctx.query.dry_run).await?;
                return Ok(json_response(StatusCode::CREATED, &obj));
            }
        }
    }
    let precondition = match patch.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
        Some(rv) if bt != BodyType::JsonPatch && bt != BodyType::ApplyPatch => {
            Some(object::parse_rv(rv).ok_or_else(|| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?)
        }
        _ => None,
    };
    let name = ctx.name().to_string();
    let hook = services.as_ref().filter(|_| part == Part::Main).map(|s| s as &dyn WriteHook);
    let written = guarded_update_with(ctx, precondition, hook, |cur| {
        let mut target = if scale { scale_of(cur) } else { cur.clone() };
        let definition = if scale { "io.k8s.api.autoscaling.v1.Scale" } else { info.definition };
        match bt {
            BodyType::JsonPatch => json::json_patch(&mut target, &patch).map_err(patch_error)?,
            BodyType::MergePatch => merge::merge_patch(&mut target, &patch),
            BodyType::StrategicMergePatch => strategic::strategic_merge(&mut target, &patch, definition).map_err(patch_error)?,
            BodyType::ApplyPatch => {
                target = apply::apply_with(Some(&target), &patch, &manager, definition, &info.api_version(), &now, ctx.query.force)
                    .map_err(patch_error)?
            }
            _ => {}
        }
        let next = if scale {
            let replicas = target.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
            if !replicas.is_i64() {
                return Err(ApiError::invalid(info, &name, vec![Cause::invalid("spec.replicas", &replicas, "must be an integer")]));
            }
            let mut n = cur.clone();
            n["spec"]["replicas"] = replicas;
            n
        } else {
            // The resourceVersion of a patched object is the stored one (a patch may not move it).
            if let Some(rv) = object::resource_version(cur).map(str::to_string) {
                object::meta_mut(&mut target).insert("resourceVersion".into(), json!(rv));
            }
            target
        };
        let next = crate::strategy::of(info).for_subresource(info, ctx.target.subresource.as_deref(), cur, next);
        let next = prepare_update(info, cur, next, part, validation)?;
        match part {
            Part::Main => super::service_alloc::on_update(info, cur, next, services.as_ref()),
            Part::Status => Ok(next),
        }
    })
    .await?;
    let mut obj = match written {
        Written::Stored(o) | Written::Deleted(o) => o,
    };
    if scale {
        return Ok(json_response(StatusCode::OK, &scale_of(&obj)));
    }
    set_type_meta(&mut obj, info);
    Ok(json_response(StatusCode::OK, &obj))
}
