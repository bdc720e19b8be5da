//! Pod and pod-template defaults (restart policy, DNS policy, scheduler, grace period, per-container pull
//! policy and termination message settings, port protocols). The not-ready/unreachable tolerations are not
//! defaults: the DefaultTolerationSeconds admission adds them on create only, with the apiserver's configured
//! seconds (`admission::default_toleration_seconds`).

use serde_json::{json, Value};

use super::{child, set_default};

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (digests included).
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default().to_string();
    set_default(c, "imagePullPolicy", json!(image_pull_policy(&image)));
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
        }
    }
}

/// Defaults of a PodSpec (pods and every template).
pub fn default_pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                default_container(c);
            }
        }
    }
    if let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols {
            for src in ["configMap", "secret"] {
                if let Some(s) = v.get_mut(src).filter(|s| s.is_object()) {
                    set_default(s, "defaultMode", json!(420));
                }
            }
        }
    }
}

/// Defaults of a Pod object (spec, admission-added fields, initial status).
pub fn default_pod(pod: &mut Value) {
    let spec = child(pod, "spec");
    default_pod_spec(spec);
    set_default(spec, "serviceAccountName", json!("default"));
    let sa = spec["serviceAccountName"].clone();
    set_default(spec, "serviceAccount", sa);
    set_default(spec, "priority", json!(0));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    let status = child(pod, "status");
    set_default(status, "phase", json!("Pending"));
    // one rule with the kubelet, which places the pod's cgroup by the same class
    let qos = rkube_apimachinery::qos::qos_class_of_json(&pod["spec"]);
    set_default(&mut pod["status"], "qosClass", json!(qos.as_str()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_tag() {
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("nginx:latest"), "Always");
        assert_eq!(image_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(image_pull_policy("127.0.0.1:5000/busybox"), "Always");
        assert_eq!(image_pull_policy("127.0.0.1:5000/busybox:1"), "IfNotPresent");
    }

    #[test]
    fn pod_gets_its_status() {
        let mut p = json!({"spec": {"containers": [{"name": "c", "image": "busybox:1"}]}});
        default_pod(&mut p);
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["qosClass"], "BestEffort");
        assert!(p["spec"].get("tolerations").is_none(), "tolerations are admission's, on create only");
    }

    #[test]
    fn qos_class_compares_amounts_not_spellings() {
        let mut p = json!({"spec": {"containers": [{"name": "c", "image": "busybox:1",
            "resources": {"requests": {"cpu": "1000m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "67108864"}}}]}});
        default_pod(&mut p);
        assert_eq!(p["status"]["qosClass"], "Guaranteed");
        let mut p = json!({"spec": {"containers": [{"name": "c", "image": "busybox:1",
            "resources": {"limits": {"ephemeral-storage": "1Gi"}}}]}});
        default_pod(&mut p);
        assert_eq!(p["status"]["qosClass"], "BestEffort", "only cpu and memory count");
    }
}
