//! Container images on the node: pulling from OCI/Docker registries, the content-addressed store, layer
//! unpacking, per-container overlayfs root filesystems, pull policy and garbage collection.
//!
//! The pod code uses [`ImageService`]: [`ImageService::ensure_image`] applies `imagePullPolicy` and pulls with
//! progress, [`overlay::mount_rootfs`] / [`overlay::unmount_rootfs`] give a container its rootfs, and
//! [`gc::collect_garbage`] frees disk. This module never starts containers; the runtime does.

pub mod gc;
pub mod import;
pub mod limits;
pub mod listing;
pub mod manifest;
pub mod overlay;
pub mod pull;
pub mod pull_policy;
pub mod reference;
pub mod registry;
pub mod secure_fs;
pub mod store;
pub mod unpack;

use std::sync::Arc;

pub use limits::Limits;
pub use pull::{no_progress, ProgressFn, PullError, PullOutcome, PullProgress, Puller};
pub use pull_policy::{PullDecision, PullPolicy};
pub use reference::Reference;
pub use registry::auth::{Credentials, DockerConfigJson};
pub use registry::client::{RegistryClient, RegistryConfig};
pub use store::{ImageRecord, Store, StoreError};

/// Why a container's image is not available; [`EnsureError::reason`] is the container's waiting reason.
#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    /// The image is not in the store and its pull policy is `Never`.
    #[error("container image {image:?} is not present with pull policy of Never")]
    NeverPull {
        /// The container's `image`, as written.
        image: String,
    },
    /// The container's `image` is not a valid reference.
    #[error("invalid image name {image:?}: {source}")]
    InvalidName {
        /// The container's `image`, as written.
        image: String,
        /// The cause.
        #[source]
        source: reference::ReferenceError,
    },
    /// The pull failed; its [`PullError::reason`] (`ErrImagePull`, `InvalidImageName`) is the container's.
    #[error(transparent)]
    Pull(#[from] PullError),
    /// The local store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EnsureError {
    /// `ErrImageNeverPull`, `InvalidImageName` or `ErrImagePull`, as the kubelet reports them.
    pub fn reason(&self) -> &'static str {
        match self {
            EnsureError::NeverPull { .. } => "ErrImageNeverPull",
            EnsureError::InvalidName { .. } => "InvalidImageName",
            EnsureError::Pull(e) => e.reason(),
            EnsureError::Store(_) => "ErrImagePull",
        }
    }
}

/// What [`ImageService::ensure_image`] did.
#[derive(Debug, Clone)]
pub enum Ensured {
    /// The store had the image and the policy let us use it (event: "already present on machine").
    Present(ImageRecord),
    /// The image was pulled (events: Pulling, then Pulled with [`PullOutcome::event_message`]).
    Pulled(PullOutcome),
}

impl Ensured {
    /// The image record the container runs from, either way.
    pub fn image(&self) -> &ImageRecord {
        match self {
            Ensured::Present(r) => r,
            Ensured::Pulled(o) => &o.image,
        }
    }
}

/// The kubelet's handle on images: one store, one registry client shared by concurrent pulls.
pub struct ImageService {
    puller: Puller,
}

impl ImageService {
    /// Opens the store at `root` (default [`store::DEFAULT_ROOT`]).
    pub fn new(root: impl Into<std::path::PathBuf>, config: RegistryConfig) -> Result<ImageService, EnsureError> {
        let store = Store::open(root)?;
        let client = RegistryClient::new(config).map_err(|source| {
            EnsureError::Pull(PullError::Registry { image: String::new(), source })
        })?;
        Ok(ImageService { puller: Puller::new(store, Arc::new(client)) })
    }

    /// The same service, unpacking pulls within `limits` (kubelet flags `--image-max-layer-size`,
    /// `--image-max-size`, `--image-max-layer-entries`).
    pub fn with_limits(self, limits: Limits) -> ImageService {
        let store = self.puller.store().clone().with_limits(limits);
        ImageService { puller: self.puller.with_store(store) }
    }

    /// The content store: resolving references, reading image configs, mounting rootfs overlays, GC.
    pub fn store(&self) -> &Store {
        self.puller.store()
    }

    /// The puller underneath, to pull without applying a pull policy.
    pub fn puller(&self) -> &Puller {
        &self.puller
    }

    /// Makes `image` available per `policy` (`None`: the API default for the reference), pulling with
    /// credentials from `secrets` for its registry when needed. `progress` sees the pull's progress.
    #[tracing::instrument(skip_all, fields(image = %image))]
    pub async fn ensure_image(
        &self,
        image: &str,
        policy: Option<PullPolicy>,
        secrets: &DockerConfigJson,
        progress: ProgressFn,
    ) -> Result<Ensured, EnsureError> {
        let reference = Reference::parse(image)
            .map_err(|source| EnsureError::InvalidName { image: image.to_string(), source })?;
        let policy = PullPolicy::effective(policy, &reference);
        let present = self.store().resolve(image)?;
        match pull_policy::decide(policy, present.is_some()) {
            PullDecision::UseLocal => match present {
                Some(r) => Ok(Ensured::Present(r)),
                None => Err(EnsureError::NeverPull { image: image.to_string() }),
            },
            PullDecision::NeverPullMissing => Err(EnsureError::NeverPull { image: image.to_string() }),
            PullDecision::Pull => {
                let creds = secrets.credentials_for(&reference.registry);
                Ok(Ensured::Pulled(self.puller.pull(image, creds, progress).await?))
            }
        }
    }
}
