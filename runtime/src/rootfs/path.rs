//! Paths inside the container's root, resolved by the kernel: openat2(RESOLVE_IN_ROOT) evaluates symlinks, `..`
//! and absolute links as if the rootfs were `/`, so neither a bundle nor an image can lead a mount point, a mount
//! or a device node outside it. At most 40 links are followed (ELOOP after that, never "treated as a name"), and
//! what is found is used through its descriptor (`/proc/self/fd/N`): swapping a path component for a symlink
//! between the resolution and the mount changes nothing.
//!
//! Owns: opening the root, resolving a path in it, and creating what is missing on the way (directories, and the
//! final file for a file bind) without following a link that appears while it works.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};

/// At most this many symlinks are followed while creating a path (the kernel's own MAXSYMLINKS).
pub const MAX_LINKS: usize = 40;

/// What the last component of a path to create is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// The root as a directory descriptor (O_PATH), the anchor of every resolution.
pub fn open_root(rootfs: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
}

/// The path that names an open descriptor: mount(2) and chmod(2) given it act on that very file.
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn rel(path: &Path) -> &Path {
    let r = path.strip_prefix("/").unwrap_or(path);
    if r.as_os_str().is_empty() {
        Path::new(".")
    } else {
        r
    }
}

/// Opens `path` (as the container sees it) inside `root`, O_PATH. With `no_symlinks`, any symlink on the way is
/// refused (ELOOP) instead of followed.
pub fn resolve(root: &impl AsFd, path: &Path, no_symlinks: bool) -> nix::Result<OwnedFd> {
    let mut resolve = ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS;
    if no_symlinks {
        resolve |= ResolveFlag::RESOLVE_NO_SYMLINKS;
    }
    let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC).resolve(resolve);
    loop {
        match openat2(root.as_fd(), rel(path), how) {
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue, // a rename elsewhere raced the lookup: retry
            r => return r,
        }
    }
}

fn is_symlink(fd: &OwnedFd) -> nix::Result<bool> {
    Ok(SFlag::from_bits_truncate(fstat(fd)?.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK)
}

/// Opens `path` inside `root`, creating the missing directories (and, for [`Kind::File`], an empty last file) as
/// the container would see them: a symlink on the way is followed inside the root (an image's dangling
/// `/etc/resolv.conf -> ../run/resolv.conf` gets its target made), at most [`MAX_LINKS`] of them. With
/// `no_symlinks` a symlink anywhere on the way is refused (ELOOP). Every step goes from the descriptor of the one
/// before, with O_NOFOLLOW, so nothing made here can be redirected out of the root.
pub fn mkdir_all(root: &OwnedFd, path: &Path, kind: Kind, no_symlinks: bool) -> nix::Result<OwnedFd> {
    match resolve(root, path, no_symlinks) {
        Err(Errno::ENOENT) => {}
        r => return r,
    }
    let mut pending: PathBuf = path.to_path_buf();
    let mut links = 0;
    'restart: loop {
        let comps: Vec<Component> = pending.components().collect();
        let mut cur = root.try_clone().map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)))?;
        let mut cur_path = PathBuf::from("/");
        let mut i = 0;
        while i < comps.len() {
            let name: &OsStr = match comps[i] {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {
                    i += 1;
                    continue;
                }
                Component::ParentDir => {
                    // cur_path has no symlink in it: popping a component is what ".." means there.
                    cur_path.pop();
                    cur = resolve(root, &cur_path, true)?;
                    i += 1;
                    continue;
                }
                Component::Normal(n) => n,
            };
            let last = i + 1 == comps.len();
            match openat(&cur, name, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty()) {
                Ok(fd) if is_symlink(&fd)? => {
                    links += 1;
                    if no_symlinks || links > MAX_LINKS {
                        return Err(Errno::ELOOP);
                    }
                    let target = PathBuf::from(nix::fcntl::readlinkat(&cur, name)?);
                    let rest: PathBuf = comps[i + 1..].iter().collect();
                    let base = if target.is_absolute() { PathBuf::from("/") } else { cur_path.clone() };
                    pending = base.join(target).join(rest);
                    continue 'restart;
                }
                Ok(fd) => {
                    cur = fd;
                    cur_path.push(name);
                    i += 1;
                }
                Err(Errno::ENOENT) => {
                    let made = if last && kind == Kind::File {
                        openat(
                            &cur,
                            name,
                            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                            Mode::from_bits_truncate(0o644),
                        )
                        .map(drop)
                    } else {
                        mkdirat(&cur, name, Mode::from_bits_truncate(0o755))
                    };
                    match made {
                        // Made it, or someone else did in between: open it again (a link now there is a link).
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        return Ok(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn creates_inside_the_root_through_absolute_and_dangling_links() {
        let t = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        fs::create_dir_all(r.join("etc")).unwrap();
        // An absolute link to a host path, and a dangling relative one.
        symlink(host.path(), r.join("evil")).unwrap();
        symlink("../run/resolv.conf", r.join("etc/resolv.conf")).unwrap();
        let root = open_root(&r).unwrap();
        mkdir_all(&root, Path::new("/evil/x/y"), Kind::Dir, false).unwrap();
        assert!(r.join(host.path().strip_prefix("/").unwrap()).join("x/y").is_dir(), "made inside the root");
        assert_eq!(fs::read_dir(host.path()).unwrap().count(), 0, "nothing made on the host");
        mkdir_all(&root, Path::new("/etc/resolv.conf"), Kind::File, false).unwrap();
        assert!(r.join("run/resolv.conf").is_file());
        // Already there: just opened.
        mkdir_all(&root, Path::new("/etc/resolv.conf"), Kind::File, false).unwrap();
        // ".." stays in the root.
        mkdir_all(&root, Path::new("/../../a/../b"), Kind::Dir, false).unwrap();
        assert!(r.join("b").is_dir());
    }

    #[test]
    fn long_chains_fail_with_eloop_and_make_nothing() {
        let t = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        fs::create_dir_all(&r).unwrap();
        for i in 0..255 {
            symlink(format!("/l{}", i + 1), r.join(format!("l{i}"))).unwrap();
        }
        symlink(host.path().join("made"), r.join("l255")).unwrap();
        let root = open_root(&r).unwrap();
        assert_eq!(mkdir_all(&root, Path::new("/l0"), Kind::Dir, false).unwrap_err(), Errno::ELOOP);
        assert_eq!(mkdir_all(&root, Path::new("/l0"), Kind::File, false).unwrap_err(), Errno::ELOOP);
        assert!(!host.path().join("made").exists());
        // A link anywhere is refused when links are not allowed.
        symlink("real", r.join("proc")).unwrap();
        assert_eq!(mkdir_all(&root, Path::new("/proc"), Kind::Dir, true).unwrap_err(), Errno::ELOOP);
        assert!(!r.join("real").exists());
    }
}
