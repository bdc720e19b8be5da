//! ServiceAccount controller: every namespace that is not terminating has a ServiceAccount named `default`
//! (re-created if deleted).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use crate::context::{is_conflict, ReconcileError, Shared};

/// Ensure `default` exists in this namespace.
pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Shared>) -> Result<Requeue, ReconcileError> {
    let name = ns.name_any();
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Ok(Requeue::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    let exists = api.get_opt("default").await.map_err(ReconcileError::api(format!("get serviceaccount {name}/default")))?;
    if exists.is_none() {
        let sa = ServiceAccount {
            metadata: ObjectMeta { name: Some("default".into()), namespace: Some(name.clone()), ..Default::default() },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => tracing::info!(namespace = %name, "created default service account"),
            Err(e) if is_conflict(&e) => {}
            // the namespace started terminating meanwhile: nothing to do
            Err(kube::Error::Api(s)) if s.code == 403 => {}
            Err(e) => return Err(ReconcileError::Api { what: format!("create serviceaccount {name}/default"), source: e }),
        }
    }
    Ok(Requeue::requeue(Duration::from_secs(600)))
}

/// A ServiceAccount event re-checks its namespace (so a deleted `default` comes back).
pub fn sa_to_namespace(sa: ServiceAccount) -> Option<ObjectRef<Namespace>> {
    sa.namespace().map(|ns| ObjectRef::new(&ns))
}
