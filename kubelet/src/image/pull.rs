//! Pulling an image into the store: resolve the reference to a manifest (choosing this platform from an
//! index), fetch the config, then download every missing layer while unpacking it in the same pass
//! (network -> sha256 -> partial file, and -> gunzip -> diff_id sha256 -> untar on a blocking thread).
//!
//! A layer enters the store only when both its blob digest and its diff_id match; the image record is written
//! last, so a failed pull leaves no image behind. Interrupted downloads resume with HTTP Range from the partial
//! file kept in the store's tmp dir, within a pull (retries) and across pulls.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::manifest::{self, ManifestError, Parsed, Platform};
use super::reference::{Reference, ReferenceError};
use super::registry::auth::Credentials;
use super::registry::client::{RegistryClient, RegistryError};
use super::store::{now_unix, unique_suffix, ImageRecord, LayerRecord, Store, StoreError};
use super::limits::ImageBudget;
use super::unpack::{unpack_layer_within, UnpackError};

/// How many layers download at once.
const PARALLEL_LAYERS: usize = 3;
/// Attempts per blob (the first plus resumptions after a broken connection).
const BLOB_ATTEMPTS: u32 = 4;
const UNPACKER_GONE: &str = "unpacking stopped early";
/// A config blob larger than this is refused (real ones are a few KB; the registry client caps manifests
/// at 8 MiB the same way).
const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// Progress of one pull, reported as it happens (the CLI draws bars from it, the kubelet logs/events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullProgress {
    /// The manifest was resolved: how many layers and bytes the image has.
    Resolved {
        /// The digest of the manifest being pulled (the platform's, under an index).
        manifest_digest: String,
        /// Number of layers.
        layers: usize,
        /// Compressed bytes of all layers, as the manifest gives them.
        total_bytes: u64,
    },
    /// A layer is already unpacked in the store.
    LayerCached {
        /// The layer's blob digest.
        digest: String,
        /// The layer's compressed size in bytes, from the manifest.
        size: u64,
    },
    /// Download of a layer started (at `offset` when resuming a partial download).
    LayerStarted {
        /// The layer's blob digest.
        digest: String,
        /// The layer's compressed size in bytes, from the manifest.
        size: u64,
        /// Bytes already on disk from an earlier, interrupted download.
        offset: u64,
    },
    /// Bytes of a layer downloaded so far (including a resumed prefix).
    LayerBytes {
        /// The layer's blob digest.
        digest: String,
        /// Bytes of the blob on disk so far.
        downloaded: u64,
        /// The layer's compressed size in bytes, from the manifest.
        size: u64,
    },
    /// Layer verified and unpacked.
    LayerDone {
        /// The layer's blob digest.
        digest: String,
    },
}

/// Receives [`PullProgress`]; called from the pull's tasks, so it must be cheap and thread-safe.
pub type ProgressFn = Arc<dyn Fn(PullProgress) + Send + Sync>;

/// A progress sink that ignores everything.
pub fn no_progress() -> ProgressFn {
    Arc::new(|_| {})
}

