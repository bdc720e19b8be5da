//! Kernel knobs through procfs and sysfs, in-process: `/proc/sys/net/...` resolves to the network namespace of
//! the calling thread, so calls made inside [`crate::netns::NetNs::run`] change the container's namespace.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct SysctlError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes `value` to `/proc/sys/<key>` (key in path form: `net/ipv4/ip_forward`).
pub fn set(key: &str, value: &str) -> Result<(), SysctlError> {
    write_file(PathBuf::from("/proc/sys").join(key), value)
}

/// Reads `/proc/sys/<key>`, trimmed.
pub fn get(key: &str) -> Result<String, SysctlError> {
    let path = PathBuf::from("/proc/sys").join(key);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|source| SysctlError { op: "read", path, source })
}

/// Sets `key` to `value` unless it already has it (saves a write on the hot path and on read-only hosts).
pub fn ensure(key: &str, value: &str) -> Result<(), SysctlError> {
    if get(key).map(|v| v == value).unwrap_or(false) {
        return Ok(());
    }
    set(key, value)
}

/// Writes a sysfs attribute, e.g. `/sys/class/net/veth1/brport/hairpin_mode`.
pub fn write_file(path: PathBuf, value: &str) -> Result<(), SysctlError> {
    std::fs::write(&path, value).map_err(|source| SysctlError { op: "write", path, source })
}
