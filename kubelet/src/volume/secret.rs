//! secret volumes: like configMap volumes, but the directory is a tmpfs so secret data never reaches disk.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Secret, SecretVolumeSource};

use super::atomic_writer::FileProjection;
use super::VolumeError;

/// Keys and values of a Secret (`data`, then `stringData`).
pub fn data_of(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut m: BTreeMap<String, Vec<u8>> =
        s.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    for (k, v) in s.string_data.clone().unwrap_or_default() {
        m.insert(k, v.into_bytes());
    }
    m
}

/// The files of a secret volume; `secret` is None when it does not exist.
pub fn payload(
    volume: &str,
    namespace: &str,
    src: &SecretVolumeSource,
    secret: Option<&Secret>,
) -> Result<BTreeMap<String, FileProjection>, VolumeError> {
    let optional = src.optional == Some(true);
    let name = src.secret_name.clone().unwrap_or_default();
    let Some(secret) = secret else {
        if optional {
            return Ok(BTreeMap::new());
        }
        return Err(VolumeError::NotFound { volume: volume.into(), kind: "secret", namespace: namespace.into(), name });
    };
    super::config_map::project(volume, "secret", &name, &data_of(secret), src.items.as_deref(), src.default_mode, optional)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn data_and_string_data() {
        let s = Secret {
            data: Some([("user".to_string(), ByteString(b"admin".to_vec()))].into()),
            string_data: Some([("pass".to_string(), "pw".to_string())].into()),
            ..Default::default()
        };
        let src = SecretVolumeSource { secret_name: Some("s".into()), default_mode: Some(0o400), ..Default::default() };
        let p = payload("v", "ns", &src, Some(&s)).expect("payload");
        assert_eq!(p["user"], FileProjection { data: b"admin".to_vec(), mode: 0o400 });
        assert_eq!(p["pass"].data, b"pw");
        let err = payload("v", "ns", &src, None).expect_err("missing");
        assert_eq!(err.to_string(), "volume \"v\": secret \"s\" not found in namespace ns");
    }
}
