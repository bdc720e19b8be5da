//! configMap volumes: the ConfigMap's keys (or the chosen `items`) as files, published atomically.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapVolumeSource, KeyToPath};

use super::atomic_writer::FileProjection;
use super::VolumeError;

/// Default file mode of configMap, secret, downwardAPI and projected files.
pub const DEFAULT_MODE: u32 = 0o644;

/// Turns `data` into files: every key, or only `items` (a missing item key is an error unless `optional`).
pub fn project(
    volume: &str,
    kind: &'static str,
    object: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<BTreeMap<String, FileProjection>, VolumeError> {
    let mode = default_mode.map(|m| m as u32).unwrap_or(DEFAULT_MODE);
    let mut out = BTreeMap::new();
    match items {
        None => {
            for (k, v) in data {
                out.insert(k.clone(), FileProjection { data: v.clone(), mode });
            }
        }
        Some(items) => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        out.insert(
                            it.path.clone(),
                            FileProjection { data: v.clone(), mode: it.mode.map(|m| m as u32).unwrap_or(mode) },
                        );
                    }
                    None if optional => {}
                    None => {
                        return Err(VolumeError::MissingKey {
                            volume: volume.into(),
                            kind,
                            name: object.into(),
                            key: it.key.clone(),
                        })
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Keys and values of a ConfigMap (`data` and `binaryData`).
pub fn data_of(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut m: BTreeMap<String, Vec<u8>> =
        cm.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    for (k, v) in cm.binary_data.clone().unwrap_or_default() {
        m.insert(k, v.0);
    }
    m
}

/// The files of a configMap volume; `cm` is None when the ConfigMap does not exist.
pub fn payload(
    volume: &str,
    namespace: &str,
    src: &ConfigMapVolumeSource,
    cm: Option<&ConfigMap>,
) -> Result<BTreeMap<String, FileProjection>, VolumeError> {
    let optional = src.optional == Some(true);
    let Some(cm) = cm else {
        if optional {
            return Ok(BTreeMap::new());
        }
        return Err(VolumeError::NotFound {
            volume: volume.into(),
            kind: "configmap",
            namespace: namespace.into(),
            name: src.name.clone(),
        });
    };
    project(volume, "configmap", &src.name, &data_of(cm), src.items.as_deref(), src.default_mode, optional)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm() -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta { name: Some("cfg".into()), ..Default::default() },
            data: Some([("a".to_string(), "1".to_string()), ("b".into(), "2".into())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn all_keys_or_items() {
        let src = ConfigMapVolumeSource { name: "cfg".into(), ..Default::default() };
        let p = payload("v", "ns", &src, Some(&cm())).expect("payload");
        assert_eq!(p.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p["a"], FileProjection { data: b"1".to_vec(), mode: 0o644 });

        let src = ConfigMapVolumeSource {
            name: "cfg".into(),
            default_mode: Some(0o600),
            items: Some(vec![
                KeyToPath { key: "b".into(), path: "dir/bee".into(), mode: None },
                KeyToPath { key: "a".into(), path: "ay".into(), mode: Some(0o400) },
            ]),
            ..Default::default()
        };
        let p = payload("v", "ns", &src, Some(&cm())).expect("payload");
        assert_eq!(p["dir/bee"].mode, 0o600);
        assert_eq!(p["ay"].mode, 0o400);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn missing_configmap_or_key() {
        let src = ConfigMapVolumeSource { name: "cfg".into(), ..Default::default() };
        let err = payload("v", "ns", &src, None).expect_err("missing");
        assert_eq!(err.to_string(), "volume \"v\": configmap \"cfg\" not found in namespace ns");
        let src = ConfigMapVolumeSource { name: "cfg".into(), optional: Some(true), ..Default::default() };
        assert!(payload("v", "ns", &src, None).expect("optional").is_empty());
        let src = ConfigMapVolumeSource {
            name: "cfg".into(),
            items: Some(vec![KeyToPath { key: "zz".into(), path: "z".into(), mode: None }]),
            ..Default::default()
        };
        let err = payload("v", "ns", &src, Some(&cm())).expect_err("missing key");
        assert!(err.to_string().contains("non-existent config key: zz"), "{err}");
    }
}
