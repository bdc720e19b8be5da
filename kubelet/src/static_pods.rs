//! Static pods: manifests in a directory (`*.yaml`, `*.yml`, `*.json`) that the kubelet runs without the
//! apiserver, and mirrors into it as read-only "mirror pods" (annotation `kubernetes.io/config.mirror`) so
//! kubectl shows them. The file is the source of truth: a removed file stops the pod and its mirror.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// Annotation carrying the static pod's hash on its mirror.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Where a pod came from (`file` for static pods).
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// The static pod's content hash.
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";

/// Why a static pod manifest was not loaded; [`load_dir`] logs it and skips the file.
#[derive(Debug, thiserror::Error)]
pub enum StaticPodError {
    /// The manifest could not be read, does not parse as a Pod, or has no name.
    #[error("static pod manifest {path}: {message}")]
    Invalid {
        /// The manifest file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

/// FNV-1a over the bytes: a stable content hash (no cryptographic need).
fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Reads one manifest and makes it this node's static pod: name `<name>-<node>`, namespace default if unset,
/// `spec.nodeName`, a uid derived from the content and node, the source and hash annotations.
pub fn load(path: &Path, node: &str) -> Result<Pod, StaticPodError> {
    let bad = |message: String| StaticPodError::Invalid { path: path.into(), message };
    let data = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut pod: Pod = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_slice(&data).map_err(|e| bad(e.to_string()))?
    } else {
        serde_yaml::from_slice(&data).map_err(|e| bad(e.to_string()))?
    };
    let name = pod.metadata.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| bad("metadata.name is required".into()))?;
    let h1 = fnv(&[&data[..], node.as_bytes()].concat());
    let h2 = fnv(&[node.as_bytes(), &data[..]].concat());
    let hash = format!("{h1:016x}");
    let uid = format!("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", h1 >> 32, (h1 >> 16) & 0xffff, h1 & 0xffff, h2 >> 48, h2 & 0xffff_ffff_ffff);
    pod.metadata.name = Some(format!("{name}-{node}"));
    pod.metadata.namespace = Some(pod.metadata.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into()));
    pod.metadata.uid = Some(uid);
    let ann = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert(SOURCE_ANNOTATION.into(), "file".into());
    ann.insert(HASH_ANNOTATION.into(), hash);
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.into());
    if spec.restart_policy.is_none() {
        spec.restart_policy = Some("Always".into());
    }
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        if c.termination_message_path.is_none() {
            c.termination_message_path = Some("/dev/termination-log".into());
        }
    }
    Ok(pod)
}

/// Every valid manifest in `dir` (invalid ones are logged and skipped).
pub fn load_dir(dir: &Path, node: &str) -> Vec<Pod> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<_> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| match load(&p, node) {
            Ok(pod) => Some(pod),
            Err(e) => {
                tracing::warn!(error = %e, "skipping static pod manifest");
                None
            }
        })
        .collect()
}

/// The mirror pod for a static pod: same name, namespace, labels and spec, the mirror annotation, owned by
/// the Node; no uid (the apiserver assigns one).
pub fn mirror(pod: &Pod, node: &str, node_uid: Option<&str>) -> Pod {
    let mut m = pod.clone();
    m.metadata.uid = None;
    m.metadata.resource_version = None;
    m.status = None;
    let hash = pod.metadata.annotations.as_ref().and_then(|a| a.get(HASH_ANNOTATION)).cloned().unwrap_or_default();
    m.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(MIRROR_ANNOTATION.into(), hash);
    if let Some(uid) = node_uid {
        m.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node.into(),
            uid: uid.into(),
            controller: Some(true),
            ..Default::default()
        }]);
    }
    m
}

/// True for mirror pods (the kubelet never runs them: the static pod behind them runs).
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata.annotations.as_ref().map(|a| a.contains_key(MIRROR_ANNOTATION)).unwrap_or(false)
}

/// True for static pods (from a file).
pub fn is_static(pod: &Pod) -> bool {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(SOURCE_ANNOTATION)).map(|s| s == "file").unwrap_or(false)
}

