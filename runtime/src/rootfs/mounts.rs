//! One entry of `mounts`: option parsing (every mount(8) flag the spec lists, propagation flags, and the rest as
//! filesystem data like `size=64k,mode=755`), destinations resolved inside the rootfs by the kernel and mounted
//! through their descriptor ([`super::path`]), bind mounts remounted for their flags, and cgroup mounts.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{mkdirat, Mode};
use oci_spec::runtime::Mount;

use super::path::{self, Kind};
use super::RootfsError;
use crate::cgroups::Layout;

/// Flags, propagation and data parsed from a mount's options.
#[derive(Debug, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Flags to clear (from options like `rw`, `suid`): only matter for remounts.
    pub clear: MsFlags,
    pub propagation: MsFlags,
    pub data: String,
    pub bind: bool,
    pub recursive: bool,
    /// Recursive options (`rro`, `rnosuid`, ...): mount_setattr(2) attributes to set and clear on the whole tree.
    pub rec_set: u64,
    pub rec_clr: u64,
    /// The recursive options given, by name, for error messages.
    pub rec_names: Vec<String>,
}

/// A recursive mount option as mount_setattr(2) attributes (set, clear), runc's table. The atime ones replace the
/// whole atime mode (the kernel wants MOUNT_ATTR__ATIME cleared with exactly one mode set).
fn recursive_attr(opt: &str) -> Option<(u64, u64)> {
    use crate::sys::*;
    Some(match opt {
        "rro" => (MOUNT_ATTR_RDONLY_BIT, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY_BIT),
        "rnosuid" => (MOUNT_ATTR_NOSUID_BIT, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID_BIT),
        "rnodev" => (MOUNT_ATTR_NODEV_BIT, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV_BIT),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR_ATIME_MASK),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME_MASK),
        "rrelatime" | "ratime" | "rnostrictatime" | "rnorelatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR_ATIME_MASK),
        _ => return None,
    })
}

/// Parses OCI/mount(8) options.
pub fn parse_options(opts: &[String]) -> MountOptions {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: MsFlags::empty(),
        data: String::new(),
        bind: false,
        recursive: false,
        rec_set: 0,
        rec_clr: 0,
        rec_names: Vec::new(),
    };
    let mut data = Vec::new();
    for opt in opts {
        if let Some((set, clr)) = recursive_attr(opt) {
            if clr & crate::sys::MOUNT_ATTR_ATIME_MASK != 0 {
                o.rec_set &= !crate::sys::MOUNT_ATTR_ATIME_MASK;
            }
            o.rec_set = (o.rec_set & !clr) | set;
            o.rec_clr = (o.rec_clr & !set) | clr;
            o.rec_names.push(opt.clone());
            continue;
        }
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable") => {
                o.propagation |= propagation_flag(p).unwrap_or(MsFlags::empty());
                continue;
            }
            // Options that only matter to other runtimes or to idmapped mounts; accepted and ignored.
            "tmpcopyup" | "idmap" | "ridmap" | "copy-symlink" => continue,
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        o.flags |= set;
        o.flags &= !clear;
        o.clear |= clear;
    }
    o.data = data.join(",");
    o
}

