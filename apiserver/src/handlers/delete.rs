//! DELETE and DELETECOLLECTION. Objects with finalizers (or a Foreground/Orphan propagation policy, recorded as
//! the `foregroundDeletion`/`orphan` finalizer for the garbage collector) get a deletionTimestamp and stay until
//! their finalizers are removed. Pods bound to a node are deleted gracefully: the kubelet finishes the deletion.
//! Namespaces go Terminating and are emptied by the namespace lifecycle task.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use super::list::list_objects;
use super::context::{guarded_update, json_response, read_object, set_type_meta, Ctx, Written};
use crate::object;
use crate::request;
use crate::status::ApiError;
use crate::storage::StorageError;

/// DeleteOptions from the body merged with the query parameters.
fn delete_options(ctx: &Ctx, body: &Bytes) -> Result<Value, ApiError> {
    let mut opts = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match request::body_type(&ctx.headers, &["application/json", "application/yaml"])? {
            request::BodyType::Yaml => request::decode_body(body, true)?,
            _ => request::decode_body(body, false)?,
        }
    };
    if !opts.is_object() {
        return Err(ApiError::bad_request("DeleteOptions must be an object"));
    }
    if let Some(p) = &ctx.query.propagation_policy {
        opts["propagationPolicy"] = json!(p);
    }
    if let Some(g) = ctx.query.grace_period_seconds {
        opts["gracePeriodSeconds"] = json!(g);
    }
    if let Some(o) = opts.get("orphanDependents").and_then(Value::as_bool) {
        if opts.get("propagationPolicy").is_none() {
            opts["propagationPolicy"] = json!(if o { "Orphan" } else { "Background" });
        }
    }
    match opts.get("propagationPolicy").and_then(Value::as_str) {
        None | Some("Orphan" | "Background" | "Foreground") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            )))
        }
    }
    Ok(opts)
}

/// DELETE of one object, with the body's or query's DeleteOptions (grace period, preconditions, propagation):
/// the object is marked for deletion while finalizers or a pod's grace remain, else removed.
pub async fn delete(ctx: &Ctx, body: Bytes) -> Result<Response, ApiError> {
    if ctx.target.subresource.is_some() {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            ctx.path
        )));
    }
    let opts = delete_options(ctx, &body)?;
    let mut obj = if body_dry_run(&opts) && !ctx.query.dry_run {
        let mut query = ctx.query.clone();
        query.dry_run = true;
        let dry = Ctx { state: ctx.state.clone(), user: ctx.user.clone(), target: ctx.target.clone(), query, headers: ctx.headers.clone(), path: ctx.path.clone() };
        delete_one(&dry, &opts).await?
    } else {
        delete_one(ctx, &opts).await?
    };
    set_type_meta(&mut obj, ctx.info());
    Ok(json_response(StatusCode::OK, &obj))
}

/// DeleteOptions may carry `dryRun: ["All"]` in the body instead of the query.
fn body_dry_run(opts: &Value) -> bool {
    opts.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v == "All"))
}

