//! A pod's QoS class, by upstream's rules (`ComputePodQOS`): only CPU and memory count, and only amounts above
//! zero; a request left out defaults to the limit (as the apiserver's defaulting fills it).
//!
//! - BestEffort: no container requests or limits CPU or memory;
//! - Guaranteed: every container limits both CPU and memory, and the pod's summed requests equal its summed
//!   limits for each;
//! - Burstable: anything else.
//!
//! The apiserver records it in `status.qosClass`; the kubelet places the pod's cgroup by it. Both read it here,
//! from a typed pod ([`qos_class`]) or the JSON of a pod spec ([`qos_class_of_json`]), so they cannot disagree.

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use serde_json::Value;

use crate::quantity::ParsedQuantity;

/// The QoS class of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Every container has CPU and memory limits equal to its requests.
    Guaranteed,
    /// Neither Guaranteed nor BestEffort: some request or limit is set.
    Burstable,
    /// No container sets any CPU or memory request or limit.
    BestEffort,
}

impl QosClass {
    /// The API's spelling (`status.qosClass`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "Guaranteed",
            Self::Burstable => "Burstable",
            Self::BestEffort => "BestEffort",
        }
    }
}

/// The resources QoS considers.
const RESOURCES: [&str; 2] = ["cpu", "memory"];

/// One container's request and limit of each of [`RESOURCES`], parsed (an unparsable amount counts as unset).
type ContainerAmounts = [(Option<ParsedQuantity>, Option<ParsedQuantity>); 2];

fn add(sum: &mut Option<ParsedQuantity>, q: ParsedQuantity) {
    *sum = Some(match sum {
        None => q,
        // a sum past i128 is far beyond any machine; keep the larger part rather than fail
        Some(s) => s.checked_add(&q).unwrap_or(std::cmp::max(*s, q)),
    });
}

