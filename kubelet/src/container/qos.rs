//! QoS class (Guaranteed / Burstable / BestEffort) and the cgroup hierarchy it puts a pod in:
//! `kubepods/pod<uid>` for Guaranteed, `kubepods/burstable/pod<uid>`, `kubepods/besteffort/pod<uid>`, with one
//! child per container. Also the cgroup v1 values (cpu shares, CFS quota, memory limit) a container gets.

use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use rkube_apimachinery::quantity::{milli_value as cpu_millis, value as bytes, QuantityError};

/// The class itself is rkube-apimachinery's, the one the apiserver writes into `status.qosClass`, so the cgroup a
/// pod lands in always agrees with the class its status shows.
pub use rkube_apimachinery::qos::{qos_class, QosClass};

/// The root of every pod cgroup the kubelet makes, under each controller's hierarchy.
pub const KUBEPODS: &str = "kubepods";

/// The pod's cgroup path relative to each controller's root, under `root` (the kubelet's cgroup root,
/// [`KUBEPODS`] unless configured), e.g. `kubepods/burstable/pod1234`.
pub fn pod_cgroup_parent(root: &str, pod: &Pod) -> String {
    let uid = pod.metadata.uid.as_deref().unwrap_or("nouid");
    match qos_class(pod) {
        QosClass::Guaranteed => format!("{root}/pod{uid}"),
        QosClass::Burstable => format!("{root}/burstable/pod{uid}"),
        QosClass::BestEffort => format!("{root}/besteffort/pod{uid}"),
    }
}

/// A container's cgroup path: its pod's cgroup plus the container name.
pub fn container_cgroup(root: &str, pod: &Pod, container: &str) -> String {
    format!("{}/{container}", pod_cgroup_parent(root, pod))
}

/// The cgroup v1 settings for one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupValues {
    /// cpu.shares: 1024 per CPU requested, at least 2.
    pub cpu_shares: u64,
    /// cpu.cfs_quota_us for the CPU limit, with [`CFS_PERIOD_US`] as period.
    pub cpu_quota_us: Option<i64>,
    /// memory.limit_in_bytes.
    pub memory_limit: Option<i64>,
}

/// CFS period used with every quota.
pub const CFS_PERIOD_US: u64 = 100_000;

/// cgroup values from a container's requests and limits (requests default to limits, as upstream).
pub fn cgroup_values(res: Option<&ResourceRequirements>) -> Result<CgroupValues, QuantityError> {
    let req = res.and_then(|r| r.requests.as_ref());
    let lim = res.and_then(|r| r.limits.as_ref());
    let cpu_req = match req.and_then(|m| m.get("cpu")).or_else(|| lim.and_then(|m| m.get("cpu"))) {
        Some(q) => Some(cpu_millis(q)?),
        None => None,
    };
    let cpu_lim = match lim.and_then(|m| m.get("cpu")) {
        Some(q) => Some(cpu_millis(q)?),
        None => None,
    };
    let mem_lim = match lim.and_then(|m| m.get("memory")) {
        Some(q) => Some(bytes(q)?),
        None => None,
    };
    Ok(CgroupValues {
        cpu_shares: cpu_req.map(|m| ((m * 1024) / 1000).max(2) as u64).unwrap_or(2),
        // upstream's minimum quota is 1 ms
        cpu_quota_us: cpu_lim.map(|m| (m * CFS_PERIOD_US as i64 / 1000).max(1000)),
        memory_limit: mem_lim,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

    fn res(req: &[(&str, &str)], lim: &[(&str, &str)]) -> Option<ResourceRequirements> {
        let m = |v: &[(&str, &str)]| -> Option<BTreeMap<String, Quantity>> {
            if v.is_empty() {
                None
            } else {
                Some(v.iter().map(|(k, q)| (k.to_string(), Quantity(q.to_string()))).collect())
            }
        };
        Some(ResourceRequirements { requests: m(req), limits: m(lim), ..Default::default() })
    }

    fn pod_with(rs: Vec<Option<ResourceRequirements>>) -> Pod {
        let mut p = crate::pod::lifecycle::tests::pod("Always", &[], &[]);
        p.metadata.uid = Some("u1".into());
        let spec = p.spec.as_mut().expect("spec");
        spec.containers = rs
            .into_iter()
            .enumerate()
            .map(|(i, r)| Container { name: format!("c{i}"), resources: r, ..Default::default() })
            .collect();
        p
    }

    #[test]
    fn classes_and_parents() {
        let cases = vec![
            ("nothing set", vec![None], QosClass::BestEffort, "kubepods/besteffort/podu1"),
            ("limits only => requests default to them", vec![res(&[], &[("cpu", "1"), ("memory", "64Mi")])], QosClass::Guaranteed, "kubepods/podu1"),
            ("equal requests and limits", vec![res(&[("cpu", "1000m"), ("memory", "64Mi")], &[("cpu", "1"), ("memory", "67108864")])], QosClass::Guaranteed, "kubepods/podu1"),
            ("requests below limits", vec![res(&[("cpu", "100m")], &[("cpu", "1"), ("memory", "64Mi")])], QosClass::Burstable, "kubepods/burstable/podu1"),
            ("memory only", vec![res(&[], &[("memory", "64Mi")])], QosClass::Burstable, "kubepods/burstable/podu1"),
            ("one guaranteed one besteffort", vec![res(&[], &[("cpu", "1"), ("memory", "64Mi")]), None], QosClass::Burstable, "kubepods/burstable/podu1"),
        ];
        for (what, rs, class, parent) in cases {
            let p = pod_with(rs);
            assert_eq!(qos_class(&p), class, "{what}");
            assert_eq!(pod_cgroup_parent(KUBEPODS, &p), parent, "{what}");
        }
        assert_eq!(container_cgroup(KUBEPODS, &pod_with(vec![None]), "web"), "kubepods/besteffort/podu1/web");
    }

    #[test]
    fn cgroup_values_from_resources() {
        assert_eq!(cgroup_values(None), Ok(CgroupValues { cpu_shares: 2, cpu_quota_us: None, memory_limit: None }));
        let v = cgroup_values(res(&[("cpu", "250m")], &[("cpu", "500m"), ("memory", "32Mi")]).as_ref()).expect("valid");
        assert_eq!(v, CgroupValues { cpu_shares: 256, cpu_quota_us: Some(50_000), memory_limit: Some(32 << 20) });
        let v = cgroup_values(res(&[], &[("cpu", "1m")]).as_ref()).expect("valid");
        assert_eq!((v.cpu_shares, v.cpu_quota_us), (2, Some(1000)));
        assert!(cgroup_values(res(&[], &[("memory", "lots")]).as_ref()).is_err());
    }
}
