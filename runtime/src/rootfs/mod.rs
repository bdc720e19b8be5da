//! The container's root filesystem: propagation, the rootfs bind, every `mounts` entry, /dev, then pivot_root
//! (chroot only with noPivotRoot), and after it sysctls, masked paths, readonly paths and a read-only root.
//!
//! Runs only in the init child, inside the container's new mount namespace; it never touches host mounts
//! (the host's `/` is made a slave first, so nothing propagates back).

pub mod dev;
pub mod mounts;
pub mod path;

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Spec;

use crate::cgroups::Layout;

/// Errors building the root filesystem, naming the mount destination or path.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("mounts: {destination}: {what}: {reason}")]
    Mount { destination: PathBuf, what: String, reason: String },
    #[error("linux.devices: {path}: {reason}")]
    Device { path: PathBuf, reason: String },
    #[error("root: {what}: {source}")]
    Root { what: String, #[source] source: nix::Error },
    #[error("linux.rootfsPropagation: {0:?} is not one of private, rprivate, shared, rshared, slave, rslave, unbindable, runbindable")]
    Propagation(String),
    #[error("linux.sysctl: {key}: {reason}")]
    Sysctl { key: String, reason: String },
    #[error("linux.{field}: {path}: {reason}")]
    Path { field: &'static str, path: String, reason: String },
}

fn root_err(what: &str) -> impl FnOnce(nix::Error) -> RootfsError + '_ {
    move |source| RootfsError::Root { what: what.to_string(), source }
}

/// The first part of the rootfs work, which needs nothing of the cgroup: propagation, the rootfs bind, and the
/// mounts before the first cgroup mount. Returns how many mounts it made and the rootfs, open, for
/// [`prepare_late`].
///
/// Split so the init child can build most of its rootfs while the runtime moves it into its cgroup (a cgroup
/// v1 migration waits for an RCU grace period, the largest single cost of a container start).
pub fn prepare_early(spec: &Spec, rootfs: &Path) -> Result<(usize, OwnedFd), RootfsError> {
    let linux = spec.linux().as_ref();
    // Before the pivot the host's mounts are made slaves (nothing propagates back to the host), or private when
    // private is what was asked. The requested propagation itself is applied to the new "/" after the pivot
    // (see [`finish`]): made unbindable now, the rootfs could not be bind-mounted onto itself.
    let prop = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => {
            let f = mounts::propagation_flag(p).ok_or_else(|| RootfsError::Propagation(p.to_string()))?;
            if f.contains(MsFlags::MS_PRIVATE) {
                MsFlags::MS_PRIVATE | MsFlags::MS_REC
            } else {
                MsFlags::MS_SLAVE | MsFlags::MS_REC
            }
        }
    };
    mount(None::<&str>, "/", None::<&str>, prop, None::<&str>).map_err(root_err("set propagation of /"))?;
    mount(Some(rootfs), rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(root_err("bind rootfs onto itself"))?;
    // Every path in the container is resolved from here, inside this root.
    let root = path::open_root(rootfs).map_err(root_err("open the rootfs"))?;
    let all = spec.mounts().as_deref().unwrap_or(&[]);
    let split = all
        .iter()
        .position(|m| matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2")))
        .unwrap_or(all.len());
    for m in &all[..split] {
        mounts::mount_one(&root, m, None)?;
    }
    Ok((split, root))
}

/// The rest before pivot_root, once the process is in its cgroup (and cgroup namespace): the remaining mounts
/// from index `from` (the cgroup mount shows the container's own cgroup), then /dev.
pub fn prepare_late(spec: &Spec, root: &OwnedFd, from: usize, in_userns: bool, layout: Option<&Layout>) -> Result<(), RootfsError> {
    let all = spec.mounts().as_deref().unwrap_or(&[]);
    for m in all.iter().skip(from) {
        mounts::mount_one(root, m, layout)?;
    }
    let devices = spec.linux().as_ref().and_then(|l| l.devices().clone()).unwrap_or_default();
    dev::setup(root, &devices, in_userns)?;
    Ok(())
}

/// Makes `rootfs` the root: pivot_root(".", ".") then detaching the old root, or MS_MOVE + chroot.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    nix::unistd::chdir(rootfs).map_err(root_err("chdir into rootfs"))?;
    if no_pivot {
        mount(Some(rootfs), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(root_err("move rootfs to /"))?;
        nix::unistd::chroot(".").map_err(root_err("chroot"))?;
    } else {
        nix::unistd::pivot_root(".", ".").map_err(root_err("pivot_root"))?;
        // The old root now sits on top of "."; make it a slave so the detach cannot reach the host, then drop it.
        mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
            .map_err(root_err("make old root a slave"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(root_err("detach old root"))?;
    }
    nix::unistd::chdir("/").map_err(root_err("chdir /"))?;
    Ok(())
}

/// Without a mount namespace: chroot into `rootfs` in the caller's mount namespace, then chdir to the new "/".
pub fn chroot_into(rootfs: &Path) -> Result<(), RootfsError> {
    nix::unistd::chdir(rootfs).map_err(root_err("chdir into rootfs"))?;
    nix::unistd::chroot(".").map_err(root_err("chroot into rootfs (no mount namespace)"))?;
    nix::unistd::chdir("/").map_err(root_err("chdir /"))?;
    Ok(())
}

/// Everything after pivot_root, in the container's view: sysctls, masked and readonly paths, read-only root,
/// and the rootfs propagation asked for.
pub fn finish(spec: &Spec) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    for (k, v) in linux.and_then(|l| l.sysctl().as_ref()).into_iter().flatten() {
        let path = Path::new("/proc/sys").join(k.replace('.', "/"));
        fs::write(&path, v).map_err(|e| RootfsError::Sysctl { key: k.clone(), reason: format!("write {v:?} to {}: {e}", path.display()) })?;
    }
    for p in linux.and_then(|l| l.masked_paths().as_ref()).into_iter().flatten() {
        mask(p)?;
    }
    for p in linux.and_then(|l| l.readonly_paths().as_ref()).into_iter().flatten() {
        readonly(p)?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        mounts::remount_bind(Path::new("/"), MsFlags::MS_RDONLY).map_err(root_err("remount / read-only"))?;
    }
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()).filter(|p| !p.is_empty()) {
        let f = mounts::propagation_flag(p).ok_or_else(|| RootfsError::Propagation(p.to_string()))?;
        mount(None::<&str>, "/", None::<&str>, f, None::<&str>).map_err(root_err("set rootfsPropagation of /"))?;
    }
    Ok(())
}

fn mask(p: &str) -> Result<(), RootfsError> {
    let perr = |reason: String| RootfsError::Path { field: "maskedPaths", path: p.to_string(), reason };
    let md = match fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(perr(e.to_string())),
    };
    let r = if md.is_dir() {
        mount(Some("tmpfs"), p, Some("tmpfs"), MsFlags::MS_RDONLY, Some("size=0k"))
    } else {
        mount(Some("/dev/null"), p, None::<&str>, MsFlags::MS_BIND, None::<&str>)
    };
    r.map_err(|e| perr(e.to_string()))
}

fn readonly(p: &str) -> Result<(), RootfsError> {
    let perr = |reason: String| RootfsError::Path { field: "readonlyPaths", path: p.to_string(), reason };
    if !Path::new(p).exists() {
        return Ok(());
    }
    mount(Some(p), p, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(|e| perr(e.to_string()))?;
    mounts::remount_bind(Path::new(p), MsFlags::MS_RDONLY | MsFlags::MS_REC).map_err(|e| perr(e.to_string()))
}
