//! An HTTP client for the OCI distribution API (`/v2/<name>/manifests/<ref>`, `/v2/<name>/blobs/<digest>`):
//! anonymous, basic and bearer-token auth, plain HTTP for loopback and configured insecure registries.
//!
//! It fetches bytes and responses; verifying digests and storing content is the puller's job.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, RANGE, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};

use super::auth::{parse_challenge, Challenge, Credentials};
use crate::image::manifest::MANIFEST_ACCEPT;
use crate::image::reference::Reference;

/// Largest manifest or index the client reads into memory.
const MAX_MANIFEST_BYTES: usize = 8 << 20;

/// What went wrong talking to a registry; every variant names the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry has no manifest by that tag or digest (HTTP 404).
    #[error("manifest unknown (HTTP {status}) from registry {registry}")]
    ManifestUnknown {
        /// The registry host (`docker.io`, `127.0.0.1:5000`).
        registry: String,
        /// The HTTP status.
        status: u16,
    },
    /// The registry has no blob by that digest (HTTP 404), though a manifest named it.
    #[error("blob {digest} unknown (HTTP {status}) from registry {registry}")]
    BlobUnknown {
        /// The registry host (`docker.io`, `127.0.0.1:5000`).
        registry: String,
        /// The blob's digest.
        digest: String,
        /// The HTTP status.
        status: u16,
    },
    /// Access was refused (401/403), credentials are missing for a Basic challenge, or the challenge is unusable.
    #[error("unauthorized (HTTP {status}) from registry {registry}: {detail}")]
    Unauthorized {
        /// The registry host (`docker.io`, `127.0.0.1:5000`).
        registry: String,
        /// The HTTP status.
        status: u16,
        /// The registry's explanation (the body's start) or ours.
        detail: String,
    },
    /// Any other unsuccessful status; `body` is the start of the answer's body.
    #[error("unexpected HTTP {status} from registry {registry} for {url}: {body}")]
    Status {
        /// The registry host (`docker.io`, `127.0.0.1:5000`).
        registry: String,
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body (300 characters at most).
        body: String,
    },
    /// The request did not complete (DNS, connection, TLS), or a manifest's body could not be read.
    #[error("cannot reach registry {registry} at {url}: {source}")]
    Transport {
        /// The registry host (`docker.io`, `127.0.0.1:5000`).
        registry: String,
        /// The URL requested.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The token server (a Bearer challenge's realm) could not be reached, refused, or gave no usable token.
    #[error("token server {realm} for registry {registry}: {detail}")]
    Token {
        /// The registry host (`docker.io`, `127.0.0.1:5000`).
        registry: String,
        /// The token server's URL.
        realm: String,
        /// The registry's explanation (the body's start) or ours.
        detail: String,
    },
    /// A manifest body over the limit of what is read into memory.
    #[error("manifest from registry {registry} is larger than {MAX_MANIFEST_BYTES} bytes")]
    ManifestTooLarge {
        /// The registry host (`docker.io`, `127.0.0.1:5000`).
        registry: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("building the http client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Client settings.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Registry hosts (`host:port`) spoken to over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
}

/// A manifest as the registry returned it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The body, exactly as served: its sha256 is the manifest's digest.
    pub bytes: Vec<u8>,
    /// The `Content-Type` header, which [`crate::image::manifest::parse`] prefers to the body's `mediaType`.
    pub content_type: Option<String>,
}

/// A registry client, shareable between concurrent pulls; caches auth headers per registry, repository and
/// credentials.
pub struct RegistryClient {
    http: reqwest::Client,
    config: RegistryConfig,
    /// (api host, repository) -> Authorization header that worked last.
    /// Keyed by registry, repository and the credentials that earned the header: a header one pod's pull
    /// secret obtained is never sent for a pull with other (or no) credentials.
    auth_cache: Mutex<HashMap<(String, String, u64), HeaderValue>>,
}

impl RegistryClient {
    /// A client with its own connection pool and an empty auth cache.
    pub fn new(config: RegistryConfig) -> Result<RegistryClient, RegistryError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("rkube-kubelet/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(RegistryError::Client)?;
        Ok(RegistryClient { http, config, auth_cache: Mutex::new(HashMap::new()) })
    }

    /// True for loopback registries and those listed as insecure: they are spoken to over plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        let bare = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
        matches!(bare, "127.0.0.1" | "localhost" | "[::1]")
            || bare.starts_with("127.")
            || self.config.insecure_registries.iter().any(|h| h == host || h == bare)
    }

    fn url(&self, r: &Reference, path: &str) -> String {
        let host = r.api_host();
        let scheme = if self.is_insecure(host) { "http" } else { "https" };
        format!("{scheme}://{host}/v2/{}/{path}", r.repository)
    }

    /// Fetches the manifest or index `reference` (a tag or digest) of `r`'s repository.
    pub async fn fetch_manifest(
        &self,
        r: &Reference,
        reference: &str,
        creds: Option<&Credentials>,
    ) -> Result<FetchedManifest, RegistryError> {
        let url = self.url(r, &format!("manifests/{reference}"));
        let resp = self.get(r, &url, Some(MANIFEST_ACCEPT), None, creds).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::ManifestUnknown { registry: r.registry.clone(), status: status.as_u16() });
        }
        if !status.is_success() {
            return Err(status_error(r, &url, resp).await);
        }
        if resp.content_length().is_some_and(|n| n as usize > MAX_MANIFEST_BYTES) {
            return Err(RegistryError::ManifestTooLarge { registry: r.registry.clone() });
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let bytes = resp.bytes().await.map_err(|e| transport(r, &url, e))?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(RegistryError::ManifestTooLarge { registry: r.registry.clone() });
        }
        Ok(FetchedManifest { bytes: bytes.to_vec(), content_type })
    }

    /// Starts a blob download, from byte `offset` on if it is non-zero (HTTP Range). The caller checks for
    /// `206 Partial Content` versus `200 OK` (a registry may ignore the range) and streams the body.
    pub async fn fetch_blob(
        &self,
        r: &Reference,
        digest: &str,
        offset: u64,
        creds: Option<&Credentials>,
    ) -> Result<Response, RegistryError> {
        let url = self.url(r, &format!("blobs/{digest}"));
        let range = (offset > 0).then(|| format!("bytes={offset}-"));
        let resp = self.get(r, &url, None, range.as_deref(), creds).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::BlobUnknown {
                registry: r.registry.clone(),
                digest: digest.to_string(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(status_error(r, &url, resp).await);
        }
        Ok(resp)
    }

    /// GET with the auth header cached for these credentials; on 401 answers the challenge once and retries.
    async fn get(
        &self,
        r: &Reference,
        url: &str,
        accept: Option<&str>,
        range: Option<&str>,
        creds: Option<&Credentials>,
    ) -> Result<Response, RegistryError> {
        let key = (r.api_host().to_string(), r.repository.clone(), creds_id(creds));
        let cached = self.auth_cache.lock().ok().and_then(|c| c.get(&key).cloned());
        let resp = self.send(r, url, accept, range, cached.as_ref()).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let header = match challenge {
            Some(Challenge::Basic { .. }) => match creds {
                Some(c) => basic_header(c),
                None => {
                    return Err(RegistryError::Unauthorized {
                        registry: r.registry.clone(),
                        status: 401,
                        detail: "registry requires a username and password (imagePullSecrets)".into(),
                    })
                }
            },
            Some(Challenge::Bearer { realm, service, scope }) => {
                let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", r.repository));
                self.fetch_token(r, &realm, service.as_deref(), &scope, creds).await?
            }
            None => {
                return Err(RegistryError::Unauthorized {
                    registry: r.registry.clone(),
                    status: 401,
                    detail: "no usable WWW-Authenticate challenge".into(),
                })
            }
        };
        let resp = self.send(r, url, accept, range, Some(&header)).await?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: r.registry.clone(),
                status: resp.status().as_u16(),
                detail: if creds.is_some() { "credentials rejected".into() } else { "anonymous access denied".into() },
            });
        }
        if let Ok(mut c) = self.auth_cache.lock() {
            c.insert(key, header);
        }
        Ok(resp)
    }

    async fn send(
        &self,
        r: &Reference,
        url: &str,
        accept: Option<&str>,
        range: Option<&str>,
        auth: Option<&HeaderValue>,
    ) -> Result<Response, RegistryError> {
        let mut req = self.http.get(url);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        if let Some(rg) = range {
            req = req.header(RANGE, rg);
        }
        if let Some(h) = auth {
            req = req.header(AUTHORIZATION, h.clone());
        }
        req.send().await.map_err(|e| transport(r, url, e))
    }

    /// The token step of the Bearer flow: GET realm?service=..&scope=.. (with basic auth when credentials are
    /// given), answer `{"token": ...}` or `{"access_token": ...}`.
    async fn fetch_token(
        &self,
        r: &Reference,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        creds: Option<&Credentials>,
    ) -> Result<HeaderValue, RegistryError> {
        let token_err = |detail: String| RegistryError::Token {
            registry: r.registry.clone(),
            realm: realm.to_string(),
            detail,
        };
        let mut query: Vec<(&str, &str)> = vec![("scope", scope)];
        if let Some(s) = service {
            query.push(("service", s));
        }
        let mut req = self.http.get(realm).query(&query);
        if let Some(c) = creds {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let resp = req.send().await.map_err(|e| token_err(e.to_string()))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: r.registry.clone(),
                status: status.as_u16(),
                detail: format!("token server {realm} refused the {}", if creds.is_some() { "credentials" } else { "anonymous request" }),
            });
        }
        if !status.is_success() {
            return Err(token_err(format!("HTTP {status}")));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body: TokenResponse = resp.json().await.map_err(|e| token_err(format!("bad token response: {e}")))?;
        let token = body
            .token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_err("token response has no token".into()))?;
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| token_err("token is not a valid header value".into()))
    }
}

fn basic_header(c: &Credentials) -> HeaderValue {
    let raw = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password));
    HeaderValue::from_str(&format!("Basic {raw}")).unwrap_or_else(|_| HeaderValue::from_static("Basic"))
}

fn transport(r: &Reference, url: &str, source: reqwest::Error) -> RegistryError {
    RegistryError::Transport { registry: r.registry.clone(), url: url.to_string(), source }
}

async fn status_error(r: &Reference, url: &str, resp: Response) -> RegistryError {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    if status == 401 || status == 403 {
        return RegistryError::Unauthorized { registry: r.registry.clone(), status, detail: body.trim().to_string() };
    }
    RegistryError::Status { registry: r.registry.clone(), url: url.to_string(), status, body: body.trim().to_string() }
}

/// Which credentials an auth header was earned with (0: anonymous), for the cache key; a hash, so the cache
/// holds no second copy of the password.
fn creds_id(creds: Option<&Credentials>) -> u64 {
    use std::hash::{Hash, Hasher};
    let Some(c) = creds else { return 0 };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&c.username, &c.password).hash(&mut h);
    h.finish() | 1
}
