//! What the server does with an object of one kind beyond the generic write path, in one place per kind, as
//! upstream's registry strategies (`pkg/registry/<group>/<resource>/strategy.go`): the defaults filled on
//! create and on every update, the rule `metadata.name` follows, the kind's validation on create and update,
//! whether writes to the spec bump `metadata.generation`, its columns in `kubectl get` (a `table::Printer`) and
//! the fields its field selectors may name (upstream's field label conversions and `ToSelectableFields`).
//! `admission` and the list and watch handlers ask [`of`] for a kind's strategy and call it; [`of`] is the one
//! place that matches on a kind name for these.
//!
//! `defaulting` and `validation` hold the defaults and checks; a kind's strategy says which of them it runs.
//! Kinds with nothing of their own beyond metadata (Endpoints, Leases, ServiceAccounts...) go through [`Generic`].
//! Allocation (a Service's ClusterIP and node ports) needs the store, so it stays with the handlers
//! (`handlers::service_alloc`), as upstream keeps it in the REST storage rather than the strategy.

mod certificates;
mod core;
mod events;
mod networking;
mod rbac;
mod workloads;

use rkube_apimachinery::validation as names;
use serde_json::Value;

use crate::auth::User;
use crate::registry::ResourceInfo;
use crate::selectors::Field;
use crate::status::Cause;
use crate::table::{self, Printer};
use crate::validation;

/// One kind's behaviour on writes.
pub trait Strategy: Sync {
    /// Fills what a client left out; runs on create and on every update, so it must be idempotent. None by
    /// default.
    fn defaults(&self, _info: &ResourceInfo, _obj: &mut Value) {}

    /// Why `name` is not a valid `metadata.name` for the kind (None: it is). Upstream's default: a DNS-1123
    /// subdomain.
    fn name_error(&self, _info: &ResourceInfo, name: &str) -> Option<String> {
        names::dns1123_subdomain_error(name)
    }

    /// Everything wrong with `obj` (a create when `old` is None, else an update of `old`), metadata first. By
    /// default only the metadata.
    fn validate(&self, info: &ResourceInfo, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        validate_with(self, info, obj, |_| {})
    }

    /// Whether writes set `metadata.generation` (kinds with a spec do; plain data objects do not).
    fn has_generation(&self) -> bool {
        true
    }

    /// The kind's columns in `kubectl get` (server-side Tables): Name and Age by default.
    fn printer(&self) -> &'static Printer {
        &table::GENERIC
    }

    /// The body of a create as `user` sent it, before admission: fields only the server may set (a CSR's
    /// requester). Unchanged by default.
    fn prepare_for_create(&self, _info: &ResourceInfo, obj: Value, _user: &User) -> Value {
        obj
    }

    /// `next`, the client's whole object for a write to `subresource` of `cur` (None: the main resource),
    /// reduced to what that subresource may change beyond the status rule of `admission` (a CSR's `/approval`).
    /// Unchanged by default.
    fn for_subresource(&self, _info: &ResourceInfo, _subresource: Option<&str>, _cur: &Value, next: Value) -> Value {
        next
    }

    /// What the handlers do with the store around the kind's writes, which a strategy cannot (it has no store).
    fn store_hook(&self) -> StoreHook {
        StoreHook::None
    }

    /// The fields a `fieldSelector` on `info` may name besides `metadata.name` and `metadata.namespace`, which
    /// every kind has (`selectors::METADATA_FIELDS`), each with how it is read from an object. None by default.
    fn selectable_fields(&self, _info: &ResourceInfo) -> &'static [Field] {
        &[]
    }
}

/// A kind's work with the store beyond reading and writing its object, carried out by the handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreHook {
    /// Nothing beyond the object's own read and write.
    None,
    /// A Service's ClusterIP and node ports: allocated on create (an existing Service answers AlreadyExists
    /// first), carried over on update, released when it is gone (`handlers::service_alloc`), as upstream's
    /// Service REST storage.
    ServiceAddresses,
    /// An Ingress without a class gets the default IngressClass on create (upstream's DefaultIngressClass
    /// admission, `admission::default_ingress_class`).
    DefaultIngressClass,
}

