//! Who may use the kubelet API, and for what: upstream's kubelet with `--anonymous-auth=false`,
//! `--client-ca-file`, `--authentication-token-webhook` and `--authorization-mode=Webhook`.
//!
//! 1. Authentication: a client certificate of the cluster CA (the TLS layer verified it) names the user (CN)
//!    and groups (O), as upstream's x509 authenticator; without one, an `Authorization: Bearer` token is asked
//!    about with a TokenReview (answers cached [`TOKEN_TTL`], upstream's `--authentication-token-webhook-cache-ttl`
//!    default). Neither: 401 `Unauthorized`, upstream's text. Every user gets `system:authenticated`.
//! 2. Authorization: every request becomes upstream's `GetRequestAttributes` (kubelet `server/auth.go`): the
//!    verb from the HTTP method, resource `nodes`, name the node, subresource `stats`/`metrics`/`log`/`spec` by
//!    path prefix and `proxy` for everything else (exec, attach, portForward, run, containerLogs, healthz...),
//!    and a SubjectAccessReview to the apiserver decides. Decisions are cached as upstream's
//!    `--authorization-webhook-cache-authorized-ttl` (5 min) and `-unauthorized-ttl` (30 s) defaults.
//!    Denied: 403 `Forbidden (user=.., verb=.., resource=.., subresource=..)`; the review failed: 500
//!    `Authorization error (...)`, both as upstream's `InstallAuthFilter`.
//!
//! Must not: let a request reach a handler before a SubjectAccessReview (or a cached one) allowed its user;
//! answer any request from the connection alone (a certificate only says who, never what).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};

/// How long an allowed decision is reused (upstream's `--authorization-webhook-cache-authorized-ttl` default).
pub const ALLOWED_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a denied decision is reused (upstream's `--authorization-webhook-cache-unauthorized-ttl` default).
pub const DENIED_TTL: Duration = Duration::from_secs(30);
/// How long a TokenReview's answer, good or bad, is reused (upstream's `--authentication-token-webhook-cache-ttl`
/// default, for both).
pub const TOKEN_TTL: Duration = Duration::from_secs(2 * 60);
/// A review the apiserver does not answer in this time fails the request (500 for authorization, 401 for a
/// token) rather than holding it.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);
/// Entries per cache: enough for every user and verb of a cluster, a bound against a client minting tokens.
const CACHE_ENTRIES: usize = 8192;

/// The group every authenticated user is in (upstream's AuthenticatedGroupAdder).
pub const AUTHENTICATED: &str = "system:authenticated";

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct User {
    /// The user name: a certificate's CN, or what the TokenReview says.
    pub name: String,
    /// The user's UID, from a TokenReview (empty for a certificate).
    pub uid: String,
    /// Its groups, [`AUTHENTICATED`] among them.
    pub groups: Vec<String>,
    /// Extra attributes a TokenReview returned (a service account's pod name and uid...), passed on in the
    /// SubjectAccessReview.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// The user a client certificate names: CN is the user, each O a group (upstream's
    /// `CommonNameUserConversion`). None without a CN.
    pub fn from_certificate(der: &[u8]) -> Option<User> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        if name.is_empty() {
            return None;
        }
        let groups = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
        Some(User { name, groups, ..Default::default() }.authenticated())
    }

    /// With `system:authenticated` among its groups.
    fn authenticated(mut self) -> User {
        if !self.groups.iter().any(|g| g == AUTHENTICATED) {
            self.groups.push(AUTHENTICATED.to_string());
        }
        self
    }
}

/// What the TLS layer learnt of a connection: the user its client certificate names, if it presented one
/// (the handshake already refused certificates the cluster CA did not sign).
#[derive(Debug, Clone, Default)]
pub struct PeerUser(pub Option<Arc<User>>);

/// Upstream's authorization attributes of a kubelet API request; the resource is always `nodes`, the API
/// group the core one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// The verb from the HTTP method (`get`, `create`...); empty for another method.
    pub verb: &'static str,
    /// `stats`, `metrics`, `log`, `spec` or `proxy`.
    pub subresource: &'static str,
    /// The node's name.
    pub name: String,
}

/// The resource every kubelet API request is authorized as.
pub const RESOURCE: &str = "nodes";

