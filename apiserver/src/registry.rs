//! The resource table: every group/version/resource the server serves, with its kind, scope, short names,
//! categories, subresources and typed checks. Routing, discovery, OpenAPI, Table output and storage keys are all
//! driven from this one table; adding a resource is adding a row here.

use serde_json::{json, Value};

/// A subresource of a resource (`pods/status`, `deployments/scale`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// The subresource's path segment after the object's name (`status`, `scale`, `binding`, `log`...).
    pub name: &'static str,
    /// Kind of the body served at this subresource (`Scale`, `Binding`, the parent's kind for `status`).
    pub kind: &'static str,
    /// API group of the body (`autoscaling` for a `Scale`), which may differ from the parent's.
    pub group: &'static str,
    /// API version of the body.
    pub version: &'static str,
    /// The verbs served at the subresource (`get`/`patch`/`update` for `status` and `scale`).
    pub verbs: &'static [&'static str],
}

/// Deserializes a JSON object into the typed k8s-openapi struct; the error names the offending field path.
pub type TypedCheck = fn(&Value) -> Result<(), String>;

/// One served resource.
#[derive(Debug, Clone, Copy)]
pub struct ResourceInfo {
    /// API group, empty for the core group.
    pub group: &'static str,
    /// The one version served (`v1`).
    pub version: &'static str,
    /// Plural resource name as it appears in URLs (`deployments`).
    pub resource: &'static str,
    /// Singular name kubectl accepts and discovery lists (`deployment`).
    pub singular: &'static str,
    /// The kind of its objects (`Deployment`).
    pub kind: &'static str,
    /// Whether objects live in a namespace (`/namespaces/<ns>/...` paths and keys).
    pub namespaced: bool,
    /// Short names kubectl accepts (`deploy`), from discovery.
    pub short_names: &'static [&'static str],
    /// Discovery categories (`all` makes `kubectl get all` include it).
    pub categories: &'static [&'static str],
    /// The subresources served under an object's path.
    pub subresources: &'static [Subresource],
    /// Whether `status` is a subresource (then writes to the main resource ignore status and vice versa).
    pub has_status: bool,
    /// Fully qualified OpenAPI definition name (`io.k8s.api.apps.v1.Deployment`).
    pub definition: &'static str,
    /// The typed check run on writes, so a body k8s-openapi cannot read is refused naming the field.
    pub typed_check: TypedCheck,
    /// Set when objects are stored as another resource (events.k8s.io Events are core Events).
    pub stored_as: Option<StoredAs>,
    /// The verbs served: [`VERBS`], or only `create` for the review resources, which are answered, not stored.
    pub verbs: &'static [&'static str],
}

/// Where and in what form a resource served under a second API is stored.
#[derive(Debug, Clone, Copy)]
pub struct StoredAs {
    /// Storage group segment (`core`) and resource of the keys.
    pub group: &'static str,
    /// Resource segment of the storage keys (`events`).
    pub resource: &'static str,
    /// Converts an object as this API serves it into the stored form.
    pub to_storage: fn(Value) -> Value,
    /// Converts a stored object into the form this API serves.
    pub from_storage: fn(Value) -> Value,
}

/// The standard verbs of a resource.
pub const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
const SCALE_VERBS: &[&str] = &["get", "patch", "update"];
const CREATE_ONLY: &[&str] = &["create"];

