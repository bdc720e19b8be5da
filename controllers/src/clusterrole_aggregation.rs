//! ClusterRole aggregation: a ClusterRole with an `aggregationRule` gets the rules of every ClusterRole its
//! selectors match, in name order without repeats, as upstream's clusterrole-aggregation controller. This is
//! how the built-in `view` < `edit` < `admin` chain is kept, and how a ClusterRole labelled
//! `rbac.authorization.k8s.io/aggregate-to-view: "true"` extends `view`.

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use crate::context::{ReconcileError, Shared};
use rkube_apimachinery::labels::selector_matches;

/// ClusterRole aggregation controller state.
pub struct AggregationCtx {
    /// The client, configuration and caches every controller shares.
    pub shared: Arc<Shared>,
    /// Every ClusterRole (the fan-out's store that `aggregators` reads to requeue).
    pub roles: Store<ClusterRole>,
}

/// The rules `role` aggregates from `all`, or None when it has no aggregationRule.
pub fn aggregated_rules(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Option<Vec<PolicyRule>> {
    let selectors = role.aggregation_rule.as_ref()?.cluster_role_selectors.as_deref().unwrap_or_default();
    let mut sources: Vec<&Arc<ClusterRole>> = all
        .iter()
        .filter(|r| r.metadata.name != role.metadata.name)
        .filter(|r| selectors.iter().any(|s| selector_matches(s, r.metadata.labels.as_ref())))
        .collect();
    sources.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut rules: Vec<PolicyRule> = Vec::new();
    for rule in sources.iter().flat_map(|r| r.rules.iter().flatten()) {
        if !rules.contains(rule) {
            rules.push(rule.clone());
        }
    }
    Some(rules)
}

/// Collects from a fresh list of every ClusterRole, not from a watch cache: a cache that is re-listing holds the
/// new objects back until the list ends while already announcing them, so a role requeued for a new source could
/// read a cache without it, find nothing to change and never be requeued again (seen under load). ClusterRoles
/// change rarely and there are a few dozen, so one list per aggregating role's reconcile costs little.
pub async fn reconcile(role: Arc<ClusterRole>, ctx: Arc<AggregationCtx>) -> Result<Requeue, ReconcileError> {
    if role.aggregation_rule.is_none() {
        return Ok(Requeue::await_change());
    }
    // until the fan-out has listed once, a role created now would be announced while its store is still empty
    // (so nothing would be requeued for it): wait, then the list below is at least as new as that first list
    if ctx.roles.wait_until_ready().await.is_err() {
        return Ok(Requeue::requeue(std::time::Duration::from_secs(1)));
    }
    let name = role.name_any();
    let api: Api<ClusterRole> = Api::all(ctx.shared.client.clone());
    let all: Vec<Arc<ClusterRole>> = api
        .list(&ListParams::default())
        .await
        .map_err(ReconcileError::api(format!("list cluster roles to aggregate into {name}")))?
        .items
        .into_iter()
        .map(Arc::new)
        .collect();
    // the listed copy is at least as new as the one the controller was handed
    let Some(current) = all.iter().find(|r| r.metadata.name.as_deref() == Some(name.as_str())) else {
        return Ok(Requeue::await_change());
    };
    let Some(rules) = aggregated_rules(current, &all) else { return Ok(Requeue::await_change()) };
    if current.rules.as_deref().unwrap_or_default() == rules.as_slice() {
        return Ok(Requeue::await_change());
    }
    let patch = serde_json::json!({"rules": rules});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(ReconcileError::api(format!("aggregate rules into clusterrole {name}")))?;
    tracing::info!(clusterrole = %name, rules = rules.len(), "aggregated cluster role rules");
    Ok(Requeue::await_change())
}

/// Any ClusterRole change may change what the aggregating ones collect: requeue those.
pub fn aggregators(store: Store<ClusterRole>) -> impl Fn(ClusterRole) -> Vec<ObjectRef<ClusterRole>> {
    move |_changed| store.state().iter().filter(|r| r.aggregation_rule.is_some()).map(|r| ObjectRef::from(r.as_ref())).collect()
}

/// Fires once, when the fan-out's store has its first list. A role that existed before that list reaches
/// [`aggregators`] while the store is still empty (a reflector shows its first list only once whole), so nothing
/// is requeued for it; and the controller's own first reconcile of `view` may have listed the roles before that
/// role was created. One reconcile of every aggregating role after the store is whole closes that gap.
pub fn once_ready(store: Store<ClusterRole>) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::once(async move {
        let _ = store.wait_until_ready().await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn role(name: &str, label: Option<&str>, verbs: &[&str], aggregates: Option<&str>) -> Arc<ClusterRole> {
        Arc::new(ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: label.map(|l| [(l.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            rules: Some(vec![PolicyRule { verbs: verbs.iter().map(|v| v.to_string()).collect(), api_groups: Some(vec![String::new()]), resources: Some(vec!["pods".into()]), ..Default::default() }]),
            aggregation_rule: aggregates.map(|l| AggregationRule {
                cluster_role_selectors: Some(vec![LabelSelector { match_labels: Some([(l.to_string(), "true".to_string())].into()), ..Default::default() }]),
            }),
        })
    }

    #[test]
    fn collects_matching_roles_in_name_order_without_repeats() {
        let all = vec![
            role("z-extra", Some("to-view"), &["get"], None),
            role("a-extra", Some("to-view"), &["list"], None),
            role("same", Some("to-view"), &["get"], None),
            role("other", Some("to-edit"), &["delete"], None),
            role("view", None, &["watch"], Some("to-view")),
        ];
        let rules = aggregated_rules(&all[4], &all).expect("aggregates");
        let verbs: Vec<&str> = rules.iter().map(|r| r.verbs[0].as_str()).collect();
        assert_eq!(verbs, ["list", "get"], "a-extra, then same (z-extra repeats it); its own old rules go");
        assert!(aggregated_rules(&all[0], &all).is_none());
    }

    #[test]
    fn built_in_roles_are_already_what_aggregation_makes() {
        let all: Vec<Arc<ClusterRole>> = rkube_apiserver::auth::bootstrap::cluster_roles()
            .into_iter()
            .map(|r| Arc::new(serde_json::from_value(r).expect("a ClusterRole")))
            .collect();
        let mut aggregating = 0;
        for role in &all {
            if let Some(rules) = aggregated_rules(role, &all) {
                aggregating += 1;
                assert_eq!(Some(&rules), role.rules.as_ref(), "{:?}: the controller would rewrite it at start", role.metadata.name);
            }
        }
        assert_eq!(aggregating, 3, "admin, edit, view");
    }
}