/// Why a pull failed. `Display` reads like the kubelet's event message:
/// `failed to pull image "127.0.0.1:5000/nope:1": manifest unknown (HTTP 404) from registry 127.0.0.1:5000`.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The image name is not a valid reference (the container's reason is `InvalidImageName`).
    #[error("failed to pull image {image:?}: {source}")]
    Reference {
        /// The image as the caller named it.
        image: String,
        /// The cause.
        #[source]
        source: ReferenceError,
    },
    /// The registry refused or could not be reached: unknown manifest or blob, unauthorized, an HTTP error.
    #[error("failed to pull image {image:?}: {source}")]
    Registry {
        /// The image as the caller named it.
        image: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },
    /// The manifest, index or config cannot be used (unsupported type, no manifest for this platform...).
    #[error("failed to pull image {image:?}: {source} (from registry {registry})")]
    Manifest {
        /// The image as the caller named it.
        image: String,
        /// The registry host.
        registry: String,
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// Content the registry served does not hash to the digest that named it (`what`: the manifest, the
    /// config, a layer's blob, or its unpacked tar against the config's diff_id).
    #[error("failed to pull image {image:?}: {what} {expected} from registry {registry} has digest {actual}")]
    DigestMismatch {
        /// The image as the caller named it.
        image: String,
        /// The registry host.
        registry: String,
        /// `manifest`, `config`, `layer` or `uncompressed layer (diff_id)`.
        what: &'static str,
        /// The digest that named the content.
        expected: String,
        /// The digest of what was served.
        actual: String,
    },
    /// The image config blob was over the limit of what is read into memory; `size` is what had arrived.
    #[error("failed to pull image {image:?}: config {digest} is {size} bytes, over the limit of {max} bytes")]
    ConfigTooLarge {
        /// The image as the caller named it.
        image: String,
        /// The blob's digest.
        digest: String,
        /// Bytes received before giving up.
        size: u64,
        /// The limit in bytes.
        max: u64,
    },
    /// A layer download (a resumed partial file included) ran past the size its descriptor gives; the partial
    /// file is removed.
    #[error("failed to pull image {image:?}: layer {digest} has {actual} bytes, the manifest says {expected}")]
    SizeMismatch {
        /// The image as the caller named it.
        image: String,
        /// The blob's digest.
        digest: String,
        /// The size the manifest gives, in bytes.
        expected: u64,
        /// Bytes received (or on disk) when the excess was seen.
        actual: u64,
    },
    /// A blob download broke (a layer's after every retry, each resuming from the partial file; a config's at
    /// once), or the unpacker fed by it stopped.
    #[error("failed to pull image {image:?}: download of {digest} from registry {registry} kept failing: {detail}")]
    Interrupted {
        /// The image as the caller named it.
        image: String,
        /// The registry host.
        registry: String,
        /// The blob's digest.
        digest: String,
        /// The last attempt's error.
        detail: String,
    },
    /// The layer could not be unpacked: a bad tar, an entry escaping its directory, or a size limit.
    #[error("failed to pull image {image:?}: layer {digest}: {source}")]
    Unpack {
        /// The image as the caller named it.
        image: String,
        /// The blob's digest.
        digest: String,
        /// The cause.
        #[source]
        source: UnpackError,
    },
    /// The store could not be read or written.
    #[error("failed to pull image {image:?}: {source}")]
    Store {
        /// The image as the caller named it.
        image: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// A file under the store's `tmp/` (a partial download, a layer being unpacked) could not be used.
    #[error("failed to pull image {image:?}: {path}: {source}")]
    Io {
        /// The image as the caller named it.
        image: String,
        /// The file or directory that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl PullError {
    /// The container waiting reason Kubernetes reports: `InvalidImageName` or `ErrImagePull`.
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::Reference { .. } => "InvalidImageName",
            _ => "ErrImagePull",
        }
    }
}

/// A finished pull: what the Pulled event reports.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    /// The image as the store now records it.
    pub image: ImageRecord,
    /// Wall time of the whole pull, from parsing the reference to recording the image.
    pub duration: Duration,
    /// Bytes fetched over the network by this pull (cached layers excluded).
    pub downloaded_bytes: u64,
}

impl PullOutcome {
    /// The kubelet's Pulled event word for word (upstream's image_manager.go, 1.30+):
    /// `Successfully pulled image "busybox" in 1.2s (1.2s including waiting). Image size: 2150000 bytes.`, each
    /// duration truncated to the millisecond and printed as Go prints a `time.Duration`. Upstream's second figure
    /// adds the time the pull waited in its serial queue; pulls here are not queued, so both are the pull's time.
    pub fn event_message(&self, image: &str) -> String {
        let d = go_duration_ms(self.duration);
        format!("Successfully pulled image {image:?} in {d} ({d} including waiting). Image size: {} bytes.", self.image.size)
    }
}

