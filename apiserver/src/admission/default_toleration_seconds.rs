//! Upstream's DefaultTolerationSeconds admission plugin (plugin/pkg/admission/defaulttolerationseconds): a Pod
//! being created gets a toleration of `node.kubernetes.io/not-ready:NoExecute` and of
//! `node.kubernetes.io/unreachable:NoExecute` for the apiserver's `--default-not-ready-toleration-seconds` and
//! `--default-unreachable-toleration-seconds` (300 s each by default), unless it tolerates that taint already. So
//! a pod on a node that went NotReady or unreachable is evicted by the node lifecycle controller after that long.
//! Create only, as upstream: an update keeps whatever tolerations the pod has.

use serde_json::{json, Value};

/// Upstream's default of `--default-not-ready-toleration-seconds` and `--default-unreachable-toleration-seconds`.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Upstream's DefaultTolerationSeconds admission on a Pod being created: a toleration of
/// `node.kubernetes.io/not-ready:NoExecute` for `not_ready` seconds and of `node.kubernetes.io/unreachable:NoExecute`
/// for `unreachable` seconds, each unless the pod already tolerates that taint's NoExecute effect (a toleration of
/// the key, or of no key, with effect NoExecute or none, as upstream checks).
pub fn add_default_tolerations(pod: &mut Value, not_ready: i64, unreachable: i64) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let tols = spec.entry("tolerations").or_insert_with(|| json!([]));
    if tols.is_null() {
        *tols = json!([]);
    }
    let Some(tols) = tols.as_array_mut() else { return };
    for (key, seconds) in [("node.kubernetes.io/not-ready", not_ready), ("node.kubernetes.io/unreachable", unreachable)] {
        let present = tols.iter().any(|t| {
            let effect_covers = t.get("effect").and_then(Value::as_str).is_none_or(|e| e.is_empty() || e == "NoExecute");
            let key_matches = t.get("key").and_then(Value::as_str).is_none_or(|k| k.is_empty() || k == key);
            key_matches && effect_covers
        });
        if !present {
            tols.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tolerations_take_the_configured_seconds_and_respect_the_pods_own() {
        let mut p = json!({"spec": {"containers": [{"name": "c", "image": "busybox:1"}]}});
        add_default_tolerations(&mut p, 7, 11);
        assert_eq!(
            p["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 7},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 11}
            ])
        );
        add_default_tolerations(&mut p, 1, 1);
        assert_eq!(p["spec"]["tolerations"].as_array().map(Vec::len), Some(2), "added once");
        // the pod's own toleration of unreachable (2 s) stays the only one for that key
        let mut own = json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]}});
        add_default_tolerations(&mut own, 300, 300);
        let tols = own["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
        assert_eq!(tols.len(), 2);
        assert_eq!(tols.iter().filter(|t| t["key"] == "node.kubernetes.io/unreachable").map(|t| t["tolerationSeconds"].clone()).collect::<Vec<_>>(), vec![json!(2)]);
        // a key-less toleration covers both; a NoSchedule toleration of the key does not cover NoExecute
        let mut all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_default_tolerations(&mut all, 300, 300);
        assert_eq!(all["spec"]["tolerations"].as_array().map(Vec::len), Some(1));
        let mut sched = json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]}});
        add_default_tolerations(&mut sched, 300, 300);
        assert_eq!(sched["spec"]["tolerations"].as_array().map(Vec::len), Some(3));
    }

}