impl ResourceInfo {
    /// A review resource: only `create`, answered and never stored.
    pub fn is_create_only(&self) -> bool {
        self.verbs == CREATE_ONLY
    }

    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` for the core group (as Kubernetes names a group-resource in messages).
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// Storage prefix for all objects of this resource: `/registry/<group or core>/<resource>/`.
    pub fn key_prefix(&self) -> String {
        if let Some(s) = &self.stored_as {
            return format!("/registry/{}/{}/", s.group, s.resource);
        }
        let g = if self.group.is_empty() { "core" } else { self.group };
        format!("/registry/{g}/{}/", self.resource)
    }

    /// Storage prefix for one namespace (or the whole resource when `ns` is None or the resource is cluster-scoped).
    pub fn prefix_for(&self, ns: Option<&str>) -> String {
        match (self.namespaced, ns) {
            (true, Some(ns)) => format!("{}{ns}/", self.key_prefix()),
            _ => self.key_prefix(),
        }
    }

    /// Storage key of one object.
    pub fn key(&self, ns: Option<&str>, name: &str) -> String {
        match (self.namespaced, ns) {
            (true, Some(ns)) => format!("{}{ns}/{name}", self.key_prefix()),
            _ => format!("{}{name}", self.key_prefix()),
        }
    }

    /// The subresource called `name`, if the resource serves it.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }
}

fn check<T: serde::de::DeserializeOwned>(v: &Value) -> Result<(), String> {
    let de = v;
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(_) => Ok(()),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path.is_empty() || path == "." {
                Err(inner.to_string())
            } else {
                Err(format!("{path}: {inner}"))
            }
        }
    }
}

macro_rules! sub {
    (status, $kind:expr, $g:expr, $v:expr) => {
        Subresource { name: "status", kind: $kind, group: $g, version: $v, verbs: STATUS_VERBS }
    };
    (scale) => {
        Subresource { name: "scale", kind: "Scale", group: "autoscaling", version: "v1", verbs: SCALE_VERBS }
    };
}

use k8s_openapi::api as k;

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

/// An Ingress without `pathType` or a backend Service name decodes, as upstream's does: validation reports
/// them in upstream's words.
fn check_ingress(v: &Value) -> Result<(), String> {
    check::<k::networking::v1::Ingress>(&ingress_typed_form(v))
}

/// The typed decoding of an Ingress without the two fields upstream's decoder leaves empty and validation then
/// reports in its own words (`pathType`, a backend service's `name`); k8s-openapi makes them required.
pub(crate) fn ingress_typed_form(obj: &Value) -> Value {
    let mut v = obj.clone();
    let fill_backend = |b: &mut Value| {
        if let Some(svc) = b.get_mut("service").filter(|s| s.is_object()) {
            if svc.get("name").is_none_or(Value::is_null) {
                svc["name"] = json!("");
            }
        }
    };
    if let Some(spec) = v.get_mut("spec").filter(|s| s.is_object()) {
        if let Some(b) = spec.get_mut("defaultBackend").filter(|b| b.is_object()) {
            fill_backend(b);
        }
        for rule in spec
            .get_mut("rules")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            for p in rule
                .pointer_mut("/http/paths")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if p.is_object() && p.get("pathType").is_none_or(Value::is_null) {
                    p["pathType"] = json!("");
                }
                if let Some(b) = p.get_mut("backend").filter(|b| b.is_object()) {
                    fill_backend(b);
                }
            }
        }
    }
    v
}

/// Every resource the server serves, in discovery order.
pub static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        group: "",
        version: "v1",
        resource: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: NONE,
        subresources: &[
            sub!(status, "Namespace", "", "v1"),
            Subresource { name: "finalize", kind: "Namespace", group: "", version: "v1", verbs: &["update"] },
        ],
        has_status: true,
        definition: "io.k8s.api.core.v1.Namespace",
        typed_check: check::<k::core::v1::Namespace>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        resource: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: ALL,
        subresources: &[
            sub!(status, "Pod", "", "v1"),
            Subresource { name: "binding", kind: "Binding", group: "", version: "v1", verbs: &["create"] },
            Subresource { name: "eviction", kind: "Eviction", group: "policy", version: "v1", verbs: &["create"] },
            Subresource { name: "log", kind: "Pod", group: "", version: "v1", verbs: &["get"] },
            Subresource { name: "exec", kind: "PodExecOptions", group: "", version: "v1", verbs: &["create", "get"] },
            Subresource {
                name: "attach",
                kind: "PodAttachOptions",
                group: "",
                version: "v1",
                verbs: &["create", "get"],
            },
            Subresource {
                name: "portforward",
                kind: "PodPortForwardOptions",
                group: "",
                version: "v1",
                verbs: &["create", "get"],
            },
            Subresource {
                name: "ephemeralcontainers",
                kind: "Pod",
                group: "",
                version: "v1",
                verbs: &["get", "patch", "update"],
            },
        ],
        has_status: true,
        definition: "io.k8s.api.core.v1.Pod",
        typed_check: check::<k::core::v1::Pod>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        resource: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: ALL,
        subresources: &[sub!(status, "Service", "", "v1")],
        has_status: true,
        definition: "io.k8s.api.core.v1.Service",
        typed_check: check::<k::core::v1::Service>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        resource: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.core.v1.Endpoints",
        typed_check: check::<k::core::v1::Endpoints>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        resource: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        categories: NONE,
        subresources: &[
            sub!(status, "Node", "", "v1"),
            Subresource { name: "proxy", kind: "NodeProxyOptions", group: "", version: "v1", verbs: &["create", "delete", "get", "patch", "update"] },
        ],
        has_status: true,
        definition: "io.k8s.api.core.v1.Node",
        typed_check: check::<k::core::v1::Node>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        resource: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.core.v1.ConfigMap",
        typed_check: check::<k::core::v1::ConfigMap>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        resource: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.core.v1.Secret",
        typed_check: check::<k::core::v1::Secret>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        resource: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.core.v1.Event",
        typed_check: check::<k::core::v1::Event>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        resource: "replicationcontrollers",
        singular: "replicationcontroller",
        kind: "ReplicationController",
        namespaced: true,
        short_names: &["rc"],
        categories: ALL,
        subresources: &[sub!(status, "ReplicationController", "", "v1"), sub!(scale)],
        has_status: true,
        definition: "io.k8s.api.core.v1.ReplicationController",
        typed_check: check::<k::core::v1::ReplicationController>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        resource: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: NONE,
        subresources: &[Subresource { name: "token", kind: "TokenRequest", group: "authentication.k8s.io", version: "v1", verbs: &["create"] }],
        has_status: false,
        definition: "io.k8s.api.core.v1.ServiceAccount",
        typed_check: check::<k::core::v1::ServiceAccount>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        resource: "limitranges",
        singular: "limitrange",
        kind: "LimitRange",
        namespaced: true,
        short_names: &["limits"],
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.core.v1.LimitRange",
        typed_check: check::<k::core::v1::LimitRange>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        resource: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: ALL,
        subresources: &[sub!(status, "Deployment", "apps", "v1"), sub!(scale)],
        has_status: true,
        definition: "io.k8s.api.apps.v1.Deployment",
        typed_check: check::<k::apps::v1::Deployment>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        resource: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        categories: ALL,
        subresources: &[sub!(status, "ReplicaSet", "apps", "v1"), sub!(scale)],
        has_status: true,
        definition: "io.k8s.api.apps.v1.ReplicaSet",
        typed_check: check::<k::apps::v1::ReplicaSet>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        resource: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        categories: ALL,
        subresources: &[sub!(status, "StatefulSet", "apps", "v1"), sub!(scale)],
        has_status: true,
        definition: "io.k8s.api.apps.v1.StatefulSet",
        typed_check: check::<k::apps::v1::StatefulSet>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        resource: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        namespaced: true,
        short_names: &["ds"],
        categories: ALL,
        subresources: &[sub!(status, "DaemonSet", "apps", "v1")],
        has_status: true,
        definition: "io.k8s.api.apps.v1.DaemonSet",
        typed_check: check::<k::apps::v1::DaemonSet>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        resource: "controllerrevisions",
        singular: "controllerrevision",
        kind: "ControllerRevision",
        namespaced: true,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.apps.v1.ControllerRevision",
        typed_check: check::<k::apps::v1::ControllerRevision>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "batch",
        version: "v1",
        resource: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: NONE,
        categories: ALL,
        subresources: &[sub!(status, "Job", "batch", "v1")],
        has_status: true,
        definition: "io.k8s.api.batch.v1.Job",
        typed_check: check::<k::batch::v1::Job>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "batch",
        version: "v1",
        resource: "cronjobs",
        singular: "cronjob",
        kind: "CronJob",
        namespaced: true,
        short_names: &["cj"],
        categories: ALL,
        subresources: &[sub!(status, "CronJob", "batch", "v1")],
        has_status: true,
        definition: "io.k8s.api.batch.v1.CronJob",
        typed_check: check::<k::batch::v1::CronJob>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "coordination.k8s.io",
        version: "v1",
        resource: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.coordination.v1.Lease",
        typed_check: check::<k::coordination::v1::Lease>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "discovery.k8s.io",
        version: "v1",
        resource: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        namespaced: true,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.discovery.v1.EndpointSlice",
        typed_check: check::<k::discovery::v1::EndpointSlice>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "events.k8s.io",
        version: "v1",
        resource: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.events.v1.Event",
        typed_check: check::<k::events::v1::Event>,
        verbs: VERBS,
        stored_as: Some(StoredAs {
            group: "core",
            resource: "events",
            to_storage: crate::conversion::event_to_core,
            from_storage: crate::conversion::event_from_core,
        }),
    },
    ResourceInfo {
        group: "networking.k8s.io",
        version: "v1",
        resource: "ingresses",
        singular: "ingress",
        kind: "Ingress",
        namespaced: true,
        short_names: &["ing"],
        categories: NONE,
        subresources: &[sub!(status, "Ingress", "networking.k8s.io", "v1")],
        has_status: true,
        definition: "io.k8s.api.networking.v1.Ingress",
        typed_check: check_ingress,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "networking.k8s.io",
        version: "v1",
        resource: "ingressclasses",
        singular: "ingressclass",
        kind: "IngressClass",
        namespaced: false,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.networking.v1.IngressClass",
        typed_check: check::<k::networking::v1::IngressClass>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        resource: "roles",
        singular: "role",
        kind: "Role",
        namespaced: true,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.rbac.v1.Role",
        typed_check: check::<k::rbac::v1::Role>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        resource: "rolebindings",
        singular: "rolebinding",
        kind: "RoleBinding",
        namespaced: true,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.rbac.v1.RoleBinding",
        typed_check: check::<k::rbac::v1::RoleBinding>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        resource: "clusterroles",
        singular: "clusterrole",
        kind: "ClusterRole",
        namespaced: false,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.rbac.v1.ClusterRole",
        typed_check: check::<k::rbac::v1::ClusterRole>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        resource: "clusterrolebindings",
        singular: "clusterrolebinding",
        kind: "ClusterRoleBinding",
        namespaced: false,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.rbac.v1.ClusterRoleBinding",
        typed_check: check::<k::rbac::v1::ClusterRoleBinding>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "certificates.k8s.io",
        version: "v1",
        resource: "certificatesigningrequests",
        singular: "certificatesigningrequest",
        kind: "CertificateSigningRequest",
        namespaced: false,
        short_names: &["csr"],
        categories: NONE,
        // approval: the Approved/Denied conditions (`kubectl certificate approve`); status: the certificate
        subresources: &[
            sub!(status, "CertificateSigningRequest", "certificates.k8s.io", "v1"),
            Subresource { name: "approval", kind: "CertificateSigningRequest", group: "certificates.k8s.io", version: "v1", verbs: STATUS_VERBS },
        ],
        has_status: true,
        definition: "io.k8s.api.certificates.v1.CertificateSigningRequest",
        typed_check: check::<k::certificates::v1::CertificateSigningRequest>,
        verbs: VERBS,
        stored_as: None,
    },
    ResourceInfo {
        group: "authorization.k8s.io",
        version: "v1",
        resource: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
        typed_check: check::<k::authorization::v1::SelfSubjectAccessReview>,
        verbs: CREATE_ONLY,
        stored_as: None,
    },
    ResourceInfo {
        group: "authorization.k8s.io",
        version: "v1",
        resource: "selfsubjectrulesreviews",
        singular: "selfsubjectrulesreview",
        kind: "SelfSubjectRulesReview",
        namespaced: false,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.authorization.v1.SelfSubjectRulesReview",
        typed_check: check::<k::authorization::v1::SelfSubjectRulesReview>,
        verbs: CREATE_ONLY,
        stored_as: None,
    },
    ResourceInfo {
        group: "authorization.k8s.io",
        version: "v1",
        resource: "subjectaccessreviews",
        singular: "subjectaccessreview",
        kind: "SubjectAccessReview",
        namespaced: false,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.authorization.v1.SubjectAccessReview",
        typed_check: check::<k::authorization::v1::SubjectAccessReview>,
        verbs: CREATE_ONLY,
        stored_as: None,
    },
    ResourceInfo {
        group: "authorization.k8s.io",
        version: "v1",
        resource: "localsubjectaccessreviews",
        singular: "localsubjectaccessreview",
        kind: "LocalSubjectAccessReview",
        namespaced: true,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.authorization.v1.LocalSubjectAccessReview",
        typed_check: check::<k::authorization::v1::LocalSubjectAccessReview>,
        verbs: CREATE_ONLY,
        stored_as: None,
    },
    ResourceInfo {
        group: "authentication.k8s.io",
        version: "v1",
        resource: "selfsubjectreviews",
        singular: "selfsubjectreview",
        kind: "SelfSubjectReview",
        namespaced: false,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.authentication.v1.SelfSubjectReview",
        typed_check: check::<k::authentication::v1::SelfSubjectReview>,
        verbs: CREATE_ONLY,
        stored_as: None,
    },
    ResourceInfo {
        group: "authentication.k8s.io",
        version: "v1",
        resource: "tokenreviews",
        singular: "tokenreview",
        kind: "TokenReview",
        namespaced: false,
        short_names: NONE,
        categories: NONE,
        subresources: &[],
        has_status: false,
        definition: "io.k8s.api.authentication.v1.TokenReview",
        typed_check: check::<k::authentication::v1::TokenReview>,
        verbs: CREATE_ONLY,
        stored_as: None,
    },
];

/// Typed handles for the built-in resources the server itself reads and writes (`builtin::PODS`), in place of
/// `find(..).expect(..)`: each is found in [`RESOURCES`] when the crate is compiled, so a handle whose row is
/// missing fails the build and none can fail at run time.
pub mod builtin {
    use super::{by_name, ResourceInfo};

    /// core/v1 `namespaces`.
    pub static NAMESPACES: &ResourceInfo = by_name("", "namespaces");
    /// core/v1 `pods`.
    pub static PODS: &ResourceInfo = by_name("", "pods");
    /// core/v1 `services`.
    pub static SERVICES: &ResourceInfo = by_name("", "services");
    /// core/v1 `nodes`.
    pub static NODES: &ResourceInfo = by_name("", "nodes");
    /// core/v1 `configmaps`.
    pub static CONFIG_MAPS: &ResourceInfo = by_name("", "configmaps");
    /// core/v1 `secrets`.
    pub static SECRETS: &ResourceInfo = by_name("", "secrets");
    /// core/v1 `serviceaccounts`.
    pub static SERVICE_ACCOUNTS: &ResourceInfo = by_name("", "serviceaccounts");
    /// apps/v1 `deployments`.
    pub static DEPLOYMENTS: &ResourceInfo = by_name("apps", "deployments");
    /// coordination.k8s.io/v1 `leases` (node heartbeats, leader election).
    pub static LEASES: &ResourceInfo = by_name("coordination.k8s.io", "leases");
    /// discovery.k8s.io/v1 `endpointslices`.
    pub static ENDPOINT_SLICES: &ResourceInfo = by_name("discovery.k8s.io", "endpointslices");
    /// networking.k8s.io/v1 `ingressclasses`.
    pub static INGRESS_CLASSES: &ResourceInfo = by_name("networking.k8s.io", "ingressclasses");
    /// rbac.authorization.k8s.io/v1 `roles`.
    pub static ROLES: &ResourceInfo = by_name("rbac.authorization.k8s.io", "roles");
    /// rbac.authorization.k8s.io/v1 `rolebindings`.
    pub static ROLE_BINDINGS: &ResourceInfo = by_name("rbac.authorization.k8s.io", "rolebindings");
    /// rbac.authorization.k8s.io/v1 `clusterroles`.
    pub static CLUSTER_ROLES: &ResourceInfo = by_name("rbac.authorization.k8s.io", "clusterroles");
    /// rbac.authorization.k8s.io/v1 `clusterrolebindings`.
    pub static CLUSTER_ROLE_BINDINGS: &ResourceInfo = by_name("rbac.authorization.k8s.io", "clusterrolebindings");
    /// certificates.k8s.io/v1 `certificatesigningrequests`.
    pub static CERTIFICATE_SIGNING_REQUESTS: &ResourceInfo = by_name("certificates.k8s.io", "certificatesigningrequests");
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The first row of `group`/`resource` (the served version), evaluated at compile time for [`builtin`].
const fn by_name(group: &str, resource: &str) -> &'static ResourceInfo {
    let mut i = 0;
    while i < RESOURCES.len() {
        let r = &RESOURCES[i];
        if str_eq(r.group, group) && str_eq(r.resource, resource) {
            return r;
        }
        i += 1;
    }
    panic!("a built-in resource handle names a resource missing from RESOURCES")
}

/// The API groups served, in discovery order (core is `""`).
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

/// Looks a resource up by group, version and plural name.
pub fn find(group: &str, version: &str, resource: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// The version served for a group, if the group is served.
pub fn group_version(group: &str) -> Option<&'static str> {
    RESOURCES.iter().find(|r| r.group == group).map(|r| r.version)
}

/// The resources of one group/version.
pub fn resources_of<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    RESOURCES.iter().filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_registry_layout() {
        let pods = find("", "v1", "pods").expect("pods served");
        assert_eq!(pods.key(Some("default"), "web"), "/registry/core/pods/default/web");
        let ns = find("", "v1", "namespaces").expect("namespaces served");
        assert_eq!(ns.key(None, "kube-system"), "/registry/core/namespaces/kube-system");
        let d = find("apps", "v1", "deployments").expect("deployments served");
        assert_eq!(d.prefix_for(Some("a")), "/registry/apps/deployments/a/");
        assert_eq!(d.group_resource(), "deployments.apps");
    }

    #[test]
    fn typed_check_names_the_bad_field() {
        let d = find("apps", "v1", "deployments").expect("deployments served");
        let bad = serde_json::json!({"metadata": {"name": "x"}, "spec": {"replicas": "three"}});
        let err = (d.typed_check)(&bad).expect_err("replicas must be an integer");
        assert!(err.contains("spec.replicas"), "{err}");
    }

    #[test]
    fn builtin_handles_are_the_table_rows() {
        // the same row (compared by value: the compiler may place a constant's copy apart from the table)
        let same = |a: &ResourceInfo, b: &ResourceInfo| (a.group, a.version, a.resource, a.kind) == (b.group, b.version, b.resource, b.kind);
        assert!(same(builtin::PODS, find("", "v1", "pods").expect("pods")));
        assert!(same(builtin::LEASES, find("coordination.k8s.io", "v1", "leases").expect("leases")));
        assert_eq!(builtin::CLUSTER_ROLE_BINDINGS.kind, "ClusterRoleBinding");
        assert_eq!(builtin::CERTIFICATE_SIGNING_REQUESTS.kind, "CertificateSigningRequest");
    }

    #[test]
    fn short_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in RESOURCES {
            for s in r.short_names {
                assert!(seen.insert(*s), "short name {s} used twice");
            }
        }
    }
}
