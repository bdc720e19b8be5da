//! Atomic publication of a set of files into a volume directory, the way the kubelet does it for configMap,
//! secret, downwardAPI and projected volumes: the files go into a fresh hidden timestamped directory, a
//! `..data` symlink is swapped to it with one rename, and each visible top-level name is a symlink through
//! `..data`. A reader sees either the old set or the new set, never a mix.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The symlink every visible name points through.
pub const DATA_DIR: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// Why a volume's files could not be published.
#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    /// A payload path is absolute, empty, or would leave the volume ([`validate_path`]); nothing was written.
    #[error("invalid file path {path:?} in volume {dir}: {why}")]
    InvalidPath {
        /// The volume's directory.
        dir: PathBuf,
        /// The payload path, as given.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Writing the new data directory, or swapping the `..data` link, failed.
    #[error("write {path} in volume: {source}")]
    Io {
        /// The file, directory or link that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One file to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProjection {
    /// The file's content.
    pub data: Vec<u8>,
    /// Its permission bits (`defaultMode`, or the item's own `mode`).
    pub mode: u32,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AtomicWriteError + '_ {
    move |source| AtomicWriteError::Io { path: path.to_path_buf(), source }
}

/// Checks a payload path as upstream does: relative, no `..` element, not starting with `..`.
pub fn validate_path(dir: &Path, p: &str) -> Result<(), AtomicWriteError> {
    let bad = |why| Err(AtomicWriteError::InvalidPath { dir: dir.to_path_buf(), path: p.to_string(), why });
    if p.is_empty() {
        return bad("must not be empty");
    }
    if p.len() > 4096 {
        return bad("must be shorter than 4096 characters");
    }
    if Path::new(p).is_absolute() {
        return bad("must be relative");
    }
    if p.starts_with("..") {
        return bad("must not start with '..'");
    }
    if Path::new(p).components().any(|c| matches!(c, Component::ParentDir)) {
        return bad("must not contain '..'");
    }
    Ok(())
}

fn read_payload(dir: &Path) -> BTreeMap<String, FileProjection> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, FileProjection>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(root, &p, out),
                Ok(t) if t.is_file() => {
                    if let (Ok(data), Ok(md), Ok(rel)) = (fs::read(&p), e.metadata(), p.strip_prefix(root)) {
                        out.insert(
                            rel.to_string_lossy().into_owned(),
                            FileProjection { data, mode: md.permissions().mode() & 0o7777 },
                        );
                    }
                }
                _ => {}
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

fn top_level(p: &str) -> &str {
    p.split('/').next().unwrap_or(p)
}

/// Publishes `payload` into `dir`. Returns false, touching nothing, when the published content is the same.
pub fn write(dir: &Path, payload: &BTreeMap<String, FileProjection>) -> Result<bool, AtomicWriteError> {
    for p in payload.keys() {
        validate_path(dir, p)?;
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    let data_link = dir.join(DATA_DIR);
    let old_target = fs::read_link(&data_link).ok();
    if let Some(old) = &old_target {
        if read_payload(&dir.join(old)) == *payload {
            return Ok(false);
        }
    }
    // 1. a fresh timestamped directory with the new files
    let stamp = chrono::Utc::now().format("..%Y_%m_%d_%H_%M_%S.%f").to_string();
    let ts_dir = dir.join(&stamp);
    fs::create_dir(&ts_dir).map_err(io(&ts_dir))?;
    fs::set_permissions(&ts_dir, fs::Permissions::from_mode(0o755)).map_err(io(&ts_dir))?;
    for (rel, f) in payload {
        let path = ts_dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut file = fs::File::create(&path).map_err(io(&path))?;
        file.write_all(&f.data).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(f.mode)).map_err(io(&path))?;
    }
    // 2. swap ..data to it with a rename (atomic)
    let tmp = dir.join(DATA_TMP);
    let _ = fs::remove_file(&tmp);
    symlink(&stamp, &tmp).map_err(io(&tmp))?;
    fs::rename(&tmp, &data_link).map_err(io(&data_link))?;
    // 3. visible names: add the new, remove those no longer published
    let wanted: std::collections::BTreeSet<&str> = payload.keys().map(|p| top_level(p)).collect();
    for name in &wanted {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_DIR).join(name), &link).map_err(io(&link))?;
        }
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("..") || wanted.contains(name.as_str()) {
                continue;
            }
            let _ = fs::remove_file(e.path());
        }
    }
    // 4. the old timestamped directory goes
    if let Some(old) = old_target {
        let old_dir = dir.join(old);
        if old_dir != ts_dir {
            fs::remove_dir_all(&old_dir).map_err(io(&old_dir))?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(items: &[(&str, &str)]) -> BTreeMap<String, FileProjection> {
        items.iter().map(|(k, v)| (k.to_string(), FileProjection { data: v.as_bytes().to_vec(), mode: 0o644 })).collect()
    }

    #[test]
    fn publishes_through_data_symlink_and_swaps() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("vol");
        assert!(write(&dir, &payload(&[("a", "1"), ("sub/b", "2")])).expect("write"));
        assert_eq!(fs::read_to_string(dir.join("a")).expect("a"), "1");
        assert_eq!(fs::read_to_string(dir.join("sub/b")).expect("b"), "2");
        assert_eq!(fs::read_link(dir.join("a")).expect("link"), Path::new("..data/a"));
        let first = fs::read_link(dir.join(DATA_DIR)).expect("..data");
        assert!(first.to_string_lossy().starts_with(".."));

        // same content: nothing changes
        assert!(!write(&dir, &payload(&[("a", "1"), ("sub/b", "2")])).expect("write"));
        assert_eq!(fs::read_link(dir.join(DATA_DIR)).expect("..data"), first);

        // new content: new target, old dir gone, removed key's link gone
        assert!(write(&dir, &payload(&[("a", "updated")])).expect("write"));
        let second = fs::read_link(dir.join(DATA_DIR)).expect("..data");
        assert_ne!(first, second);
        assert!(!dir.join(&first).exists(), "old timestamped dir removed");
        assert_eq!(fs::read_to_string(dir.join("a")).expect("a"), "updated");
        assert!(fs::symlink_metadata(dir.join("sub")).is_err(), "stale link removed");
        assert!(!dir.join(DATA_TMP).exists());
    }

    #[test]
    fn modes_are_applied() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut p = payload(&[("key", "v")]);
        p.get_mut("key").expect("key").mode = 0o400;
        write(tmp.path(), &p).expect("write");
        let md = fs::metadata(tmp.path().join("key")).expect("md");
        assert_eq!(md.permissions().mode() & 0o777, 0o400);
    }

    #[test]
    fn rejects_escaping_paths() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for bad in ["../x", "/etc/passwd", "a/../../x", "..data", ""] {
            let err = write(tmp.path(), &payload(&[(bad, "x")])).expect_err(bad);
            assert!(matches!(err, AtomicWriteError::InvalidPath { .. }), "{bad}: {err}");
        }
    }
}
