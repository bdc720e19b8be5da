//! Spec versions this crate speaks, and the VERSION command's answer.

use crate::error::{code, CniError};

/// Every version a config may name. 0.3.x results carry `ips[].version`; CHECK needs 0.4.0 or later.
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The version we answer in when the caller named none.
pub const LATEST: &str = "1.1.0";

/// Fails with code 1 unless `v` is a version we speak.
pub fn ensure_supported(v: &str) -> Result<(), CniError> {
    if SUPPORTED.contains(&v) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("cniVersion {v:?} is not supported; this plugin speaks {}", SUPPORTED.join(", ")),
        ))
    }
}

/// (major, minor, patch) of a version string; unknown parts are 0.
pub fn parse(v: &str) -> (u32, u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// True for versions that know the CHECK command (0.4.0 and later).
pub fn has_check(v: &str) -> bool {
    parse(v) >= (0, 4, 0)
}

/// True for versions that know STATUS and GC (1.1.0 and later).
pub fn has_status_gc(v: &str) -> bool {
    parse(v) >= (1, 1, 0)
}

/// The VERSION command's JSON answer.
pub fn version_info(cni_version: &str) -> String {
    serde_json::json!({ "cniVersion": cni_version, "supportedVersions": SUPPORTED }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_version_is_code_1() {
        assert_eq!(ensure_supported("9.9.9").unwrap_err().code, 1);
        assert!(ensure_supported("0.4.0").is_ok());
        assert!(has_check("1.0.0") && has_check("0.4.0") && !has_check("0.3.1"));
        assert!(has_status_gc("1.1.0") && !has_status_gc("1.0.0"));
    }
}
