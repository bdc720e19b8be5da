//! Deployment revision history: the pod-template-hash that names a ReplicaSet, the revision annotations
//! `kubectl rollout history|undo` read, and which old ReplicaSets `revisionHistoryLimit` lets us delete.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;

/// Annotation on a Deployment and its ReplicaSets: the rollout revision (`kubectl rollout history` lists them).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Annotation on a ReplicaSet: earlier revisions it served (a rollback reuses a ReplicaSet under a new revision).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// Annotation on a ReplicaSet: the Deployment's replicas when it was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// Annotation on a ReplicaSet: replicas plus maxSurge when it was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Annotation copied from the Deployment to its ReplicaSet: why the change was made (`rollout history`'s CHANGE-CAUSE).
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// Label on a ReplicaSet, its selector and its pods: the hash of the pod template it runs.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// 32-bit FNV-1a.
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Encode a string with Kubernetes' "safe" alphabet (no vowels, no confusable characters), so a hash never
/// spells words: each byte maps to one of 27 characters.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes().map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char).collect()
}

/// The pod-template-hash of a template (label excluded) and collision count.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut t = template.clone();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(POD_TEMPLATE_HASH);
    }
    let mut bytes = serde_json::to_vec(&t).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&(c as u32).to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// Templates equal apart from the pod-template-hash label (how the new ReplicaSet is found).
pub fn templates_equal(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut() {
            if let Some(l) = m.labels.as_mut() {
                l.remove(POD_TEMPLATE_HASH);
                if l.is_empty() {
                    m.labels = None;
                }
            }
            if m.annotations.as_ref().is_some_and(|a| a.is_empty()) {
                m.annotations = None;
            }
        }
        serde_json::to_value(&t).unwrap_or_default()
    };
    strip(a) == strip(b)
}

/// Revision number of a ReplicaSet (0 when unannotated).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Highest revision among the ReplicaSets.
pub fn max_revision(rss: &[&ReplicaSet]) -> i64 {
    rss.iter().map(|r| revision(r)).max().unwrap_or(0)
}

/// Annotations for the new ReplicaSet at `new_revision`: the revision, previous revisions of the same
/// template when it is re-used (rollback), and the change-cause copied from the Deployment.
pub fn new_rs_annotations(
    existing: Option<&BTreeMap<String, String>>,
    deploy_annotations: Option<&BTreeMap<String, String>>,
    new_revision: i64,
    desired: i32,
    max_replicas: i32,
) -> BTreeMap<String, String> {
    let mut a = existing.cloned().unwrap_or_default();
    let old = a.get(REVISION).cloned();
    if let Some(old) = old.filter(|o| o != &new_revision.to_string() && o != "0") {
        let hist = match a.get(REVISION_HISTORY) {
            Some(h) if !h.is_empty() => format!("{h},{old}"),
            _ => old,
        };
        a.insert(REVISION_HISTORY.into(), hist);
    }
    a.insert(REVISION.into(), new_revision.to_string());
    a.insert(DESIRED_REPLICAS.into(), desired.to_string());
    a.insert(MAX_REPLICAS.into(), max_replicas.to_string());
    if let Some(cause) = deploy_annotations.and_then(|d| d.get(CHANGE_CAUSE)) {
        a.insert(CHANGE_CAUSE.into(), cause.clone());
    }
    a
}

/// Old ReplicaSets to delete so at most `limit` scaled-to-zero old ones remain, oldest revision first.
pub fn cleanup_candidates(old: &[&ReplicaSet], limit: i32) -> Vec<String> {
    let mut idle: Vec<&&ReplicaSet> = old
        .iter()
        .filter(|r| {
            r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0
                && r.status.as_ref().map_or(0, |s| s.replicas) == 0
                && r.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let limit = limit.max(0) as usize;
    if idle.len() <= limit {
        return vec![];
    }
    idle.sort_by_key(|r| revision(r));
    idle[..idle.len() - limit].iter().map(|r| r.metadata.name.clone().unwrap_or_default()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{ReplicaSetSpec, ReplicaSetStatus};
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta { labels: Some([("app".to_string(), "web".to_string())].into()), ..Default::default() }),
            spec: Some(PodSpec { containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }], ..Default::default() }),
        }
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn hash_is_stable_safe_and_ignores_its_own_label() {
        let t = template("nginx:1");
        let h = pod_template_hash(&t, None);
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{h}");
        let mut labeled = t.clone();
        labeled.metadata.as_mut().and_then(|m| m.labels.as_mut()).expect("labels").insert(POD_TEMPLATE_HASH.into(), h.clone());
        assert_eq!(pod_template_hash(&labeled, None), h);
        assert!(templates_equal(&t, &labeled));
        assert_ne!(pod_template_hash(&template("nginx:2"), None), h);
        assert_ne!(pod_template_hash(&t, Some(1)), h);
        assert!(!templates_equal(&t, &template("nginx:2")));
    }

    fn rs(name: &str, rev: i64, replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some([(REVISION.to_string(), rev.to_string())].into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec { replicas: Some(replicas), ..Default::default() }),
            status: Some(ReplicaSetStatus { replicas, ..Default::default() }),
        }
    }

    #[test]
    fn history_limit_deletes_oldest_idle_revisions() {
        let (a, b, c, d) = (rs("a", 1, 0), rs("b", 2, 0), rs("c", 3, 2), rs("d", 4, 0));
        let old = [&a, &b, &c, &d];
        assert_eq!(cleanup_candidates(&old, 1), vec!["a".to_string(), "b".to_string()]);
        assert_eq!(cleanup_candidates(&old, 3), Vec::<String>::new());
        assert_eq!(cleanup_candidates(&old, 0), vec!["a".to_string(), "b".to_string(), "d".to_string()]);
        assert_eq!(max_revision(&old), 4);
    }

    #[test]
    fn rollback_records_revision_history() {
        let existing: BTreeMap<String, String> = [(REVISION.to_string(), "1".to_string())].into();
        let deploy: BTreeMap<String, String> = [(CHANGE_CAUSE.to_string(), "undo".to_string())].into();
        let a = new_rs_annotations(Some(&existing), Some(&deploy), 3, 4, 5);
        assert_eq!(a.get(REVISION).map(String::as_str), Some("3"));
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("1"));
        assert_eq!(a.get(CHANGE_CAUSE).map(String::as_str), Some("undo"));
        assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("5"));
    }
}
