//! The host's devices for privileged containers. As containerd's CRI does for `privileged: true`
//! (`WithHostDevices` and `WithAllDevicesAllowed`), the container gets a node for every character and block
//! device under the host's /dev (not the pts, shm, mqueue and fd trees, which it has its own of, nor the
//! console) and a device cgroup rule that allows them all. [`host_devices`] reads /dev; [`with_host_devices`]
//! writes the result into an OCI config and is pure.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde_json::{json, Value};

/// Directories of /dev that are not passed through (containerd's list).
const SKIPPED_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// One device node, as `linux.devices` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostDevice {
    /// Its path, the same inside the container (`/dev/...`).
    pub path: String,
    /// `c` or `b`.
    pub kind: char,
    /// Device major number.
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner, as on the host.
    pub uid: u32,
    /// Group, as on the host.
    pub gid: u32,
}

/// glibc's `major()` / `minor()` of a `dev_t`.
fn major_minor(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major, minor)
}

/// Every character and block device under `dev` (the host's /dev), recursively, sorted by path; symlinks,
/// fifos and the skipped trees left out. Paths are given as under /dev whatever `dev` is. Entries that vanish
/// or cannot be read while walking are skipped.
pub fn host_devices(dev: &Path) -> Vec<HostDevice> {
    let mut out = Vec::new();
    walk(dev, "/dev", &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(dir: &Path, as_path: &str, out: &mut Vec<HostDevice>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = format!("{as_path}/{name}");
        // symlink_metadata: a symlink to a device is not a device
        let Ok(m) = std::fs::symlink_metadata(e.path()) else { continue };
        let ft = m.file_type();
        if ft.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                walk(&e.path(), &path, out);
            }
        } else if (ft.is_char_device() || ft.is_block_device()) && name != "console" {
            let (major, minor) = major_minor(m.rdev());
            let kind = if ft.is_char_device() { 'c' } else { 'b' };
            out.push(HostDevice { path, kind, major, minor, mode: m.mode() & 0o7777, uid: m.uid(), gid: m.gid() });
        }
    }
}

/// Gives the container of `config` (an OCI runtime config) the `devices` and a device cgroup that allows every
/// device.
pub fn with_host_devices(config: &mut Value, devices: &[HostDevice]) {
    let list: Vec<Value> = devices
        .iter()
        .map(|d| {
            json!({"path": d.path, "type": d.kind.to_string(), "major": d.major, "minor": d.minor,
                   "fileMode": d.mode, "uid": d.uid, "gid": d.gid})
        })
        .collect();
    config["linux"]["devices"] = Value::Array(list);
    config["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hosts_devices_and_skips_what_containerd_skips() {
        let devs = host_devices(Path::new("/dev"));
        let null = devs.iter().find(|d| d.path == "/dev/null").expect("/dev/null is a host device");
        assert_eq!((null.kind, null.major, null.minor, null.mode), ('c', 1, 3, 0o666));
        assert!(devs.iter().all(|d| !d.path.starts_with("/dev/pts/") && !d.path.starts_with("/dev/fd/") && d.path != "/dev/console"), "{devs:?}");
        assert!(devs.iter().all(|d| d.path != "/dev/stdin"), "symlinks are not devices");
        assert_eq!(major_minor(0x0801), (8, 1));
        assert_eq!(major_minor((259 << 8) | 5), (259, 5));
    }

    #[test]
    fn config_gets_the_devices_and_an_allow_all_rule() {
        let mut config = json!({"linux": {"resources": {"cpu": {"shares": 2}}}});
        let d = HostDevice { path: "/dev/loop0".into(), kind: 'b', major: 7, minor: 0, mode: 0o660, uid: 0, gid: 6 };
        with_host_devices(&mut config, &[d]);
        assert_eq!(config["linux"]["devices"], json!([{"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0, "fileMode": 0o660, "uid": 0, "gid": 6}]));
        assert_eq!(config["linux"]["resources"]["devices"], json!([{"allow": true, "access": "rwm"}]));
        assert_eq!(config["linux"]["resources"]["cpu"]["shares"], 2, "the rest of resources kept");
    }
}
