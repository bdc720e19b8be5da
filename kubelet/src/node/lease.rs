//! The node's Lease in `kube-node-lease`: holder = node name, 40 s duration, renewed every 10 s; the node
//! lifecycle controller marks the node NotReady when renewals stop.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};

/// Namespace holding node leases.
pub const NAMESPACE: &str = "kube-node-lease";
/// Lease duration.
pub const DURATION_SECONDS: i32 = 40;

/// The Lease object for `node` renewed at `now` (owned by the Node so it goes with it).
pub fn lease(node: &str, node_uid: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> Lease {
    let owner = node_uid.map(|uid| {
        vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node.into(),
            uid: uid.into(),
            ..Default::default()
        }]
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(node.into()),
            namespace: Some(NAMESPACE.into()),
            owner_references: owner,
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.into()),
            lease_duration_seconds: Some(DURATION_SECONDS),
            renew_time: Some(MicroTime(crate::time::to_k8s(now).0)),
            ..Default::default()
        }),
    }
}

/// Creates or renews the lease.
pub async fn renew(client: &kube::Client, node: &str, node_uid: Option<&str>) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let l = lease(node, node_uid, chrono::Utc::now());
    match api.get_opt(node).await? {
        None => match api.create(&PostParams::default(), &l).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        },
        Some(_) => {
            let patch = serde_json::json!({"spec": {"holderIdentity": node, "renewTime": l.spec.as_ref().and_then(|s| s.renew_time.clone()), "leaseDurationSeconds": DURATION_SECONDS}});
            api.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_shape() {
        let now = chrono::Utc::now();
        let l = lease("n1", Some("uid"), now);
        assert_eq!(l.metadata.namespace.as_deref(), Some(NAMESPACE));
        let spec = l.spec.expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert!(spec.renew_time.is_some());
        assert_eq!(l.metadata.owner_references.expect("owner")[0].kind, "Node");
    }
}
