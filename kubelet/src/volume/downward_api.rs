//! downwardAPI volumes: pod fields (name, namespace, uid, labels, annotations...) and container resources as
//! files. Labels and annotations are written as sorted `key="value"` lines, as upstream.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, Pod};

use super::atomic_writer::FileProjection;
use super::VolumeError;
use crate::container::env::{field_value, resource_value, EnvSources};

fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    let mut out = String::new();
    for (k, v) in m.into_iter().flatten() {
        out.push_str(&format!("{k}={v:?}\n"));
    }
    out.trim_end_matches('\n').to_string()
}

/// The files of a downwardAPI item list.
pub fn payload(
    volume: &str,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    src: &EnvSources,
) -> Result<BTreeMap<String, FileProjection>, VolumeError> {
    let mode = default_mode.map(|m| m as u32).unwrap_or(super::config_map::DEFAULT_MODE);
    let mut out = BTreeMap::new();
    for it in items {
        let value = if let Some(f) = &it.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
                "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
                path => field_value(pod, path, src).ok_or_else(|| VolumeError::Invalid {
                    volume: volume.into(),
                    message: format!("unsupported fieldRef path {path:?} for {}", it.path),
                })?,
            }
        } else if let Some(r) = &it.resource_field_ref {
            let cname = r.container_name.clone().unwrap_or_default();
            let c = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == cname))
                .ok_or_else(|| VolumeError::Invalid {
                    volume: volume.into(),
                    message: format!("resourceFieldRef for {}: no container named {cname:?}", it.path),
                })?;
            resource_value(c, &r.resource, r.divisor.as_ref().map(|d| d.0.as_str()), src, &it.path)
                .map_err(|e| VolumeError::Invalid { volume: volume.into(), message: e.to_string() })?
        } else {
            continue;
        };
        out.insert(it.path.clone(), FileProjection { data: value.into_bytes(), mode: it.mode.map(|m| m as u32).unwrap_or(mode) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectFieldSelector;

    #[test]
    fn fields_labels_annotations() {
        let mut p = crate::pod::lifecycle::tests::pod("Always", &[], &["a"]);
        p.metadata.labels = Some([("b".to_string(), "2".to_string()), ("a".into(), "x\"y".into())].into());
        let item = |path: &str, field: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector { field_path: field.into(), api_version: None }),
            ..Default::default()
        };
        let items = vec![item("name", "metadata.name"), item("labels", "metadata.labels"), item("ns", "metadata.namespace")];
        let out = payload("v", &p, &items, None, &EnvSources::default()).expect("payload");
        assert_eq!(out["name"].data, b"p");
        assert_eq!(out["ns"].data, b"default");
        assert_eq!(String::from_utf8_lossy(&out["labels"].data), "a=\"x\\\"y\"\nb=\"2\"");
        let bad = vec![item("x", "spec.bogus")];
        assert!(payload("v", &p, &bad, None, &EnvSources::default()).is_err());
    }
}
