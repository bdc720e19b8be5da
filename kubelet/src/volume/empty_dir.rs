//! emptyDir volumes: a directory under the pod's directory that lives as long as the pod; `medium: Memory`
//! mounts a tmpfs there, sized by `sizeLimit` (else unlimited up to the node's memory). A disk-backed one has no
//! hard limit: like upstream's eviction manager, the kubelet measures it ([`usage_bytes`]) and evicts the pod
//! once it holds more than its `sizeLimit`.

use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::EmptyDirVolumeSource;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::VolumeError;

/// The tmpfs mount options for a size limit (`size=<bytes>`), or none when unlimited.
pub fn tmpfs_options(size_limit: Option<i64>) -> String {
    match size_limit {
        Some(b) if b > 0 => format!("mode=0777,size={b}"),
        _ => "mode=0777".to_string(),
    }
}

/// Creates the emptyDir at `dir`; for medium Memory mounts a tmpfs (needs root).
pub fn setup(volume: &str, dir: &Path, src: &EmptyDirVolumeSource) -> Result<PathBuf, VolumeError> {
    let io = |source| VolumeError::Io { volume: volume.into(), path: dir.into(), source };
    fs::create_dir_all(dir).map_err(io)?;
    if src.medium.as_deref() == Some("Memory") {
        let size = match &src.size_limit {
            Some(q) => Some(rkube_apimachinery::quantity::value(q).map_err(|e| VolumeError::Invalid {
                volume: volume.into(),
                message: e.to_string(),
            })?),
            None => None,
        };
        if !is_mountpoint(dir) {
            mount_tmpfs(volume, dir, &tmpfs_options(size))?;
        }
    } else {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).map_err(io)?;
    }
    Ok(dir.to_path_buf())
}

/// Mounts a tmpfs with `options` on `dir` (MS_NOSUID|MS_NODEV).
pub fn mount_tmpfs(volume: &str, dir: &Path, options: &str) -> Result<(), VolumeError> {
    mount(Some("tmpfs"), dir, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(options)).map_err(
        |e| VolumeError::Mount {
            volume: volume.into(),
            path: dir.into(),
            source: std::io::Error::from_raw_os_error(e as i32),
        },
    )
}

/// True when `dir` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mountpoint(dir: &Path) -> bool {
    let Ok(canon) = dir.canonicalize() else { return false };
    let want = canon.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| s.lines().any(|l| l.split(' ').nth(4).map(|m| unescape(m) == want).unwrap_or(false)))
        .unwrap_or(false)
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// Unmounts (if mounted, lazily) and removes `dir`.
pub fn teardown(dir: &Path) -> std::io::Result<()> {
    while is_mountpoint(dir) {
        umount2(dir, MntFlags::MNT_DETACH).map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
    }
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn usage_counts_nested_files_and_not_symlink_targets() {
        let d = tempfile::tempdir().expect("tempdir");
        let before = usage_bytes(d.path());
        fs::create_dir_all(d.path().join("a/b")).expect("dirs");
        fs::write(d.path().join("a/b/big"), vec![7u8; 3 << 20]).expect("write");
        std::os::unix::fs::symlink("/usr", d.path().join("link")).expect("symlink");
        let after = usage_bytes(d.path());
        assert!(after - before >= 3 << 20, "{before} -> {after}");
        assert!(after - before < 4 << 20, "the symlink's target is not counted: {before} -> {after}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn options() {
        assert_eq!(tmpfs_options(None), "mode=0777");
        assert_eq!(tmpfs_options(Some(1 << 20)), "mode=0777,size=1048576");
    }

    #[test]
    fn disk_medium_is_a_plain_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cache");
        setup("cache", &dir, &EmptyDirVolumeSource::default()).expect("setup");
        assert!(dir.is_dir());
        assert!(!is_mountpoint(&dir));
        teardown(&dir).expect("teardown");
        assert!(!dir.exists());
    }

    /// Root: a Memory emptyDir is a tmpfs of the requested size, and writing past it fails with ENOSPC.
    #[test]
    fn memory_medium_is_a_sized_tmpfs() {
        rkube_testsupport::require_root();
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("mem");
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = teardown(&self.0);
            }
        }
        let _guard = Unmount(dir.clone());
        let src = EmptyDirVolumeSource { medium: Some("Memory".into()), size_limit: Some(Quantity("1Mi".into())) };
        setup("mem", &dir, &src).expect("setup");
        assert!(is_mountpoint(&dir));
        let mounts = fs::read_to_string("/proc/self/mounts").expect("mounts");
        let line = mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(dir.to_str().expect("utf8")))
            .expect("tmpfs listed");
        assert!(line.starts_with("tmpfs "), "{line}");
        assert!(line.contains("size=1024k"), "{line}");
        let err = fs::write(dir.join("big"), vec![0u8; 2 << 20]).expect_err("over the size limit");
        assert_eq!(err.raw_os_error(), Some(nix::libc::ENOSPC));
        // setting up twice does not stack mounts
        setup("mem", &dir, &src).expect("setup again");
        teardown(&dir).expect("teardown");
        assert!(!is_mountpoint(&dir));
        assert!(!dir.exists());
    }
}

/// Disk space used under `dir`, as `du` counts it (allocated blocks), without following symlinks or crossing
/// into other filesystems (a tmpfs or bind mount below it is not this volume's disk).
pub fn usage_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = fs::symlink_metadata(dir) else { return 0 };
    let dev = top.dev();
    let mut total = top.blocks() * 512;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}
