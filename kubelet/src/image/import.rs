//! Offline import into the store: an OCI image layout directory, an oci-archive (a tar of one), or a
//! docker-save archive (`manifest.json` + config + layer tars). Every blob is checked against its digest and
//! every layer against its diff_id, exactly as a pull would, and layers are unpacked the same way.
//!
//! The source is someone else's: every file is opened with [`secure_fs::open_regular_in`], symlinks resolved
//! inside the layout (or the extracted archive) and never outside it, FIFOs and devices refused without being
//! opened, JSON documents capped in size; archives are extracted with [`unpack::extract_archive`] (files,
//! directories and links only, within the image size limit); layers count against the store's [`Limits`](super::limits::Limits).
//! Whatever fails, the temp dirs this import made are removed.
//!
//! Names: a layout's `org.opencontainers.image.ref.name` (a full reference, or just a tag that is given the
//! repository `localhost/<file name>`), containerd's `io.containerd.image.name`, a docker archive's `RepoTags`,
//! or the name passed by the caller, which wins.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageIndex;
use serde::Deserialize;

use super::manifest::{self, ManifestError, Parsed, Platform};
use super::reference::{Reference, ReferenceError};
use super::limits::ImageBudget;
use super::secure_fs::{self, SecureFsError};
use super::store::{now_unix, unique_suffix, ImageRecord, LayerRecord, Store, StoreError};
use super::unpack::{self, unpack_layer_within, HashingReader, UnpackError};

