//! /dev inside the container: the default devices the spec requires (null, zero, full, random, urandom, tty),
//! `linux.devices`, and the symlinks fd, stdin, stdout, stderr and ptmx -> pts/ptmx.
//!
//! Devices are made with mknod; in a user namespace, where mknod is refused, the host's node is bind-mounted. Every
//! path is resolved inside the root and every node is made and changed through descriptors ([`super::path`]), so
//! an image whose `/dev` is a link to a host path gets its nodes inside the root.

use std::ffi::OsStr;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, AtFlags, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::path::{self, Kind};
use super::RootfsError;

const DEFAULT: [(&str, u64, u64); 6] =
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

fn derr(path: &Path, what: &str, e: impl std::fmt::Display) -> RootfsError {
    RootfsError::Device { path: path.to_path_buf(), reason: format!("{what}: {e}") }
}

/// The directory a device goes in, made inside the root, and the node's name in it.
fn parent_of<'a>(root: &OwnedFd, path: &'a Path) -> Result<(OwnedFd, &'a OsStr), RootfsError> {
    let name = path.file_name().ok_or_else(|| derr(path, "device path", "names no file"))?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    let dir = path::mkdir_all(root, parent, Kind::Dir, false).map_err(|e| derr(path, "create parent inside the root", e))?;
    Ok((dir, name))
}

#[allow(clippy::too_many_arguments)] // one call per device; a struct would only rename the same fields
fn make_node(root: &OwnedFd, path: &Path, kind: SFlag, major: u64, minor: u64, mode: u32, owner: Option<(u32, u32)>, bind: bool) -> Result<(), RootfsError> {
    let (dir, name) = parent_of(root, path)?;
    match unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(derr(path, "remove what is there", e)),
    }
    if bind {
        let f = openat(&dir, name, OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::from_bits_truncate(0o644))
            .map_err(|e| derr(path, "create bind target", e))?;
        let host = Path::new("/").join(path.strip_prefix("/").unwrap_or(path));
        mount(Some(&host), &path::fd_path(&f), None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|e| derr(path, "bind host device", e))?;
        return Ok(());
    }
    mknodat(&dir, name, kind, Mode::from_bits_truncate(mode & 0o7777), makedev(major, minor)).map_err(|e| derr(path, "mknod", e))?;
    // mknod applies the umask: set the mode asked for, on the node just made (never through a name that could
    // have become a link since).
    let node = openat(&dir, name, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| derr(path, "open", e))?;
    let st = fstat(&node).map_err(|e| derr(path, "stat", e))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != kind {
        return Err(derr(path, "mknod", "the node was replaced while it was made"));
    }
    fs::set_permissions(path::fd_path(&node), fs::Permissions::from_mode(mode & 0o7777)).map_err(|e| derr(path, "chmod", e))?;
    if let Some((uid, gid)) = owner {
        fchownat(&node, "", Some(uid.into()), Some(gid.into()), AtFlags::AT_EMPTY_PATH).map_err(|e| derr(path, "chown", e))?;
    }
    Ok(())
}

/// Creates the default devices and `devices` under the root's `/dev`, then the standard symlinks.
pub fn setup(root: &OwnedFd, devices: &[LinuxDevice], in_userns: bool) -> Result<(), RootfsError> {
    let devp = Path::new("/dev");
    let dev = path::mkdir_all(root, devp, Kind::Dir, false).map_err(|e| derr(devp, "create /dev inside the root", e))?;
    for (name, major, minor) in DEFAULT {
        let p = PathBuf::from(format!("/dev/{name}"));
        if devices.iter().any(|d| d.path() == &p) {
            continue;
        }
        make_node(root, &p, SFlag::S_IFCHR, major, minor, 0o666, None, in_userns)?;
    }
    for d in devices {
        let kind = match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        let mode = d.file_mode().unwrap_or(0o666);
        let owner = Some((d.uid().unwrap_or(0), d.gid().unwrap_or(0)));
        make_node(root, d.path(), kind, d.major() as u64, d.minor() as u64, mode, owner, in_userns)?;
    }
    for (link, target) in
        [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")]
    {
        match symlinkat(target, &dev, link) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(derr(&devp.join(link), "symlink", e)),
        }
    }
    if path::resolve(root, Path::new("/dev/pts/ptmx"), false).is_ok() {
        let _ = unlinkat(&dev, "ptmx", UnlinkatFlags::NoRemoveDir);
        symlinkat("pts/ptmx", &dev, "ptmx").map_err(|e| derr(&devp.join("ptmx"), "symlink", e))?;
    }
    Ok(())
}