/// The propagation flag for `private`, `rslave`, ... (also used for rootfsPropagation).
pub fn propagation_flag(p: &str) -> Option<MsFlags> {
    Some(match p {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

fn err(dest: &Path, what: impl Into<String>, source: impl std::fmt::Display) -> RootfsError {
    RootfsError::Mount { destination: dest.to_path_buf(), what: what.into(), reason: source.to_string() }
}

fn resolve_err(dest: &Path, e: nix::Error) -> RootfsError {
    let why = if e == nix::Error::ELOOP { " (more than 40 symlinks on the way)" } else { "" };
    err(dest, "resolve the destination inside the root", format!("{e}{why}"))
}

/// Mounts one spec entry under the rootfs (before pivot_root). `root` is the rootfs, open: the destination is
/// resolved inside it and the mount goes through the resulting descriptor (see [`super::path`]).
pub fn mount_one(root: &OwnedFd, m: &Mount, cgroup_layout: Option<&Layout>) -> Result<(), RootfsError> {
    let dest_rel = m.destination();
    let typ = m.typ().clone().unwrap_or_default();
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let bind = opts.bind || typ == "bind";
    let source = m.source().clone().unwrap_or_default();

    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(root, dest_rel, &opts, cgroup_layout);
    }

    // The mount point: a file for a bind of a file, a directory otherwise.
    let src_is_file = bind && fs::metadata(&source).map(|md| !md.is_dir()).unwrap_or(false);
    let kind = if src_is_file { Kind::File } else { Kind::Dir };
    let dest_fd = if typ == "proc" || typ == "sysfs" {
        kernel_fs_mount_point(root, dest_rel, &typ)?
    } else {
        path::mkdir_all(root, dest_rel, kind, false).map_err(|e| resolve_err(dest_rel, e))?
    };
    let dest = path::fd_path(&dest_fd);

    if bind {
        let mut flags = MsFlags::MS_BIND;
        if opts.recursive {
            flags |= MsFlags::MS_REC;
        }
        mount(Some(&source), &dest, None::<&str>, flags, None::<&str>)
            .map_err(|e| err(dest_rel, format!("bind {}", source.display()), e))?;
        let extra = opts.flags & !(MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_REC);
        if !extra.is_empty() {
            let top = mounted(root, dest_rel)?;
            remount_bind(&path::fd_path(&top), extra).map_err(|e| err(dest_rel, "remount bind with its options", e))?;
        }
    } else {
        let data = if opts.data.is_empty() { None } else { Some(opts.data.as_str()) };
        let r = mount(Some(&source), &dest, Some(typ.as_str()), opts.flags, data);
        match r {
            Ok(()) => {}
            // sysfs cannot be mounted without a network namespace of our own: bind the host's, read-only.
            Err(nix::Error::EPERM) if typ == "sysfs" => {
                mount(Some("/sys"), &dest, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                    .map_err(|e| err(dest_rel, "bind /sys (sysfs refused)", e))?;
                let top = mounted(root, dest_rel)?;
                remount_bind(&path::fd_path(&top), opts.flags | MsFlags::MS_RDONLY).map_err(|e| err(dest_rel, "remount /sys", e))?;
            }
            Err(e) => return Err(err(dest_rel, format!("mount {typ}"), e)),
        }
        if typ == "tmpfs" && opts.data.is_empty() && dest_rel == Path::new("/dev") {
            let top = mounted(root, dest_rel)?;
            let _ = fs::set_permissions(path::fd_path(&top), fs::Permissions::from_mode(0o755));
        }
    }
    if opts.rec_set != 0 || opts.rec_clr != 0 {
        let top = mounted(root, dest_rel)?;
        set_recursive(&top, &opts).map_err(|e| err(dest_rel, format!("apply {}", opts.rec_names.join(",")), e))?;
    }
    if !opts.propagation.is_empty() {
        let top = mounted(root, dest_rel)?;
        mount(None::<&str>, &path::fd_path(&top), None::<&str>, opts.propagation, None::<&str>)
            .map_err(|e| err(dest_rel, "set propagation", e))?;
    }
    Ok(())
}

/// Applies the recursive options to the mount at `top` and every mount under it (mount_setattr with
/// AT_RECURSIVE). A kernel without mount_setattr (before 5.12) or without an attribute gets a clear refusal.
fn set_recursive(top: &OwnedFd, opts: &MountOptions) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let attr = crate::sys::MountAttr { attr_set: opts.rec_set, attr_clr: opts.rec_clr, ..Default::default() };
    crate::sys::mount_setattr(top.as_raw_fd(), c"", libc::AT_EMPTY_PATH | crate::sys::AT_RECURSIVE, &attr).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) => "recursive mount options need mount_setattr(2) (Linux 5.12 or later), which this kernel lacks; use the non-recursive option".to_string(),
        Some(libc::EINVAL) => format!("{e} (this kernel does not know one of the attributes; rnosymfollow needs Linux 5.14)"),
        _ => e.to_string(),
    })
}

/// The mount point of procfs or sysfs: an ordinary directory, reached without any symlink, as runc requires since
/// CVE-2019-16884 and CVE-2019-19921 (a rootfs whose /proc is a link would get procfs, and the runtime's later
/// writes to /proc, wherever the link points; a volume swapped in under /proc could take the masks away).
fn kernel_fs_mount_point(root: &OwnedFd, dest: &Path, typ: &str) -> Result<OwnedFd, RootfsError> {
    let refuse = |why: String| err(dest, format!("mount {typ}"), format!("filesystem {typ:?} must be mounted on an ordinary directory: {why}"));
    let fd = match path::mkdir_all(root, dest, Kind::Dir, true) {
        Ok(fd) => fd,
        Err(nix::Error::ELOOP) => return Err(refuse(format!("{} is a symlink in the rootfs, or goes through one", dest.display()))),
        Err(e) => return Err(resolve_err(dest, e)),
    };
    let st = nix::sys::stat::fstat(&fd).map_err(|e| err(dest, "stat", e))?;
    if nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT != nix::sys::stat::SFlag::S_IFDIR {
        return Err(refuse(format!("{} is not a directory in the rootfs", dest.display())));
    }
    Ok(fd)
}

/// The mount just made at `dest`, opened again by name inside the root (the descriptor used to make it names the
/// directory underneath).
fn mounted(root: &OwnedFd, dest: &Path) -> Result<OwnedFd, RootfsError> {
    path::resolve(root, dest, false).map_err(|e| resolve_err(dest, e))
}