fn classify(containers: impl Iterator<Item = ContainerAmounts>) -> QosClass {
    let mut requests: [Option<ParsedQuantity>; 2] = [None, None];
    let mut limits: [Option<ParsedQuantity>; 2] = [None, None];
    let mut guaranteed = true;
    for amounts in containers {
        let mut limited = [false, false];
        for (i, (request, limit)) in amounts.into_iter().enumerate() {
            let limit = limit.filter(ParsedQuantity::is_positive);
            let request = request.or(limit).filter(ParsedQuantity::is_positive);
            if let Some(r) = request {
                add(&mut requests[i], r);
            }
            if let Some(l) = limit {
                add(&mut limits[i], l);
                limited[i] = true;
            }
        }
        if !limited.iter().all(|l| *l) {
            guaranteed = false;
        }
    }
    if requests.iter().chain(&limits).all(Option::is_none) {
        return QosClass::BestEffort;
    }
    let equal = requests.iter().zip(&limits).all(|(r, l)| r.is_none() || r == l);
    let same_count = requests.iter().filter(|r| r.is_some()).count() == limits.iter().filter(|l| l.is_some()).count();
    if guaranteed && equal && same_count {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// The QoS class of a pod spec (regular and init containers; ephemeral ones cannot set resources).
pub fn qos_class_of_spec(spec: &PodSpec) -> QosClass {
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    classify(containers.map(|c| {
        let r = c.resources.as_ref();
        let amount = |list: Option<&std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>, res: &str| {
            list.and_then(|m| m.get(res)).and_then(|q| ParsedQuantity::parse(&q.0).ok())
        };
        let (req, lim) = (r.and_then(|r| r.requests.as_ref()), r.and_then(|r| r.limits.as_ref()));
        RESOURCES.map(|res| (amount(req, res), amount(lim, res)))
    }))
}

/// The QoS class of a pod; a pod without a spec is BestEffort.
pub fn qos_class(pod: &Pod) -> QosClass {
    pod.spec.as_ref().map(qos_class_of_spec).unwrap_or(QosClass::BestEffort)
}

/// The QoS class of a pod spec held as JSON (the apiserver's form). Quantities may be strings or numbers.
pub fn qos_class_of_json(spec: &Value) -> QosClass {
    let containers = ["containers", "initContainers"].into_iter().filter_map(|k| spec.get(k).and_then(Value::as_array)).flatten();
    classify(containers.map(|c| {
        let amount = |list: &str, res: &str| {
            let v = c.get("resources")?.get(list)?.get(res)?;
            match v {
                Value::String(s) => ParsedQuantity::parse(s).ok(),
                Value::Number(n) => ParsedQuantity::parse(&n.to_string()).ok(),
                _ => None,
            }
        };
        RESOURCES.map(|res| (amount("requests", res), amount("limits", res)))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod spec with one container per `(requests, limits)` entry.
    fn spec(containers: &[(Value, Value)]) -> Value {
        let cs: Vec<Value> = containers
            .iter()
            .enumerate()
            .map(|(i, (req, lim))| json!({"name": format!("c{i}"), "resources": {"requests": req, "limits": lim}}))
            .collect();
        json!({"containers": cs})
    }

    #[test]
    fn classes_follow_upstream() {
        let none = json!({});
        let cases = vec![
            ("nothing set", spec(&[(none.clone(), none.clone())]), QosClass::BestEffort),
            ("no containers", json!({"containers": []}), QosClass::BestEffort),
            ("limits only: requests default to them", spec(&[(none.clone(), json!({"cpu": "1", "memory": "64Mi"}))]), QosClass::Guaranteed),
            ("equal values, other spellings", spec(&[(json!({"cpu": "1000m", "memory": "64Mi"}), json!({"cpu": "1", "memory": "67108864"}))]), QosClass::Guaranteed),
            ("requests below limits", spec(&[(json!({"cpu": "100m"}), json!({"cpu": "1", "memory": "64Mi"}))]), QosClass::Burstable),
            ("memory only", spec(&[(none.clone(), json!({"memory": "64Mi"}))]), QosClass::Burstable),
            ("requests only", spec(&[(json!({"cpu": "1", "memory": "1Gi"}), none.clone())]), QosClass::Burstable),
            ("one guaranteed, one best effort", spec(&[(none.clone(), json!({"cpu": "1", "memory": "64Mi"})), (none.clone(), none.clone())]), QosClass::Burstable),
            ("two guaranteed", spec(&[(none.clone(), json!({"cpu": "1", "memory": "64Mi"})), (none.clone(), json!({"cpu": "500m", "memory": "1Gi"}))]), QosClass::Guaranteed),
            ("zero amounts do not count", spec(&[(json!({"cpu": "0", "memory": "0"}), none.clone())]), QosClass::BestEffort),
            ("other resources do not count", spec(&[(json!({"ephemeral-storage": "1Gi"}), json!({"ephemeral-storage": "1Gi"}))]), QosClass::BestEffort),
            ("numbers are quantities too", spec(&[(none.clone(), json!({"cpu": 1, "memory": 1048576}))]), QosClass::Guaranteed),
        ];
        for (what, s, want) in cases {
            assert_eq!(qos_class_of_json(&s), want, "{what} (json)");
            let typed: PodSpec = serde_json::from_value(stringify_numbers(s)).expect("a pod spec");
            assert_eq!(qos_class_of_spec(&typed), want, "{what} (typed)");
        }
    }

    #[test]
    fn init_containers_count() {
        let s = json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
                       "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "100m"}}}]});
        assert_eq!(qos_class_of_json(&s), QosClass::Burstable);
        assert_eq!(qos_class(&Pod::default()), QosClass::BestEffort);
        assert_eq!(QosClass::Guaranteed.as_str(), "Guaranteed");
    }

    /// k8s-openapi's `Quantity` takes strings only; the JSON cases with numbers are strings for the typed run.
    fn stringify_numbers(mut v: Value) -> Value {
        fn walk(v: &mut Value) {
            match v {
                Value::Number(n) => *v = Value::String(n.to_string()),
                Value::Array(a) => a.iter_mut().for_each(walk),
                Value::Object(m) => m.values_mut().for_each(walk),
                _ => {}
            }
        }
        walk(&mut v);
        v
    }
}
