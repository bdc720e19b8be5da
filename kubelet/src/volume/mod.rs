//! Pod volumes: each volume is prepared as a directory (or file) under the pod's directory on the host,
//! `<pod dir>/volumes/<kind>/<name>`, which the container spec then bind-mounts (with `subPath` and `readOnly`).
//! hostPath volumes are the host path itself. Nothing here knows about the runtime.

pub mod atomic_writer;
pub mod config_map;
pub mod downward_api;
pub mod empty_dir;
pub mod host_path;
pub mod projected;
pub mod secret;

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, VolumeMount};

use crate::container::env::EnvSources;

/// Why a volume could not be prepared; the pod worker reports it on the container that needs it.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The ConfigMap or Secret (`kind`) a non-optional volume source names does not exist.
    #[error("volume \"{volume}\": {kind} \"{name}\" not found in namespace {namespace}")]
    NotFound {
        /// The volume's name in the pod spec.
        volume: String,
        /// `configmap` or `secret`.
        kind: &'static str,
        /// The pod's namespace, where the object was looked for.
        namespace: String,
        /// The object's name.
        name: String,
    },
    /// An `items` entry names a key the ConfigMap or Secret does not have (and the source is not optional).
    #[error("volume \"{volume}\": {kind} \"{name}\" references non-existent config key: {key}")]
    MissingKey {
        /// The volume's name in the pod spec.
        volume: String,
        /// `configmap` or `secret`.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A hostPath is not of its declared `type` (or could not be created as one).
    #[error("volume \"{volume}\": {message}")]
    HostPathType {
        /// The volume's name in the pod spec.
        volume: String,
        /// What is wrong, as the event reports it.
        message: String,
    },
    /// The volume source cannot be set up as written: an unsupported kind, a bad quantity, a downward API
    /// field this kubelet does not serve.
    #[error("volume \"{volume}\": {message}")]
    Invalid {
        /// The volume's name in the pod spec.
        volume: String,
        /// What is wrong, as the event reports it.
        message: String,
    },
    /// Creating or writing the volume's directory failed.
    #[error("volume \"{volume}\": {path}: {source}")]
    Io {
        /// The volume's name in the pod spec.
        volume: String,
        /// The file or directory that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Mounting the tmpfs of a Memory emptyDir, or of a secret or projected volume, failed.
    #[error("volume \"{volume}\": mount tmpfs on {path}: {source}")]
    Mount {
        /// The volume's name in the pod spec.
        volume: String,
        /// The mount point.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Publishing the volume's files failed.
    #[error("volume \"{volume}\": {source}")]
    Write {
        /// The volume's name in the pod spec.
        volume: String,
        /// The cause.
        #[source]
        source: atomic_writer::AtomicWriteError,
    },
    /// A projected `serviceAccountToken` could not be obtained from the API server.
    #[error("volume \"{volume}\": failed to fetch token: {reason}")]
    Token {
        /// The volume's name in the pod spec.
        volume: String,
        /// Why the TokenRequest failed.
        reason: String,
    },
    /// A volumeMount names no volume of the pod.
    #[error("volumeMount \"{mount}\" refers to no volume of the pod")]
    NoSuchVolume {
        /// The volumeMount's `name`.
        mount: String,
    },
    /// A volumeMount's `subPath` is absolute or leaves the volume.
    #[error("volumeMount \"{mount}\": invalid subPath {sub_path:?}: {why}")]
    InvalidSubPath {
        /// The volumeMount's `name`.
        mount: String,
        /// The `subPath`, as written.
        sub_path: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl VolumeError {
    /// True for errors the user fixes by creating an object (CreateContainerConfigError), false for the rest.
    pub fn is_config_error(&self) -> bool {
        matches!(self, Self::NotFound { .. } | Self::MissingKey { .. })
    }

    /// For a volume that could not be set up (not a missing object, not a bad volumeMount): the volume's name
    /// and the cause, as upstream's `MountVolume.SetUp failed for volume "<v>" : <cause>` event reports them.
    pub fn setup_failure(&self) -> Option<(&str, String)> {
        match self {
            Self::HostPathType { volume, message } | Self::Invalid { volume, message } => Some((volume, message.clone())),
            Self::Io { volume, path, source } => Some((volume, format!("{}: {source}", path.display()))),
            Self::Mount { volume, path, source } => Some((volume, format!("mount tmpfs on {}: {source}", path.display()))),
            Self::Write { volume, source } => Some((volume, source.to_string())),
            Self::Token { volume, reason } => Some((volume, format!("failed to fetch token: {reason}"))),
            _ => None,
        }
    }
}

/// A prepared volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedVolume {
    /// The directory (or, for hostPath, the host's path) that volumeMounts bind from.
    pub host_path: PathBuf,
}

/// The eviction message for the first disk-backed emptyDir of `pod` that holds more than its `sizeLimit`, in
/// upstream's words, or None when all are within their limits.
pub fn empty_dir_over_limit(pod: &Pod, pod_dir: &Path) -> Option<String> {
    let base = volumes_dir(pod_dir).join("kubernetes.io~empty-dir");
    for v in pod.spec.as_ref()?.volumes.as_deref().unwrap_or(&[]) {
        let Some(e) = &v.empty_dir else { continue };
        let Some(limit) = e.size_limit.as_ref().filter(|_| e.medium.as_deref() != Some("Memory")) else { continue };
        let Ok(bytes) = rkube_apimachinery::quantity::value(limit) else { continue };
        if empty_dir::usage_bytes(&base.join(&v.name)) > u64::try_from(bytes).unwrap_or(u64::MAX) {
            return Some(format!("Usage of EmptyDir volume \"{}\" exceeds the limit \"{}\". ", v.name, limit.0));
        }
    }
    None
}

/// Directory holding all of a pod's volume directories.
pub fn volumes_dir(pod_dir: &Path) -> PathBuf {
    pod_dir.join("volumes")
}

/// Prepares every volume of `pod` under `pod_dir`. `tmpfs` mounts tmpfs for secret and projected volumes
/// (root only; unit tests pass false). Re-running updates configMap/secret contents atomically.
pub fn setup_all(
    pod: &Pod,
    pod_dir: &Path,
    src: &EnvSources,
    tmpfs: bool,
) -> Result<HashMap<String, PreparedVolume>, VolumeError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let mut out = HashMap::new();
    let base = volumes_dir(pod_dir);
    for v in pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or(&[]) {
        let name = v.name.as_str();
        let publish = |dir: PathBuf, payload, on_tmpfs: bool| -> Result<PathBuf, VolumeError> {
            std::fs::create_dir_all(&dir).map_err(|source| VolumeError::Io { volume: name.into(), path: dir.clone(), source })?;
            if on_tmpfs && tmpfs && !empty_dir::is_mountpoint(&dir) {
                empty_dir::mount_tmpfs(name, &dir, "mode=0755")?;
            }
            atomic_writer::write(&dir, &payload).map_err(|source| VolumeError::Write { volume: name.into(), source })?;
            Ok(dir)
        };
        let path = if let Some(e) = &v.empty_dir {
            empty_dir::setup(name, &base.join("kubernetes.io~empty-dir").join(name), e)?
        } else if let Some(h) = &v.host_path {
            let p = PathBuf::from(&h.path);
            host_path::check_type(name, &p, h.type_.as_deref())?;
            p
        } else if let Some(c) = &v.config_map {
            let payload = config_map::payload(name, &ns, c, src.config_maps.get(&c.name))?;
            publish(base.join("kubernetes.io~configmap").join(name), payload, false)?
        } else if let Some(s) = &v.secret {
            let secret_name = s.secret_name.clone().unwrap_or_default();
            let payload = secret::payload(name, &ns, s, src.secrets.get(&secret_name))?;
            publish(base.join("kubernetes.io~secret").join(name), payload, true)?
        } else if let Some(d) = &v.downward_api {
            let payload = downward_api::payload(name, pod, d.items.as_deref().unwrap_or(&[]), d.default_mode, src)?;
            publish(base.join("kubernetes.io~downward-api").join(name), payload, false)?
        } else if let Some(p) = &v.projected {
            let payload = projected::payload(name, pod, p, src)?;
            publish(base.join("kubernetes.io~projected").join(name), payload, true)?
        } else {
            return Err(VolumeError::Invalid {
                volume: name.into(),
                message: "unsupported volume source (rkube supports emptyDir, hostPath, configMap, secret, downwardAPI, projected)".into(),
            });
        };
        out.insert(name.to_string(), PreparedVolume { host_path: path });
    }
    Ok(out)
}

/// Unmounts and removes every volume directory of a pod (hostPath volumes are left alone: they are not under
/// the pod directory).
pub fn teardown_all(pod_dir: &Path) -> std::io::Result<()> {
    let base = volumes_dir(pod_dir);
    let Ok(kinds) = std::fs::read_dir(&base) else { return Ok(()) };
    for kind in kinds.flatten() {
        if let Ok(vols) = std::fs::read_dir(kind.path()) {
            for v in vols.flatten() {
                empty_dir::teardown(&v.path())?;
            }
        }
    }
    std::fs::remove_dir_all(&base).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
}

/// The host path a `volumeMount` binds: the volume's path, or `subPath` inside it (created as a directory if
/// missing, as upstream). `subPath` must be relative and must not leave the volume.
pub fn mount_source(vols: &HashMap<String, PreparedVolume>, m: &VolumeMount) -> Result<PathBuf, VolumeError> {
    let v = vols.get(&m.name).ok_or_else(|| VolumeError::NoSuchVolume { mount: m.name.clone() })?;
    let sub = m.sub_path.as_deref().unwrap_or("");
    if sub.is_empty() {
        return Ok(v.host_path.clone());
    }
    let bad = |why| VolumeError::InvalidSubPath { mount: m.name.clone(), sub_path: sub.into(), why };
    let p = Path::new(sub);
    if p.is_absolute() {
        return Err(bad("must be a relative path"));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(bad("must not contain '..'"));
    }
    let full = v.host_path.join(p);
    // the resolved path must stay inside the volume (no symlink escapes)
    if full.exists() {
        let root = v.host_path.canonicalize().map_err(|_| bad("volume path cannot be resolved"))?;
        let resolved = full.canonicalize().map_err(|_| bad("cannot be resolved"))?;
        if !resolved.starts_with(&root) {
            return Err(bad("resolves outside the volume"));
        }
        return Ok(resolved);
    }
    std::fs::create_dir_all(&full).map_err(|source| VolumeError::Io { volume: m.name.clone(), path: full.clone(), source })?;
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource, Volume};

    fn vol(name: &str) -> Volume {
        Volume { name: name.into(), ..Default::default() }
    }

    #[test]
    fn sets_up_and_tears_down_a_pod_worth_of_volumes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pod_dir = tmp.path().join("pod");
        let host = tmp.path().join("host-data");
        let mut p = crate::pod::lifecycle::tests::pod("Always", &[], &["a"]);
        p.spec.as_mut().expect("spec").volumes = Some(vec![
            Volume { empty_dir: Some(EmptyDirVolumeSource::default()), ..vol("scratch") },
            Volume {
                host_path: Some(HostPathVolumeSource { path: host.to_string_lossy().into(), type_: Some("DirectoryOrCreate".into()) }),
                ..vol("data")
            },
            Volume { config_map: Some(ConfigMapVolumeSource { name: "cfg".into(), ..Default::default() }), ..vol("cfg") },
        ]);
        let mut src = EnvSources::default();
        src.config_maps
            .insert("cfg".into(), ConfigMap { data: Some([("k".to_string(), "v".to_string())].into()), ..Default::default() });
        let vols = setup_all(&p, &pod_dir, &src, false).expect("setup");
        assert!(vols["scratch"].host_path.is_dir());
        assert_eq!(vols["data"].host_path, host);
        assert!(host.is_dir());
        assert_eq!(std::fs::read_to_string(vols["cfg"].host_path.join("k")).expect("k"), "v");

        // subPath inside a volume
        let m = VolumeMount { name: "scratch".into(), mount_path: "/x".into(), sub_path: Some("a/b".into()), ..Default::default() };
        let sp = mount_source(&vols, &m).expect("subpath");
        assert!(sp.is_dir() && sp.ends_with("a/b"));
        for bad in ["../../etc", "/etc"] {
            let m = VolumeMount { name: "scratch".into(), mount_path: "/x".into(), sub_path: Some(bad.into()), ..Default::default() };
            assert!(matches!(mount_source(&vols, &m), Err(VolumeError::InvalidSubPath { .. })), "{bad}");
        }
        // a symlink inside the volume that points out of it is refused
        std::os::unix::fs::symlink("/etc", vols["scratch"].host_path.join("escape")).expect("symlink");
        let m = VolumeMount { name: "scratch".into(), mount_path: "/x".into(), sub_path: Some("escape".into()), ..Default::default() };
        assert!(matches!(mount_source(&vols, &m), Err(VolumeError::InvalidSubPath { .. })));
        let m = VolumeMount { name: "nope".into(), mount_path: "/x".into(), ..Default::default() };
        assert!(matches!(mount_source(&vols, &m), Err(VolumeError::NoSuchVolume { .. })));

        teardown_all(&pod_dir).expect("teardown");
        assert!(!volumes_dir(&pod_dir).exists());
        assert!(host.is_dir(), "hostPath data survives the pod");
    }

    #[test]
    fn missing_configmap_is_a_config_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut p = crate::pod::lifecycle::tests::pod("Always", &[], &["a"]);
        p.spec.as_mut().expect("spec").volumes =
            Some(vec![Volume { config_map: Some(ConfigMapVolumeSource { name: "gone".into(), ..Default::default() }), ..vol("cfg") }]);
        let err = setup_all(&p, tmp.path(), &EnvSources::default(), false).expect_err("missing");
        assert!(err.is_config_error());
        let mut p2 = p.clone();
        p2.spec.as_mut().expect("spec").volumes = Some(vec![Volume {
            host_path: Some(HostPathVolumeSource { path: "/".into(), type_: Some("File".into()) }),
            ..vol("h")
        }]);
        let err = setup_all(&p2, tmp.path(), &EnvSources::default(), false).expect_err("bad type");
        assert!(!err.is_config_error());
        assert_eq!(err.to_string(), "volume \"h\": hostPath type check failed: / is not a file");
        assert_eq!(err.setup_failure(), Some(("h", "hostPath type check failed: / is not a file".to_string())));
    }

    /// Root: secret volumes live on a tmpfs.
    #[test]
    fn secret_volume_is_on_tmpfs() {
        rkube_testsupport::require_root();
        let tmp = tempfile::tempdir().expect("tempdir");
        let pod_dir = tmp.path().join("pod");
        struct Cleanup(PathBuf);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = teardown_all(&self.0);
            }
        }
        let _c = Cleanup(pod_dir.clone());
        let mut p = crate::pod::lifecycle::tests::pod("Always", &[], &["a"]);
        p.spec.as_mut().expect("spec").volumes = Some(vec![Volume {
            secret: Some(k8s_openapi::api::core::v1::SecretVolumeSource { secret_name: Some("s".into()), ..Default::default() }),
            ..vol("creds")
        }]);
        let mut src = EnvSources::default();
        src.secrets.insert(
            "s".into(),
            k8s_openapi::api::core::v1::Secret { string_data: Some([("pw".to_string(), "x".to_string())].into()), ..Default::default() },
        );
        let vols = setup_all(&p, &pod_dir, &src, true).expect("setup");
        let dir = &vols["creds"].host_path;
        assert!(empty_dir::is_mountpoint(dir));
        assert_eq!(std::fs::read_to_string(dir.join("pw")).expect("pw"), "x");
        teardown_all(&pod_dir).expect("teardown");
        assert!(!empty_dir::is_mountpoint(dir));
        assert!(!dir.exists());
    }
}
