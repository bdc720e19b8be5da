//! Kubernetes' patch strategies and merge keys per field (`x-kubernetes-patch-strategy`,
//! `x-kubernetes-patch-merge-key` in the OpenAPI): data the published schema carries and the strategic merge
//! patch (`patch::strategic`) walks by. Kept here, below both, so neither imports the other back.

/// The patch strategy and merge key of one list (or map) field of one definition.
#[derive(Debug, Clone, Copy)]
pub struct PatchField {
    /// The OpenAPI definition holding the field (`io.k8s.api.core.v1.PodSpec`).
    pub definition: &'static str,
    /// The field's JSON name (`containers`).
    pub field: &'static str,
    /// `merge`, `retainKeys`, `merge,retainKeys`, or "" (replace).
    pub strategy: &'static str,
    /// Key identifying list elements ("" for lists of primitives).
    pub merge_key: &'static str,
}

const fn pf(definition: &'static str, field: &'static str, strategy: &'static str, merge_key: &'static str) -> PatchField {
    PatchField { definition, field, strategy, merge_key }
}

/// Kubernetes' patch strategies for the fields of the served kinds.
pub static PATCH_FIELDS: &[PatchField] = &[
    pf("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", "merge", ""),
    pf("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", "merge", "uid"),
    pf("io.k8s.api.core.v1.PodSpec", "containers", "merge", "name"),
    pf("io.k8s.api.core.v1.PodSpec", "initContainers", "merge", "name"),
    pf("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "merge", "name"),
    pf("io.k8s.api.core.v1.PodSpec", "volumes", "merge,retainKeys", "name"),
    pf("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "merge", "name"),
    pf("io.k8s.api.core.v1.PodSpec", "hostAliases", "merge", "ip"),
    pf("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", "merge", "topologyKey"),
    pf("io.k8s.api.core.v1.PodSpec", "schedulingGates", "merge", "name"),
    pf("io.k8s.api.core.v1.PodSpec", "resourceClaims", "merge,retainKeys", "name"),
    pf("io.k8s.api.core.v1.Container", "ports", "merge", "containerPort"),
    pf("io.k8s.api.core.v1.Container", "env", "merge", "name"),
    pf("io.k8s.api.core.v1.Container", "volumeMounts", "merge", "mountPath"),
    pf("io.k8s.api.core.v1.Container", "volumeDevices", "merge", "devicePath"),
    pf("io.k8s.api.core.v1.EphemeralContainer", "env", "merge", "name"),
    pf("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts", "merge", "mountPath"),
    pf("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", "port"),
    pf("io.k8s.api.core.v1.PodStatus", "conditions", "merge", "type"),
    pf("io.k8s.api.core.v1.PodStatus", "podIPs", "merge", "ip"),
    pf("io.k8s.api.core.v1.NodeStatus", "conditions", "merge", "type"),
    pf("io.k8s.api.core.v1.NodeStatus", "addresses", "merge", "type"),
    pf("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge", ""),
    pf("io.k8s.api.core.v1.ServiceStatus", "conditions", "merge", "type"),
    pf("io.k8s.api.core.v1.ReplicationControllerStatus", "conditions", "merge", "type"),
    pf("io.k8s.api.core.v1.NamespaceStatus", "conditions", "merge", "type"),
    pf("io.k8s.api.apps.v1.DeploymentSpec", "strategy", "retainKeys", ""),
    pf("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "merge", "type"),
    pf("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", "merge", "type"),
    pf("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", "merge", "type"),
    pf("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", "merge", "type"),
    pf("io.k8s.api.apps.v1.DaemonSetSpec", "updateStrategy", "retainKeys", ""),
    pf("io.k8s.api.core.v1.Volume", "", "retainKeys", ""),
];

/// The strategy of `field` in `definition`.
pub fn strategy_of(definition: &str, field: &str) -> Option<&'static PatchField> {
    PATCH_FIELDS.iter().find(|p| p.definition == definition && p.field == field)
}
