//! A container's root filesystem: an overlayfs mount of the image's unpacked layers (read-only lowerdirs) with
//! a per-container upperdir and workdir under `<store>/containers/<id>/`. The mount point is what the kubelet
//! hands to the runtime as the bundle's rootfs.
//!
//! The container directory also records which image the container uses, so GC and `image rm` never remove an
//! image a container still runs from. Needs root (mount).

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::store::{ImageRecord, Store, StoreError};

/// Overlay mount failures, naming the container and path.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// The container ID would not make a safe directory name under `containers/`.
    #[error("rootfs for container {container}: invalid container id (must be [A-Za-z0-9_.-], not . or ..)")]
    BadContainerId {
        /// The container ID.
        container: String,
    },
    /// A layer of the image is missing from `layers/` (removed under it, or an interrupted pull): pull again.
    #[error("rootfs for container {container}: layer {diff_id} of image {image} is not unpacked in the store")]
    MissingLayer {
        /// The container ID.
        container: String,
        /// The image ID.
        image: String,
        /// The missing layer's diff_id.
        diff_id: String,
    },
    /// Creating or removing the container's directories, or the mount point, failed.
    #[error("rootfs for container {container}: {path}: {source}")]
    Io {
        /// The container ID.
        container: String,
        /// The file or directory that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The overlay mount itself failed (the kernel's refusal is the source).
    #[error("rootfs for container {container}: mount overlay at {target}: {source}")]
    Mount {
        /// The container ID.
        container: String,
        /// The rootfs mount point.
        target: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// Unmounting the rootfs failed (other than it not being mounted).
    #[error("rootfs for container {container}: unmount {target}: {source}")]
    Unmount {
        /// The container ID.
        container: String,
        /// The rootfs mount point.
        target: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// The overlay's mount options (every lower dir's path) do not fit in one page.
    #[error("rootfs for container {container}: overlay options are {len} bytes, over the kernel's page-size limit; image has too many layers")]
    TooManyLayers {
        /// The container ID.
        container: String,
        /// The options' length in bytes.
        len: usize,
    },
    /// A layer's path could not be formed (a malformed diff_id).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A mounted container rootfs.
#[derive(Debug, Clone)]
pub struct RootfsMount {
    /// The container ID: its upper and work dirs live under `containers/<id>/` in the store.
    pub container: String,
    /// The overlay mount point (the bundle's rootfs).
    pub target: PathBuf,
    /// The overlay's upperdir: everything the container writes to its root.
    pub upper: PathBuf,
    /// The overlay's workdir, scratch space the kernel needs beside the upperdir.
    pub work: PathBuf,
    /// Mounted read-only (`readOnlyRootFilesystem`).
    pub readonly: bool,
}

fn check_id(container: &str) -> Result<(), OverlayError> {
    let ok = !container.is_empty()
        && container != "."
        && container != ".."
        && container.len() <= 128
        && container.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(OverlayError::BadContainerId { container: container.to_string() })
    }
}

/// Mounts `image`'s layers at `target` (created if missing) for `container`. With `readonly` the overlay is
/// mounted read-only (`readOnlyRootFilesystem`). Marks the image as used.
#[tracing::instrument(skip_all, fields(container = %container, image = %image.id, target = %target.display()))]
pub fn mount_rootfs(
    store: &Store,
    container: &str,
    image: &ImageRecord,
    target: &Path,
    readonly: bool,
) -> Result<RootfsMount, OverlayError> {
    check_id(container)?;
    let io = |path: &Path| {
        let container = container.to_string();
        let path = path.to_path_buf();
        move |source| OverlayError::Io { container, path, source }
    };
    let mut lowers = Vec::new();
    // overlayfs takes the topmost layer first.
    for layer in image.layers.iter().rev() {
        let dir = store.layer_dir(&layer.diff_id)?;
        if !dir.is_dir() {
            return Err(OverlayError::MissingLayer {
                container: container.to_string(),
                image: image.id.clone(),
                diff_id: layer.diff_id.clone(),
            });
        }
        lowers.push(dir);
    }
    let cdir = store.containers_dir().join(container);
    let upper = cdir.join("upper");
    let work = cdir.join("work");
    if lowers.is_empty() {
        // An image without layers: overlay needs one lowerdir.
        let empty = cdir.join("empty");
        fs::create_dir_all(&empty).map_err(io(&empty))?;
        lowers.push(empty);
    }
    for d in [&upper, &work, &target.to_path_buf()] {
        fs::create_dir_all(d).map_err(io(d))?;
    }
    let image_file = cdir.join("image");
    fs::write(&image_file, &image.id).map_err(io(&image_file))?;
    let lowerdir = lowers.iter().map(|p| escape(p)).collect::<Vec<_>>().join(":");
    let options = format!("lowerdir={lowerdir},upperdir={},workdir={}", escape(&upper), escape(&work));
    if options.len() >= 4096 {
        return Err(OverlayError::TooManyLayers { container: container.to_string(), len: options.len() });
    }
    let mut flags = MsFlags::MS_NODEV;
    if readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(Some("overlay"), target, Some("overlay"), flags, Some(options.as_str())).map_err(|source| OverlayError::Mount {
        container: container.to_string(),
        target: target.to_path_buf(),
        source,
    })?;
    if let Err(e) = store.touch(&image.id) {
        tracing::warn!(error = %e, "could not record image use time");
    }
    tracing::info!(layers = image.layers.len(), readonly, "mounted container rootfs");
    Ok(RootfsMount { container: container.to_string(), target: target.to_path_buf(), upper, work, readonly })
}

/// Unmounts the container's rootfs at `target` (if mounted) and removes its upperdir, workdir and usage record.
/// Safe to call again after a partial failure.
#[tracing::instrument(skip_all, fields(container = %container, target = %target.display()))]
pub fn unmount_rootfs(store: &Store, container: &str, target: &Path) -> Result<(), OverlayError> {
    check_id(container)?;
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) => {}
        // Not a mount point (already unmounted) or gone.
        Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(source) => {
            return Err(OverlayError::Unmount { container: container.to_string(), target: target.to_path_buf(), source })
        }
    }
    let cdir = store.containers_dir().join(container);
    match fs::remove_dir_all(&cdir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(OverlayError::Io { container: container.to_string(), path: cdir, source }),
    }
    Ok(())
}

/// overlayfs option values separate with `:` and `,`; escape them with a backslash.
fn escape(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