/// A duration truncated to the millisecond, printed as Go's `time.Duration.String()`: `0s`, `512ms`, `4.361s`,
/// `1m4.5s`, `2h0m1s`.
fn go_duration_ms(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut secs = s.to_string();
    if frac != 0 {
        secs = format!("{s}.{frac:03}").trim_end_matches('0').to_string();
    }
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

/// Pulls images from registries into one store.
pub struct Puller {
    store: Store,
    client: Arc<RegistryClient>,
    platform: Platform,
    /// One lock per layer (diff_id) being fetched: concurrent pulls sharing a layer (two pods, one image)
    /// must not append to the same partial file; the second waits and then finds the layer in the store.
    inflight: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct Ctx<'a> {
    image: &'a str,
    reference: &'a Reference,
    creds: Option<&'a Credentials>,
    progress: &'a ProgressFn,
    /// The uncompressed bytes this pull may unpack, shared by its layers.
    budget: ImageBudget,
}

impl Ctx<'_> {
    fn registry(&self, source: RegistryError) -> PullError {
        PullError::Registry { image: self.image.to_string(), source }
    }
    fn manifest(&self, source: ManifestError) -> PullError {
        PullError::Manifest { image: self.image.to_string(), registry: self.reference.registry.clone(), source }
    }
    fn store(&self, source: StoreError) -> PullError {
        PullError::Store { image: self.image.to_string(), source }
    }
    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> PullError + use<> {
        let image = self.image.to_string();
        let path = path.to_path_buf();
        move |source| PullError::Io { image, path, source }
    }
}

impl Puller {
    /// A puller into `store` over `client`, selecting this host's platform ([`Platform::host`]).
    pub fn new(store: Store, client: Arc<RegistryClient>) -> Puller {
        Puller { store, client, platform: Platform::host(), inflight: Default::default() }
    }

    /// The same puller over `store` (the same store with other limits).
    pub fn with_store(mut self, store: Store) -> Puller {
        self.store = store;
        self
    }

    /// Selects a platform other than this host's from image indexes.
    pub fn with_platform(mut self, platform: Platform) -> Puller {
        self.platform = platform;
        self
    }

