//! Registry credentials: the username/password a pull presents, read from an `imagePullSecrets` secret of type
//! `kubernetes.io/dockerconfigjson`, and the `WWW-Authenticate` challenge a registry answers 401 with.
//!
//! The token exchange itself (Bearer realm/service/scope) is done by the client; this module only parses.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

/// A username and password (or identity token as password) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The registry account name.
    pub username: String,
    /// The password or identity token; `Debug` never prints it.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// Why a dockerconfigjson secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DockerConfigError {
    /// The value is not the JSON of a docker config (`{"auths": {...}}`).
    #[error("invalid .dockerconfigjson: {0}")]
    Json(#[source] serde_json::Error),
    /// An `auth` entry does not decode to `user:password`.
    #[error("invalid .dockerconfigjson: auth for registry {registry:?} is not base64 of user:password")]
    BadAuth {
        /// The registry key of the bad entry, as written.
        registry: String,
    },
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Credentials per registry host from one `kubernetes.io/dockerconfigjson` secret.
#[derive(Debug, Clone, Default)]
pub struct DockerConfigJson {
    /// Normalized registry host (`docker.io`, `127.0.0.1:5000`) -> credentials.
    by_host: BTreeMap<String, Credentials>,
}

/// `https://index.docker.io/v1/` -> `docker.io`; `127.0.0.1:5000` -> itself.
pub fn normalize_registry_host(key: &str) -> String {
    let k = key.trim();
    let k = k.strip_prefix("https://").or_else(|| k.strip_prefix("http://")).unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".to_string(),
        _ => host,
    }
}

impl DockerConfigJson {
    /// Parses the secret's `.dockerconfigjson` value (already base64-decoded from the secret's data).
    pub fn parse(json: &[u8]) -> Result<DockerConfigJson, DockerConfigError> {
        let cfg: DockerConfig = serde_json::from_slice(json).map_err(DockerConfigError::Json)?;
        let mut by_host = BTreeMap::new();
        for (key, a) in cfg.auths {
            let creds = match (&a.auth, a.username, a.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let bad = || DockerConfigError::BadAuth { registry: key.clone() };
                    let raw = base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|_| bad())?;
                    let text = String::from_utf8(raw).map_err(|_| bad())?;
                    let (u, p) = text.split_once(':').ok_or_else(bad)?;
                    Credentials { username: u.to_string(), password: p.to_string() }
                }
                (_, Some(username), Some(password)) => Credentials { username, password },
                _ => continue,
            };
            by_host.insert(normalize_registry_host(&key), creds);
        }
        Ok(DockerConfigJson { by_host })
    }

    /// Credentials for `registry` (as in [`super::super::reference::Reference::registry`]), if the secret has them.
    pub fn credentials_for(&self, registry: &str) -> Option<&Credentials> {
        self.by_host.get(&normalize_registry_host(registry))
    }

    /// Merges several secrets; the first secret that names a registry wins, as in the kubelet.
    pub fn merge(secrets: impl IntoIterator<Item = DockerConfigJson>) -> DockerConfigJson {
        let mut by_host = BTreeMap::new();
        for s in secrets {
            for (k, v) in s.by_host {
                by_host.entry(k).or_insert(v);
            }
        }
        DockerConfigJson { by_host }
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Send the credentials themselves on every request (`Authorization: Basic`).
    Basic {
        /// The protection space's name, informational only.
        realm: Option<String>,
    },
    /// Fetch a token from a token server first (Docker's token auth), then send it as `Authorization: Bearer`.
    Bearer {
        /// The token server's URL.
        realm: String,
        /// The `service` query parameter the token server expects (the registry's name).
        service: Option<String>,
        /// The access asked for (`repository:<name>:pull`), if the registry said which.
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="https://auth/token",service="registry",scope="repository:x:pull"` or `Basic realm="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic { realm: params.get("realm").cloned() }),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            // Quoted value: runs to the next unescaped quote (scope values contain commas).
            let mut end = None;
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end.unwrap_or(quoted.len());
            (quoted[..end].replace("\\\"", "\""), quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic { realm: Some("Registry Realm".into()) }));
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn host_normalization() {
        assert_eq!(normalize_registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(normalize_registry_host("http://Quay.io"), "quay.io");
    }
}
