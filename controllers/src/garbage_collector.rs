//! Garbage collector: deletes objects whose owners are gone (Background), deletes dependents of an owner
//! being deleted in the Foreground and lifts its `foregroundDeletion` finalizer once no blocking dependent is
//! left, and for Orphan deletes strips the owner reference from dependents then lifts the `orphan` finalizer.
//!
//! [`plan`] is a pure function over a snapshot of the object graph; the apiserver sets the finalizers from the
//! DELETE's propagationPolicy, this controller does the rest.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The finalizer of an owner deleted with `propagationPolicy=Foreground`: it goes once its blocking dependents
/// are gone.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an owner deleted with `propagationPolicy=Orphan`: its dependents lose their reference to it
/// and stay.
pub const FINALIZER_ORPHAN: &str = "orphan";

/// One object in the graph. `kind` + `namespace` + `name` locate it for API calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The object's uid, which owner references name.
    pub uid: String,
    /// Its apiVersion.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its namespace, None for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// `metadata.ownerReferences`: the edges to its owners.
    pub owners: Vec<OwnerReference>,
    /// It has a deletionTimestamp.
    pub deleting: bool,
    /// `metadata.finalizers` ([`FINALIZER_FOREGROUND`], [`FINALIZER_ORPHAN`] are the collector's).
    pub finalizers: Vec<String>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcAction {
    /// Delete this object with this propagation policy ("Background" / "Foreground").
    Delete {
        /// The object.
        uid: String,
        /// The propagation policy of the delete.
        propagation: &'static str,
    },
    /// Remove these owner uids, which are gone, from the object's ownerReferences.
    RemoveOwners {
        /// The object.
        uid: String,
        /// The uids of the owners that are gone.
        owners: Vec<String>,
    },
    /// Detach the object from an owner that is still there but being deleted (Orphan propagation, or a
    /// Foreground delete whose remaining dependents do not block it).
    Release {
        /// The dependent.
        uid: String,
        /// The uid of the owner it is detached from.
        owner: String,
    },
    /// Remove this finalizer from the object.
    RemoveFinalizer {
        /// The object.
        uid: String,
        /// The finalizer ([`FINALIZER_FOREGROUND`] or [`FINALIZER_ORPHAN`]).
        finalizer: &'static str,
    },
}