impl Attributes {
    /// As upstream's `GetRequestAttributes`: GET get, POST create, PUT update, PATCH patch, DELETE delete (any
    /// other method no verb, which only a `*` rule matches); `/stats`, `/metrics`, `/logs`, `/spec` and their
    /// subpaths the `stats`, `metrics`, `log`, `spec` subresources, every other path `proxy`. A path with `.`
    /// or `..` segments is `proxy` too: only the widest grant may send what a router might resolve elsewhere.
    pub fn of(method: &Method, path: &str, node: &str) -> Attributes {
        let verb = match *method {
            Method::GET => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        };
        let dotted = path.split('/').any(|s| s == "." || s == "..");
        let subresource = match () {
            _ if dotted => "proxy",
            _ if is_subpath(path, "/stats/") => "stats",
            _ if is_subpath(path, "/metrics") => "metrics",
            _ if is_subpath(path, "/logs/") => "log",
            _ if is_subpath(path, "/spec/") => "spec",
            _ => "proxy",
        };
        Attributes { verb, subresource, name: node.to_string() }
    }
}

/// Upstream's `isSubpath`: `path` itself (without its trailing slash) or anything below it.
fn is_subpath(subpath: &str, path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    subpath == path || (subpath.starts_with(path) && subpath.as_bytes().get(path.len()) == Some(&b'/'))
}

/// Why a review could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The apiserver refused the review or could not be reached.
    #[error("{kind} to the apiserver: {source}")]
    Api {
        /// `TokenReview` or `SubjectAccessReview`.
        kind: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The apiserver did not answer within 10 s.
    #[error("{kind} to the apiserver: no answer within {} s", REVIEW_TIMEOUT.as_secs())]
    Timeout {
        /// `TokenReview` or `SubjectAccessReview`.
        kind: &'static str,
    },
}

/// Answers that expire: one writer per miss, many readers, at most [`CACHE_ENTRIES`].
struct Cache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Cache { entries: Mutex::new(HashMap::new()) }
    }

    fn get(&self, key: &K, now: Instant) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries.get(key).filter(|(_, until)| now < *until).map(|(v, _)| v.clone())
    }

    fn put(&self, key: K, value: V, until: Instant, now: Instant) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, (_, u)| now < *u);
        }
        if entries.len() >= CACHE_ENTRIES {
            // still full of live answers: start over rather than grow (a miss only costs a review)
            entries.clear();
        }
        entries.insert(key, (value, until));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

/// How long answers are reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    /// An allowed SubjectAccessReview decision ([`ALLOWED_TTL`] by default).
    pub allowed: Duration,
    /// A denied one ([`DENIED_TTL`]).
    pub denied: Duration,
    /// A TokenReview's answer, good or bad ([`TOKEN_TTL`]).
    pub token: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Ttls { allowed: ALLOWED_TTL, denied: DENIED_TTL, token: TOKEN_TTL }
    }
}

/// The kubelet API's authentication and authorization: what every HTTPS request passes through ([`check`]).
pub struct Filter {
    client: kube::Client,
    node_name: String,
    ttls: Ttls,
    decisions: Cache<(User, Attributes), bool>,
    /// sha256 of the token -> its user (None: the apiserver said it is no good)
    tokens: Cache<[u8; 32], Option<Arc<User>>>,
}

impl Filter {
    /// Reviews go to the apiserver `client` talks to, as the kubelet's own identity (which must be allowed to
    /// create tokenreviews and subjectaccessreviews: upstream's `system:auth-delegator`).
    pub fn new(client: kube::Client, node_name: impl Into<String>) -> Arc<Filter> {
        Filter::with_ttls(client, node_name, Ttls::default())
    }

    /// [`Filter::new`] with cache lifetimes other than upstream's defaults.
    pub fn with_ttls(client: kube::Client, node_name: impl Into<String>, ttls: Ttls) -> Arc<Filter> {
        Arc::new(Filter { client, node_name: node_name.into(), ttls, decisions: Cache::new(), tokens: Cache::new() })
    }

    /// The request's user: its certificate's, else its bearer token's; None: neither (401).
    pub async fn authenticate(&self, peer: Option<&PeerUser>, bearer: Option<&str>) -> Result<Option<Arc<User>>, ReviewError> {
        if let Some(PeerUser(Some(user))) = peer {
            return Ok(Some(user.clone()));
        }
        let Some(token) = bearer.filter(|t| !t.is_empty()) else { return Ok(None) };
        use sha2::Digest as _;
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(known) = self.tokens.get(&key, now) {
            return Ok(known);
        }
        let user = self.review_token(token).await?.map(Arc::new);
        self.tokens.put(key, user.clone(), now + self.ttls.token, now);
        Ok(user)
    }