    /// The store pulls go into.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Pulls `image` (any reference `Reference::parse` accepts) with optional credentials for its registry.
    #[tracing::instrument(skip_all, fields(image = %image))]
    pub async fn pull(
        &self,
        image: &str,
        creds: Option<&Credentials>,
        progress: ProgressFn,
    ) -> Result<PullOutcome, PullError> {
        let started = Instant::now();
        let reference = Reference::parse(image).map_err(|source| PullError::Reference { image: image.to_string(), source })?;
        let ctx = Ctx { image, reference: &reference, creds, progress: &progress, budget: self.store.limits().budget() };

        // Manifest (through an index if the registry serves one).
        let top = self
            .client
            .fetch_manifest(&reference, reference.manifest_reference(), creds)
            .await
            .map_err(|e| ctx.registry(e))?;
        let top_digest = manifest::sha256_digest(&top.bytes);
        if let Some(want) = &reference.digest {
            if *want != top_digest {
                return Err(PullError::DigestMismatch {
                    image: image.to_string(),
                    registry: reference.registry.clone(),
                    what: "manifest",
                    expected: want.clone(),
                    actual: top_digest,
                });
            }
        }
        let mut extra_blobs: Vec<Vec<u8>> = Vec::new();
        let (manifest_bytes, manifest_digest, parsed) =
            match manifest::parse(&top.bytes, top.content_type.as_deref()).map_err(|e| ctx.manifest(e))? {
                Parsed::Manifest(m) => (top.bytes, top_digest.clone(), m),
                Parsed::Index(index) => {
                    let desc = manifest::select_platform(&index, &self.platform).map_err(|e| ctx.manifest(e))?;
                    let digest = desc.digest().to_string();
                    tracing::debug!(manifest = %digest, platform = %self.platform, "selected manifest from index");
                    let m = self.client.fetch_manifest(&reference, &digest, creds).await.map_err(|e| ctx.registry(e))?;
                    let actual = manifest::sha256_digest(&m.bytes);
                    if actual != digest {
                        return Err(PullError::DigestMismatch {
                            image: image.to_string(),
                            registry: reference.registry.clone(),
                            what: "manifest",
                            expected: digest,
                            actual,
                        });
                    }
                    let Parsed::Manifest(parsed) =
                        manifest::parse(&m.bytes, m.content_type.as_deref()).map_err(|e| ctx.manifest(e))?
                    else {
                        return Err(ctx.manifest(ManifestError::UnsupportedMediaType {
                            media_type: "nested image index".into(),
                        }));
                    };
                    extra_blobs.push(top.bytes);
                    (m.bytes, digest, parsed)
                }
            };

        // Config: small, fetched whole and verified.
        let config_digest = parsed.config().digest().to_string();
        if parsed.config().size() > MAX_CONFIG_BYTES {
            return Err(PullError::ConfigTooLarge {
                image: image.to_string(),
                digest: config_digest,
                size: parsed.config().size(),
                max: MAX_CONFIG_BYTES,
            });
        }
        let config_bytes = self.fetch_small_blob(&ctx, &config_digest).await?;
        let (_config, diff_ids) = manifest::parse_config(&config_bytes, parsed.layers().len()).map_err(|e| ctx.manifest(e))?;
        let layers: Vec<LayerRecord> = parsed
            .layers()
            .iter()
            .zip(&diff_ids)
            .map(|(d, diff_id)| LayerRecord {
                digest: d.digest().to_string(),
                diff_id: diff_id.clone(),
                size: d.size(),
                media_type: d.media_type().to_string(),
            })
            .collect();
        for l in &layers {
            manifest::check_layer_media_type(&l.media_type).map_err(|e| ctx.manifest(e))?;
        }
        let total: u64 = layers.iter().map(|l| l.size).sum();
        progress(PullProgress::Resolved { manifest_digest: manifest_digest.clone(), layers: layers.len(), total_bytes: total });
        tracing::debug!(manifest = %manifest_digest, layers = layers.len(), bytes = total, "pulling image");

        // Layers, a few at a time; identical layers listed twice are fetched once.
        let mut unique: Vec<&LayerRecord> = Vec::new();
        for l in &layers {
            if !unique.iter().any(|u| u.diff_id == l.diff_id) {
                unique.push(l);
            }
        }
        let downloaded: Vec<u64> = futures::stream::iter(unique.into_iter().map(|l| self.ensure_layer(&ctx, l)))
            .buffer_unordered(PARALLEL_LAYERS)
            .try_collect()
            .await?;

        // Record last: before this the image does not exist.
        for b in extra_blobs.iter().chain([&manifest_bytes, &config_bytes]) {
            self.store.write_blob(b).map_err(|e| ctx.store(e))?;
        }
        let now = now_unix();
        let record = ImageRecord {
            id: config_digest,
            manifest_digest,
            repo_tags: reference.tagged_name().into_iter().collect(),
            repo_digests: vec![format!("{}@{top_digest}", reference.name())],
            size: total + parsed.config().size(),
            layers,
            created: now,
            last_used: now,
        };
        let image_record = self.store.add_image(record).map_err(|e| ctx.store(e))?;
        let outcome = PullOutcome { image: image_record, duration: started.elapsed(), downloaded_bytes: downloaded.iter().sum() };
        tracing::debug!(id = %outcome.image.id, secs = outcome.duration.as_secs_f64(), bytes = outcome.image.size, "pulled image");
        Ok(outcome)
    }

