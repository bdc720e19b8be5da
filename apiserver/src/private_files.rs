//! Files that hold secrets: the embedded store and its log (every Secret is in them), private keys, kubeconfigs
//! with credentials, and the data directory that holds them. Files are created mode 0600 from their first byte
//! (never written, then chmodded: a reader could open them in between) and directories 0700.
//!
//! At start [`check_file`] and [`ensure_dir`] look at what is already there: group or other access is removed
//! and logged as a warning naming the path and both modes (those bits may already have let another local account
//! read the secrets: rotate them if that matters). A file or directory owned by another user is refused, since
//! that user can read it, or loosen it again, whatever we do; so is a secret that is a symlink or not a regular
//! file. Fixing rather than refusing loose modes keeps a data dir made by an older rkube (0755 dir, 0644 store)
//! working after an upgrade.
//!
//! Must not: follow a symlink when changing a file's mode, or widen any mode.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a file or directory holding secrets could not be made or kept private.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// Creating, opening, writing or changing the mode of the path failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The path belongs to another user, who could read or replace the secrets.
    #[error("{path} is owned by uid {owner}, not by this process (uid {ours}): another user can read or change it; chown it to uid {ours} or use another data dir")]
    Owner {
        /// The file or directory.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// This process's uid.
        ours: u32,
    },
    /// The path is a symlink, FIFO or other non-regular file where a secret file should be.
    #[error("{path} holds secrets and is {what}, not a regular file: keep it a regular file")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead (`a symbolic link`, `not a regular file`...).
        what: &'static str,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PrivateFileError + '_ {
    move |source| PrivateFileError::Io { path: path.to_path_buf(), source }
}

fn owned_by_us(path: &Path, meta: &std::fs::Metadata) -> Result<(), PrivateFileError> {
    let ours = nix::unistd::geteuid().as_raw();
    if meta.uid() != ours {
        return Err(PrivateFileError::Owner { path: path.to_path_buf(), owner: meta.uid(), ours });
    }
    Ok(())
}

/// Removes group and other bits from `path` (already stat'ed as `meta`), warning when there were any.
fn tighten(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<(), PrivateFileError> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let new = mode & 0o700;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(new)).map_err(io(path))?;
    tracing::warn!(
        path = %path.display(),
        was = format!("{mode:04o}"),
        now = format!("{new:04o}"),
        "{what} was open to other local users; removed their access (rotate its secrets if that matters)"
    );
    Ok(())
}

/// Creates `dir` (and missing parents) with mode 0700, or checks an existing one: ours, a directory, no
/// group or other access (removed, with a warning). A symlink to a directory is followed (a data dir may
/// live on another disk).
pub fn ensure_dir(dir: &Path) -> Result<(), PrivateFileError> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
            // recursive creation leaves existing parents alone; the last one is ours and new
            let meta = std::fs::metadata(dir).map_err(io(dir))?;
            tighten(dir, &meta, "directory")
        }
        Err(e) => Err(io(dir)(e)),
        Ok(meta) if !meta.is_dir() => Err(PrivateFileError::NotRegular { path: dir.to_path_buf(), what: "not a directory" }),
        Ok(meta) => {
            owned_by_us(dir, &meta)?;
            tighten(dir, &meta, "directory")
        }
    }
}

/// Checks an existing file that holds secrets: ours, a regular file (not a symlink), no group or other
/// access (removed, with a warning). A missing file is fine (nothing to protect yet).
pub fn check_file(path: &Path) -> Result<(), PrivateFileError> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path)(e)),
        Ok(m) => m,
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Err(PrivateFileError::NotRegular { path: path.to_path_buf(), what: "a symbolic link" });
    }
    if !ft.is_file() {
        return Err(PrivateFileError::NotRegular { path: path.to_path_buf(), what: "not a regular file" });
    }
    owned_by_us(path, &meta)?;
    tighten(path, &meta, "file")
}

/// Opens `path` for reading and writing, creating it mode 0600 if missing; an existing one is checked first
/// ([`check_file`]). For stores that keep the file open.
pub fn open(path: &Path) -> Result<File, PrivateFileError> {
    check_file(path)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io(path))
}

/// Writes `content` to `path` atomically: a new temp file next to it, created 0600, written and synced, then
/// renamed over `path`.
pub fn write(path: &Path, content: &[u8]) -> Result<(), PrivateFileError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    // a leftover from a crash is ours to replace; create_new then refuses anything that appears meanwhile
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
        f.write_all(content).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn new_files_and_dirs_are_private_from_the_start() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("a/b");
        ensure_dir(&dir).expect("create");
        assert_eq!(mode(&dir), 0o700);
        let f = dir.join("key");
        write(&f, b"secret").expect("write");
        assert_eq!((mode(&f), std::fs::read(&f).expect("read")), (0o600, b"secret".to_vec()));
        write(&f, b"again").expect("overwrite");
        assert_eq!(std::fs::read(&f).expect("read"), b"again");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
        let store = dir.join("store");
        drop(open(&store).expect("open"));
        assert_eq!(mode(&store), 0o600);
    }

    #[test]
    fn loose_modes_are_tightened_and_foreign_or_odd_files_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_dir(&dir).expect("fix");
        assert_eq!(mode(&dir), 0o700);
        let f = dir.join("state");
        std::fs::write(&f, b"x").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        check_file(&f).expect("fix");
        assert_eq!(mode(&f), 0o600);
        drop(open(&f).expect("reopen"));
        assert_eq!(std::fs::read(&f).expect("read"), b"x", "open keeps the content");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&f, &link).expect("symlink");
        assert!(matches!(check_file(&link), Err(PrivateFileError::NotRegular { .. })));
        assert!(open(&link).is_err());
        check_file(&dir.join("missing")).expect("nothing to check");
    }

    #[test]
    fn another_users_secrets_are_refused() {
        rkube_testsupport::require_root();
        let tmp = tempfile::tempdir().expect("tmp");
        let f = tmp.path().join("state");
        std::fs::write(&f, b"x").expect("write");
        std::os::unix::fs::chown(&f, Some(65534), None).expect("chown");
        let e = check_file(&f).expect_err("another user's file");
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        std::os::unix::fs::chown(tmp.path(), Some(65534), None).expect("chown dir");
        assert!(matches!(ensure_dir(tmp.path()), Err(PrivateFileError::Owner { .. })));
    }
}
