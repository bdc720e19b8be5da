//! /dev inside the container: the default devices the spec requires (null, zero, full, random, urandom, tty),
//! `linux.devices`, and the symlinks fd, stdin, stdout, stderr and ptmx -> pts/ptmx.
//!
//! Devices are made with mknod; in a user namespace, where mknod is refused, the host's node is bind-mounted.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::RootfsError;

const DEFAULT: [(&str, u64, u64); 6] =
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

fn derr(path: &Path, what: &str, e: impl std::fmt::Display) -> RootfsError {
    RootfsError::Device { path: path.to_path_buf(), reason: format!("{what}: {e}") }
}

#[allow(clippy::too_many_arguments)] // one call per device; a struct would only rename the same fields
fn make_node(rootfs: &Path, path: &str, kind: SFlag, major: u64, minor: u64, mode: u32, owner: Option<(u32, u32)>, bind: bool) -> Result<(), RootfsError> {
    let rel = path.trim_start_matches('/');
    let dest = rootfs.join(rel);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| derr(&dest, "create parent", e))?;
    }
    let _ = fs::remove_file(&dest);
    if bind {
        fs::File::create(&dest).map_err(|e| derr(&dest, "create bind target", e))?;
        let host = Path::new("/").join(rel);
        mount(Some(&host), &dest, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|e| derr(&dest, "bind host device", e))?;
        return Ok(());
    }
    mknod(&dest, kind, Mode::from_bits_truncate(mode & 0o7777), makedev(major, minor)).map_err(|e| derr(&dest, "mknod", e))?;
    // mknod applies the umask; set the mode the spec asked for.
    fs::set_permissions(&dest, fs::Permissions::from_mode(mode & 0o7777)).map_err(|e| derr(&dest, "chmod", e))?;
    if let Some((uid, gid)) = owner {
        nix::unistd::chown(&dest, Some(uid.into()), Some(gid.into())).map_err(|e| derr(&dest, "chown", e))?;
    }
    Ok(())
}

/// Creates the default devices and `devices` under `rootfs/dev`, then the standard symlinks.
pub fn setup(rootfs: &Path, devices: &[LinuxDevice], in_userns: bool) -> Result<(), RootfsError> {
    let dev = rootfs.join("dev");
    fs::create_dir_all(&dev).map_err(|e| derr(&dev, "create /dev", e))?;
    for (name, major, minor) in DEFAULT {
        if devices.iter().any(|d| d.path() == Path::new(&format!("/dev/{name}"))) {
            continue;
        }
        make_node(rootfs, &format!("/dev/{name}"), SFlag::S_IFCHR, major, minor, 0o666, None, in_userns)?;
    }
    for d in devices {
        let kind = match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        let mode = d.file_mode().unwrap_or(0o666);
        let owner = Some((d.uid().unwrap_or(0), d.gid().unwrap_or(0)));
        let path = d.path().to_string_lossy().into_owned();
        make_node(rootfs, &path, kind, d.major() as u64, d.minor() as u64, mode, owner, in_userns)?;
    }
    for (link, target) in
        [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")]
    {
        let p = dev.join(link);
        if fs::symlink_metadata(&p).is_err() {
            symlink(target, &p).map_err(|e| derr(&p, "symlink", e))?;
        }
    }
    if dev.join("pts/ptmx").exists() {
        let p = dev.join("ptmx");
        let _ = fs::remove_file(&p);
        symlink("pts/ptmx", &p).map_err(|e| derr(&p, "symlink", e))?;
    }
    Ok(())
}
