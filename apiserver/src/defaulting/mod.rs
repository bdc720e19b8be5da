//! Defaulting: the values Kubernetes fills in when a client leaves a field out, per kind. Runs on create and
//! on every update (defaulting is idempotent), before validation. Pod-template defaults are shared by every
//! workload kind (`pod.rs`); workload-level defaults live in `workloads.rs`. Which of them a kind gets is its
//! `strategy`'s `defaults`.

mod pod;
mod workloads;

use serde_json::{json, Value};

pub use pod::{default_pod, default_pod_spec, image_pull_policy};
pub use workloads::{
    default_cronjob, default_daemonset, default_deployment, default_job, default_rc, default_replicaset, default_secret,
    default_service, default_statefulset,
};

/// Sets `obj[key] = value` when the key is absent or null.
pub(crate) fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Value::Object(m) = obj {
        if m.get(key).is_none_or(Value::is_null) {
            m.insert(key.to_string(), value);
        }
    }
}

/// `obj[key]` as a mutable object, created when absent.
pub(crate) fn child<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
    set_default(obj, key, json!({}));
    &mut obj[key]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;
    use crate::strategy;

    #[test]
    fn deployment_defaults_match_kubernetes() {
        let info = find("apps", "v1", "deployments").expect("deployments");
        let mut d = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        strategy::of(info).defaults(info, &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let before = d.clone();
        strategy::of(info).defaults(info, &mut d);
        assert_eq!(before, d, "defaulting is idempotent");
    }

    #[test]
    fn service_port_defaults() {
        let mut s = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
        default_service(&mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["sessionAffinity"], "None");
    }
}