    async fn review_token(&self, token: &str) -> Result<Option<User>, ReviewError> {
        let kind = "TokenReview";
        let review = TokenReview { spec: TokenReviewSpec { token: Some(token.to_string()), audiences: None }, ..Default::default() };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = tokio::time::timeout(REVIEW_TIMEOUT, api.create(&PostParams::default(), &review))
            .await
            .map_err(|_| ReviewError::Timeout { kind })?
            .map_err(|source| ReviewError::Api { kind, source })?;
        let Some(status) = answer.status.filter(|s| s.authenticated == Some(true)) else { return Ok(None) };
        let Some(info) = status.user else { return Ok(None) };
        let name = info.username.unwrap_or_default();
        if name.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            User {
                name,
                uid: info.uid.unwrap_or_default(),
                groups: info.groups.unwrap_or_default(),
                extra: info.extra.unwrap_or_default(),
            }
            .authenticated(),
        ))
    }

    /// Whether `user` may do what `attrs` says: the cached decision, else a SubjectAccessReview's.
    pub async fn authorize(&self, user: &User, attrs: &Attributes) -> Result<bool, ReviewError> {
        let key = (user.clone(), attrs.clone());
        let now = Instant::now();
        if let Some(allowed) = self.decisions.get(&key, now) {
            return Ok(allowed);
        }
        let allowed = self.review_access(user, attrs).await?;
        let ttl = if allowed { self.ttls.allowed } else { self.ttls.denied };
        self.decisions.put(key, allowed, now + ttl, now);
        Ok(allowed)
    }

    async fn review_access(&self, user: &User, attrs: &Attributes) -> Result<bool, ReviewError> {
        let kind = "SubjectAccessReview";
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(attrs.verb.to_string()),
                    group: Some(String::new()),
                    version: Some("v1".into()),
                    resource: Some(RESOURCE.into()),
                    subresource: Some(attrs.subresource.into()),
                    name: Some(attrs.name.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = tokio::time::timeout(REVIEW_TIMEOUT, api.create(&PostParams::default(), &review))
            .await
            .map_err(|_| ReviewError::Timeout { kind })?
            .map_err(|source| ReviewError::Api { kind, source })?;
        Ok(answer.status.is_some_and(|s| s.allowed && s.denied != Some(true)))
    }
}

/// The token of an `Authorization: Bearer <token>` header (upstream's bearertoken authenticator: the scheme
/// case-insensitive, the token the second space-separated word).
fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token).filter(|t| !t.is_empty())
}

fn text(code: StatusCode, msg: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg).into_response()
}

