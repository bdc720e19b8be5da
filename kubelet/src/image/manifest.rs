//! Manifests, indexes and configs (OCI image-spec and Docker v2 schema 2): parsing, platform selection and the
//! facts a pull needs from them (layer descriptors, diff_ids).
//!
//! Pure functions over bytes; nothing here does I/O.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};

/// An OCI image manifest: one platform's config and layers.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index: one manifest per platform.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's v2 schema 2 manifest, read like an OCI manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list, read like an OCI index.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image config type, given to the manifest an import writes for a `docker save` archive.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// An uncompressed Docker layer, as an import of a `docker save` archive records it.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// A gzip'd Docker layer, as an import of a `docker save` archive records it.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The Accept header a manifest request sends: every manifest and index type we can read. Registries answer
/// 404 for a manifest whose type is not accepted (distribution 2.8 does for OCI manifests).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// Why a manifest, index or config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Neither a manifest nor an index we read: schema 1, an artifact, or another type.
    #[error("unsupported manifest media type {media_type:?} (schema 1 and artifacts cannot be pulled)")]
    UnsupportedMediaType {
        /// The media type, as given.
        media_type: String,
    },
    /// The JSON does not parse as the type it claims (`what`: manifest, index, config).
    #[error("invalid {what}: {source}")]
    Invalid {
        /// `image manifest`, `image index`, `image config` or `manifest json`.
        what: &'static str,
        /// The cause.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// The index has no manifest for this node's os and architecture.
    #[error("no manifest for platform {platform} in the image index (has: {available})")]
    NoMatchingPlatform {
        /// This node's platform (`linux/amd64`).
        platform: String,
        /// The platforms the index has, comma-separated.
        available: String,
    },
    /// The config's `rootfs.diff_ids` and the manifest's layers differ in number, so layers cannot be paired.
    #[error("config lists {diff_ids} diff_ids but the manifest has {layers} layers")]
    LayerCountMismatch {
        /// Entries of the config's `rootfs.diff_ids`.
        diff_ids: usize,
        /// Layers of the manifest.
        layers: usize,
    },
    /// A layer that is not a plain or gzip'd tar (zstd, encrypted, or an artifact's blob).
    #[error("unsupported layer media type {media_type:?}")]
    UnsupportedLayer {
        /// The media type, as given.
        media_type: String,
    },
}

/// A manifest or an index, as parsed from a registry answer or a layout blob.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// One platform's manifest (OCI or Docker schema 2).
    Manifest(Box<ImageManifest>),
    /// An index or manifest list, from which [`select_platform`] picks.
    Index(Box<ImageIndex>),
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Parses a manifest or index; the kind comes from the Content-Type if given, else the body's `mediaType`,
/// else its shape (`manifests` vs `layers`).
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed, ManifestError> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid {
        what: "manifest json",
        source: oci_spec::OciSpecError::SerDe(e),
    })?;
    let media_type = content_type
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "application/octet-stream")
        .map(str::to_string)
        .or(probe.media_type);
    let is_index = match media_type.as_deref() {
        Some(OCI_INDEX) | Some(DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST) | Some(DOCKER_MANIFEST) => false,
        Some(other) => return Err(ManifestError::UnsupportedMediaType { media_type: other.to_string() }),
        None => {
            if probe.schema_version == Some(1) {
                return Err(ManifestError::UnsupportedMediaType { media_type: "schema 1".into() });
            }
            probe.manifests.is_some()
        }
    };
    if is_index {
        ImageIndex::from_reader(bytes).map(|i| Parsed::Index(Box::new(i))).map_err(|source| ManifestError::Invalid { what: "image index", source })
    } else {
        ImageManifest::from_reader(bytes)
            .map(|m| Parsed::Manifest(Box::new(m)))
            .map_err(|source| ManifestError::Invalid { what: "image manifest", source })
    }
}

/// The platform images are selected for: this node's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// GOARCH naming: `amd64`, `arm64`...
    pub architecture: String,
    /// The CPU variant (`v8` for arm64), if any.
    pub variant: Option<String>,
}

