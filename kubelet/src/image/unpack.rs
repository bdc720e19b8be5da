//! Unpacking one layer tar (gzip or uncompressed, detected from its first bytes) into its own directory, in a
//! form overlayfs can stack: `.wh.<name>` becomes a 0/0 character device, `.wh..wh..opq` the
//! `trusted.overlay.opaque=y` xattr on its directory.
//!
//! Keeps modes, ownership (when root), mtimes, xattrs, symlinks, hardlinks and device nodes. No entry may write
//! outside the layer directory: `..` components are refused, and every parent is resolved (following symlinks
//! already unpacked) and checked to be inside the directory before anything is created in it.
//!
//! Returns the diff_id (sha256 of the uncompressed tar) so the caller can check it against the image config.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use sha2::{Digest as _, Sha256};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to hide a lower directory's content.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Why a layer could not be unpacked; names the layer directory and, where known, the entry.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("unpack layer into {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unpack layer into {dir}: entry {entry:?}: {source}")]
    Entry {
        dir: PathBuf,
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("unpack layer into {dir}: entry {entry:?} points outside the layer directory")]
    Escape { dir: PathBuf, entry: String },
    #[error("unpack layer into {dir}: zstd-compressed layers are not supported")]
    Zstd { dir: PathBuf },
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), count: 0 }
    }
    /// `sha256:<hex>` of the bytes read so far, and their count.
    pub fn finish(self) -> (String, u64) {
        (format!("sha256:{}", hex::encode(self.hasher.finalize())), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// What was unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// Uncompressed tar size.
    pub tar_size: u64,
}

/// Unpacks the (possibly gzip-compressed) layer tar read from `reader` into `dest`, which must exist and be empty.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path) -> Result<Unpacked, UnpackError> {
    let io_err = |source| UnpackError::Io { dir: dest.to_path_buf(), source };
    let mut buffered = BufReader::with_capacity(256 << 10, reader);
    let magic = buffered.fill_buf().map_err(io_err)?;
    let decompressed: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(UnpackError::Zstd { dir: dest.to_path_buf() });
    } else {
        Box::new(buffered)
    };
    let mut hashing = HashingReader::new(decompressed);
    unpack_tar(&mut hashing, dest)?;
    // The tar may end before the stream does (zero blocks, padding): the diff_id covers every byte.
    io::copy(&mut hashing, &mut io::sink()).map_err(io_err)?;
    let (diff_id, tar_size) = hashing.finish();
    Ok(Unpacked { diff_id, tar_size })
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn unpack_tar<R: Read>(reader: R, dest: &Path) -> Result<(), UnpackError> {
    let dir = dest.to_path_buf();
    let canon_dest = dest.canonicalize().map_err(|source| UnpackError::Io { dir: dir.clone(), source })?;
    let root = is_root();
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(root);
    archive.set_unpack_xattrs(root);
    archive.set_overwrite(true);
    let entries = archive.entries().map_err(|source| UnpackError::Io { dir: dir.clone(), source })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| UnpackError::Io { dir: dir.clone(), source })?;
        let raw = entry.path_bytes();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let entry_err = |source| UnpackError::Entry { dir: dir.clone(), entry: name.clone(), source };
        let Some(rel) = clean_relative(&entry.path().map_err(entry_err)?) else {
            return Err(UnpackError::Escape { dir: dir.clone(), entry: name });
        };
        let Some(file_name) = rel.file_name().map(|f| f.to_string_lossy().into_owned()) else {
            continue; // "./": the layer root itself
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let kind = entry.header().entry_type();

        if file_name == OPAQUE_WHITEOUT {
            let parent = safe_dir(&canon_dest, parent_rel).ok_or_else(|| UnpackError::Escape { dir: dir.clone(), entry: name.clone() })?;
            let parent = parent.map_err(entry_err)?;
            xattr::set(&parent, OVERLAY_OPAQUE_XATTR, b"y").map_err(entry_err)?;
            continue;
        }
        if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            let parent = safe_dir(&canon_dest, parent_rel).ok_or_else(|| UnpackError::Escape { dir: dir.clone(), entry: name.clone() })?;
            let target = parent.map_err(entry_err)?.join(hidden);
            remove_existing(&target).map_err(entry_err)?;
            mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|e| entry_err(io::Error::from(e)))?;
            continue;
        }
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let parent = safe_dir(&canon_dest, parent_rel).ok_or_else(|| UnpackError::Escape { dir: dir.clone(), entry: name.clone() })?;
            let target = parent.map_err(entry_err)?.join(&file_name);
            let h = entry.header();
            let mode = h.mode().map_err(entry_err)? & 0o7777;
            // A FIFO has no device numbers (some tars leave the fields blank).
            let (major, minor) = if kind.is_fifo() {
                (0, 0)
            } else {
                (h.device_major().map_err(entry_err)?.unwrap_or(0), h.device_minor().map_err(entry_err)?.unwrap_or(0))
            };
            let sflag = if kind.is_character_special() {
                SFlag::S_IFCHR
            } else if kind.is_block_special() {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFIFO
            };
            remove_existing(&target).map_err(entry_err)?;
            mknod(&target, sflag, Mode::from_bits_truncate(mode), makedev(major.into(), minor.into()))
                .map_err(|e| entry_err(io::Error::from(e)))?;
            if root {
                let uid = h.uid().map_err(entry_err)? as u32;
                let gid = h.gid().map_err(entry_err)? as u32;
                std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).map_err(entry_err)?;
            }
            // mknod applies the umask; set the exact mode afterwards.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(entry_err)?;
            continue;
        }
        // Regular files, directories, symlinks, hardlinks: the tar crate writes them, resolving each parent
        // and hardlink source and refusing any outside `dest`; we first make sure the parent chain is ours.
        let parent = safe_dir(&canon_dest, parent_rel).ok_or_else(|| UnpackError::Escape { dir: dir.clone(), entry: name.clone() })?;
        let target = parent.map_err(entry_err)?.join(&file_name);
        // Replace what a lower entry left at this name, except a real directory that a directory entry keeps.
        // Never leave a symlink there: the tar crate would chmod/chown a directory through it.
        if let Ok(m) = fs::symlink_metadata(&target) {
            if !(kind.is_dir() && m.is_dir()) {
                remove_existing(&target).map_err(entry_err)?;
            }
        }
        let wrote = entry.unpack_in(&canon_dest).map_err(|source| {
            if source.to_string().contains("outside of destination") {
                UnpackError::Escape { dir: dir.clone(), entry: name.clone() }
            } else {
                UnpackError::Entry { dir: dir.clone(), entry: name.clone(), source }
            }
        })?;
        if !wrote {
            return Err(UnpackError::Escape { dir: dir.clone(), entry: name });
        }
    }
    Ok(())
}