/// True when `mirror`, the API's mirror pod by `pod`'s name, is not one to keep, as upstream's kubelet decides in
/// syncPod: it is marked for deletion (a mirror pod cannot stop its static pod, so nothing else would ever
/// finish its deletion), or it mirrors another version of the manifest (its mirror annotation is not the static
/// pod's hash: upstream's IsMirrorPodOf).
pub fn mirror_is_outdated(mirror: &Pod, pod: &Pod) -> bool {
    let hash = pod.metadata.annotations.as_ref().and_then(|a| a.get(HASH_ANNOTATION));
    let mirrors = mirror.metadata.annotations.as_ref().and_then(|a| a.get(MIRROR_ANNOTATION));
    mirror.metadata.deletion_timestamp.is_some() || mirrors != hash
}

/// The mirror pod in the API for static pod `pod`, or None when there is none and one should be created. An
/// outdated mirror ([`mirror_is_outdated`]) is deleted at once (grace 0, on its uid) as upstream's
/// DeleteMirrorPod does, and None returned so a fresh mirror replaces it; the static pod itself keeps running.
/// A pod of that name that is not a mirror is returned as it is (left alone).
pub async fn current_mirror(api: &kube::Api<Pod>, pod: &Pod) -> Result<Option<Pod>, kube::Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(existing) = api.get_opt(&name).await? else { return Ok(None) };
    if !is_mirror(&existing) || !mirror_is_outdated(&existing, pod) {
        return Ok(Some(existing));
    }
    tracing::info!(pod = %name, uid = ?existing.metadata.uid, "deleting a mirror pod");
    let dp = kube::api::DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(kube::api::Preconditions { uid: existing.metadata.uid.clone(), resource_version: None }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => {
            tracing::info!(pod = %name, "deleted mirror pod because it is outdated");
            Ok(None)
        }
        // gone already, or replaced meanwhile: look again on the next pass
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(Some(existing)),
        Err(e) => {
            tracing::warn!(pod = %name, error = %e, "failed deleting a mirror pod");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_become_node_pods_and_mirrors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let y = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
        std::fs::write(tmp.path().join("web.yaml"), y).expect("write");
        std::fs::write(tmp.path().join("broken.yaml"), "kind: [").expect("write");
        std::fs::write(tmp.path().join("notes.txt"), "ignored").expect("write");
        let pods = load_dir(tmp.path(), "node-a");
        assert_eq!(pods.len(), 1);
        let p = &pods[0];
        assert_eq!(p.metadata.name.as_deref(), Some("web-node-a"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(p.spec.as_ref().and_then(|s| s.node_name.as_deref()), Some("node-a"));
        assert!(is_static(p) && !is_mirror(p));
        let uid = p.metadata.uid.clone().expect("uid");
        assert_eq!(uid.len(), 36);
        assert_eq!(load_dir(tmp.path(), "node-a")[0].metadata.uid.as_deref(), Some(uid.as_str()), "stable uid");
        assert_ne!(load_dir(tmp.path(), "node-b")[0].metadata.uid.as_deref(), Some(uid.as_str()), "per node");
        let m = mirror(p, "node-a", Some("nuid"));
        assert!(is_mirror(&m));
        assert!(m.metadata.uid.is_none());
        assert_eq!(m.metadata.owner_references.clone().expect("owner")[0].kind, "Node");
        // which mirror the kubelet keeps and which it replaces (current_mirror)
        assert!(!mirror_is_outdated(&m, p), "a fresh mirror is kept");
        let mut deleting = m.clone();
        deleting.metadata.deletion_timestamp = Some(crate::time::to_k8s(chrono::Utc::now()));
        assert!(mirror_is_outdated(&deleting, p), "a mirror marked for deletion is replaced");
        std::fs::write(tmp.path().join("web.yaml"), y.replace("image: busybox", "image: busybox:1.36")).expect("write");
        let edited = load_dir(tmp.path(), "node-a");
        assert!(mirror_is_outdated(&m, &edited[0]), "a mirror of the manifest before an edit is replaced");
        assert!(!mirror_is_outdated(&mirror(&edited[0], "node-a", Some("nuid")), &edited[0]), "and its new mirror is kept");
    }
}