fn is_terminal_pod(pod: &Value) -> bool {
    matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

/// Deletes (or starts deleting) the object `ctx` names; returns the object as deleted or as marked.
pub async fn delete_one(ctx: &Ctx, opts: &Value) -> Result<Value, ApiError> {
    let info = ctx.info();
    let name = ctx.name();
    let key = &ctx.target.key();
    let Some((cur, _)) = read_object(&ctx.state, info, key, name).await? else {
        return Err(ApiError::not_found(info, name));
    };
    crate::admission::node_restriction::admit_delete(&ctx.user, info, &cur)?;
    if let Some(uid) = opts.pointer("/preconditions/uid").and_then(Value::as_str) {
        if uid != object::uid(&cur) {
            return Err(ApiError::conflict(
                info,
                name,
                &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", object::uid(&cur)),
            ));
        }
    }
    if let Some(rv) = opts.pointer("/preconditions/resourceVersion").and_then(Value::as_str) {
        if Some(rv) != object::resource_version(&cur) {
            return Err(ApiError::conflict(
                info,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    object::resource_version(&cur).unwrap_or_default()
                ),
            ));
        }
    }
    let policy = opts.get("propagationPolicy").and_then(Value::as_str).unwrap_or("Background");
    let mut add_finalizers: Vec<&str> = Vec::new();
    match policy {
        "Foreground" => add_finalizers.push("foregroundDeletion"),
        "Orphan" => add_finalizers.push("orphan"),
        _ => {}
    }
    let is_pod = info.resource == "pods";
    let grace = if is_pod {
        opts.get("gracePeriodSeconds")
            .and_then(Value::as_i64)
            .or_else(|| cur.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
            .unwrap_or(30)
    } else {
        0
    };
    let bound = cur.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let graceful = is_pod && grace > 0 && bound && !is_terminal_pod(&cur);
    let namespace_finalizers = info.resource == "namespaces"
        && cur.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    let has_finalizers = !object::finalizers(&cur).is_empty() || !add_finalizers.is_empty();
    if has_finalizers || graceful || namespace_finalizers || object::is_deleting(&cur) {
        let already = object::is_deleting(&cur);
        let now = chrono::Utc::now();
        let written = guarded_update(ctx, None, |c| {
            let mut next = c.clone();
            let meta = object::meta_mut(&mut next);
            if !already {
                let when = if graceful { now + chrono::Duration::seconds(grace) } else { now };
                meta.insert("deletionTimestamp".into(), json!(when.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
                let mut fins = object::finalizers(c);
                for f in &add_finalizers {
                    if !fins.iter().any(|x| x == f) {
                        fins.push(f.to_string());
                    }
                }
                if !fins.is_empty() {
                    meta.insert("finalizers".into(), json!(fins));
                }
            } else if is_pod && grace == 0 {
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            if namespace_finalizers {
                next["status"]["phase"] = json!("Terminating");
            }
            Ok(next)
        })
        .await;
        let obj = match written? {
            Written::Deleted(o) => {
                if !ctx.query.dry_run {
                    super::service_alloc::on_removed(&ctx.state, info, &o).await;
                }
                return Ok(o);
            }
            Written::Stored(o) => o,
        };
        if namespace_finalizers && !ctx.query.dry_run {
            (ctx.state.on_namespace_terminating)(ctx.state.clone(), name.to_string());
        }
        return Ok(obj);
    }
    if ctx.query.dry_run {
        return Ok(cur);
    }
    match ctx.state.store.delete(key, None).await {
        Ok((prev, rev)) => {
            let mut obj = object::decode_for(info, &prev).unwrap_or(cur);
            super::service_alloc::on_removed(&ctx.state, info, &obj).await;
            object::set_resource_version(&mut obj, rev);
            Ok(obj)
        }
        Err(StorageError::NotFound { .. }) => Err(ApiError::not_found(info, name)),
        Err(e) => Err(ApiError::from_storage(info, name, e)),
    }
}

/// DELETE on a collection: every object the selectors match is deleted as by [`delete`]; answers the list of them.
pub async fn delete_collection(ctx: &Ctx, body: Bytes) -> Result<Response, ApiError> {
    let info = ctx.info();
    let opts = delete_options(ctx, &body)?;
    let mut q = ctx.query.clone();
    q.limit = None;
    q.continue_token = None;
    if body_dry_run(&opts) {
        q.dry_run = true;
    }
    let page = list_objects(&ctx.state, info, ctx.target.ns(), &q).await?;
    let mut deleted = Vec::new();
    for obj in page.items {
        let name = object::name(&obj).to_string();
        let sub = Ctx {
            state: ctx.state.clone(),
            user: ctx.user.clone(),
            target: crate::request::Target {
                info,
                namespace: object::namespace(&obj).map(str::to_string),
                name: Some(name.clone()),
                subresource: None,
                watch_path: false,
            },
            query: q.clone(),
            headers: ctx.headers.clone(),
            path: ctx.path.clone(),
        };
        match delete_one(&sub, &opts).await {
            Ok(mut o) => {
                set_type_meta(&mut o, info);
                deleted.push(o);
            }
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({
        "kind": format!("{}List", info.kind),
        "apiVersion": info.api_version(),
        "metadata": {"resourceVersion": page.revision.to_string()},
        "items": deleted,
    });
    Ok(json_response(StatusCode::OK, &body))
}