/// index.json, manifests and a docker archive's manifest.json: as the registry client caps manifests.
const MAX_JSON_BYTES: u64 = 8 << 20;
/// An image config (as a pull caps it).
const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// Import failures, naming the source path.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading the source or writing the import's temp files failed.
    #[error("import {path}: {source}")]
    Io {
        /// The file or directory that failed (the source's, or a temp file of the import's).
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The source is none of the three formats.
    #[error("import {path}: not an OCI layout (oci-layout + index.json), oci-archive or docker-save archive (manifest.json)")]
    UnknownFormat {
        /// The source being imported (the layout directory or the archive).
        path: PathBuf,
    },
    /// The source path is a FIFO, device, socket or other special file: refused without opening it.
    #[error("import {path}: not a directory or a regular file (a {kind})")]
    NotImportable {
        /// The source being imported (the layout directory or the archive).
        path: PathBuf,
        /// What it is (`FIFO`, `socket`, `block device`...).
        kind: &'static str,
    },
    /// A file of the layout could not be opened safely (outside it, not regular, too large).
    #[error("import {path}: {source}")]
    File {
        /// The source being imported (the layout directory or the archive).
        path: PathBuf,
        /// The cause.
        #[source]
        source: SecureFsError,
    },
    /// A JSON document of the layout or archive (`what`) does not parse or lacks what an import needs.
    #[error("import {path}: {what}: {detail}")]
    Invalid {
        /// The source being imported (the layout directory or the archive).
        path: PathBuf,
        /// The document or path concerned (`index.json`, `manifest`...).
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A manifest, index or config cannot be used, as for a pull.
    #[error("import {path}: {source}")]
    Manifest {
        /// The source being imported (the layout directory or the archive).
        path: PathBuf,
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// A blob or layer does not hash to the digest or diff_id that names it.
    #[error("import {path}: {what} {expected} has digest {actual}")]
    DigestMismatch {
        /// The blob's file, inside the layout or the extracted archive.
        path: PathBuf,
        /// `manifest`, `config`, `layer` or `uncompressed layer (diff_id)`.
        what: &'static str,
        /// The digest (or diff_id) that names it.
        expected: String,
        /// The digest of its content.
        actual: String,
    },
    /// The image name (the caller's, or one the source carries) is not a valid reference.
    #[error("import {path}: image name: {source}")]
    Name {
        /// The source being imported (the layout directory or the archive).
        path: PathBuf,
        /// The cause.
        #[source]
        source: ReferenceError,
    },
    /// The oci-archive or docker-save tar could not be extracted (bad tar, a limit, an entry kind refused).
    #[error("import {path}: {source}")]
    Archive {
        /// The source being imported (the layout directory or the archive).
        path: PathBuf,
        /// The cause.
        #[source]
        source: UnpackError,
    },
    /// A layer could not be unpacked, as for a pull.
    #[error("import {path}: layer {digest}: {source}")]
    Unpack {
        /// The source being imported (the layout directory or the archive).
        path: PathBuf,
        /// The layer's blob digest.
        digest: String,
        /// The cause.
        #[source]
        source: UnpackError,
    },
    /// The store could not be read or written.
    #[error("import {path}: {source}")]
    Store {
        /// The source being imported (the layout directory or the archive).
        path: PathBuf,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// The source is in a known format but names no image (an empty index or manifest.json).
    #[error("import {path}: no images found")]
    Empty {
        /// The source being imported (the layout directory or the archive).
        path: PathBuf,
    },
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Imports every image in `path` (see the module docs); `name` (`repo[:tag]`) names the image(s) instead.
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub fn import(store: &Store, path: &Path, name: Option<&str>) -> Result<Vec<ImageRecord>, ImportError> {
    let io = |source| ImportError::Io { path: path.to_path_buf(), source };
    let meta = fs::metadata(path).map_err(io)?;
    let fallback_repo = fallback_repo(path);
    let imp = Importer { store, source: path.to_path_buf(), budget: store.limits().budget() };
    let records = if meta.is_dir() {
        imp.read_dir_image(path, name, &fallback_repo)?
    } else if meta.is_file() {
        // An archive: unpack to a temp dir in the store (same filesystem), then read it as a directory.
        // Non-blocking open: the file was regular a moment ago, but need not be now.
        let file = fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(path).map_err(io)?;
        if !file.metadata().map_err(io)?.is_file() {
            return Err(ImportError::NotImportable { path: path.to_path_buf(), kind: "special file" });
        }
        let tmp = store.tmp_dir().join(format!("import-{}-{:x}", std::process::id(), unique_suffix()));
        let _guard = RemoveOnDrop(tmp.clone());
        fs::create_dir(&tmp).map_err(io)?;
        unpack::extract_archive(file, &tmp, store.limits())
            .map_err(|source| ImportError::Archive { path: path.to_path_buf(), source })?;
        imp.read_dir_image(&tmp, name, &fallback_repo)?
    } else {
        use std::os::unix::fs::FileTypeExt;
        let ft = meta.file_type();
        let kind = if ft.is_fifo() {
            "FIFO"
        } else if ft.is_char_device() {
            "character device"
        } else if ft.is_block_device() {
            "block device"
        } else {
            "special file"
        };
        return Err(ImportError::NotImportable { path: path.to_path_buf(), kind });
    };
    if records.is_empty() {
        return Err(ImportError::Empty { path: path.to_path_buf() });
    }
    Ok(records)
}

/// `localhost/<file stem>` repository for layouts that carry only a tag.
fn fallback_repo(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_default();
    let clean: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' }).collect();
    let clean = clean.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    format!("localhost/{}", if clean.is_empty() { "imported".into() } else { clean })
}

struct Importer<'a> {
    store: &'a Store,
    source: PathBuf,
    /// The uncompressed bytes this import may unpack, shared by its layers.
    budget: ImageBudget,
}

/// Removes a temp dir or file this import made, whatever happens.
struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        match fs::symlink_metadata(&self.0) {
            Ok(m) if m.is_dir() => drop(fs::remove_dir_all(&self.0)),
            Ok(_) => drop(fs::remove_file(&self.0)),
            Err(_) => {}
        }
    }
}

/// Writes every byte read through it to `out` (the blob's store copy is exactly the bytes that were hashed).
struct TeeReader<R> {
    inner: R,
    out: fs::File,
}

impl<R: Read> Read for TeeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[derive(Deserialize)]
struct DockerArchiveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

impl Importer<'_> {
    fn invalid(&self, what: impl Into<String>, detail: impl ToString) -> ImportError {
        ImportError::Invalid { path: self.source.clone(), what: what.into(), detail: detail.to_string() }
    }

    fn file_err(&self) -> impl FnOnce(SecureFsError) -> ImportError + '_ {
        move |source| ImportError::File { path: self.source.clone(), source }
    }

    /// Reads `rel` inside `dir` (symlinks resolved inside it), a regular file of at most `max` bytes.
    fn read_in(&self, dir: &Path, rel: &Path, max: u64) -> Result<Vec<u8>, ImportError> {
        secure_fs::read_regular_in(dir, rel, max).map_err(self.file_err())
    }

    /// Whether `rel` is a regular file inside `dir`; errors other than its absence are errors.
    fn has_file(&self, dir: &Path, rel: &str) -> Result<bool, ImportError> {
        match secure_fs::open_regular_in(dir, Path::new(rel)) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(self.file_err()(e)),
        }
    }

    fn read_dir_image(&self, dir: &Path, name: Option<&str>, fallback_repo: &str) -> Result<Vec<ImageRecord>, ImportError> {
        if self.has_file(dir, "oci-layout")? && self.has_file(dir, "index.json")? {
            self.oci_layout(dir, name, fallback_repo)
        } else if self.has_file(dir, "manifest.json")? {
            self.docker_archive(dir, name)
        } else {
            Err(ImportError::UnknownFormat { path: self.source.clone() })
        }
    }

    /// A path named by the archive's manifest.json, refusing paths that leave it (the open resolves inside it
    /// anyway; this names the problem).
    fn inside(&self, rel: &str) -> Result<PathBuf, ImportError> {
        let p = Path::new(rel);
        if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(self.invalid("path in archive", format!("{rel:?} leaves the archive")));
        }
        Ok(p.to_path_buf())
    }

    /// A blob's path relative to the layout.
    fn layout_blob(&self, digest: &str) -> Result<PathBuf, ImportError> {
        let hex = super::store::digest_hex(digest).map_err(|source| ImportError::Store { path: self.source.clone(), source })?;
        Ok(Path::new("blobs/sha256").join(hex))
    }

    fn read_verified(&self, dir: &Path, digest: &str, what: &'static str) -> Result<Vec<u8>, ImportError> {
        let rel = self.layout_blob(digest)?;
        let max = if what == "config" { MAX_CONFIG_BYTES } else { MAX_JSON_BYTES };
        let bytes = self.read_in(dir, &rel, max)?;
        let actual = manifest::sha256_digest(&bytes);
        if actual != digest {
            return Err(ImportError::DigestMismatch { path: dir.join(rel), what, expected: digest.to_string(), actual });
        }
        Ok(bytes)
    }

    fn oci_layout(&self, dir: &Path, name: Option<&str>, fallback_repo: &str) -> Result<Vec<ImageRecord>, ImportError> {
        let index_bytes = self.read_in(dir, Path::new("index.json"), MAX_JSON_BYTES)?;
        let index = ImageIndex::from_reader(&index_bytes[..]).map_err(|e| self.invalid("index.json", e))?;
        let mut out = Vec::new();
        for desc in index.manifests() {
            let annotations = desc.annotations().clone().unwrap_or_default();
            let digest = desc.digest().to_string();
            let bytes = self.read_verified(dir, &digest, "manifest")?;
            let mut blobs = vec![bytes.clone()];
            let (manifest_bytes, parsed) = match manifest::parse(&bytes, Some(desc.media_type().as_ref()))
                .map_err(|source| ImportError::Manifest { path: self.source.clone(), source })?
            {
                Parsed::Manifest(m) => (bytes, m),
                Parsed::Index(nested) => {
                    let d = manifest::select_platform(&nested, &Platform::host())
                        .map_err(|source| ImportError::Manifest { path: self.source.clone(), source })?;
                    let mb = self.read_verified(dir, d.digest().as_ref(), "manifest")?;
                    let Parsed::Manifest(m) = manifest::parse(&mb, None)
                        .map_err(|source| ImportError::Manifest { path: self.source.clone(), source })?
                    else {
                        return Err(self.invalid("manifest", "nested index inside an index"));
                    };
                    blobs.push(mb.clone());
                    (mb, m)
                }
            };
            let config_digest = parsed.config().digest().to_string();
            let config = self.read_verified(dir, &config_digest, "config")?;
            let (_, diff_ids) = manifest::parse_config(&config, parsed.layers().len())
                .map_err(|source| ImportError::Manifest { path: self.source.clone(), source })?;
            let mut layers = Vec::new();
            for (l, diff_id) in parsed.layers().iter().zip(diff_ids) {
                let media_type = l.media_type().to_string();
                manifest::check_layer_media_type(&media_type)
                    .map_err(|source| ImportError::Manifest { path: self.source.clone(), source })?;
                let record = LayerRecord { digest: l.digest().to_string(), diff_id, size: l.size(), media_type };
                let rel = self.layout_blob(&record.digest)?;
                self.import_layer(dir, &rel, &record)?;
                layers.push(record);
            }
            blobs.push(config.clone());
            let reference = self.name_for(
                name,
                annotations.get(CONTAINERD_NAME).map(String::as_str),
                annotations.get(REF_NAME).map(String::as_str),
                fallback_repo,
            )?;
            let manifest_digest = manifest::sha256_digest(&manifest_bytes);
            out.push(self.record(&blobs, config_digest, manifest_digest, reference, layers, parsed.config().size())?);
        }
        Ok(out)
    }

    fn docker_archive(&self, dir: &Path, name: Option<&str>) -> Result<Vec<ImageRecord>, ImportError> {
        let bytes = self.read_in(dir, Path::new("manifest.json"), MAX_JSON_BYTES)?;
        let entries: Vec<DockerArchiveEntry> = serde_json::from_slice(&bytes).map_err(|e| self.invalid("manifest.json", e))?;
        let mut out = Vec::new();
        for entry in entries {
            let crel = self.inside(&entry.config)?;
            let config = self.read_in(dir, &crel, MAX_CONFIG_BYTES)?;
            let config_digest = manifest::sha256_digest(&config);
            let (_, diff_ids) = manifest::parse_config(&config, entry.layers.len())
                .map_err(|source| ImportError::Manifest { path: self.source.clone(), source })?;
            let mut layers = Vec::new();
            for (rel, diff_id) in entry.layers.iter().zip(diff_ids) {
                let rel = self.inside(rel)?;
                // docker save names layers by path, not digest: the digest is whatever the file hashes to.
                let (file, size) = secure_fs::open_regular_in(dir, &rel).map_err(self.file_err())?;
                let mut h = HashingReader::new(file);
                let mut magic = [0u8; 2];
                let gz = h.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
                std::io::copy(&mut h, &mut std::io::sink()).map_err(|source| ImportError::Io { path: dir.join(&rel), source })?;
                let digest = h.finish().0;
                let media_type = if gz { manifest::DOCKER_LAYER_GZIP } else { manifest::DOCKER_LAYER_TAR }.to_string();
                let record = LayerRecord { digest, diff_id, size, media_type };
                self.import_layer(dir, &rel, &record)?;
                layers.push(record);
            }
            // Synthesize the schema 2 manifest a registry would serve, so the image has a manifest digest.
            let manifest_json = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": manifest::DOCKER_MANIFEST,
                "config": {"mediaType": manifest::DOCKER_CONFIG, "size": config.len(), "digest": config_digest},
                "layers": layers.iter().map(|l| serde_json::json!({"mediaType": l.media_type, "size": l.size, "digest": l.digest})).collect::<Vec<_>>(),
            });
            let manifest_bytes = serde_json::to_vec(&manifest_json).map_err(|e| self.invalid("manifest", e))?;
            let manifest_digest = manifest::sha256_digest(&manifest_bytes);
            let tags = entry.repo_tags.unwrap_or_default();
            let references: Vec<Reference> = match name {
                Some(n) => vec![Reference::parse(n).map_err(|source| ImportError::Name { path: self.source.clone(), source })?],
                None => tags
                    .iter()
                    .map(|t| Reference::parse(t).map_err(|source| ImportError::Name { path: self.source.clone(), source }))
                    .collect::<Result<_, _>>()?,
            };
            let mut record = self.record(
                &[manifest_bytes, config.clone()],
                config_digest,
                manifest_digest,
                references.first().cloned(),
                layers,
                config.len() as u64,
            )?;
            if references.len() > 1 {
                record.repo_tags = references.iter().filter_map(Reference::tagged_name).collect();
                record = self.store.add_image(record).map_err(|source| ImportError::Store { path: self.source.clone(), source })?;
            }
            out.push(record);
        }
        Ok(out)
    }

    /// The image's name from, in order: the caller's `name` (its tag defaulting to the layout's tag), the
    /// containerd annotation, the ref.name annotation (a full reference, or a tag under `fallback_repo`).
    fn name_for(
        &self,
        name: Option<&str>,
        containerd: Option<&str>,
        ref_name: Option<&str>,
        fallback_repo: &str,
    ) -> Result<Option<Reference>, ImportError> {
        let parse = |s: &str| Reference::parse(s).map_err(|source| ImportError::Name { path: self.source.clone(), source });
        let ref_is_tag = ref_name.filter(|r| !r.contains('/') && !r.contains(':') && !r.contains('@'));
        if let Some(n) = name {
            let last = n.rsplit('/').next().unwrap_or(n);
            return match (last.contains(':') || n.contains('@'), ref_is_tag) {
                (false, Some(tag)) => parse(&format!("{n}:{tag}")).map(Some),
                _ => parse(n).map(Some),
            };
        }
        if let Some(c) = containerd {
            return parse(c).map(Some);
        }
        match (ref_name, ref_is_tag) {
            (_, Some(tag)) => parse(&format!("{fallback_repo}:{tag}")).map(Some),
            (Some(full), None) => parse(full).map(Some),
            (None, _) => Ok(None),
        }
    }

    /// Verifies and unpacks one layer file (`rel` inside `dir`) into the store (skipped if the store has it),
    /// copying its blob in from the same read.
    fn import_layer(&self, dir: &Path, rel: &Path, layer: &LayerRecord) -> Result<(), ImportError> {
        let store_err = |source| ImportError::Store { path: self.source.clone(), source };
        let shown = dir.join(rel);
        if self.store.has_layer(&layer.diff_id) && self.store.has_blob(&layer.digest) {
            return Ok(());
        }
        let (file, _) = secure_fs::open_regular_in(dir, rel).map_err(self.file_err())?;
        let suffix = format!("{}-{:x}", std::process::id(), unique_suffix());
        let staging = self.store.tmp_dir().join(format!("unpack-import-{suffix}"));
        let _staging_guard = RemoveOnDrop(staging.clone());
        fs::create_dir(&staging).map_err(|source| ImportError::Io { path: staging.clone(), source })?;
        let blob_tmp = self.store.tmp_dir().join(format!("blob-import-{suffix}"));
        let _blob_guard = RemoveOnDrop(blob_tmp.clone());
        let out = fs::File::create(&blob_tmp).map_err(|source| ImportError::Io { path: blob_tmp.clone(), source })?;
        let mut hashing = HashingReader::new(TeeReader { inner: file, out });
        let unpacked = unpack_layer_within(&mut hashing, &staging, &self.budget).map_err(|source| ImportError::Unpack {
            path: self.source.clone(),
            digest: layer.digest.clone(),
            source,
        })?;
        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|source| ImportError::Io { path: shown.clone(), source })?;
        let (digest, _) = hashing.finish();
        if digest != layer.digest {
            return Err(ImportError::DigestMismatch { path: shown, what: "layer", expected: layer.digest.clone(), actual: digest });
        }
        if unpacked.diff_id != layer.diff_id {
            return Err(ImportError::DigestMismatch {
                path: shown,
                what: "uncompressed layer (diff_id)",
                expected: layer.diff_id.clone(),
                actual: unpacked.diff_id,
            });
        }
        let blob = self.store.blob_path(&layer.digest).map_err(store_err)?;
        if !blob.exists() {
            fs::rename(&blob_tmp, &blob).map_err(|source| ImportError::Io { path: blob.clone(), source })?;
        }
        let dest = self.store.layer_dir(&layer.diff_id).map_err(store_err)?;
        if !dest.is_dir() {
            fs::rename(&staging, &dest).map_err(|source| ImportError::Io { path: dest.clone(), source })?;
        }
        Ok(())
    }

    fn record(
        &self,
        blobs: &[Vec<u8>],
        config_digest: String,
        manifest_digest: String,
        reference: Option<Reference>,
        layers: Vec<LayerRecord>,
        config_size: u64,
    ) -> Result<ImageRecord, ImportError> {
        let store_err = |source| ImportError::Store { path: self.source.clone(), source };
        for b in blobs {
            self.store.write_blob(b).map_err(store_err)?;
        }
        let now = now_unix();
        let record = ImageRecord {
            id: config_digest,
            manifest_digest,
            repo_tags: reference.as_ref().and_then(Reference::tagged_name).into_iter().collect(),
            repo_digests: Vec::new(),
            size: config_size + layers.iter().map(|l| l.size).sum::<u64>(),
            layers,
            created: now,
            last_used: now,
        };
        tracing::debug!(id = %record.id, tags = ?record.repo_tags, "imported image");
        self.store.add_image(record).map_err(store_err)
    }
}