    async fn fetch_small_blob(&self, ctx: &Ctx<'_>, digest: &str) -> Result<Vec<u8>, PullError> {
        if self.store.has_blob(digest) {
            if let Ok(b) = self.store.read_blob(digest) {
                if manifest::sha256_digest(&b) == digest {
                    return Ok(b);
                }
            }
        }
        let resp = self.client.fetch_blob(ctx.reference, digest, 0, ctx.creds).await.map_err(|e| ctx.registry(e))?;
        // Read no more than the limit, whatever the registry sends (the digest check follows).
        let mut bytes = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| PullError::Interrupted {
                image: ctx.image.to_string(),
                registry: ctx.reference.registry.clone(),
                digest: digest.to_string(),
                detail: e.to_string(),
            })?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > MAX_CONFIG_BYTES {
                return Err(PullError::ConfigTooLarge {
                    image: ctx.image.to_string(),
                    digest: digest.to_string(),
                    size: bytes.len() as u64,
                    max: MAX_CONFIG_BYTES,
                });
            }
        }
        let actual = manifest::sha256_digest(&bytes);
        if actual != digest {
            return Err(PullError::DigestMismatch {
                image: ctx.image.to_string(),
                registry: ctx.reference.registry.clone(),
                what: "config",
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Makes sure the layer is unpacked in the store; returns the bytes downloaded for it.
    async fn ensure_layer(&self, ctx: &Ctx<'_>, layer: &LayerRecord) -> Result<u64, PullError> {
        let lock = match self.inflight.lock() {
            Ok(mut m) => Some(m.entry(layer.diff_id.clone()).or_default().clone()),
            Err(_) => None,
        };
        let guard = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let result = self.ensure_layer_locked(ctx, layer).await;
        drop(guard);
        if let (Some(l), Ok(mut m)) = (lock, self.inflight.lock()) {
            // Last user of this layer's lock: forget it.
            if Arc::strong_count(&l) == 2 {
                m.remove(&layer.diff_id);
            }
        }
        result
    }

    async fn ensure_layer_locked(&self, ctx: &Ctx<'_>, layer: &LayerRecord) -> Result<u64, PullError> {
        if self.store.has_layer(&layer.diff_id) {
            (ctx.progress)(PullProgress::LayerCached { digest: layer.digest.clone(), size: layer.size });
            return Ok(0);
        }
        let staging = self.store.tmp_dir().join(format!(
            "unpack-{}-{}-{:x}",
            layer.diff_id.trim_start_matches("sha256:").get(..12).unwrap_or("x"),
            std::process::id(),
            unique_suffix()
        ));
        let guard = StagingGuard(staging.clone());
        std::fs::create_dir(&staging).map_err(ctx.io(&staging))?;

        let partial = self.store.partial_path(&layer.digest).map_err(|e| ctx.store(e))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
        let unpack_dir = staging.clone();
        let budget = ctx.budget.clone();
        let unpacker = tokio::task::spawn_blocking(move || unpack_layer_within(ChannelReader::new(rx), &unpack_dir, &budget));

        let fed = self.download(ctx, layer, &partial, &tx).await;
        drop(tx);
        let unpacked = unpacker.await;
        let downloaded = match fed {
            Ok(n) => n,
            Err(e) => {
                // The unpacker stopped reading because the tar is bad: that is the error to report.
                let unpacker_failed = matches!(&e, PullError::Interrupted { detail, .. } if detail == UNPACKER_GONE);
                return match unpacked {
                    Ok(Err(source)) if unpacker_failed => {
                        // The content is refused (a bad tar, a limit): resuming the download cannot help.
                        let _ = std::fs::remove_file(&partial);
                        Err(PullError::Unpack { image: ctx.image.to_string(), digest: layer.digest.clone(), source })
                    }
                    _ => Err(e),
                };
            }
        };
        let unpacked = match unpacked {
            Ok(Ok(u)) => u,
            Ok(Err(source)) => {
                // A layer that verified but does not unpack will not get better by downloading again.
                let _ = std::fs::remove_file(&partial);
                return Err(PullError::Unpack { image: ctx.image.to_string(), digest: layer.digest.clone(), source });
            }
            Err(join) => {
                return Err(PullError::Unpack {
                    image: ctx.image.to_string(),
                    digest: layer.digest.clone(),
                    source: UnpackError::Io { dir: staging.clone(), source: std::io::Error::other(join.to_string()) },
                })
            }
        };
        if unpacked.diff_id != layer.diff_id {
            let _ = std::fs::remove_file(&partial);
            return Err(PullError::DigestMismatch {
                image: ctx.image.to_string(),
                registry: ctx.reference.registry.clone(),
                what: "uncompressed layer (diff_id)",
                expected: layer.diff_id.clone(),
                actual: unpacked.diff_id,
            });
        }
        let blob = self.store.blob_path(&layer.digest).map_err(|e| ctx.store(e))?;
        tokio::fs::rename(&partial, &blob).await.map_err(ctx.io(&blob))?;
        let dest = self.store.layer_dir(&layer.diff_id).map_err(|e| ctx.store(e))?;
        match std::fs::rename(&staging, &dest) {
            Ok(()) => {}
            // Another pull unpacked the same layer meanwhile: keep theirs, the guard removes ours.
            Err(_) if dest.is_dir() => {}
            Err(e) => return Err(ctx.io(&dest)(e)),
        }
        drop(guard);
        (ctx.progress)(PullProgress::LayerDone { digest: layer.digest.clone() });
        tracing::debug!(layer = %layer.digest, diff_id = %layer.diff_id, "layer unpacked");
        Ok(downloaded)
    }

    /// Streams the blob into the partial file, the hasher and the unpacker, resuming after broken connections.
    /// Returns the bytes fetched from the network once the whole blob is verified.
    async fn download(
        &self,
        ctx: &Ctx<'_>,
        layer: &LayerRecord,
        partial: &Path,
        tx: &tokio::sync::mpsc::Sender<Bytes>,
    ) -> Result<u64, PullError> {
        let unpacker_gone = || PullError::Interrupted {
            image: ctx.image.to_string(),
            registry: ctx.reference.registry.clone(),
            digest: layer.digest.clone(),
            detail: UNPACKER_GONE.into(),
        };
        let mut hasher = Sha256::new();
        let mut offset: u64 = 0;
        // Replay a partial download left by an earlier pull through the hasher and the unpacker.
        if let Ok(mut f) = tokio::fs::File::open(partial).await {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).await.map_err(ctx.io(partial))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                offset += n as u64;
                if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    return Err(unpacker_gone());
                }
            }
        }
        if offset > layer.size {
            // Longer than the blob can be: start over.
            drop(tokio::fs::remove_file(partial).await);
            return Err(PullError::SizeMismatch {
                image: ctx.image.to_string(),
                digest: layer.digest.clone(),
                expected: layer.size,
                actual: offset,
            });
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(partial)
            .await
            .map_err(ctx.io(partial))?;
        (ctx.progress)(PullProgress::LayerStarted { digest: layer.digest.clone(), size: layer.size, offset });
        if offset > 0 {
            tracing::info!(layer = %layer.digest, offset, "resuming partial download");
        }
        let mut fetched: u64 = 0;
        let mut attempt = 0;
        let mut last_error = String::new();
        while offset < layer.size {
            attempt += 1;
            if attempt > BLOB_ATTEMPTS {
                return Err(PullError::Interrupted {
                    image: ctx.image.to_string(),
                    registry: ctx.reference.registry.clone(),
                    digest: layer.digest.clone(),
                    detail: last_error,
                });
            }
            let resp = match self.client.fetch_blob(ctx.reference, &layer.digest, offset, ctx.creds).await {
                Ok(r) => r,
                Err(e @ RegistryError::Transport { .. }) => {
                    last_error = e.to_string();
                    continue;
                }
                Err(e) => return Err(ctx.registry(e)),
            };
            // 206: the body starts at `offset`. 200: the whole blob again; skip what we have.
            let mut skip = if resp.status() == reqwest::StatusCode::PARTIAL_CONTENT { 0 } else { offset };
            let mut stream = resp.bytes_stream();
            loop {
                let chunk = match stream.next().await {
                    None => break,
                    Some(Ok(c)) => c,
                    Some(Err(e)) => {
                        last_error = e.to_string();
                        tracing::warn!(layer = %layer.digest, offset, error = %e, "blob download interrupted; resuming");
                        break;
                    }
                };
                let chunk = if skip > 0 {
                    let s = skip.min(chunk.len() as u64);
                    skip -= s;
                    chunk.slice(s as usize..)
                } else {
                    chunk
                };
                if chunk.is_empty() {
                    continue;
                }
                if offset + chunk.len() as u64 > layer.size {
                    drop(file);
                    drop(tokio::fs::remove_file(partial).await);
                    return Err(PullError::SizeMismatch {
                        image: ctx.image.to_string(),
                        digest: layer.digest.clone(),
                        expected: layer.size,
                        actual: offset + chunk.len() as u64,
                    });
                }
                file.write_all(&chunk).await.map_err(ctx.io(partial))?;
                hasher.update(&chunk);
                offset += chunk.len() as u64;
                fetched += chunk.len() as u64;
                (ctx.progress)(PullProgress::LayerBytes { digest: layer.digest.clone(), downloaded: offset, size: layer.size });
                if tx.send(chunk).await.is_err() {
                    return Err(unpacker_gone());
                }
            }
        }
        file.flush().await.map_err(ctx.io(partial))?;
        drop(file);
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != layer.digest {
            drop(tokio::fs::remove_file(partial).await);
            return Err(PullError::DigestMismatch {
                image: ctx.image.to_string(),
                registry: ctx.reference.registry.clone(),
                what: "layer",
                expected: layer.digest.clone(),
                actual,
            });
        }
        Ok(fetched)
    }
}

