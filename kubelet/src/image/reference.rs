//! Image references as Kubernetes and docker read them: `busybox` is `docker.io/library/busybox:latest`,
//! `127.0.0.1:5000/busybox:1.36` names a local registry, `name@sha256:<hex>` pins a digest.
//!
//! This module only parses and prints names; it never talks to a registry.

use std::fmt;
use std::str::FromStr;

/// The registry an unqualified name (`busybox`, `library/busybox`) is pulled from.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// `image` does not parse; `reason` says which part is wrong.
    #[error("invalid image reference {image:?}: {reason}")]
    Invalid {
        /// The string as given.
        image: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/busybox`.
    pub repository: String,
    /// Tag, if the reference named one (the default `latest` is filled in when there is no digest either).
    pub tag: Option<String>,
    /// `sha256:<hex>` if the reference pins a digest.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `image` the way docker and the kubelet do (see the module docs).
    pub fn parse(image: &str) -> Result<Reference, ReferenceError> {
        let invalid = |reason| ReferenceError::Invalid { image: image.to_string(), reason };
        if image.is_empty() {
            return Err(invalid("empty"));
        }
        if image.chars().any(|c| c.is_whitespace()) {
            return Err(invalid("contains whitespace"));
        }
        let (name_tag, digest) = match image.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (image, None),
        };
        if let Some(d) = digest {
            let hex = d.strip_prefix("sha256:").ok_or_else(|| invalid("only sha256 digests are supported"))?;
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
                return Err(invalid("digest must be sha256: followed by 64 lowercase hex characters"));
            }
        }
        // A tag is after the last ':' that follows the last '/' (a ':' before it is a registry port).
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (&name_tag[..last_slash + i], Some(&name_tag[last_slash + i + 1..])),
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(invalid("tag must be 1-128 characters of [A-Za-z0-9_.-] not starting with . or -"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" { DEFAULT_REGISTRY.to_string() } else { registry };
        let repository =
            if registry == DEFAULT_REGISTRY && !repository.contains('/') { format!("library/{repository}") } else { repository };
        if repository.is_empty()
            || repository.split('/').any(|c| c.is_empty())
            || !repository.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c))
        {
            return Err(invalid("repository must be lowercase [a-z0-9._-] path components"));
        }
        let tag = match (tag, digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference { registry, repository, tag, digest: digest.map(str::to_string) })
    }

    /// `registry/repository`, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What the registry's manifest endpoint is asked for: the digest if pinned, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or(DEFAULT_TAG)
    }

    /// `name:tag` if there is a tag (the key the store indexes tags by).
    pub fn tagged_name(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// The host the registry API is served from: Docker Hub's API lives on `registry-1.docker.io`.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).expect(s)
    }

    #[test]
    fn normalizes_like_docker() {
        let cases = [
            ("busybox", "docker.io", "library/busybox", Some("latest"), None),
            ("busybox:1.36", "docker.io", "library/busybox", Some("1.36"), None),
            ("library/busybox", "docker.io", "library/busybox", Some("latest"), None),
            ("bitnami/redis:7", "docker.io", "bitnami/redis", Some("7"), None),
            ("docker.io/busybox", "docker.io", "library/busybox", Some("latest"), None),
            ("index.docker.io/library/busybox", "docker.io", "library/busybox", Some("latest"), None),
            ("127.0.0.1:5000/busybox:1.36", "127.0.0.1:5000", "busybox", Some("1.36"), None),
            ("localhost/busybox", "localhost", "busybox", Some("latest"), None),
            ("localhost:5000/a/b/c:v1", "localhost:5000", "a/b/c", Some("v1"), None),
            ("quay.io/coreos/etcd:v3.5", "quay.io", "coreos/etcd", Some("v3.5"), None),
        ];
        for (input, reg, repo, tag, digest) in cases {
            let r = p(input);
            assert_eq!(r.registry, reg, "{input}");
            assert_eq!(r.repository, repo, "{input}");
            assert_eq!(r.tag.as_deref(), tag, "{input}");
            assert_eq!(r.digest.as_deref(), digest, "{input}");
        }
    }

    #[test]
    fn digests() {
        let hex = "a".repeat(64);
        let r = p(&format!("127.0.0.1:5000/busybox@sha256:{hex}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(format!("sha256:{hex}").as_str()));
        assert_eq!(r.manifest_reference(), format!("sha256:{hex}"));
        let r = p(&format!("busybox:1.36@sha256:{hex}"));
        assert_eq!(r.tag.as_deref(), Some("1.36"));
        assert_eq!(r.manifest_reference(), format!("sha256:{hex}"));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1.36@sha256:{hex}"));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in ["", "Busybox", "busybox:", "busybox@sha256:abc", "busybox@md5:abc", "a//b", "busy box", "x:-tag"] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn docker_hub_api_host() {
        assert_eq!(p("busybox").api_host(), "registry-1.docker.io");
        assert_eq!(p("127.0.0.1:5000/x").api_host(), "127.0.0.1:5000");
    }
}