/// Remounts an existing bind mount with `flags`, keeping the flags the kernel locked on it.
pub fn remount_bind(dest: &Path, flags: MsFlags) -> nix::Result<()> {
    let locked = nix::sys::statvfs::statvfs(dest)
        .map(|s| {
            use nix::sys::statvfs::FsFlags;
            let f = s.flags();
            let mut m = MsFlags::empty();
            for (a, b) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
                (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
            ] {
                if f.contains(a) {
                    m |= b;
                }
            }
            m
        })
        .unwrap_or(MsFlags::empty());
    mount(None::<&str>, dest, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked, None::<&str>)
}

/// A `cgroup` mount: cgroup2 on v2; on v1/hybrid a tmpfs with one cgroup mount per hierarchy (plus `unified`).
/// With a cgroup namespace each shows the container's own cgroup as its root.
fn mount_cgroup(root: &OwnedFd, dest_rel: &Path, opts: &MountOptions, layout: Option<&Layout>) -> Result<(), RootfsError> {
    let dest_fd = path::mkdir_all(root, dest_rel, Kind::Dir, false).map_err(|e| resolve_err(dest_rel, e))?;
    let dest = path::fd_path(&dest_fd);
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    match layout {
        Some(Layout::V1 { hierarchies, unified }) => {
            let base = flags & !MsFlags::MS_RDONLY;
            mount(Some("tmpfs"), &dest, Some("tmpfs"), base, Some("mode=755"))
                .map_err(|e| err(dest_rel, "mount tmpfs for cgroup v1", e))?;
            // The fresh tmpfs is ours alone: make each hierarchy's directory in it through its descriptor.
            let tmpfs = mounted(root, dest_rel)?;
            let sub = |name: &str| -> Result<PathBuf, RootfsError> {
                match mkdirat(&tmpfs, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(nix::Error::EEXIST) => {}
                    Err(e) => return Err(err(dest_rel, format!("create {name}"), e)),
                }
                Ok(path::fd_path(&tmpfs).join(name))
            };
            for (name, _) in hierarchies {
                let d = sub(name)?;
                let data = if name == "systemd" { "none,name=systemd".to_string() } else { name.clone() };
                mount(Some("cgroup"), &d, Some("cgroup"), flags, Some(data.as_str()))
                    .map_err(|e| err(dest_rel, format!("mount cgroup {name}"), e))?;
            }
            if unified.is_some() {
                let d = sub("unified")?;
                mount(Some("cgroup2"), &d, Some("cgroup2"), flags, None::<&str>)
                    .map_err(|e| err(dest_rel, "mount cgroup2 unified", e))?;
            }
            if flags.contains(MsFlags::MS_RDONLY) {
                let _ = mount(None::<&str>, &path::fd_path(&tmpfs), None::<&str>, MsFlags::MS_REMOUNT | base | MsFlags::MS_RDONLY, Some("mode=755"));
            }
        }
        _ => {
            mount(Some("cgroup2"), &dest, Some("cgroup2"), flags, None::<&str>)
                .map_err(|e| err(dest_rel, "mount cgroup2", e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recursive_options_become_mount_setattr_attributes() {
        use crate::sys::*;
        let o = parse_options(&["rbind", "rro", "rnosuid", "rnoatime", "rnosymfollow"].map(String::from));
        assert_eq!(o.rec_set, MOUNT_ATTR_RDONLY_BIT | MOUNT_ATTR_NOSUID_BIT | MOUNT_ATTR_NOATIME | MOUNT_ATTR_NOSYMFOLLOW);
        assert_eq!(o.rec_clr, MOUNT_ATTR_ATIME_MASK);
        assert!(o.data.is_empty() && o.flags.is_empty(), "not passed to mount(2): {o:?}");
        // The last atime mode wins; a later rrw undoes rro.
        let o = parse_options(&["rnoatime", "rstrictatime", "rro", "rrw"].map(String::from));
        assert_eq!(o.rec_set, MOUNT_ATTR_STRICTATIME);
        assert_eq!(o.rec_clr, MOUNT_ATTR_ATIME_MASK | MOUNT_ATTR_RDONLY_BIT);
    }

    #[test]
    fn parses_flags_propagation_and_data() {
        let o = parse_options(&["nosuid", "noexec", "nodev", "ro", "rslave", "size=65536k", "mode=755"].map(String::from));
        assert!(o.flags.contains(MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV | MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(o.data, "size=65536k,mode=755");
        let o = parse_options(&["rbind", "ro", "rw"].map(String::from));
        assert!(o.bind && o.recursive && !o.flags.contains(MsFlags::MS_RDONLY));
    }
}
