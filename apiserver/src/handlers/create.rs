//! POST: create an object in a collection, plus the POST-only subresources `pods/binding` (the scheduler's
//! assignment) and `pods/eviction`. The kind's strategy prepares the body (a CSR's requester) and names what
//! needs the store (`StoreHook`): Services get their cluster IP and node ports (`service_alloc`), an Ingress
//! without a class the default class (`admission::default_ingress_class`).

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};
use tracing::Instrument;

use super::context::{check_namespace, guarded_update, json_response, Ctx, Written};
use crate::admission::{self, FieldValidation};
use crate::object;
use crate::registry::ResourceInfo;
use crate::request::{self, BodyType};
use crate::state::ApiState;
use crate::status::{self, ApiError, Cause};
use crate::storage::ListOptions;
use crate::strategy::{self, StoreHook};

/// Decodes a JSON or YAML body (415 for other media types).
pub fn decode_object(ctx: &Ctx, body: &Bytes) -> Result<Value, ApiError> {
    match request::body_type(&ctx.headers, request::OBJECT_MEDIA_TYPES)? {
        BodyType::Json => request::decode_body(body, false),
        BodyType::Yaml => request::decode_body(body, true),
        BodyType::Protobuf => crate::protobuf::decode(body),
        _ => Err(ApiError::unsupported_media_type(request::OBJECT_MEDIA_TYPES)),
    }
}

/// How the write treats unknown fields in its body: refused with `fieldValidation=Strict`, dropped otherwise.
pub fn field_validation(ctx: &Ctx) -> FieldValidation {
    if ctx.query.strict() {
        FieldValidation::Strict
    } else {
        FieldValidation::Ignore
    }
}

/// POST on a collection or a POST subresource (binding, eviction, token, the reviews): decodes the body, runs
/// admission and the kind's strategy, and stores the object.
pub async fn create(ctx: &Ctx, body: Bytes) -> Result<Response, ApiError> {
    let info = ctx.info();
    match (ctx.target.name.as_deref(), ctx.target.subresource.as_deref(), info.resource) {
        (None, None, _) => {}
        (Some(_), Some("binding"), "pods") => return binding(ctx, &body).await,
        (Some(name), Some("eviction"), "pods") => {
            admission::node_restriction::admit_eviction(&ctx.state, &ctx.user, info, ctx.target.ns().unwrap_or_default(), name).await?;
            return eviction(ctx, &body).await;
        }
        (Some(name), Some("token"), "serviceaccounts") => {
            let request = decode_object(ctx, &body)?;
            let ns = ctx.target.ns().unwrap_or_default();
            admission::node_restriction::admit_token(&ctx.state, &ctx.user, info, ns, name, &request).await?;
            let answered = crate::auth::token::request(&ctx.state, ns, name, request).await?;
            return Ok(json_response(StatusCode::CREATED, &answered));
        }
        (Some(_), Some(sub @ ("exec" | "attach" | "portforward")), "pods") => return Err(not_served(sub)),
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({})",
                ctx.path
            )))
        }
    }
    let obj = crate::strategy::of(info).prepare_for_create(info, decode_object(ctx, &body)?, &ctx.user);
    let (obj, span) = super::trace::on_create(info, obj, &ctx.headers, ctx.query.dry_run);
    ctx.check_escalation(&obj).await?;
    admission::node_restriction::admit_create(&ctx.state, &ctx.user, info, ctx.target.ns().unwrap_or_default(), &obj).await?;
    let obj = create_object(&ctx.state, info, ctx.target.ns(), obj, field_validation(ctx), ctx.query.dry_run).instrument(span.clone()).await?;
    super::trace::created(&span, &obj, info.kind);
    Ok(json_response(StatusCode::CREATED, &obj))
}

/// The whole create path, usable in-process (bootstrap objects): admission, namespace check, allocation, store.
pub async fn create_object(
    state: &ApiState,
    info: &'static ResourceInfo,
    ns: Option<&str>,
    obj: Value,
    validation: FieldValidation,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let mut obj = admission::prepare_create(info, obj, ns, validation)?;
    if info.kind == "Pod" {
        let c = &state.config;
        admission::default_toleration_seconds::add_default_tolerations(&mut obj, c.default_not_ready_toleration_seconds, c.default_unreachable_toleration_seconds);
    }
    let name = object::name(&obj).to_string();
    if info.namespaced {
        check_namespace(state, info, ns.unwrap_or_default(), &name, true).await?;
    }
    let mut claimed = Vec::new();
    let hook = strategy::of(info).store_hook();
    if hook == StoreHook::ServiceAddresses {
        // An existing service answers AlreadyExists, not "IP already allocated".
        let key = info.key(object::namespace(&obj), &name);
        if state.store.get(&key).await.map_err(|e| ApiError::from_storage(info, &name, e))?.is_some() {
            return Err(ApiError::already_exists(info, &name));
        }
        claimed = super::service_alloc::allocate_on_create(state, info, &mut obj, dry_run).await?;
    }
    if hook == StoreHook::DefaultIngressClass {
        default_ingress_class(state, &mut obj).await?;
    }
    if dry_run {
        return Ok(obj);
    }
    let key = info.key(object::namespace(&obj), &name);
    let kv = match state.store.create(&key, object::encode_for(info, &obj)).await {
        Ok(kv) => kv,
        Err(e) => {
            super::service_alloc::release(state, &obj, claimed).await;
            return Err(ApiError::from_storage(info, &name, e));
        }
    };
    object::set_resource_version(&mut obj, kv.mod_revision);
    tracing::debug!(resource = info.resource, name, rv = kv.mod_revision, "created");
    Ok(obj)
}

