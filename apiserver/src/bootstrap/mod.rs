//! The objects a cluster has from its first start: the built-in namespaces, the bootstrap RBAC roles and
//! bindings, the `kubernetes` Service in `default` and, with `cluster_dns` set, the `kube-dns` Service in
//! kube-system. Created through the same create path as any request (defaulting, validation), once; an
//! existing object is left as it is. The `kubernetes` Service's endpoints are kept by `endpoints`, the lease
//! reconciler every server with an advertised address runs.

pub mod endpoints;

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
    /// The object (`namespace default`, `service kubernetes`...).
    pub what: String,
    /// Why the store refused it.
    pub message: String,
}

/// Creates the built-in namespaces, RBAC roles and bindings, the `kubernetes` Service and the `kube-dns`
/// Service (with `cluster_dns`), leaving any that exist as they are.
pub async fn create_builtin_objects(state: &ApiState) -> Result<(), BootstrapError> {
    let ns_info = registry::builtin::NAMESPACES;
    for ns in BUILTIN_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        if create_if_missing(state, ns_info, None, obj).await? {
            tracing::info!(namespace = ns, "created built-in namespace");
        }
    }
    for (info, objects) in [
        (registry::builtin::CLUSTER_ROLES, crate::auth::bootstrap::cluster_roles()),
        (registry::builtin::CLUSTER_ROLE_BINDINGS, crate::auth::bootstrap::cluster_role_bindings()),
    ] {
        for obj in objects {
            create_if_missing(state, info, None, obj).await?;
        }
    }
    let svc_info = registry::builtin::SERVICES;
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default",
        "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": state.config.first_service_ip().to_string(),
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": state.config.listen.port().max(1)}]}});
    create_if_missing(state, svc_info, Some("default"), svc).await?;
    if let Some(ip) = state.config.cluster_dns {
        create_kube_dns(state, svc_info, ip).await?;
    }
    Ok(())
}

/// The `kube-dns` Service in kube-system with ClusterIP `ip` (53/UDP and 53/TCP). It has no selector: every
/// kubelet answers DNS at that address itself (kubelet/src/dns), so there are no DNS pods to select. An
/// existing one keeps its ClusterIP (with a warning when it is not `ip`).
async fn create_kube_dns(state: &ApiState, info: &'static registry::ResourceInfo, ip: std::net::Ipv4Addr) -> Result<(), BootstrapError> {
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "rkube-dns"}},
        "spec": {"clusterIP": ip.to_string(),
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}});
    if create_if_missing(state, info, Some("kube-system"), svc).await? {
        tracing::info!(cluster_ip = %ip, "created service kube-system/kube-dns");
        return Ok(());
    }
    let key = info.key(Some("kube-system"), "kube-dns");
    if let Ok(Some((existing, _))) = crate::object::read(state.store.as_ref(), info, &key, "kube-dns").await {
        let have = existing.pointer("/spec/clusterIP").and_then(serde_json::Value::as_str).unwrap_or_default();
        if have != ip.to_string() {
            tracing::warn!(cluster_ip = %have, wanted = %ip, "service kube-system/kube-dns keeps its ClusterIP; pods' resolv.conf uses the kubelet's --cluster-dns");
        }
    }
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