/// Decide GC actions. `known_kinds` are the (apiVersion-less) kinds this collector watches: an owner
/// reference to any other kind is never considered dangling (we cannot see it).
pub fn plan(nodes: &[Node], known_kinds: &HashSet<String>) -> Vec<GcAction> {
    let by_uid: HashMap<&str, &Node> = nodes.iter().map(|n| (n.uid.as_str(), n)).collect();
    let mut dependents: HashMap<&str, Vec<&Node>> = HashMap::new();
    for n in nodes {
        for o in &n.owners {
            dependents.entry(o.uid.as_str()).or_default().push(n);
        }
    }
    let mut out = Vec::new();
    // owners being deleted with a propagation finalizer
    for owner in nodes.iter().filter(|n| n.deleting) {
        let deps = dependents.get(owner.uid.as_str()).cloned().unwrap_or_default();
        if owner.finalizers.iter().any(|f| f == FINALIZER_ORPHAN) {
            // the finalizer goes only once the cache shows every dependent released, so no later pass can
            // mistake a dependent still pointing at the vanished owner for garbage
            for d in &deps {
                out.push(GcAction::Release { uid: d.uid.clone(), owner: owner.uid.clone() });
            }
            if deps.is_empty() {
                out.push(GcAction::RemoveFinalizer { uid: owner.uid.clone(), finalizer: FINALIZER_ORPHAN });
            }
            continue;
        }
        if owner.finalizers.iter().any(|f| f == FINALIZER_FOREGROUND) {
            let mut blocking = 0;
            for d in &deps {
                let r = d.owners.iter().find(|o| o.uid == owner.uid);
                if r.is_some_and(|r| r.block_owner_deletion == Some(true)) {
                    blocking += 1;
                }
                if !d.deleting {
                    out.push(GcAction::Delete { uid: d.uid.clone(), propagation: "Foreground" });
                }
            }
            if deps.is_empty() {
                out.push(GcAction::RemoveFinalizer { uid: owner.uid.clone(), finalizer: FINALIZER_FOREGROUND });
            } else if blocking == 0 {
                // the dependents left don't block: detach them, the finalizer goes on a later pass
                for d in &deps {
                    out.push(GcAction::Release { uid: d.uid.clone(), owner: owner.uid.clone() });
                }
            }
        }
    }
    // dependents whose owners are gone
    for n in nodes.iter().filter(|n| !n.owners.is_empty() && !n.deleting) {
        let mut absent = Vec::new();
        let mut present = 0;
        let mut unknown = 0;
        for o in &n.owners {
            match by_uid.get(o.uid.as_str()) {
                // an owner in another namespace cannot own a namespaced dependent: treat as absent
                Some(owner) if owner.namespace.is_none() || owner.namespace == n.namespace => present += 1,
                Some(_) => absent.push(o.uid.clone()),
                None if known_kinds.contains(&o.kind) => absent.push(o.uid.clone()),
                None => unknown += 1,
            }
        }
        if absent.is_empty() {
            continue;
        }
        if present == 0 && unknown == 0 {
            out.push(GcAction::Delete { uid: n.uid.clone(), propagation: "Background" });
        } else {
            out.push(GcAction::RemoveOwners { uid: n.uid.clone(), owners: absent });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(uid: &str, kind: &str, owners: &[(&str, &str, bool)]) -> Node {
        Node {
            uid: uid.into(),
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: Some("default".into()),
            name: uid.into(),
            owners: owners
                .iter()
                .map(|(u, k, block)| OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: k.to_string(),
                    name: u.to_string(),
                    uid: u.to_string(),
                    controller: Some(true),
                    block_owner_deletion: Some(*block),
                })
                .collect(),
            deleting: false,
            finalizers: vec![],
        }
    }

    fn kinds() -> HashSet<String> {
        ["ReplicaSet", "Pod", "Deployment"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn background_deletes_dependents_of_missing_owner_only() {
        let pods = [node("p1", "Pod", &[("rs1", "ReplicaSet", true)]), node("p2", "Pod", &[("x", "Widget", true)])];
        assert_eq!(plan(&pods, &kinds()), vec![GcAction::Delete { uid: "p1".into(), propagation: "Background" }]);
        let with_owner = [node("rs1", "ReplicaSet", &[]), pods[0].clone()];
        assert_eq!(plan(&with_owner, &kinds()), vec![]);
    }

    #[test]
    fn one_of_two_owners_gone_removes_the_reference() {
        let p = node("p1", "Pod", &[("rs1", "ReplicaSet", true), ("rs2", "ReplicaSet", false)]);
        let acts = plan(&[node("rs2", "ReplicaSet", &[]), p], &kinds());
        assert_eq!(acts, vec![GcAction::RemoveOwners { uid: "p1".into(), owners: vec!["rs1".into()] }]);
    }

    #[test]
    fn orphan_strips_references_then_finalizer() {
        let mut rs = node("rs1", "ReplicaSet", &[]);
        rs.deleting = true;
        rs.finalizers = vec![FINALIZER_ORPHAN.into()];
        let acts = plan(&[rs.clone(), node("p1", "Pod", &[("rs1", "ReplicaSet", true)])], &kinds());
        assert_eq!(acts, vec![GcAction::Release { uid: "p1".into(), owner: "rs1".into() }]);
        // once the dependent shows no reference, the finalizer goes
        let acts = plan(&[rs, node("p1", "Pod", &[])], &kinds());
        assert_eq!(acts, vec![GcAction::RemoveFinalizer { uid: "rs1".into(), finalizer: FINALIZER_ORPHAN }]);
    }

    #[test]
    fn foreground_waits_for_blocking_dependents() {
        let mut d = node("d1", "Deployment", &[]);
        d.deleting = true;
        d.finalizers = vec![FINALIZER_FOREGROUND.into()];
        let rs = node("rs1", "ReplicaSet", &[("d1", "Deployment", true)]);
        let acts = plan(&[d.clone(), rs.clone()], &kinds());
        assert_eq!(acts, vec![GcAction::Delete { uid: "rs1".into(), propagation: "Foreground" }]);
        // rs being deleted: no second delete, owner still waits
        let mut rs_deleting = rs;
        rs_deleting.deleting = true;
        assert_eq!(plan(&[d.clone(), rs_deleting], &kinds()), vec![]);
        // dependents gone: finalizer lifted
        assert_eq!(
            plan(&[d], &kinds()),
            vec![GcAction::RemoveFinalizer { uid: "d1".into(), finalizer: FINALIZER_FOREGROUND }]
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// kube-rs wiring
// ---------------------------------------------------------------------------------------------------------

use futures::StreamExt;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::runtime::reflector::{self, Store};

use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::context::{is_not_found, Config};

/// The kinds the collector watches (owners and dependents).
pub fn watched_resources() -> Vec<(ApiResource, bool)> {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core, discovery::v1 as disc};
    vec![
        (ApiResource::erase::<core::Pod>(&()), true),
        (ApiResource::erase::<core::Service>(&()), true),
        (ApiResource::erase::<core::Endpoints>(&()), true),
        (ApiResource::erase::<core::ConfigMap>(&()), true),
        (ApiResource::erase::<core::Secret>(&()), true),
        (ApiResource::erase::<core::ReplicationController>(&()), true),
        (ApiResource::erase::<core::ServiceAccount>(&()), true),
        (ApiResource::erase::<core::Node>(&()), false),
        (ApiResource::erase::<apps::ReplicaSet>(&()), true),
        (ApiResource::erase::<apps::Deployment>(&()), true),
        (ApiResource::erase::<apps::DaemonSet>(&()), true),
        (ApiResource::erase::<apps::StatefulSet>(&()), true),
        (ApiResource::erase::<batch::Job>(&()), true),
        (ApiResource::erase::<batch::CronJob>(&()), true),
        (ApiResource::erase::<disc::EndpointSlice>(&()), true),
    ]
}

fn api_for(client: &Client, ar: &ApiResource, namespaced: bool, ns: Option<&str>) -> Api<DynamicObject> {
    match (namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, ar),
        _ => Api::all_with(client.clone(), ar),
    }
}

/// Run the garbage collector until the client goes away.
pub async fn run(client: Client, config: Config) {
    let resources = watched_resources();
    let mut stores: Vec<(ApiResource, bool, Store<DynamicObject>)> = Vec::new();
    for (ar, namespaced) in resources {
        let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
        let store = writer.as_reader();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let kind = ar.kind.clone();
        tokio::spawn(async move {
            let mut s = watcher(api, watcher::Config::default()).default_backoff().reflect(writer).boxed();
            while let Some(ev) = s.next().await {
                if let Err(e) = ev {
                    tracing::debug!(kind = %kind, error = %e, "gc watch error, retrying");
                }
            }
        });
        stores.push((ar, namespaced, store));
    }
    for (ar, _, s) in &stores {
        if s.wait_until_ready().await.is_err() {
            tracing::warn!(kind = %ar.kind, "gc store never became ready");
        }
    }
    let known: HashSet<String> = stores.iter().map(|(ar, _, _)| ar.kind.clone()).collect();
    tracing::info!(kinds = known.len(), "garbage collector started");
    let mut tick = tokio::time::interval(config.gc_period);
    loop {
        tick.tick().await;
        let mut nodes = Vec::new();
        let mut where_: HashMap<String, (ApiResource, bool, Option<String>, String, Vec<OwnerReference>, Vec<String>)> = HashMap::new();
        for (ar, namespaced, store) in &stores {
            for o in store.state() {
                let Some(uid) = o.uid() else { continue };
                let owners = o.metadata.owner_references.clone().unwrap_or_default();
                let finalizers = o.metadata.finalizers.clone().unwrap_or_default();
                where_.insert(uid.clone(), (ar.clone(), *namespaced, o.namespace(), o.name_any(), owners.clone(), finalizers.clone()));
                nodes.push(Node {
                    uid,
                    api_version: ar.api_version.clone(),
                    kind: ar.kind.clone(),
                    namespace: o.namespace(),
                    name: o.name_any(),
                    owners,
                    deleting: o.metadata.deletion_timestamp.is_some(),
                    finalizers,
                });
            }
        }
        for action in plan(&nodes, &known) {
            let uid = match &action {
                GcAction::Delete { uid, .. }
                | GcAction::RemoveOwners { uid, .. }
                | GcAction::Release { uid, .. }
                | GcAction::RemoveFinalizer { uid, .. } => uid.clone(),
            };
            let Some((ar, namespaced, ns, name, owners, finalizers)) = where_.get(&uid) else { continue };
            let api = api_for(&client, ar, *namespaced, ns.as_deref());
            // the caches may lag: confirm with a live read that owners called absent really are gone (a
            // Release detaches from an owner that is still there on purpose, so it skips this check)
            if matches!(action, GcAction::Delete { propagation: "Background", .. } | GcAction::RemoveOwners { .. }) {
                let gone: Vec<&OwnerReference> = match &action {
                    GcAction::RemoveOwners { owners: gone, .. } => owners.iter().filter(|o| gone.contains(&o.uid)).collect(),
                    _ => owners.iter().collect(),
                };
                let mut still_there = false;
                for o in gone {
                    let Some((oar, onamespaced, _)) = stores.iter().find(|(a, _, _)| a.kind == o.kind) else { continue };
                    let oapi = api_for(&client, oar, *onamespaced, ns.as_deref());
                    match oapi.get_opt(&o.name).await {
                        Ok(Some(live)) if live.uid().as_deref() == Some(o.uid.as_str()) => still_there = true,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(owner = %o.name, error = %e, "gc owner check failed");
                            still_there = true;
                        }
                    }
                }
                if still_there {
                    continue;
                }
                // and that the dependent itself still names the owners we think are gone
                match api.get_opt(name).await {
                    Ok(Some(live)) => {
                        let live_uids: Vec<String> =
                            live.metadata.owner_references.iter().flatten().map(|o| o.uid.clone()).collect();
                        let cached: Vec<String> = owners.iter().map(|o| o.uid.clone()).collect();
                        if live_uids != cached {
                            continue;
                        }
                    }
                    Ok(None) => continue,
                    Err(_) => continue,
                }
            }
            let result = match &action {
                GcAction::Delete { propagation, .. } => {
                    let pp = if *propagation == "Foreground" { PropagationPolicy::Foreground } else { PropagationPolicy::Background };
                    let dp = DeleteParams { propagation_policy: Some(pp), ..Default::default() };
                    tracing::info!(kind = %ar.kind, object = %name, propagation, "garbage collecting");
                    api.delete(name, &dp).await.map(|_| ())
                }
                GcAction::RemoveOwners { owners: gone, .. } => {
                    let kept: Vec<&OwnerReference> = owners.iter().filter(|o| !gone.contains(&o.uid)).collect();
                    let patch = json!({"metadata": {"ownerReferences": kept}});
                    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
                }
                GcAction::Release { owner, .. } => {
                    let kept: Vec<&OwnerReference> = owners.iter().filter(|o| &o.uid != owner).collect();
                    let patch = json!({"metadata": {"ownerReferences": kept}});
                    tracing::info!(kind = %ar.kind, object = %name, owner = %owner, "orphaning");
                    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
                }
                GcAction::RemoveFinalizer { finalizer, .. } => {
                    let kept: Vec<&String> = finalizers.iter().filter(|f| f.as_str() != *finalizer).collect();
                    let patch = json!({"metadata": {"finalizers": kept}});
                    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
                }
            };
            match result {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => tracing::warn!(kind = %ar.kind, object = %name, error = %e, "garbage collection step failed"),
            }
        }
    }
}