/// The strategy of `info`'s kind.
pub fn of(info: &ResourceInfo) -> &'static dyn Strategy {
    match info.kind {
        "Namespace" => &core::Namespaces,
        "Service" => &core::Services,
        "ConfigMap" => &core::ConfigMaps,
        "Secret" => &core::Secrets,
        "Node" => &core::Nodes,
        "Pod" => &workloads::Pods,
        "Deployment" => &workloads::Deployments,
        "ReplicaSet" => &workloads::ReplicaSets,
        "ReplicationController" => &workloads::ReplicationControllers,
        "StatefulSet" => &workloads::StatefulSets,
        "DaemonSet" => &workloads::DaemonSets,
        "Job" => &workloads::Jobs,
        "CronJob" => &workloads::CronJobs,
        "Ingress" => &networking::Ingresses,
        "IngressClass" => &networking::IngressClasses,
        "EndpointSlice" => &networking::EndpointSlices,
        "CertificateSigningRequest" => &certificates::CertificateSigningRequests,
        "Role" | "ClusterRole" => &rbac::Roles,
        "RoleBinding" | "ClusterRoleBinding" => &rbac::Bindings,
        "Event" => &events::Events,
        "Endpoints" => &ENDPOINTS,
        "Lease" => &LEASES,
        "ServiceAccount" => &SERVICE_ACCOUNTS,
        "ControllerRevision" => &CONTROLLER_REVISIONS,
        _ => &OTHERS,
    }
}

/// The kinds with no behaviour of their own beyond metadata (and the `metadata.*` field selectors): the defaults of the trait (no defaults, metadata
/// checks, a DNS-1123 subdomain name); `generation` says whether writes bump `metadata.generation`, `printer`
/// is the kind's columns.
pub struct Generic {
    generation: bool,
    printer: &'static Printer,
}

impl Strategy for Generic {
    fn has_generation(&self) -> bool {
        self.generation
    }

    fn printer(&self) -> &'static Printer {
        self.printer
    }
}

static ENDPOINTS: Generic = Generic { generation: false, printer: &table::ENDPOINTS };
static LEASES: Generic = Generic { generation: false, printer: &table::LEASE };
static SERVICE_ACCOUNTS: Generic = Generic { generation: false, printer: &table::SERVICE_ACCOUNT };
static CONTROLLER_REVISIONS: Generic = Generic { generation: true, printer: &table::CONTROLLER_REVISION };
/// LimitRanges and the review kinds.
static OTHERS: Generic = Generic { generation: true, printer: &table::GENERIC };

