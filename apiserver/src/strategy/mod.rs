//! What the server does with an object of one kind beyond the generic write path, in one place per kind, as
//! upstream's registry strategies (`pkg/registry/<group>/<resource>/strategy.go`): the defaults filled on
//! create and on every update, the rule `metadata.name` follows, the kind's validation on create and update,
//! and whether writes to the spec bump `metadata.generation`. `admission` asks [`of`] for a kind's strategy and
//! calls it; [`of`] is the one place that matches on a kind name for these.
//!
//! Kinds move here one at a time: Namespace, Service and the RBAC kinds have their own strategy; the others
//! still go through [`Generic`], which runs the per-kind tables in `defaulting` and `validation`.
//! Allocation (a Service's ClusterIP and node ports) needs the store, so it stays with the handlers
//! (`handlers::service_alloc`), as upstream keeps it in the REST storage rather than the strategy.

mod core;
mod rbac;

use rkube_apimachinery::validation as names;
use serde_json::Value;

use crate::registry::ResourceInfo;
use crate::status::Cause;
use crate::{defaulting, validation};

/// One kind's behaviour on writes.
pub trait Strategy: Sync {
    /// Fills what a client left out; runs on create and on every update, so it must be idempotent.
    fn defaults(&self, info: &ResourceInfo, obj: &mut Value);

    /// Why `name` is not a valid `metadata.name` for the kind (None: it is). Upstream's default: a DNS-1123
    /// subdomain.
    fn name_error(&self, _info: &ResourceInfo, name: &str) -> Option<String> {
        names::dns1123_subdomain_error(name)
    }

    /// Everything wrong with `obj` (a create when `old` is None, else an update of `old`), metadata first.
    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause>;

    /// Whether writes set `metadata.generation` (kinds with a spec do; plain data objects do not).
    fn has_generation(&self) -> bool {
        true
    }
}

/// The strategy of `info`'s kind.
pub fn of(info: &ResourceInfo) -> &'static dyn Strategy {
    match info.kind {
        "Namespace" => &core::Namespaces,
        "Service" => &core::Services,
        "Role" | "ClusterRole" => &rbac::Roles,
        "RoleBinding" | "ClusterRoleBinding" => &rbac::Bindings,
        "ConfigMap" | "Secret" | "Event" | "Endpoints" | "EndpointSlice" | "Lease" | "ServiceAccount" => &Generic { generation: false },
        _ => &Generic { generation: true },
    }
}

/// The kinds without a strategy of their own yet: the per-kind tables of `defaulting` and `validation`.
pub struct Generic {
    generation: bool,
}

impl Strategy for Generic {
    fn defaults(&self, info: &ResourceInfo, obj: &mut Value) {
        defaulting::apply(info, obj);
    }

    fn name_error(&self, info: &ResourceInfo, name: &str) -> Option<String> {
        validation::name_error(info, name)
    }

    fn validate(&self, info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        validation::validate(info, obj, old)
    }

    fn has_generation(&self) -> bool {
        self.generation
    }
}

/// Metadata checks with the strategy's name rule, then `kind`'s own checks.
fn validate_with(
    strategy: &dyn Strategy,
    info: &ResourceInfo,
    obj: &Value,
    kind: impl FnOnce(&mut Vec<Cause>),
) -> Vec<Cause> {
    let mut causes = Vec::new();
    validation::validate_meta(info, obj, &|name| strategy.name_error(info, name), &mut causes);
    kind(&mut causes);
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin;
    use serde_json::json;

    #[test]
    fn each_kind_keeps_its_name_rule() {
        // a Service name is a DNS-1035 label (no leading digit), a Namespace a DNS-1123 label, RBAC names any
        // path segment, the rest DNS-1123 subdomains
        assert!(of(builtin::SERVICES).name_error(builtin::SERVICES, "1web").is_some());
        assert!(of(builtin::NAMESPACES).name_error(builtin::NAMESPACES, "a.b").is_some());
        assert!(of(builtin::CLUSTER_ROLES).name_error(builtin::CLUSTER_ROLES, "system:metrics-server").is_none());
        assert!(of(builtin::CONFIG_MAPS).name_error(builtin::CONFIG_MAPS, "a.b").is_none());
        assert!(of(builtin::CONFIG_MAPS).name_error(builtin::CONFIG_MAPS, "system:x").is_some());
    }

    #[test]
    fn generation_only_for_kinds_with_a_spec() {
        assert!(of(builtin::DEPLOYMENTS).has_generation());
        assert!(of(builtin::SERVICES).has_generation());
        assert!(!of(builtin::CONFIG_MAPS).has_generation());
        assert!(!of(builtin::LEASES).has_generation());
    }

    #[test]
    fn a_service_is_defaulted_and_validated_by_its_strategy() {
        let s = of(builtin::SERVICES);
        let mut svc = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"type": "Nope", "ports": [{"port": 80}, {"port": 70000}]}});
        s.defaults(builtin::SERVICES, &mut svc);
        assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
        let fields: Vec<String> = s.validate(builtin::SERVICES, &svc, None).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["spec.type", "spec.ports[0].name", "spec.ports[1].port", "spec.ports[1].name"]);
        let old = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}});
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.96.0.6");
        let fields: Vec<String> = s.validate(builtin::SERVICES, &new, Some(&old)).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["spec.clusterIP"]);
    }
}
