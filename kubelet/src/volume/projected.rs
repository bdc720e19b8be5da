//! projected volumes: configMap, secret, downwardAPI and serviceAccountToken sources merged into one
//! directory. Tokens come from the TokenRequest API, bound to the pod (the caller fetches them into
//! `EnvSources::tokens`); they are written when the container starts and not rotated while it runs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ProjectedVolumeSource, Secret, ServiceAccountTokenProjection};

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
        if let Some(t) = &s.service_account_token {
            let key = token_key(t);
            let token = match src.tokens.get(&key) {
                Some(Ok(token)) => token.clone(),
                Some(Err(why)) => return Err(VolumeError::Token { volume: volume.into(), reason: why.clone() }),
                None => return Err(VolumeError::Token { volume: volume.into(), reason: "no token was requested".into() }),
            };
            let mode = proj.default_mode.unwrap_or(0o644) as u32;
            out.insert(t.path.clone(), FileProjection { data: token.into_bytes(), mode });
        }
    }
    Ok(out)
}

/// Upstream's defaults: the API server's audience (empty here, the server fills it in) and one hour.
pub fn token_key(t: &ServiceAccountTokenProjection) -> (String, i64) {
    (t.audience.clone().unwrap_or_default(), t.expiration_seconds.unwrap_or(3600))
}

/// Every distinct token the pod's projected volumes ask for.
pub fn wanted_tokens(pod: &Pod) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
    for p in volumes.iter().filter_map(|v| v.projected.as_ref()) {
        for t in p.sources.iter().flatten().filter_map(|s| s.service_account_token.as_ref()) {
            let key = token_key(t);
            if !out.contains(&key) {
                out.push(key);
            }
        }
    }
    out
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

    #[test]
    fn token_sources_write_the_fetched_token_or_fail_the_mount() {
        let mut p = crate::pod::lifecycle::tests::pod("Always", &[], &["a"]);
        let token = |path: &str, audience: Option<&str>| VolumeProjection {
            service_account_token: Some(ServiceAccountTokenProjection {
                path: path.into(),
                audience: audience.map(str::to_string),
                expiration_seconds: None,
            }),
            ..Default::default()
        };
        let proj = ProjectedVolumeSource { default_mode: None, sources: Some(vec![token("token", None), token("vault", Some("vault"))]) };
        p.spec.as_mut().expect("spec").volumes =
            Some(vec![k8s_openapi::api::core::v1::Volume { name: "t".into(), projected: Some(proj.clone()), ..Default::default() }]);
        assert_eq!(wanted_tokens(&p), vec![(String::new(), 3600), ("vault".to_string(), 3600)]);
        let mut src = EnvSources::default();
        src.tokens.insert((String::new(), 3600), Ok("jwt-a".into()));
        src.tokens.insert(("vault".into(), 3600), Ok("jwt-v".into()));
        let out = payload("t", &p, &proj, &src).expect("payload");
        assert_eq!((out["token"].data.as_slice(), out["token"].mode), (b"jwt-a".as_slice(), 0o644));
        assert_eq!(out["vault"].data, b"jwt-v");
        src.tokens.insert(("vault".into(), 3600), Err("serviceaccount default/default: not found".into()));
        let err = payload("t", &p, &proj, &src).expect_err("a failed TokenRequest fails the volume");
        assert_eq!(err.setup_failure().map(|(v, _)| v), Some("t"));
        assert!(err.to_string().contains("failed to fetch token: serviceaccount default/default: not found"), "{err}");
    }
}
