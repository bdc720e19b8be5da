//! Files in trees someone else wrote (an import's layout or archive, a container's rootfs) read without
//! leaving the tree and without blocking, and the node's own directories kept private.
//!
//! [`open_regular_in`] resolves a path with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: every symlink,
//! absolute or relative, resolves as if the tree's root were `/`, so `etc/passwd -> /etc/shadow` names the
//! tree's own `etc/shadow` and never the host's. The first open is `O_PATH`, which opens nothing: a FIFO,
//! socket or device node there is refused from `fstat` before any real open (a FIFO would block, a device
//! could have side effects), and the regular file is then reopened through `/proc/self/fd` (the same inode,
//! no second path walk to race with).

use std::fs;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

/// Why a file could not be read safely; names the file as `<root>/<path>`.
#[derive(Debug, thiserror::Error)]
pub enum SecureFsError {
    /// Opening, reading or inspecting the file (or a directory on its way) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file, as `<root>/<path>`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A directory, FIFO, device or socket where a regular file is expected: refused without opening it.
    #[error("{path}: not a regular file (a {kind})")]
    NotRegular {
        /// The file, as `<root>/<path>`.
        path: PathBuf,
        /// What it is instead (`directory`, `FIFO`, `socket`...).
        kind: &'static str,
    },
    #[error(
        "{path} is a symlink to {target:?}, which names no file inside {root} (links resolve inside it, never outside)"
    )]
    /// A symlink whose target, resolved inside `root`, names nothing there.
    DanglingInRoot {
        /// The file, as `<root>/<path>`.
        path: PathBuf,
        /// The link's target, as written.
        target: PathBuf,
        /// The directory links resolve inside.
        root: PathBuf,
    },
    /// The file is over the caller's size limit.
    #[error("{path}: {size} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// The file, as `<root>/<path>`.
        path: PathBuf,
        /// Its size in bytes as found (at least `max + 1` for a file that grew while read).
        size: u64,
        /// The limit in bytes.
        max: u64,
    },
    /// A directory that must be private belongs to another user, who could loosen its mode again.
    #[error("{path} is owned by uid {uid}, not by this process (uid {euid}): another user created it; remove it or chown it to {euid}")]
    NotOwned {
        /// The file, as `<root>/<path>`.
        path: PathBuf,
        /// The directory's owner.
        uid: u32,
        /// This process's effective uid.
        euid: u32,
    },
}

impl SecureFsError {
    /// The file was not there (or a directory on its way was missing).
    pub fn is_not_found(&self) -> bool {
        match self {
            SecureFsError::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            SecureFsError::DanglingInRoot { .. } => true,
            _ => false,
        }
    }
}

fn kind_of(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

/// Opens `rel` inside `root` for reading, symlinks resolved within `root`; refuses anything but a regular
/// file. Returns the file and its size.
pub fn open_regular_in(root: &Path, rel: &Path) -> Result<(fs::File, u64), SecureFsError> {
    let shown = root.join(rel);
    let io_err = |source: io::Error| SecureFsError::Io { path: shown.clone(), source };
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags(OFlag::O_DIRECTORY | OFlag::O_CLOEXEC))
        .open(root)
        .map_err(|source| SecureFsError::Io { path: root.to_path_buf(), source })?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    // An absolute `rel` is relative to the root all the same.
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    let path_fd = match openat2(&dir, rel, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => {
            // Say why when the name is there as a link: its target is outside (or missing) as seen from the root.
            if let Ok(target) = fs::read_link(&shown) {
                return Err(SecureFsError::DanglingInRoot { path: shown, target, root: root.to_path_buf() });
            }
            return Err(io_err(io::Error::from(nix::errno::Errno::ENOENT)));
        }
        Err(e) => return Err(io_err(io::Error::from(e))),
    };
    let path_file = fs::File::from(path_fd);
    let meta = path_file.metadata().map_err(io_err)?;
    if !meta.file_type().is_file() {
        return Err(SecureFsError::NotRegular { path: shown, kind: kind_of(&meta.file_type()) });
    }
    // Reopening the O_PATH descriptor reaches exactly its inode; O_NONBLOCK all the same, in case.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags(OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC))
        .open(format!("/proc/self/fd/{}", path_file.as_raw_fd()))
        .map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.file_type().is_file() {
        return Err(SecureFsError::NotRegular { path: shown, kind: kind_of(&meta.file_type()) });
    }
    Ok((file, meta.len()))
}

