//! What every verb handler stands on: the request context [`Ctx`], reading an object, the namespace check,
//! the guarded read-modify-write, type meta and JSON responses. Below the verb modules (create, get, list,
//! ...) and above the object helpers; the dispatcher in `handlers/mod.rs`, `proxy` and the namespace
//! lifecycle use it too. It imports no verb module.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode};
use serde_json::Value;

use crate::auth::{self, User};
use crate::object;
use crate::registry::{self, ResourceInfo};
use crate::request::{Query, Target};
use crate::state::ApiState;
use crate::status::ApiError;
use crate::storage::{KeyValue, Revision, StorageError};

/// Everything a verb handler needs about one request.
pub struct Ctx {
    /// What every request shares: the store, the configuration, the authorizer's caches.
    pub state: Arc<ApiState>,
    /// Who the request acts as (after impersonation).
    pub user: Arc<User>,
    /// The resource, namespace, name and subresource the path addresses.
    pub target: Target,
    /// The query parameters, parsed once.
    pub query: Query,
    /// The request's headers (content type, accept, impersonation...).
    pub headers: HeaderMap,
    /// The request path as sent.
    pub path: String,
}

impl Ctx {
    /// The addressed resource's row in the resource table.
    pub fn info(&self) -> &'static ResourceInfo {
        self.target.info
    }

    /// The addressed object's name, `""` for a collection.
    pub fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    /// For Roles and bindings: refuses `obj` if it grants more than the requesting user holds.
    pub async fn check_escalation(&self, obj: &Value) -> Result<(), ApiError> {
        auth::rbac::check_escalation(&self.state, &self.user, self.info(), self.target.ns().unwrap_or_default(), obj).await
    }
}

/// A JSON response.
pub fn json_response(code: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Reads one object, with its stored revision.
pub async fn read_object(state: &ApiState, info: &ResourceInfo, key: &str, name: &str) -> Result<Option<(Value, KeyValue)>, ApiError> {
    object::read(state.store.as_ref(), info, key, name).await
}

/// Fails with 404 unless namespace `ns` exists; 403 if it is terminating and `creating`.
pub async fn check_namespace(state: &ApiState, info: &ResourceInfo, ns: &str, name: &str, creating: bool) -> Result<(), ApiError> {
    let ns_info = registry::builtin::NAMESPACES;
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

/// What happened to a guarded write, for [`WriteHook::after_write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// `new` replaced `cur` in the store.
    Stored,
    /// The write removed the object (its last finalizer went).
    Removed,
    /// Nothing was written (a conflict to retry, or an error).
    NotWritten,
}

/// Work tied to a guarded write that needs the store itself: a Service update claims the node ports it newly
/// holds before it is written and releases the ones it dropped after (`service_alloc`).
#[async_trait::async_trait]
pub trait WriteHook: Send + Sync {
    /// Before `new` replaces `cur`: Ok(false) to read, modify and try again (the hook learned something
    /// `modify` needs), an error to fail the write.
    async fn before_write(&self, cur: &Value, new: &Value) -> Result<bool, ApiError>;
    /// After the attempt, whatever its outcome.
    async fn after_write(&self, cur: &Value, new: &Value, outcome: WriteOutcome);
}

/// Read-modify-write with optimistic concurrency. `modify` gets the current object and returns the new one; a
/// `precondition` revision must match the current one (409 otherwise); without it, conflicts are retried.
/// A write that changes nothing is not stored (the resourceVersion stays).
pub async fn guarded_update<F>(ctx: &Ctx, precondition: Option<Revision>, modify: F) -> Result<Written, ApiError>
where
    F: FnMut(&Value) -> Result<Value, ApiError>,
{
    guarded_update_with(ctx, precondition, None, modify).await
}

/// [`guarded_update`] with a [`WriteHook`] around each write attempt.
pub async fn guarded_update_with<F>(ctx: &Ctx, precondition: Option<Revision>, hook: Option<&dyn WriteHook>, mut modify: F) -> Result<Written, ApiError>
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
        crate::admission::node_restriction::admit_write(&ctx.user, info, ctx.target.subresource.as_deref().unwrap_or_default(), &cur, &new)?;
        object::set_resource_version(&mut new, kv.mod_revision);
        if new == cur {
            return Ok(Written::Stored(cur));
        }
        let finalized = object::ready_to_remove(info.resource, &new);
        if ctx.query.dry_run {
            return Ok(if finalized { Written::Deleted(new) } else { Written::Stored(new) });
        }
        if let Some(hook) = hook {
            if !hook.before_write(&cur, &new).await? {
                continue;
            }
        }
        let result = if finalized {
            ctx.state.store.delete(&key, Some(kv.mod_revision)).await.map(|(_, rev)| rev)
        } else {
            ctx.state.store.update(&key, object::encode_for(info, &new), kv.mod_revision).await.map(|kv2| kv2.mod_revision)
        };
        let outcome = match (&result, finalized) {
            (Ok(_), true) => WriteOutcome::Removed,
            (Ok(_), false) => WriteOutcome::Stored,
            (Err(_), _) => WriteOutcome::NotWritten,
        };
        if let Some(hook) = hook {
            hook.after_write(&cur, &new, outcome).await;
        }
        match result {
            Ok(rev) => {
                object::set_resource_version(&mut new, rev);
                return Ok(if finalized { Written::Deleted(new) } else { Written::Stored(new) });
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