/// Metadata checks with the strategy's name rule, then `kind`'s own checks.
fn validate_with<S: Strategy + ?Sized>(
    strategy: &S,
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

    #[test]
    fn each_kind_runs_its_own_defaults_and_update_rules() {
        let fields = |causes: Vec<Cause>| causes.into_iter().map(|c| c.field).collect::<Vec<_>>();
        // a Job's completions and a Deployment's selector are frozen, a Pod's containers too
        let job = builtin_of("batch", "jobs");
        let mut j = json!({"metadata": {"name": "j", "namespace": "d"}, "spec": {"completions": 1,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}});
        of(job).defaults(job, &mut j);
        let mut j2 = j.clone();
        j2["spec"]["completions"] = json!(2);
        assert_eq!(fields(of(job).validate(job, &j2, Some(&j))), ["spec.completions"]);
        // an immutable ConfigMap keeps its data; a plain one may change
        let cm = builtin::CONFIG_MAPS;
        let old = json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "1"}});
        let mut new = old.clone();
        new["data"]["a"] = json!("2");
        assert_eq!(fields(of(cm).validate(cm, &new, Some(&old))), ["data"]);
        assert!(of(cm).validate(cm, &json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "2"}}), Some(&json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "1"}}))).is_empty());
        // an EndpointSlice's ports get TCP, an IngressClass's parameters Cluster scope, a Node an empty spec
        let mut es = json!({"metadata": {"name": "e"}, "ports": [{"port": 80}]});
        of(builtin::ENDPOINT_SLICES).defaults(builtin::ENDPOINT_SLICES, &mut es);
        assert_eq!(es["ports"][0]["protocol"], "TCP");
        let mut ic = json!({"metadata": {"name": "i"}, "spec": {"controller": "x.io/c", "parameters": {"kind": "K", "name": "n"}}});
        of(builtin::INGRESS_CLASSES).defaults(builtin::INGRESS_CLASSES, &mut ic);
        assert_eq!(ic["spec"]["parameters"]["scope"], "Cluster");
        let mut node = json!({"metadata": {"name": "n"}});
        of(builtin::NODES).defaults(builtin::NODES, &mut node);
        assert_eq!(node["spec"], json!({}));
        // a Pod's containers are checked on create, its spec frozen on update
        let pod = builtin::PODS;
        let p = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [{"name": "c"}]}});
        assert_eq!(fields(of(pod).validate(pod, &p, None)), ["spec.containers[0].image"]);
    }

    /// Whether `selector` is accepted for `info` and matches `obj`, through `info`'s strategy.
    fn selects(info: &'static ResourceInfo, selector: &str, obj: &Value) -> Result<bool, String> {
        let parsed = rkube_apimachinery::fields::Selector::parse(selector).map_err(|e| e.to_string())?;
        crate::selectors::FieldMatcher::new(parsed, of(info).selectable_fields(info))
            .map(|m| m.matches(obj))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_selects_on_its_own_fields_read_its_own_way() {
        let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1", "restartPolicy": "Always"},
            "status": {"phase": "Running", "podIP": "10.0.0.5"}});
        assert_eq!(selects(builtin::PODS, "spec.nodeName=n1,status.phase!=Failed,status.podIP=10.0.0.5", &pod), Ok(true));
        // a pod without hostNetwork is on the pod network: spec.hostNetwork reads false, as upstream's typed pod
        assert_eq!(selects(builtin::PODS, "spec.hostNetwork=false", &pod), Ok(true));
        assert_eq!(selects(builtin::PODS, "spec.hostNetwork=true", &json!({"spec": {"hostNetwork": true}})), Ok(true));
        assert_eq!(selects(builtin::PODS, "spec.unschedulable=false", &pod), Err("field label not supported: spec.unschedulable".into()));
        // a schedulable node has no spec.unschedulable; it reads false
        assert_eq!(selects(builtin::NODES, "spec.unschedulable=false", &json!({"metadata": {"name": "n"}, "spec": {}})), Ok(true));
        assert_eq!(selects(builtin::NODES, "spec.unschedulable=true", &json!({"spec": {"unschedulable": true}})), Ok(true));
        assert_eq!(selects(builtin::SECRETS, "type=kubernetes.io/tls", &json!({"type": "kubernetes.io/tls"})), Ok(true));
        assert_eq!(selects(builtin::NAMESPACES, "status.phase=Terminating", &json!({"status": {"phase": "Active"}})), Ok(false));
        // a Job's status.successful is its status.succeeded, 0 before any pod succeeded
        let job = builtin_of("batch", "jobs");
        assert_eq!(selects(job, "status.successful=2", &json!({"status": {"succeeded": 2}})), Ok(true));
        assert_eq!(selects(job, "status.successful=0", &json!({"status": {}})), Ok(true));
        let rs = builtin_of("apps", "replicasets");
        assert_eq!(selects(rs, "status.replicas=0", &json!({"spec": {"replicas": 3}})), Ok(true));
        assert_eq!(selects(rs, "status.replicas=3", &json!({"status": {"replicas": 3}})), Ok(true));
        // kinds without fields of their own have only metadata.name and metadata.namespace
        let deploy = builtin::DEPLOYMENTS;
        assert_eq!(selects(deploy, "metadata.name=p,metadata.namespace=d", &pod), Ok(true));
        assert_eq!(selects(deploy, "status.replicas=1", &pod), Err("field label not supported: status.replicas".into()));
    }

    #[test]
    fn each_event_api_selects_on_its_own_names() {
        let core = builtin_of("", "events");
        let new = builtin_of("events.k8s.io", "events");
        let ev = json!({"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Started", "source": {"component": "kubelet"}, "type": "Normal"});
        assert_eq!(selects(core, "involvedObject.kind=Pod,involvedObject.name=p,reason=Started,type=Normal", &ev), Ok(true));
        assert_eq!(selects(core, "source=kubelet", &ev), Ok(true));
        // source falls back to the reporting component for an event written through events.k8s.io/v1
        assert_eq!(selects(core, "source=sched", &json!({"reportingComponent": "sched"})), Ok(true));
        assert_eq!(selects(core, "regarding.name=p", &ev), Err("field label not supported: regarding.name".into()));
        // events.k8s.io/v1 objects are matched as that API serves them
        let served = json!({"regarding": {"name": "p"}, "reportingController": "kubelet"});
        assert_eq!(selects(new, "regarding.name=p,reportingController=kubelet", &served), Ok(true));
        assert_eq!(selects(new, "involvedObject.name=p", &served), Err("field label not supported: involvedObject.name".into()));
    }

    fn builtin_of(group: &str, resource: &str) -> &'static ResourceInfo {
        crate::registry::RESOURCES.iter().find(|r| r.group == group && r.resource == resource).expect("served")
    }
}
