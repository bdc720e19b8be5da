//! Offline import into the store: an OCI image layout directory, an oci-archive (a tar of one), or a
//! docker-save archive (`manifest.json` + config + layer tars). Every blob is checked against its digest and
//! every layer against its diff_id, exactly as a pull would, and layers are unpacked the same way.
//!
//! Names: a layout's `org.opencontainers.image.ref.name` (a full reference, or just a tag that is given the
//! repository `localhost/<file name>`), containerd's `io.containerd.image.name`, a docker archive's `RepoTags`,
//! or the name passed by the caller, which wins.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageIndex;
use serde::Deserialize;

use super::manifest::{self, ManifestError, Parsed, Platform};
use super::reference::{Reference, ReferenceError};
use super::store::{now_unix, unique_suffix, ImageRecord, LayerRecord, Store, StoreError};
use super::unpack::{unpack_layer, HashingReader, UnpackError};

/// Import failures, naming the source path.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("import {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("import {path}: not an OCI layout (oci-layout + index.json), oci-archive or docker-save archive (manifest.json)")]
    UnknownFormat { path: PathBuf },
    #[error("import {path}: {what}: {detail}")]
    Invalid { path: PathBuf, what: String, detail: String },
    #[error("import {path}: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
    #[error("import {path}: {what} {expected} has digest {actual}")]
    DigestMismatch { path: PathBuf, what: &'static str, expected: String, actual: String },
    #[error("import {path}: image name: {source}")]
    Name {
        path: PathBuf,
        #[source]
        source: ReferenceError,
    },
    #[error("import {path}: {source}")]
    Unpack {
        path: PathBuf,
        #[source]
        source: UnpackError,
    },
    #[error("import {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("import {path}: no images found")]
    Empty { path: PathBuf },
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Imports every image in `path` (see the module docs); `name` (`repo[:tag]`) names the image(s) instead.
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub fn import(store: &Store, path: &Path, name: Option<&str>) -> Result<Vec<ImageRecord>, ImportError> {
    let io = |source| ImportError::Io { path: path.to_path_buf(), source };
    let meta = fs::metadata(path).map_err(io)?;
    let fallback_repo = fallback_repo(path);
    let imp = Importer { store, source: path.to_path_buf() };
    let records = if meta.is_dir() {
        imp.read_dir_image(path, name, &fallback_repo)?
    } else {
        // An archive: unpack to a temp dir in the store (same filesystem), then read it as a directory.
        let tmp = store.tmp_dir().join(format!("import-{}-{:x}", std::process::id(), unique_suffix()));
        let _guard = RemoveOnDrop(tmp.clone());
        fs::create_dir_all(&tmp).map_err(io)?;
        let file = fs::File::open(path).map_err(io)?;
        let mut reader = BufReader::new(file);
        let gz = reader.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn Read> = if gz { Box::new(flate2::bufread::MultiGzDecoder::new(reader)) } else { Box::new(reader) };
        let mut archive = tar::Archive::new(reader);
        archive.set_preserve_permissions(false);
        archive.unpack(&tmp).map_err(io)?;
        imp.read_dir_image(&tmp, name, &fallback_repo)?
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
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = fs::remove_dir_all(&self.0);
        }
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
    fn io(&self) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
        move |source| ImportError::Io { path: self.source.clone(), source }
    }
    fn invalid(&self, what: impl Into<String>, detail: impl ToString) -> ImportError {
        ImportError::Invalid { path: self.source.clone(), what: what.into(), detail: detail.to_string() }
    }

    fn read_dir_image(&self, dir: &Path, name: Option<&str>, fallback_repo: &str) -> Result<Vec<ImageRecord>, ImportError> {
        if dir.join("oci-layout").is_file() && dir.join("index.json").is_file() {
            self.oci_layout(dir, name, fallback_repo)
        } else if dir.join("manifest.json").is_file() {
            self.docker_archive(dir, name)
        } else {
            Err(ImportError::UnknownFormat { path: self.source.clone() })
        }
    }

    /// A file inside the extracted/imported dir, refusing paths that leave it.
    fn inside(&self, dir: &Path, rel: &str) -> Result<PathBuf, ImportError> {
        let p = Path::new(rel);
        if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(self.invalid("path in archive", format!("{rel:?} leaves the archive")));
        }
        Ok(dir.join(p))
    }

    fn layout_blob(&self, dir: &Path, digest: &str) -> Result<PathBuf, ImportError> {
        let hex = super::store::digest_hex(digest).map_err(|source| ImportError::Store { path: self.source.clone(), source })?;
        Ok(dir.join("blobs/sha256").join(hex))
    }

    fn read_verified(&self, dir: &Path, digest: &str, what: &'static str) -> Result<Vec<u8>, ImportError> {
        let p = self.layout_blob(dir, digest)?;
        let bytes = fs::read(&p).map_err(|source| ImportError::Io { path: p.clone(), source })?;
        let actual = manifest::sha256_digest(&bytes);
        if actual != digest {
            return Err(ImportError::DigestMismatch { path: p, what, expected: digest.to_string(), actual });
        }
        Ok(bytes)
    }

    fn oci_layout(&self, dir: &Path, name: Option<&str>, fallback_repo: &str) -> Result<Vec<ImageRecord>, ImportError> {
        let index_path = dir.join("index.json");
        let index = ImageIndex::from_file(&index_path).map_err(|e| self.invalid("index.json", e))?;
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
                let file = self.layout_blob(dir, &record.digest)?;
                self.import_layer(&file, &record)?;
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
        let mpath = dir.join("manifest.json");
        let bytes = fs::read(&mpath).map_err(self.io())?;
        let entries: Vec<DockerArchiveEntry> = serde_json::from_slice(&bytes).map_err(|e| self.invalid("manifest.json", e))?;
        let mut out = Vec::new();
        for entry in entries {
            let cpath = self.inside(dir, &entry.config)?;
            let config = fs::read(&cpath).map_err(|source| ImportError::Io { path: cpath.clone(), source })?;
            let config_digest = manifest::sha256_digest(&config);
            let (_, diff_ids) = manifest::parse_config(&config, entry.layers.len())
                .map_err(|source| ImportError::Manifest { path: self.source.clone(), source })?;
            let mut layers = Vec::new();
            for (rel, diff_id) in entry.layers.iter().zip(diff_ids) {
                let file = self.inside(dir, rel)?;
                let meta = fs::metadata(&file).map_err(|source| ImportError::Io { path: file.clone(), source })?;
                let gz = {
                    let mut magic = [0u8; 2];
                    let mut f = fs::File::open(&file).map_err(|source| ImportError::Io { path: file.clone(), source })?;
                    f.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b]
                };
                // docker save names layers by path, not digest: the digest is whatever the file hashes to.
                let digest = {
                    let mut h = HashingReader::new(fs::File::open(&file).map_err(|source| ImportError::Io { path: file.clone(), source })?);
                    std::io::copy(&mut h, &mut std::io::sink()).map_err(|source| ImportError::Io { path: file.clone(), source })?;
                    h.finish().0
                };
                let media_type = if gz { manifest::DOCKER_LAYER_GZIP } else { manifest::DOCKER_LAYER_TAR }.to_string();
                let record = LayerRecord { digest, diff_id, size: meta.len(), media_type };
                self.import_layer(&file, &record)?;
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

    /// Verifies and unpacks one layer file into the store (skipped if the store has it), copying its blob in.
    fn import_layer(&self, file: &Path, layer: &LayerRecord) -> Result<(), ImportError> {
        let store_err = |source| ImportError::Store { path: self.source.clone(), source };
        if self.store.has_layer(&layer.diff_id) && self.store.has_blob(&layer.digest) {
            return Ok(());
        }
        let staging = self.store.tmp_dir().join(format!("unpack-import-{}-{:x}", std::process::id(), unique_suffix()));
        let _guard = RemoveOnDrop(staging.clone());
        fs::create_dir(&staging).map_err(|source| ImportError::Io { path: staging.clone(), source })?;
        let f = fs::File::open(file).map_err(|source| ImportError::Io { path: file.to_path_buf(), source })?;
        let mut hashing = HashingReader::new(f);
        let unpacked = unpack_layer(&mut hashing, &staging).map_err(|source| ImportError::Unpack { path: self.source.clone(), source })?;
        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|source| ImportError::Io { path: file.to_path_buf(), source })?;
        let (digest, _) = hashing.finish();
        if digest != layer.digest {
            return Err(ImportError::DigestMismatch { path: file.to_path_buf(), what: "layer", expected: layer.digest.clone(), actual: digest });
        }
        if unpacked.diff_id != layer.diff_id {
            return Err(ImportError::DigestMismatch {
                path: file.to_path_buf(),
                what: "uncompressed layer (diff_id)",
                expected: layer.diff_id.clone(),
                actual: unpacked.diff_id,
            });
        }
        let blob = self.store.blob_path(&layer.digest).map_err(store_err)?;
        if !blob.exists() {
            let tmp = self.store.tmp_dir().join(format!("blob-import-{:x}", unique_suffix()));
            fs::copy(file, &tmp).map_err(|source| ImportError::Io { path: tmp.clone(), source })?;
            fs::rename(&tmp, &blob).map_err(|source| ImportError::Io { path: blob.clone(), source })?;
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
