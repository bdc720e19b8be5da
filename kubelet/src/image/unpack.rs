//! Unpacking one layer tar (gzip or uncompressed, detected from its first bytes) into its own directory, in a
//! form overlayfs can stack: `.wh.<name>` becomes a 0/0 character device, `.wh..wh..opq` the
//! `trusted.overlay.opaque=y` xattr on its directory.
//!
//! Keeps modes, ownership (when root), mtimes, xattrs, symlinks, hardlinks and device nodes. No entry may write
//! outside the layer directory: `..` components are refused, and every parent is resolved (following symlinks
//! already unpacked) and checked to be inside the directory before anything is created in it.
//!
//! Whiteouts name exactly one entry of their own directory: `.wh.`, `.wh..` and `.wh...` (which would name
//! the directory itself or its parent, up to the store's tmp dir) are refused. AUFS metadata (`.wh..wh.*`
//! other than the opaque marker) is skipped, as docker and containerd do.
//!
//! Bytes, entries and per-entry tar metadata are counted against [`Limits`](super::limits::Limits) while the
//! layer is read; the read that crosses a limit fails, so nothing over it is written.
//!
//! Returns the diff_id (sha256 of the uncompressed tar) so the caller can check it against the image config.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use sha2::{Digest as _, Sha256};

use super::limits::{
    describe_bytes, Exceeded, ImageBudget, Limits, Meter, IMAGE_SIZE_FLAG, LAYER_ENTRIES_FLAG, LAYER_SIZE_FLAG,
    MAX_ENTRY_METADATA_BYTES,
};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to hide a lower directory's content.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Why a layer could not be unpacked; names the layer directory and, where known, the entry.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Reading the stream (gzip or tar framing) or the destination directory failed.
    #[error("unpack layer into {dir}: {source}")]
    Io {
        /// The layer's destination directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing one entry (file, directory, link, device, whiteout) failed.
    #[error("unpack layer into {dir}: entry {entry:?}: {source}")]
    Entry {
        /// The layer's destination directory.
        dir: PathBuf,
        /// The entry's path in the tar.
        entry: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry's path (`..`, or a parent that resolves through a symlink) would land outside the directory.
    #[error("unpack layer into {dir}: entry {entry:?} points outside the layer directory")]
    Escape {
        /// The layer's destination directory.
        dir: PathBuf,
        /// The entry's path in the tar.
        entry: String,
    },
    /// The layer is zstd-compressed, which this unpacker does not read.
    #[error("unpack layer into {dir}: zstd-compressed layers are not supported")]
    Zstd {
        /// The layer's destination directory.
        dir: PathBuf,
    },
    /// A `.wh.` entry names nothing it could hide (empty, `.` or `..`).
    #[error("unpack layer into {dir}: whiteout {entry:?} does not name an entry of its directory (empty, `.` or `..`)")]
    BadWhiteout {
        /// The layer's destination directory.
        dir: PathBuf,
        /// The entry's path in the tar.
        entry: String,
    },
    /// The layer's uncompressed bytes went over [`Limits::layer_bytes`].
    #[error("uncompressed layer is over the limit of {} per layer; raise it with {LAYER_SIZE_FLAG}", bytes(.limit))]
    LayerTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The image's uncompressed bytes, all layers together, went over [`Limits::image_bytes`].
    #[error("the image's layers are over the limit of {} uncompressed per image; raise it with {IMAGE_SIZE_FLAG}", bytes(.limit))]
    ImageTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The layer has more entries than [`Limits::layer_entries`].
    #[error("layer has more than {limit} entries; raise the limit with {LAYER_ENTRIES_FLAG}")]
    TooManyEntries {
        /// The limit in entries.
        limit: u64,
    },
    /// One entry's tar headers went over [`MAX_ENTRY_METADATA_BYTES`].
    #[error("tar metadata of one entry (pax records, long names, sparse maps) is over {}", bytes(.limit))]
    EntryMetadata {
        /// The limit in bytes.
        limit: u64,
    },
    /// An image archive being imported went over [`Limits::image_bytes`].
    #[error("image archive is over the limit of {} (the image size limit); raise it with {IMAGE_SIZE_FLAG}", bytes(.limit))]
    ArchiveTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// An image archive being imported has more entries than [`Limits::layer_entries`].
    #[error("image archive has more than {limit} entries; raise the limit with {LAYER_ENTRIES_FLAG}")]
    ArchiveTooManyEntries {
        /// The limit in entries.
        limit: u64,
    },
    /// An image archive holds a device, FIFO or other entry that is not a file, directory or link.
    #[error("image archive entry {entry:?} is a {kind}: an image archive holds only files, directories and links")]
    ArchiveEntryKind {
        /// The entry's path in the tar.
        entry: String,
        /// What the entry is (`character device`, `FIFO`...).
        kind: &'static str,
    },
}

fn bytes(n: &u64) -> String {
    describe_bytes(*n)
}

fn limit_error(e: Exceeded, limits: &Limits) -> UnpackError {
    match e {
        Exceeded::LayerBytes => UnpackError::LayerTooLarge { limit: limits.layer_bytes },
        Exceeded::ImageBytes => UnpackError::ImageTooLarge { limit: limits.image_bytes },
        Exceeded::EntryMetadata => UnpackError::EntryMetadata { limit: MAX_ENTRY_METADATA_BYTES },
    }
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`, with nothing hashed yet.
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

/// Unpacks the (possibly gzip-compressed) layer tar read from `reader` into `dest`, which must exist and be empty,
/// within the default [`Limits`].
pub fn unpack_layer<R: Read>(reader: R, dest: &Path) -> Result<Unpacked, UnpackError> {
    unpack_layer_within(reader, dest, &Limits::default().budget())
}

/// The decompressed stream of `reader` (gzip or plain; zstd refused).
fn decompress<'a, R: Read + 'a>(reader: R, dest: &Path) -> Result<Box<dyn Read + 'a>, UnpackError> {
    let io_err = |source| UnpackError::Io { dir: dest.to_path_buf(), source };
    let mut buffered = BufReader::with_capacity(256 << 10, reader);
    let magic = buffered.fill_buf().map_err(io_err)?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buffered)))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(UnpackError::Zstd { dir: dest.to_path_buf() })
    } else {
        Ok(Box::new(buffered))
    }
}

/// [`unpack_layer`] counting the layer against `budget` (one pull's or import's limits and running total).
pub fn unpack_layer_within<R: Read>(reader: R, dest: &Path, budget: &ImageBudget) -> Result<Unpacked, UnpackError> {
    let decompressed = decompress(reader, dest)?;
    let meter = Meter::new(budget);
    let mut hashing = HashingReader::new(meter.reader(decompressed));
    let result = unpack_tar(&mut hashing, dest, &meter).and_then(|()| {
        // The tar may end before the stream does (zero blocks, padding): the diff_id covers every byte.
        io::copy(&mut hashing, &mut io::sink()).map(drop).map_err(|source| UnpackError::Io { dir: dest.to_path_buf(), source })
    });
    // A limit fails the read, which the tar reader reports in its own words: the limit is the cause.
    if let Some(e) = meter.exceeded() {
        return Err(limit_error(e, meter.limits()));
    }
    result?;
    let (diff_id, tar_size) = hashing.finish();
    Ok(Unpacked { diff_id, tar_size })
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The tar's entries one by one, the reader's steps between them counted as metadata, at most `max` of them.
struct CountedEntries<'a, R: Read> {
    entries: tar::Entries<'a, R>,
    meter: &'a Meter,
    seen: u64,
}

impl<'a, R: Read> CountedEntries<'a, R> {
    /// The next entry; `Err(None)` when there are more than `max`.
    fn next(&mut self, max: u64) -> Option<Result<tar::Entry<'a, R>, Option<io::Error>>> {
        let next = self.meter.headers(|| self.entries.next())?;
        self.seen += 1;
        if self.seen > max {
            return Some(Err(None));
        }
        Some(next.map_err(Some))
    }
}

/// A whiteout's target: exactly one name inside `parent`, never empty, `.` or `..`.
fn whiteout_target(parent: &Path, hidden: &str) -> Option<PathBuf> {
    let mut comps = Path::new(hidden).components();
    match (comps.next(), comps.next()) {
        (Some(Component::Normal(n)), None) if n == hidden => Some(parent.join(n)),
        _ => None,
    }
}

fn unpack_tar<R: Read>(reader: R, dest: &Path, meter: &Meter) -> Result<(), UnpackError> {
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
    let mut entries = CountedEntries { entries, meter, seen: 0 };
    let max = meter.limits().layer_entries;
    while let Some(entry) = entries.next(max) {
        let mut entry = match entry {
            Ok(e) => e,
            Err(None) => return Err(UnpackError::TooManyEntries { limit: max }),
            Err(Some(source)) => return Err(UnpackError::Io { dir: dir.clone(), source }),
        };
        let raw = entry.path_bytes();
        let name = String::from_utf8_lossy(&raw).into_owned();
        unpack_entry(&mut entry, &name, &dir, &canon_dest, root)?;
        // Whatever data the entry carried and was not written (a whiteout or device with a size) is read
        // here, as layer bytes, not while the tar reader looks for the next header.
        io::copy(&mut entry, &mut io::sink()).map_err(|source| UnpackError::Entry { dir: dir.clone(), entry: name, source })?;
    }
    Ok(())
}

fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
    dir: &Path,
    canon_dest: &Path,
    root: bool,
) -> Result<(), UnpackError> {
    let dir = dir.to_path_buf();
    let name = name.to_string();
    let entry_err = |source| UnpackError::Entry { dir: dir.clone(), entry: name.clone(), source };
    let escape = || UnpackError::Escape { dir: dir.clone(), entry: name.clone() };
    let Some(rel) = clean_relative(&entry.path().map_err(entry_err)?) else {
        return Err(escape());
    };
    let Some(file_name) = rel.file_name().map(|f| f.to_string_lossy().into_owned()) else {
        return Ok(()); // "./": the layer root itself
    };
    let parent_rel = rel.parent().unwrap_or(Path::new(""));
    let kind = entry.header().entry_type();

    if file_name == OPAQUE_WHITEOUT {
        let parent = safe_dir(canon_dest, parent_rel).ok_or_else(escape)?.map_err(entry_err)?;
        xattr::set(&parent, OVERLAY_OPAQUE_XATTR, b"y").map_err(entry_err)?;
        return Ok(());
    }
    if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
        if hidden.starts_with(WHITEOUT_PREFIX) {
            tracing::debug!(entry = %name, "skipping AUFS metadata entry");
            return Ok(());
        }
        // Checked before the parent is created or resolved: a refused whiteout touches nothing.
        if whiteout_target(Path::new(""), hidden).is_none() {
            return Err(UnpackError::BadWhiteout { dir: dir.clone(), entry: name.clone() });
        }
        let parent = safe_dir(canon_dest, parent_rel).ok_or_else(escape)?.map_err(entry_err)?;
        let target = whiteout_target(&parent, hidden).ok_or_else(|| UnpackError::BadWhiteout { dir: dir.clone(), entry: name.clone() })?;
        if !target.starts_with(canon_dest) || target == canon_dest {
            return Err(escape());
        }
        remove_existing(&target).map_err(entry_err)?;
        mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|e| entry_err(io::Error::from(e)))?;
        return Ok(());
    }
    if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
        let parent = safe_dir(canon_dest, parent_rel).ok_or_else(escape)?.map_err(entry_err)?;
        let target = parent.join(&file_name);
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
        return Ok(());
    }
    // Regular files, directories, symlinks, hardlinks: the tar crate writes them, resolving each parent
    // and hardlink source and refusing any outside `dest`; we first make sure the parent chain is ours.
    unpack_plain(entry, &rel, &file_name, &dir, &name, canon_dest)
}

/// Writes a file, directory, symlink or hardlink entry with the tar crate, after resolving its parent inside
/// `canon_dest` and removing what a lower entry left at its name.
fn unpack_plain<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    rel: &Path,
    file_name: &str,
    dir: &Path,
    name: &str,
    canon_dest: &Path,
) -> Result<(), UnpackError> {
    let entry_err = |source| UnpackError::Entry { dir: dir.to_path_buf(), entry: name.to_string(), source };
    let escape = || UnpackError::Escape { dir: dir.to_path_buf(), entry: name.to_string() };
    let kind = entry.header().entry_type();
    let parent_rel = rel.parent().unwrap_or(Path::new(""));
    let parent = safe_dir(canon_dest, parent_rel).ok_or_else(escape)?.map_err(entry_err)?;
    let target = parent.join(file_name);
    // Replace what a lower entry left at this name, except a real directory that a directory entry keeps.
    // Never leave a symlink there: the tar crate would chmod/chown a directory through it.
    if let Ok(m) = fs::symlink_metadata(&target) {
        if !(kind.is_dir() && m.is_dir()) {
            remove_existing(&target).map_err(entry_err)?;
        }
    }
    let wrote = entry.unpack_in(canon_dest).map_err(|source| {
        if source.to_string().contains("outside of destination") {
            escape()
        } else {
            UnpackError::Entry { dir: dir.to_path_buf(), entry: name.to_string(), source }
        }
    })?;
    if !wrote {
        return Err(escape());
    }
    Ok(())
}

/// Extracts an image archive (an oci-archive or docker-save tar, gzip'd or not) into `dest` for import:
/// only directories, regular files, symlinks and hardlinks, no owners, modes masked, nothing outside `dest`.
/// Its bytes are capped at the image size limit and its entries at the layer entry limit.
pub fn extract_archive<R: Read>(reader: R, dest: &Path, limits: &Limits) -> Result<(), UnpackError> {
    let archive_limits = Limits { layer_bytes: limits.image_bytes, image_bytes: limits.image_bytes, layer_entries: limits.layer_entries };
    let meter = Meter::new(&archive_limits.budget());
    let decompressed = decompress(reader, dest)?;
    let result = extract_plain(meter.reader(decompressed), dest, &meter);
    match meter.exceeded() {
        Some(Exceeded::EntryMetadata) => Err(UnpackError::EntryMetadata { limit: MAX_ENTRY_METADATA_BYTES }),
        Some(_) => Err(UnpackError::ArchiveTooLarge { limit: limits.image_bytes }),
        None => result,
    }
}

fn extract_plain<R: Read>(reader: R, dest: &Path, meter: &Meter) -> Result<(), UnpackError> {
    let dir = dest.to_path_buf();
    let canon_dest = dest.canonicalize().map_err(|source| UnpackError::Io { dir: dir.clone(), source })?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_preserve_ownerships(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let entries = archive.entries().map_err(|source| UnpackError::Io { dir: dir.clone(), source })?;
    let mut entries = CountedEntries { entries, meter, seen: 0 };
    let max = meter.limits().layer_entries;
    while let Some(entry) = entries.next(max) {
        let mut entry = match entry {
            Ok(e) => e,
            Err(None) => return Err(UnpackError::ArchiveTooManyEntries { limit: max }),
            Err(Some(source)) => return Err(UnpackError::Io { dir: dir.clone(), source }),
        };
        let raw = entry.path_bytes();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        let plain = kind.is_dir()
            || kind.is_file()
            || kind.is_symlink()
            || kind.is_hard_link()
            || matches!(kind, tar::EntryType::Continuous | tar::EntryType::GNUSparse);
        if plain {
            let entry_err = |source| UnpackError::Entry { dir: dir.clone(), entry: name.clone(), source };
            let rel = clean_relative(&entry.path().map_err(entry_err)?)
                .ok_or_else(|| UnpackError::Escape { dir: dir.clone(), entry: name.clone() })?;
            if let Some(file_name) = rel.file_name().map(|f| f.to_string_lossy().into_owned()) {
                unpack_plain(&mut entry, &rel, &file_name, &dir, &name, &canon_dest)?;
            }
        } else if !kind.is_pax_global_extensions() {
            let what = if kind.is_character_special() {
                "character device"
            } else if kind.is_block_special() {
                "block device"
            } else if kind.is_fifo() {
                "FIFO"
            } else {
                "special entry"
            };
            return Err(UnpackError::ArchiveEntryKind { entry: name, kind: what });
        }
        io::copy(&mut entry, &mut io::sink()).map_err(|source| UnpackError::Entry { dir: dir.clone(), entry: name, source })?;
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