/// Upstream's `DefaultIngressClass` admission on create: the default IngressClass's name for an Ingress that
/// names none (`admission::default_ingress_class`).
async fn default_ingress_class(state: &ApiState, ingress: &mut Value) -> Result<(), ApiError> {
    let Some(classes) = crate::registry::find("networking.k8s.io", "v1", "ingressclasses") else {
        return Ok(());
    };
    let page = state
        .store
        .list(ListOptions { prefix: classes.key_prefix(), ..Default::default() })
        .await
        .map_err(|e| ApiError::from_storage(classes, "", e))?;
    let classes: Vec<Value> = page.items.iter().filter_map(|kv| object::decode(kv).ok()).collect();
    if let Some(class) = admission::default_ingress_class(ingress, &classes) {
        tracing::debug!(ingress = object::name(ingress), class, "defaulting ingress class");
    }
    Ok(())
}

/// exec/attach/port-forward need a streaming proxy to the kubelet, which has no such endpoint yet.
pub fn not_served(sub: &str) -> ApiError {
    ApiError::bad_request(format!("pods/{sub} is not served by this apiserver yet (no streaming proxy to the kubelet)"))
}

/// `POST pods/{name}/binding`: assigns the pod to a node (409 if it already has one).
async fn binding(ctx: &Ctx, body: &Bytes) -> Result<Response, ApiError> {
    let info = ctx.info();
    let b = decode_object(ctx, body)?;
    let node = b.pointer("/target/name").and_then(Value::as_str).unwrap_or_default().to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(info, ctx.name(), vec![Cause::required("target.name", "")]));
    }
    let name = ctx.name().to_string();
    let now = object::now_rfc3339();
    let written = guarded_update(ctx, None, |cur| {
        if object::is_deleting(cur) {
            return Err(ApiError::conflict(info, &name, "pod is being deleted, cannot be assigned to a host"));
        }
        let assigned = cur.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
        if !assigned.is_empty() {
            return Err(ApiError::conflict(info, &name, &format!("pod {name} is already assigned to node \"{assigned}\"")));
        }
        let mut new = cur.clone();
        new["spec"]["nodeName"] = json!(node);
        if !new.get("status").is_some_and(Value::is_object) {
            new["status"] = json!({});
        }
        if !new["status"].get("conditions").is_some_and(Value::is_array) {
            new["status"]["conditions"] = json!([]);
        }
        if let Some(conds) = new["status"]["conditions"].as_array_mut() {
            conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
        }
        Ok(new)
    })
    .await?;
    let uid = match &written {
        Written::Stored(o) | Written::Deleted(o) => object::uid(o).to_string(),
    };
    let mut s = status::success(info, &name, &uid);
    s["code"] = json!(201);
    Ok(json_response(StatusCode::CREATED, &s))
}

/// `POST pods/{name}/eviction`: deletes the pod with the Eviction's `deleteOptions` (grace period,
/// preconditions); no disruption budgets are enforced.
async fn eviction(ctx: &Ctx, body: &Bytes) -> Result<Response, ApiError> {
    let info = ctx.info();
    let name = ctx.name().to_string();
    let eviction = if body.is_empty() { json!({}) } else { decode_object(ctx, body)? };
    if let Some(kind) = eviction.get("kind").and_then(Value::as_str).filter(|k| *k != "Eviction") {
        return Err(ApiError::bad_request(format!("pods \"{name}\": the body of an eviction must be an Eviction, not a {kind}")));
    }
    if let Some(n) = eviction.pointer("/metadata/name").and_then(Value::as_str).filter(|n| !n.is_empty() && *n != name) {
        return Err(ApiError::bad_request(format!("name in URL does not match name in Eviction object: {name} != {n}")));
    }
    let opts = eviction.get("deleteOptions").cloned().unwrap_or_else(|| json!({}));
    super::delete::delete_one(ctx, &opts).await?;
    let mut s = status::success(info, &name, "");
    s["code"] = json!(201);
    Ok(json_response(StatusCode::CREATED, &s))
}
