//! Namespace deletion: a namespace being deleted is Terminating; this task deletes everything in it (pods on a
//! node are deleted gracefully, so the kubelet finishes them), then removes the `kubernetes` finalizer and the
//! namespace itself. Runs inside the apiserver so namespace deletion works without a controller manager; it is
//! idempotent, so a namespace controller elsewhere can do the same work safely.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::handlers::context::{guarded_update, Ctx, Written};
use crate::handlers::delete::delete_one;
use crate::object;
use crate::registry::{self, RESOURCES};
use crate::request::{Query, Target};
use crate::state::ApiState;
use crate::status::ApiError;
use crate::storage::ListOptions;

/// How often a terminating namespace is re-checked for remaining content.
const RECHECK: Duration = Duration::from_millis(500);

fn ctx(state: &Arc<ApiState>, info: &'static registry::ResourceInfo, ns: Option<&str>, name: &str) -> Ctx {
    Ctx {
        state: state.clone(),
        user: Arc::new(crate::auth::User::internal()),
        target: Target { info, namespace: ns.map(str::to_string), name: Some(name.to_string()), subresource: None, watch_path: false },
        query: Query::default(),
        headers: http::HeaderMap::new(),
        path: String::new(),
    }
}

/// Starts emptying and finalizing namespace `ns` (once per namespace at a time).
pub fn spawn_finalize(state: Arc<ApiState>, ns: String) {
    {
        let Ok(mut running) = state.finalizing.lock() else { return };
        if !running.insert(ns.clone()) {
            return;
        }
    }
    tokio::spawn(async move {
        let result = finalize(&state, &ns).await;
        if let Err(e) = result {
            tracing::warn!(namespace = %ns, error = %e, "namespace finalization stopped");
        }
        if let Ok(mut running) = state.finalizing.lock() {
            running.remove(&ns);
        }
    });
}

async fn finalize(state: &Arc<ApiState>, ns: &str) -> Result<(), ApiError> {
    let ns_info = registry::builtin::NAMESPACES;
    loop {
        let mut remaining = 0usize;
        for info in RESOURCES.iter().filter(|r| r.namespaced) {
            let page = state
                .store
                .list(ListOptions { prefix: info.prefix_for(Some(ns)), ..Default::default() })
                .await
                .map_err(|e| ApiError::from_storage(info, "", e))?;
            for kv in page.items {
                remaining += 1;
                let Ok(obj) = object::decode(&kv) else { continue };
                if object::is_deleting(&obj) {
                    continue;
                }
                let c = ctx(state, info, Some(ns), object::name(&obj));
                match delete_one(&c, &json!({"propagationPolicy": "Background"})).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => tracing::warn!(namespace = ns, resource = info.resource, error = %e, "delete namespace content"),
                }
            }
        }
        if remaining == 0 {
            break;
        }
        tokio::time::sleep(RECHECK).await;
    }
    let c = ctx(state, ns_info, None, ns);
    let written = guarded_update(&c, None, |cur| {
        let mut next = cur.clone();
        let fins: Vec<Value> = cur
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter(|f| f.as_str() != Some("kubernetes")).cloned().collect())
            .unwrap_or_default();
        next["spec"]["finalizers"] = json!(fins);
        Ok(next)
    })
    .await;
    match written {
        Ok(Written::Stored(obj)) => {
            let spec_empty = obj.pointer("/spec/finalizers").and_then(Value::as_array).is_none_or(|a| a.is_empty());
            if spec_empty && object::finalizers(&obj).is_empty() {
                match state.store.delete(&ns_info.key(None, ns), None).await {
                    Ok(_) => tracing::info!(namespace = ns, "namespace deleted"),
                    Err(e) => return Err(ApiError::from_storage(ns_info, ns, e)),
                }
            }
            Ok(())
        }
        Ok(Written::Deleted(_)) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Restarts finalization of namespaces that were terminating when the server stopped.
pub async fn resume(state: Arc<ApiState>) {
    let ns_info = registry::builtin::NAMESPACES;
    let Ok(page) = state.store.list(ListOptions { prefix: ns_info.key_prefix(), ..Default::default() }).await else { return };
    for kv in page.items {
        if let Ok(obj) = object::decode(&kv) {
            if object::is_deleting(&obj) {
                spawn_finalize(state.clone(), object::name(&obj).to_string());
            }
        }
    }
}