/// `path` without leading `/` or `.` components; `None` if it has `..` anywhere.
fn clean_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// Creates `rel` under `canon_dest` one component at a time, checking after each step that the real path
/// (symlinks resolved) is still inside `canon_dest`. `None` if it escapes.
fn safe_dir(canon_dest: &Path, rel: &Path) -> Option<io::Result<PathBuf>> {
    let mut cur = canon_dest.to_path_buf();
    for c in rel.components() {
        let next = cur.join(c);
        match fs::symlink_metadata(&next) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Err(e) = fs::create_dir(&next) {
                    return Some(Err(e));
                }
            }
            Err(e) => return Some(Err(e)),
        }
        let real = match next.canonicalize() {
            Ok(r) => r,
            // A dangling symlink as a parent: it cannot be inside.
            Err(_) => return None,
        };
        if !real.starts_with(canon_dest) {
            return None;
        }
        match fs::metadata(&real) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Some(Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{} is not a directory", next.display())))),
            Err(e) => return Some(Err(e)),
        }
        cur = real;
    }
    Some(Ok(cur))
}

/// Removes whatever is at `path` (file, symlink, device or directory tree), if anything; never follows a symlink.
fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_relative_refuses_parent_components() {
        assert_eq!(clean_relative(Path::new("./a/b")), Some(PathBuf::from("a/b")));
        assert_eq!(clean_relative(Path::new("/etc/passwd")), Some(PathBuf::from("etc/passwd")));
        assert_eq!(clean_relative(Path::new("a/../../b")), None);
    }
}