impl Platform {
    /// linux plus the GOARCH name of the machine rkube was built for.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "arm" => "arm",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            other => other,
        };
        let variant = (architecture == "arm64").then(|| "v8".to_string());
        Platform { os: "linux".into(), architecture: architecture.into(), variant }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the manifest for `platform` from an index: os and architecture must match; a matching variant wins
/// over a missing one (arm64 images often omit `v8`).
pub fn select_platform<'a>(index: &'a ImageIndex, platform: &Platform) -> Result<&'a Descriptor, ManifestError> {
    let mut best: Option<(&Descriptor, u8)> = None;
    for d in index.manifests() {
        let Some(p) = d.platform() else { continue };
        if p.os().to_string() != platform.os || p.architecture().to_string() != platform.architecture {
            continue;
        }
        let score = match (p.variant().as_deref(), platform.variant.as_deref()) {
            (Some(a), Some(b)) if a == b => 2,
            (None, _) => 1,
            (Some(_), None) => 1,
            _ => 0,
        };
        if score > 0 && best.is_none_or(|(_, s)| score > s) {
            best = Some((d, score));
        }
    }
    best.map(|(d, _)| d).ok_or_else(|| ManifestError::NoMatchingPlatform {
        platform: platform.to_string(),
        available: index
            .manifests()
            .iter()
            .filter_map(|d| d.platform().as_ref().map(|p| format!("{}/{}", p.os(), p.architecture())))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Parses an image config and returns it with its diff_ids, checked against the manifest's layer count.
pub fn parse_config(bytes: &[u8], layers: usize) -> Result<(ImageConfiguration, Vec<String>), ManifestError> {
    let config = ImageConfiguration::from_reader(bytes)
        .map_err(|source| ManifestError::Invalid { what: "image config", source })?;
    let diff_ids: Vec<String> = config.rootfs().diff_ids().to_vec();
    if diff_ids.len() != layers {
        return Err(ManifestError::LayerCountMismatch { diff_ids: diff_ids.len(), layers });
    }
    Ok((config, diff_ids))
}

/// Rejects media types that are not image layers (artifacts, foreign encodings we cannot read).
pub fn check_layer_media_type(media_type: &str) -> Result<(), ManifestError> {
    let ok = media_type.ends_with(".tar")
        || media_type.ends_with("+gzip")
        || media_type.ends_with(".tar.gzip")
        || media_type.ends_with("tar.gz");
    if ok {
        Ok(())
    } else {
        Err(ManifestError::UnsupportedLayer { media_type: media_type.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_schema2_and_index() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
          "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
          "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":5,"digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}]}"#;
        let Parsed::Manifest(m) = parse(m, None).expect("schema2") else { panic!("not a manifest") };
        assert_eq!(m.layers().len(), 1);
        check_layer_media_type(m.layers()[0].media_type().as_ref()).expect("gzip layer");

        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[
          {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":1,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
          {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":1,"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","platform":{"architecture":"amd64","os":"linux"}}]}"#;
        let Parsed::Index(i) = parse(idx, Some(DOCKER_MANIFEST_LIST)).expect("list") else { panic!("not an index") };
        let amd = Platform { os: "linux".into(), architecture: "amd64".into(), variant: None };
        assert!(select_platform(&i, &amd).expect("amd64").digest().to_string().starts_with("sha256:2222"));
        let arm = Platform { os: "linux".into(), architecture: "arm64".into(), variant: Some("v8".into()) };
        assert!(select_platform(&i, &arm).expect("arm64").digest().to_string().starts_with("sha256:1111"));
        let s390 = Platform { os: "linux".into(), architecture: "s390x".into(), variant: None };
        let err = select_platform(&i, &s390).expect_err("no s390x").to_string();
        assert!(err.contains("linux/s390x") && err.contains("linux/amd64"), "{err}");
    }

    #[test]
    fn rejects_schema1_and_artifacts() {
        assert!(parse(br#"{"schemaVersion":1,"name":"x"}"#, None).is_err());
        assert!(check_layer_media_type("application/vnd.cncf.helm.chart.content.v1.tar+zstd").is_err());
    }
}