/// Removes a layer staging directory unless it was renamed into the store.
struct StagingGuard(PathBuf);

impl Drop for StagingGuard {
    fn drop(&mut self) {
        if self.0.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.0) {
                tracing::warn!(dir = %self.0.display(), error = %e, "could not remove layer staging dir");
            }
        }
    }
}

/// A blocking `Read` over chunks sent from the async download task.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        ChannelReader { rx, current: Bytes::new() }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        for (ms, want) in [
            (0, "0s"),
            (7, "7ms"),
            (512, "512ms"),
            (1000, "1s"),
            (4361, "4.361s"),
            (4300, "4.3s"),
            (64_500, "1m4.5s"),
            (120_000, "2m0s"),
            (3_601_000, "1h0m1s"),
        ] {
            assert_eq!(go_duration_ms(Duration::from_millis(ms)), want, "{ms} ms");
        }
        // truncated, not rounded, to the millisecond
        assert_eq!(go_duration_ms(Duration::from_micros(4_361_999)), "4.361s");
    }

    #[test]
    fn pulled_event_is_upstreams_word_for_word() {
        let image = ImageRecord {
            id: "sha256:c".into(),
            manifest_digest: "sha256:m".into(),
            repo_tags: vec![],
            repo_digests: vec![],
            layers: vec![],
            size: 2_150_000,
            created: 0,
            last_used: 0,
        };
        let o = PullOutcome { image, duration: Duration::from_millis(1234), downloaded_bytes: 0 };
        assert_eq!(
            o.event_message("busybox:1.36"),
            "Successfully pulled image \"busybox:1.36\" in 1.234s (1.234s including waiting). Image size: 2150000 bytes."
        );
    }
}
