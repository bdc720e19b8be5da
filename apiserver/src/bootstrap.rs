//! The objects a cluster has from its first start: the built-in namespaces, the bootstrap RBAC roles and
//! bindings, and the `kubernetes` Service in `default`. Created through the same create path as any request
//! (defaulting, validation), once; an existing object is left as it is.

use serde_json::json;

use crate::admission::FieldValidation;
use crate::handlers::create::create_object;
use crate::registry;
use crate::state::ApiState;
use crate::status::ApiError;

/// Namespaces that exist from the first start.
pub const BUILTIN_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// A built-in object that could not be created.
#[derive(Debug, thiserror::Error)]
#[error("create built-in object {what}: {message}")]
pub struct BootstrapError {
    pub what: String,
    pub message: String,
}

/// Creates the built-in namespaces, RBAC roles and bindings and the `kubernetes` Service, leaving any that
/// exist as they are.
pub async fn create_builtin_objects(state: &ApiState) -> Result<(), BootstrapError> {
    let ns_info = registry::find("", "v1", "namespaces").expect("namespaces are in the table");
    for ns in BUILTIN_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        if create_if_missing(state, ns_info, None, obj).await? {
            tracing::info!(namespace = ns, "created built-in namespace");
        }
    }
    for (resource, objects) in
        [("clusterroles", crate::auth::bootstrap::cluster_roles()), ("clusterrolebindings", crate::auth::bootstrap::cluster_role_bindings())]
    {
        let info = registry::find(crate::auth::rbac::GROUP, "v1", resource).expect("rbac resources are in the table");
        for obj in objects {
            create_if_missing(state, info, None, obj).await?;
        }
    }
    let svc_info = registry::find("", "v1", "services").expect("services are in the table");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default",
        "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": state.config.first_service_ip().to_string(),
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": state.config.listen.port().max(1)}]}});
    create_if_missing(state, svc_info, Some("default"), svc).await?;
    Ok(())
}

/// Creates a built-in object unless it exists (an existing one is left as it is); true when it was created.
async fn create_if_missing(state: &ApiState, info: &'static registry::ResourceInfo, ns: Option<&str>, obj: serde_json::Value) -> Result<bool, BootstrapError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    match create_object(state, info, ns, obj, FieldValidation::Strict, false).await {
        Ok(_) => Ok(true),
        Err(ApiError { code: 409, .. }) => Ok(false),
        Err(e) => {
            let what = match ns {
                Some(ns) => format!("{} {ns}/{name}", info.singular),
                None => format!("{} {name}", info.singular),
            };
            Err(BootstrapError { what, message: e.message })
        }
    }
}
