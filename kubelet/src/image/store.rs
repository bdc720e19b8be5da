//! The node's content-addressed image store, by default under `/var/lib/rkube/images`:
//!
//! ```text
//! blobs/sha256/<hex>        manifests, configs and compressed layers, named by their digest
//! layers/<diff_id hex>/     each layer unpacked on its own (overlay whiteouts), shared by every image using it
//! containers/<id>/          per-container overlay upperdir/workdir and the image it runs
//! tmp/                      partial downloads (<hex>.partial, resumable) and layers being unpacked
//! index.json                images: id (config digest) -> manifest digest, tags, repo digests, layers
//! lock                      flock taken while index.json is read-modify-written
//! ```
//!
//! Content only enters `blobs/` and `layers/` after its digest was verified, by rename from `tmp/`.
//!
//! The root and its directories are 0700 and owned by the node's user (root): unpacked layers keep their
//! setuid binaries and device nodes, and containers' upper dirs hold whatever their root wrote, so no other
//! local account may reach them (docker's CVE-2021-41091, containerd's CVE-2021-41103). [`Store::open`]
//! creates them so, tightens looser modes it finds (and logs it), and refuses a root another user owns.
//! Container processes never walk these paths: overlayfs reaches its layers with the mounter's credentials.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::limits::Limits;
use super::reference::Reference;
use super::secure_fs::{ensure_private_dir, octal};

/// Where the kubelet keeps images unless told otherwise.
pub const DEFAULT_ROOT: &str = "/var/lib/rkube/images";

/// Store failures, naming the path or image involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing a file or directory of the store failed.
    #[error("image store {path}: {source}")]
    Io {
        /// The file or directory that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `index.json` does not parse (or, on write, does not serialize).
    #[error("image store index {path} is corrupt: {source}")]
    Index {
        /// The file or directory that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// No image in the store has this name, ID or digest.
    #[error("image {image:?} not found in the store")]
    NotFound {
        /// The image as named by the caller (reference, ID or digest).
        image: String,
    },
    /// A container's rootfs still runs from the image, so it is not removed.
    #[error("image {image:?} is used by container {container} and cannot be removed")]
    InUse {
        /// The image as named by the caller (reference, ID or digest).
        image: String,
        /// A container ID whose rootfs uses it.
        container: String,
    },
    /// A digest that is not `sha256:` and 64 hex digits: refused before it can name a path.
    #[error("invalid digest {digest:?}")]
    BadDigest {
        /// The digest as given.
        digest: String,
    },
    /// The root or one of its directories could not be made private (0700, ours).
    #[error("image store: {0}")]
    Private(#[from] super::secure_fs::SecureFsError),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// One layer of an image: its compressed blob and its unpacked content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    /// Digest of the blob as distributed (compressed).
    pub digest: String,
    /// Digest of the uncompressed tar (config `rootfs.diff_ids`): names the unpacked dir.
    pub diff_id: String,
    /// Size of the compressed blob in bytes, from the manifest.
    pub size: u64,
    /// The blob's media type from the manifest (OCI or Docker; plain or gzip tar, checked by
    /// [`super::manifest::check_layer_media_type`]); the unpacker detects the compression from the bytes.
    pub media_type: String,
}

/// An image in the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// Image ID: the config digest, as `crictl images` shows it.
    pub id: String,
    /// Digest of the image's manifest (the platform's, under a multi-arch index).
    pub manifest_digest: String,
    /// `registry/repository:tag` names pointing at this image.
    pub repo_tags: Vec<String>,
    /// `registry/repository@sha256:...` names (the digest the registry serves, index digest for multi-arch).
    pub repo_digests: Vec<String>,
    /// Bottom layer first.
    pub layers: Vec<LayerRecord>,
    /// Compressed size: config + layers, as the registry reports it.
    pub size: u64,
    /// Unix seconds the image was pulled or imported.
    pub created: u64,
    /// Unix seconds a container last started from it (GC removes the least recently used first).
    pub last_used: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    /// Image ID -> record.
    pub images: BTreeMap<String, ImageRecord>,
}

/// Handle on a store root. Cheap to clone; all state lives on disk.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    limits: Limits,
}

/// The store root's and its directories' mode: the node's user only.
pub const STORE_DIR_MODE: u32 = 0o700;

/// The store's flock; index changes happen while it is held.
pub(crate) struct StoreLock {
    _file: fs::File,
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `sha256:<hex>` -> `<hex>`, rejecting anything else (digests name files, so they must not contain `/`).
pub fn digest_hex(digest: &str) -> Result<&str, StoreError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => Ok(h),
        _ => Err(StoreError::BadDigest { digest: digest.to_string() }),
    }
}

