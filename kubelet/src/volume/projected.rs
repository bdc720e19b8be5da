//! projected volumes: configMap, secret and downwardAPI sources merged into one directory. A
//! serviceAccountToken source gets no token (rkube issues none yet); the rest of the volume is still written.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ProjectedVolumeSource, Secret};

use super::atomic_writer::FileProjection;
use super::VolumeError;
use crate::container::env::EnvSources;

/// The merged files of a projected volume; ConfigMaps and Secrets come from `src`.
pub fn payload(
    volume: &str,
    pod: &Pod,
    proj: &ProjectedVolumeSource,
    src: &EnvSources,
) -> Result<BTreeMap<String, FileProjection>, VolumeError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let mut out = BTreeMap::new();
    for s in proj.sources.as_deref().unwrap_or(&[]) {
        if let Some(c) = &s.config_map {
            let optional = c.optional == Some(true);
            let cm: Option<&ConfigMap> = src.config_maps.get(&c.name);
            match cm {
                Some(cm) => out.extend(super::config_map::project(
                    volume,
                    "configmap",
                    &c.name,
                    &super::config_map::data_of(cm),
                    c.items.as_deref(),
                    proj.default_mode,
                    optional,
                )?),
                None if optional => {}
                None => {
                    return Err(VolumeError::NotFound { volume: volume.into(), kind: "configmap", namespace: ns, name: c.name.clone() })
                }
            }
        }
        if let Some(sec) = &s.secret {
            let optional = sec.optional == Some(true);
            let found: Option<&Secret> = src.secrets.get(&sec.name);
            match found {
                Some(secret) => out.extend(super::config_map::project(
                    volume,
                    "secret",
                    &sec.name,
                    &super::secret::data_of(secret),
                    sec.items.as_deref(),
                    proj.default_mode,
                    optional,
                )?),
                None if optional => {}
                None => {
                    return Err(VolumeError::NotFound { volume: volume.into(), kind: "secret", namespace: ns, name: sec.name.clone() })
                }
            }
        }
        if let Some(d) = &s.downward_api {
            out.extend(super::downward_api::payload(volume, pod, d.items.as_deref().unwrap_or(&[]), proj.default_mode, src)?);
        }
        if s.service_account_token.is_some() {
            tracing::debug!(volume, "projected serviceAccountToken source skipped: no token issuer on this node");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMapProjection, DownwardAPIProjection, DownwardAPIVolumeFile, ObjectFieldSelector, VolumeProjection};

    #[test]
    fn merges_sources() {
        let p = crate::pod::lifecycle::tests::pod("Always", &[], &["a"]);
        let mut src = EnvSources::default();
        src.config_maps.insert(
            "kube-root-ca.crt".into(),
            ConfigMap { data: Some([("ca.crt".to_string(), "PEM".to_string())].into()), ..Default::default() },
        );
        let proj = ProjectedVolumeSource {
            default_mode: Some(0o444),
            sources: Some(vec![
                VolumeProjection { config_map: Some(ConfigMapProjection { name: "kube-root-ca.crt".into(), ..Default::default() }), ..Default::default() },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector { field_path: "metadata.namespace".into(), api_version: None }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                },
            ]),
        };
        let out = payload("kube-api-access", &p, &proj, &src).expect("payload");
        assert_eq!(out["ca.crt"], FileProjection { data: b"PEM".to_vec(), mode: 0o444 });
        assert_eq!(out["namespace"].data, b"default");
        src.config_maps.clear();
        assert!(payload("kube-api-access", &p, &proj, &src).is_err());
    }
}