/// The middleware every request of the HTTPS API passes (upstream's `InstallAuthFilter`): 401, 403 or 500 in
/// upstream's words, or on to the handler.
pub async fn check(State(filter): State<Arc<Filter>>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<PeerUser>().cloned();
    let user = match filter.authenticate(peer.as_ref(), bearer_token(&req)).await {
        Ok(Some(user)) => user,
        Ok(None) => return text(StatusCode::UNAUTHORIZED, "Unauthorized".into()),
        Err(e) => {
            tracing::warn!(error = %e, "kubelet API: unable to authenticate the request due to an error");
            return text(StatusCode::UNAUTHORIZED, "Unauthorized".into());
        }
    };
    // the handlers never need the client's credential
    req.headers_mut().remove(header::AUTHORIZATION);
    let attrs = Attributes::of(req.method(), req.uri().path(), &filter.node_name);
    let said = |what: &str| {
        format!("{what} (user={}, verb={}, resource={RESOURCE}, subresource={})", user.name, attrs.verb, attrs.subresource)
    };
    match filter.authorize(&user, &attrs).await {
        Ok(true) => next.run(req).await,
        Ok(false) => {
            tracing::info!(user = %user.name, verb = attrs.verb, subresource = attrs.subresource, path = %req.uri().path(), "kubelet API: forbidden");
            text(StatusCode::FORBIDDEN, said("Forbidden"))
        }
        Err(e) => {
            tracing::warn!(user = %user.name, verb = attrs.verb, subresource = attrs.subresource, error = %e, "kubelet API: authorization error");
            text(StatusCode::INTERNAL_SERVER_ERROR, said("Authorization error"))
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A stand-in apiserver answering TokenReviews and SubjectAccessReviews, counting them.
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::routing::post;
    use axum::{Json, Router};
    use serde_json::{json, Value};

    pub const GOOD_TOKEN: &str = "good-token";
    pub const TOKEN_USER: &str = "system:serviceaccount:default:scraper";

    #[derive(Default)]
    pub struct Fake {
        pub token_reviews: AtomicUsize,
        pub access_reviews: AtomicUsize,
        /// Answer reviews with a 500.
        pub broken: AtomicBool,
        /// The last SubjectAccessReview's spec.
        pub last_spec: std::sync::Mutex<Value>,
    }

    /// Who may do what: `system:masters` everything; `carol` nodes/proxy create and get; the token's service
    /// account nodes/stats get; nobody else anything.
    fn allowed(spec: &Value) -> bool {
        let user = spec["user"].as_str().unwrap_or_default();
        let groups: Vec<&str> = spec["groups"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let ra = &spec["resourceAttributes"];
        let (verb, sub) = (ra["verb"].as_str().unwrap_or_default(), ra["subresource"].as_str().unwrap_or_default());
        groups.contains(&"system:masters")
            || (user == "carol" && sub == "proxy" && (verb == "create" || verb == "get"))
            || (user == TOKEN_USER && sub == "stats" && verb == "get")
    }

    /// Serves the fake on 127.0.0.1; a client to it.
    pub async fn start() -> (Arc<Fake>, kube::Client) {
        let fake = Arc::new(Fake::default());
        let (f1, f2) = (fake.clone(), fake.clone());
        let app = Router::new()
            .route(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                post(move |Json(mut body): Json<Value>| async move {
                    f1.access_reviews.fetch_add(1, Ordering::SeqCst);
                    if f1.broken.load(Ordering::SeqCst) {
                        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500})));
                    }
                    let ok = allowed(&body["spec"]);
                    *f1.last_spec.lock().expect("lock") = body["spec"].clone();
                    body["status"] = json!({"allowed": ok});
                    (axum::http::StatusCode::CREATED, Json(body))
                }),
            )
            .route(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                post(move |Json(mut body): Json<Value>| async move {
                    f2.token_reviews.fetch_add(1, Ordering::SeqCst);
                    body["status"] = if body["spec"]["token"] == GOOD_TOKEN {
                        json!({"authenticated": true, "user": {"username": TOKEN_USER, "uid": "u-1", "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]}})
                    } else {
                        json!({"authenticated": false, "error": "invalid bearer token"})
                    };
                    (axum::http::StatusCode::CREATED, Json(body))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let config = kube::Config::new(format!("http://{addr}").parse().expect("uri"));
        (fake, kube::Client::try_from(config).expect("client"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn attributes_follow_upstream_get_request_attributes() {
        let node = "n1";
        let cases: &[(Method, &str, &str, &str)] = &[
            (Method::GET, "/containerLogs/default/web/c", "get", "proxy"),
            (Method::POST, "/exec/default/web/c", "create", "proxy"),
            (Method::GET, "/exec/default/web/c", "get", "proxy"),
            (Method::POST, "/attach/default/web/c", "create", "proxy"),
            (Method::POST, "/portForward/default/web", "create", "proxy"),
            (Method::POST, "/run/default/web/c", "create", "proxy"),
            (Method::GET, "/inspect/pods/default/web", "get", "proxy"),
            (Method::GET, "/pods", "get", "proxy"),
            (Method::GET, "/healthz", "get", "proxy"),
            (Method::POST, "/checkpoint/default/web/c", "create", "proxy"),
            (Method::PUT, "/x", "update", "proxy"),
            (Method::PATCH, "/x", "patch", "proxy"),
            (Method::DELETE, "/x", "delete", "proxy"),
            (Method::HEAD, "/healthz", "", "proxy"),
            (Method::GET, "/stats", "get", "stats"),
            (Method::GET, "/stats/summary", "get", "stats"),
            (Method::GET, "/statsx", "get", "proxy"),
            (Method::GET, "/metrics", "get", "metrics"),
            (Method::GET, "/metrics/cadvisor", "get", "metrics"),
            (Method::GET, "/metricsx", "get", "proxy"),
            (Method::GET, "/logs/", "get", "log"),
            (Method::GET, "/logs/syslog", "get", "log"),
            (Method::GET, "/spec/", "get", "spec"),
            (Method::GET, "/stats/../exec/default/web/c", "get", "proxy"),
            (Method::GET, "/logs/./x", "get", "proxy"),
        ];
        for (method, path, verb, sub) in cases {
            let a = Attributes::of(method, path, node);
            assert_eq!((a.verb, a.subresource, a.name.as_str()), (*verb, *sub, node), "{method} {path}");
        }
    }

    #[test]
    fn cache_answers_until_the_deadline_and_stays_bounded() {
        let c: Cache<u32, bool> = Cache::new();
        let t0 = Instant::now();
        c.put(1, true, t0 + ALLOWED_TTL, t0);
        c.put(2, false, t0 + DENIED_TTL, t0);
        assert_eq!(c.get(&1, t0 + Duration::from_secs(299)), Some(true));
        assert_eq!(c.get(&1, t0 + ALLOWED_TTL), None, "allowed expires after 5 min");
        assert_eq!(c.get(&2, t0 + Duration::from_secs(29)), Some(false));
        assert_eq!(c.get(&2, t0 + DENIED_TTL), None, "denied expires after 30 s");
        for k in 0..(CACHE_ENTRIES as u32 + 100) {
            c.put(k, true, t0 + ALLOWED_TTL, t0);
        }
        assert!(c.len() <= CACHE_ENTRIES, "{} entries", c.len());
    }

    #[test]
    fn bearer_tokens_are_read_as_upstream() {
        let req = |v: &str| Request::builder().header(header::AUTHORIZATION, v).body(axum::body::Body::empty()).expect("request");
        assert_eq!(bearer_token(&req("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&req("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&req("  Bearer abc  ")), Some("abc"));
        assert_eq!(bearer_token(&req("Basic abc")), None);
        assert_eq!(bearer_token(&req("Bearer")), None);
        assert_eq!(bearer_token(&req("Bearer  abc")), None, "an empty second word, as upstream");
    }

    #[tokio::test]
    async fn decisions_come_from_subject_access_reviews_and_are_cached() {
        let (fake, client) = testing::start().await;
        let filter = Filter::new(client, "n1");
        let carol = User { name: "carol".into(), groups: vec![AUTHENTICATED.into()], ..Default::default() };
        let alice = User { name: "alice".into(), groups: vec!["devs".into(), AUTHENTICATED.into()], ..Default::default() };
        let exec = Attributes::of(&Method::POST, "/exec/default/web/c", "n1");
        assert!(filter.authorize(&carol, &exec).await.expect("review"));
        let spec = fake.last_spec.lock().expect("lock").clone();
        assert_eq!(
            spec,
            serde_json::json!({"user": "carol", "groups": [AUTHENTICATED],
                "resourceAttributes": {"verb": "create", "group": "", "version": "v1", "resource": "nodes", "subresource": "proxy", "name": "n1"}})
        );
        assert!(!filter.authorize(&alice, &exec).await.expect("review"));
        assert_eq!(fake.access_reviews.load(Ordering::SeqCst), 2);
        // both answers are reused: no new review
        assert!(filter.authorize(&carol, &exec).await.expect("cached"));
        assert!(!filter.authorize(&alice, &exec).await.expect("cached"));
        assert_eq!(fake.access_reviews.load(Ordering::SeqCst), 2);
        // another verb is another question
        let logs = Attributes::of(&Method::GET, "/containerLogs/default/web/c", "n1");
        assert!(filter.authorize(&carol, &logs).await.expect("review"));
        assert_eq!(fake.access_reviews.load(Ordering::SeqCst), 3);
        // a failing apiserver is an error, not a decision, and is not cached
        fake.broken.store(true, Ordering::SeqCst);
        let put = Attributes::of(&Method::PUT, "/x", "n1");
        assert!(matches!(filter.authorize(&carol, &put).await, Err(ReviewError::Api { kind: "SubjectAccessReview", .. })));
        fake.broken.store(false, Ordering::SeqCst);
        assert!(!filter.authorize(&carol, &put).await.expect("review"));
    }

    #[tokio::test]
    async fn tokens_are_reviewed_once_and_certificates_win() {
        let (fake, client) = testing::start().await;
        let filter = Filter::new(client, "n1");
        let user = filter.authenticate(None, Some(testing::GOOD_TOKEN)).await.expect("review").expect("a user");
        assert_eq!(user.name, testing::TOKEN_USER);
        assert_eq!(user.uid, "u-1");
        assert!(user.groups.iter().filter(|g| *g == AUTHENTICATED).count() == 1, "{:?}", user.groups);
        assert!(filter.authenticate(None, Some("forged")).await.expect("review").is_none());
        assert!(filter.authenticate(None, Some(testing::GOOD_TOKEN)).await.expect("cached").is_some());
        assert!(filter.authenticate(None, Some("forged")).await.expect("cached").is_none());
        assert_eq!(fake.token_reviews.load(Ordering::SeqCst), 2, "one review per token");
        assert!(filter.authenticate(None, None).await.expect("nothing").is_none());
        assert!(filter.authenticate(Some(&PeerUser(None)), None).await.expect("nothing").is_none());
        let cert_user = Arc::new(User { name: "alice".into(), ..Default::default() });
        let got = filter.authenticate(Some(&PeerUser(Some(cert_user.clone()))), Some(testing::GOOD_TOKEN)).await.expect("cert");
        assert_eq!(got, Some(cert_user));
        assert_eq!(fake.token_reviews.load(Ordering::SeqCst), 2, "a certificate needs no review");
    }
}