impl Store {
    /// Opens (creating if needed) the store at `root`, with the default [`Limits`]. The root and its
    /// directories are made 0700 (a looser mode found is tightened, with a warning); a root owned by another
    /// user is refused.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let store = Store { root: root.into(), limits: Limits::default() };
        let dirs = [store.root.clone(), store.root.join("blobs"), store.root.join("blobs/sha256"), store.root.join("layers"), store.containers_dir(), store.tmp_dir()];
        for d in &dirs {
            if let Some(was) = ensure_private_dir(d, STORE_DIR_MODE)? {
                tracing::warn!(
                    path = %d.display(),
                    was = %octal(was),
                    now = %octal(was & STORE_DIR_MODE),
                    "image store directory was open to other users (its layers keep setuid files and device nodes); restricted it"
                );
            }
        }
        tracing::debug!(root = %store.root.display(), mode = %octal(STORE_DIR_MODE), "image store permissions checked");
        Ok(store)
    }

    /// The same store, unpacking within `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Store {
        self.limits = limits;
        self
    }

    /// What a pull or import may unpack.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `tmp/`: downloads and unpacks in progress, on the same filesystem as their final place so a rename
    /// publishes them.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where the blob `digest` is (or would be) kept; an error for a malformed digest.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    /// The unpacked directory of the layer whose uncompressed digest is `diff_id`.
    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("layers").join(digest_hex(diff_id)?))
    }

    /// Where a partial download of `digest` is kept between attempts.
    pub fn partial_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.tmp_dir().join(format!("{}.partial", digest_hex(digest)?)))
    }

    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Whether the blob is already stored (so a pull skips fetching it); false for a malformed digest.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.exists()).unwrap_or(false)
    }

    /// Whether the layer is already unpacked (so a pull skips unpacking it); false for a malformed digest.
    pub fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_dir(diff_id).map(|p| p.is_dir()).unwrap_or(false)
    }

    /// The whole blob in memory: for manifests and configs, not layers.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(io_err(&p))
    }

    /// Writes verified bytes as the blob named by their own digest (temp file + rename); returns the digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let digest = super::manifest::sha256_digest(bytes);
        let dest = self.blob_path(&digest)?;
        if dest.exists() {
            return Ok(digest);
        }
        let tmp = self.tmp_dir().join(format!("blob-{}-{}", std::process::id(), unique_suffix()));
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        drop(f);
        fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        Ok(digest)
    }

    pub(crate) fn lock(&self) -> Result<StoreLock, StoreError> {
        use fs2::FileExt;
        let p = self.root.join("lock");
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&p).map_err(io_err(&p))?;
        file.lock_exclusive().map_err(io_err(&p))?;
        Ok(StoreLock { _file: file })
    }

    pub(crate) fn load_index(&self) -> Result<Index, StoreError> {
        let p = self.root.join("index.json");
        match fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Index { path: p, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(StoreError::Io { path: p, source: e }),
        }
    }

    pub(crate) fn save_index(&self, index: &Index) -> Result<(), StoreError> {
        let p = self.root.join("index.json");
        let tmp = self.tmp_dir().join(format!("index-{}-{}.json", std::process::id(), unique_suffix()));
        let bytes = serde_json::to_vec_pretty(index).map_err(|source| StoreError::Index { path: p.clone(), source })?;
        fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &p).map_err(io_err(&p))
    }

    /// Adds (or updates) `record`; each of its tags is moved off any other image, as a re-pull of a tag does.
    pub fn add_image(&self, mut record: ImageRecord) -> Result<ImageRecord, StoreError> {
        let _lock = self.lock()?;
        let mut index = self.load_index()?;
        for other in index.images.values_mut() {
            if other.id != record.id {
                other.repo_tags.retain(|t| !record.repo_tags.contains(t));
            }
        }
        if let Some(existing) = index.images.get(&record.id) {
            for t in &existing.repo_tags {
                if !record.repo_tags.contains(t) {
                    record.repo_tags.push(t.clone());
                }
            }
            for d in &existing.repo_digests {
                if !record.repo_digests.contains(d) {
                    record.repo_digests.push(d.clone());
                }
            }
            record.created = existing.created.min(record.created);
            record.last_used = existing.last_used.max(record.last_used);
        }
        record.repo_tags.sort();
        record.repo_digests.sort();
        index.images.insert(record.id.clone(), record.clone());
        self.save_index(&index)?;
        Ok(record)
    }

    /// Every image, sorted by first tag (untagged last).
    pub fn list(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let mut v: Vec<ImageRecord> = self.load_index()?.images.into_values().collect();
        v.sort_by(|a, b| (a.repo_tags.is_empty(), a.repo_tags.first()).cmp(&(b.repo_tags.is_empty(), b.repo_tags.first())));
        Ok(v)
    }

    /// Finds an image by name (`busybox:1.36`, normalized like a pull), by `name@digest`, or by image ID
    /// (`sha256:...` or a unique hex prefix of at least 6 characters).
    pub fn resolve(&self, image: &str) -> Result<Option<ImageRecord>, StoreError> {
        let index = self.load_index()?;
        Ok(resolve_in(&index, image))
    }

    /// Marks the image as used now (GC keeps recently used images longest).
    pub fn touch(&self, id: &str) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let mut index = self.load_index()?;
        if let Some(r) = index.images.get_mut(id) {
            r.last_used = now_unix();
            self.save_index(&index)?;
        }
        Ok(())
    }

    /// Removes an image's record (by any name `resolve` accepts). When removed by tag and other tags remain,
    /// only that tag goes. Content no other image uses is deleted too. Fails if a container runs from it.
    pub fn remove_image(&self, image: &str) -> Result<ImageRecord, StoreError> {
        let removed = {
            let _lock = self.lock()?;
            let mut index = self.load_index()?;
            let record = resolve_in(&index, image).ok_or_else(|| StoreError::NotFound { image: image.to_string() })?;
            let by_tag = Reference::parse(image)
                .ok()
                .and_then(|r| if r.digest.is_none() { r.tagged_name() } else { None })
                .filter(|t| record.repo_tags.contains(t));
            if let Some(tag) = by_tag.filter(|_| record.repo_tags.len() > 1) {
                if let Some(r) = index.images.get_mut(&record.id) {
                    r.repo_tags.retain(|t| *t != tag);
                }
                self.save_index(&index)?;
                return Ok(record);
            }
            if let Some(container) = self.containers_using()?.into_iter().find(|(_, id)| *id == record.id).map(|(c, _)| c) {
                return Err(StoreError::InUse { image: image.to_string(), container });
            }
            index.images.remove(&record.id);
            self.save_index(&index)?;
            record
        };
        self.prune()?;
        Ok(removed)
    }

    /// Containers with a rootfs from this store, and the image ID each uses.
    pub fn containers_using(&self) -> Result<Vec<(String, String)>, StoreError> {
        let dir = self.containers_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let image_file = entry.path().join("image");
            if let Ok(id) = fs::read_to_string(&image_file) {
                out.push((entry.file_name().to_string_lossy().into_owned(), id.trim().to_string()));
            }
        }
        Ok(out)
    }

    /// Deletes blobs and unpacked layers no image in the index references; returns bytes freed (blob sizes).
    pub fn prune(&self) -> Result<u64, StoreError> {
        let _lock = self.lock()?;
        let index = self.load_index()?;
        let mut keep_blobs = std::collections::HashSet::new();
        let mut keep_layers = std::collections::HashSet::new();
        for r in index.images.values() {
            keep_blobs.insert(r.id.clone());
            keep_blobs.insert(r.manifest_digest.clone());
            for d in &r.repo_digests {
                if let Some((_, dg)) = d.split_once('@') {
                    keep_blobs.insert(dg.to_string());
                }
            }
            for l in &r.layers {
                keep_blobs.insert(l.digest.clone());
                keep_layers.insert(l.diff_id.clone());
            }
        }
        let mut freed = 0;
        let blobs = self.root.join("blobs/sha256");
        for entry in fs::read_dir(&blobs).map_err(io_err(&blobs))? {
            let entry = entry.map_err(io_err(&blobs))?;
            let name = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !keep_blobs.contains(&name) {
                freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(entry.path()).map_err(io_err(&entry.path()))?;
            }
        }
        let layers = self.root.join("layers");
        for entry in fs::read_dir(&layers).map_err(io_err(&layers))? {
            let entry = entry.map_err(io_err(&layers))?;
            let name = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !keep_layers.contains(&name) {
                tracing::debug!(layer = %name, "removing unreferenced layer");
                fs::remove_dir_all(entry.path()).map_err(io_err(&entry.path()))?;
            }
        }
        Ok(freed)
    }
}

fn resolve_in(index: &Index, image: &str) -> Option<ImageRecord> {
    let image = image.trim();
    // Image ID, full or a unique prefix (with or without "sha256:").
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    if hex.len() >= 6 && hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
        let matches: Vec<&ImageRecord> =
            index.images.values().filter(|r| r.id.trim_start_matches("sha256:").starts_with(hex)).collect();
        if matches.len() == 1 {
            return Some(matches[0].clone());
        }
    }
    let r = Reference::parse(image).ok()?;
    if let Some(d) = &r.digest {
        let want = format!("{}@{d}", r.name());
        return index
            .images
            .values()
            .find(|i| i.repo_digests.contains(&want) || (i.manifest_digest == *d && i.repo_tags.iter().any(|t| t.starts_with(&format!("{}:", r.name())))))
            .cloned();
    }
    let tagged = r.tagged_name()?;
    index.images.values().find(|i| i.repo_tags.contains(&tagged)).cloned()
}

pub(crate) fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0);
    (N.fetch_add(1, Ordering::Relaxed) << 32) ^ t
}