/// Reads `rel` inside `root` whole (see [`open_regular_in`]), refusing files over `max` bytes before reading.
pub fn read_regular_in(root: &Path, rel: &Path, max: u64) -> Result<Vec<u8>, SecureFsError> {
    let (file, size) = open_regular_in(root, rel)?;
    let shown = root.join(rel);
    if size > max {
        return Err(SecureFsError::TooLarge { path: shown, size, max });
    }
    let mut out = Vec::with_capacity(size as usize);
    // The file may grow while it is read: never past the limit.
    file.take(max + 1).read_to_end(&mut out).map_err(|source| SecureFsError::Io { path: shown.clone(), source })?;
    if out.len() as u64 > max {
        return Err(SecureFsError::TooLarge { path: shown, size: out.len() as u64, max });
    }
    Ok(out)
}

fn libc_flags(f: OFlag) -> i32 {
    f.bits()
}

/// Creates `path` (parents too) if missing with `mode`, and makes sure it belongs to this process's user and
/// has no permission bits beyond `mode`. Returns the mode it had when it had to be tightened, so the caller
/// can say so.
pub fn ensure_private_dir(path: &Path, mode: u32) -> Result<Option<u32>, SecureFsError> {
    let io_err = |source| SecureFsError::Io { path: path.to_path_buf(), source };
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(io_err)?;
            }
            let mut b = fs::DirBuilder::new();
            std::os::unix::fs::DirBuilderExt::mode(&mut b, mode);
            match b.create(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        Err(e) => return Err(io_err(e)),
        Ok(_) => {}
    }
    // Follows a symlinked root on purpose: an admin may point the store elsewhere. What it reaches must be ours.
    let meta = fs::metadata(path).map_err(io_err)?;
    if !meta.is_dir() {
        return Err(SecureFsError::NotRegular { path: path.to_path_buf(), kind: kind_of(&meta.file_type()) });
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(SecureFsError::NotOwned { path: path.to_path_buf(), uid: meta.uid(), euid });
    }
    let current = meta.mode() & 0o7777;
    if current & !mode == 0 {
        return Ok(None);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(current & mode)).map_err(io_err)?;
    Ok(Some(current))
}

/// `0o755` as `0755`, as `ls`/`stat` users read modes.
pub fn octal(mode: u32) -> String {
    format!("{mode:04o}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"host secret").expect("secret");
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("etc")).expect("etc");
        std::fs::write(root.path().join("etc/real"), b"inside").expect("real");
        std::os::unix::fs::symlink("/etc/real", root.path().join("etc/abs")).expect("symlink");
        std::os::unix::fs::symlink("../../../../../etc/real", root.path().join("etc/climb")).expect("symlink");
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("etc/out")).expect("symlink");
        assert_eq!(read_regular_in(root.path(), Path::new("etc/abs"), 100).expect("abs"), b"inside");
        assert_eq!(read_regular_in(root.path(), Path::new("/etc/climb"), 100).expect("climb"), b"inside");
        let err = read_regular_in(root.path(), Path::new("etc/out"), 100).expect_err("outside");
        assert!(err.is_not_found(), "{err}");
        let err = read_regular_in(root.path(), Path::new("etc/real"), 3).expect_err("too large");
        assert!(matches!(err, SecureFsError::TooLarge { size: 6, max: 3, .. }), "{err}");
        let err = read_regular_in(root.path(), Path::new("etc"), 100).expect_err("a directory");
        assert_eq!(err.to_string(), format!("{}: not a regular file (a directory)", root.path().join("etc").display()));
    }

    #[test]
    fn private_dirs_are_created_and_tightened() {
        let base = tempfile::tempdir().expect("tempdir");
        let d = base.path().join("a/b");
        assert_eq!(ensure_private_dir(&d, 0o700).expect("create"), None);
        assert_eq!(std::fs::metadata(&d).expect("meta").mode() & 0o7777, 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(ensure_private_dir(&d, 0o700).expect("tighten"), Some(0o755));
        assert_eq!(std::fs::metadata(&d).expect("meta").mode() & 0o7777, 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o751)).expect("chmod");
        assert_eq!(ensure_private_dir(&d, 0o750).expect("tighten"), Some(0o751));
        assert_eq!(std::fs::metadata(&d).expect("meta").mode() & 0o7777, 0o750);
    }
}
