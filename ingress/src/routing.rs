//! The routing decision: which backend serves a request, from its host and path, as the Ingress spec says.
//! Pure: no I/O, no clock, no locks; the proxy asks [`RouteTable::route`] once per request and the controller
//! builds a new table (through [`RouteTableBuilder`]) whenever the cluster changes.
//!
//! Hosts (networking.k8s.io/v1 `IngressRule.host`): a precise host matches the request's host exactly; a
//! wildcard `*.foo.com` matches one more label in front of `foo.com` (`bar.foo.com`, not `foo.com` nor
//! `baz.bar.foo.com`); a rule without a host matches any host. The most precise host group that exists for the
//! request is the one searched (precise, then wildcard, then host-less), as ingress-nginx picks one server
//! block per request; a request that matches no path there goes to the default backend.
//!
//! Paths, within the group: `Exact` compares the whole path, case-sensitively; `Prefix` compares element by
//! element after splitting on `/` (`/foo/bar` matches `/foo/bar/baz` and `/foo/bar/`, never `/foo/barbaz`; a
//! trailing slash on either side is ignored); `ImplementationSpecific` is taken as `Prefix` by the caller. When
//! several paths match, the longest wins, and on equal length `Exact` wins over `Prefix`.
//!
//! Must not: look at anything but the host and the path (no headers, no query string); allocate per request.

use std::collections::HashMap;

/// How a rule's path is compared (ImplementationSpecific is mapped to `Prefix` before it gets here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// The whole path, compared case-sensitively.
    Exact,
    /// The path's `/`-separated elements, each compared whole ([`prefix_matches`]).
    Prefix,
}

/// One path of a host group and where it goes.
#[derive(Debug, Clone)]
struct PathRoute<B> {
    path: String,
    kind: PathKind,
    /// What "longest" compares: the path's length, without a Prefix path's trailing slashes.
    len: usize,
    backend: B,
}

impl<B> PathRoute<B> {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            PathKind::Exact => self.path == path,
            PathKind::Prefix => prefix_matches(&self.path, path),
        }
    }
}

/// True when every `/`-separated element of `prefix` equals the request path's element at the same place
/// (upstream's element-wise prefix; empty elements, from `//` or a trailing slash, are skipped on both sides).
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    let mut req = path.split('/').filter(|e| !e.is_empty());
    prefix
        .split('/')
        .filter(|e| !e.is_empty())
        .all(|p| req.next() == Some(p))
}

/// The request's host as rules compare it: without a port, lowercase, without a trailing dot. An IPv6 literal
/// keeps its brackets. Borrowed from `host` unless it has capitals (the usual request allocates nothing).
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let h = if host.starts_with('[') {
        // [::1]:8080 -> [::1]
        host.find(']').map(|i| &host[..=i]).unwrap_or(host)
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map(|(h, _)| h)
            .unwrap_or(host)
    };
    let h = h.trim_end_matches('.');
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(h.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(h)
    }
}

/// Values per host pattern: precise hosts, wildcards (`*.foo.com`, kept by their suffix `foo.com`), and what
/// applies to any host. Used for the rules and for the TLS certificates (SNI), which follow the same matching.
#[derive(Debug, Clone)]
pub struct HostMap<V> {
    exact: HashMap<String, V>,
    wildcard: HashMap<String, V>,
    any: Option<V>,
}

impl<V> Default for HostMap<V> {
    fn default() -> Self {
        HostMap {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            any: None,
        }
    }
}

impl<V> HostMap<V> {
    /// The entry for a host pattern as written in a rule (`None` or empty: any host), made with `make` when
    /// absent.
    pub fn entry_or_insert_with(
        &mut self,
        pattern: Option<&str>,
        make: impl FnOnce() -> V,
    ) -> &mut V {
        match pattern
            .map(|p| p.trim_end_matches('.').to_ascii_lowercase())
            .filter(|p| !p.is_empty())
        {
            None => self.any.get_or_insert_with(make),
            Some(p) => match p.strip_prefix("*.") {
                Some(suffix) => self.wildcard.entry(suffix.to_string()).or_insert_with(make),
                None => self.exact.entry(p).or_insert_with(make),
            },
        }
    }

    /// The most precise entry for a normalized request host: the host itself, then the wildcard over its
    /// parent, then the any-host entry.
    pub fn lookup(&self, host: &str) -> Option<&V> {
        if let Some(v) = self.exact.get(host) {
            return Some(v);
        }
        if let Some((first, parent)) = host.split_once('.') {
            if !first.is_empty() {
                if let Some(v) = self.wildcard.get(parent) {
                    return Some(v);
                }
            }
        }
        self.any.as_ref()
    }

    /// The precise entry only, without falling back to wildcards or the any-host entry.
    pub fn get_exact(&self, pattern: &str) -> Option<&V> {
        match pattern.strip_prefix("*.") {
            Some(suffix) => self.wildcard.get(suffix),
            None => self.exact.get(pattern),
        }
    }

    /// True when no host pattern and no any-host entry is set.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.any.is_none()
    }
}

/// What a request matched.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a, B> {
    /// A rule's path (the path and kind as written, for logs).
    Rule {
        /// The rule's path as written.
        path: &'a str,
        /// How the path was compared.
        kind: PathKind,
        /// Where the request goes.
        backend: &'a B,
    },
    /// No path matched (or no host group): the default backend.
    Default(&'a B),
    /// No path matched and there is no default backend: 404.
    NotFound,
}

/// The routing table: host groups of paths sorted by precedence, and the default backend.
#[derive(Debug, Clone)]
pub struct RouteTable<B> {
    hosts: HostMap<Vec<PathRoute<B>>>,
    default: Option<B>,
}

impl<B> Default for RouteTable<B> {
    fn default() -> Self {
        RouteTable {
            hosts: HostMap::default(),
            default: None,
        }
    }
}

impl<B> RouteTable<B> {
    /// The decision for a request to `host` (a Host header or :authority, port and case as sent) and `path`
    /// (without the query).
    pub fn route(&self, host: &str, path: &str) -> Route<'_, B> {
        let host = normalize_host(host);
        self.route_normalized(&host, path)
    }

    /// [`RouteTable::route`] for a host already through [`normalize_host`].
    pub fn route_normalized(&self, host: &str, path: &str) -> Route<'_, B> {
        let rule = self
            .hosts
            .lookup(host)
            .and_then(|paths| paths.iter().find(|r| r.matches(path)));
        match (rule, &self.default) {
            (Some(r), _) => Route::Rule {
                path: &r.path,
                kind: r.kind,
                backend: &r.backend,
            },
            (None, Some(d)) => Route::Default(d),
            (None, None) => Route::NotFound,
        }
    }

    /// The default backend, for requests no rule matches.
    pub fn default_backend(&self) -> Option<&B> {
        self.default.as_ref()
    }
}

/// Builds a [`RouteTable`]: the first rule added for a (host, path, kind) wins, and so does the first default
/// backend. The caller adds Ingresses oldest first, as ingress-nginx resolves such conflicts.
#[derive(Debug)]
pub struct RouteTableBuilder<B> {
    table: RouteTable<B>,
}

impl<B> Default for RouteTableBuilder<B> {
    fn default() -> Self {
        RouteTableBuilder {
            table: RouteTable::default(),
        }
    }
}

impl<B> RouteTableBuilder<B> {
    /// Adds a rule; false when an earlier rule already has this host, path and kind (this one is ignored).
    pub fn add(&mut self, host: Option<&str>, path: &str, kind: PathKind, backend: B) -> bool {
        let paths = self.table.hosts.entry_or_insert_with(host, Vec::new);
        if paths.iter().any(|r| r.path == path && r.kind == kind) {
            return false;
        }
        let len = match kind {
            PathKind::Exact => path.len(),
            PathKind::Prefix => path.trim_end_matches('/').len(),
        };
        paths.push(PathRoute {
            path: path.to_string(),
            kind,
            len,
            backend,
        });
        true
    }

    /// Sets the default backend; false when one is already set (this one is ignored).
    pub fn default_backend(&mut self, backend: B) -> bool {
        if self.table.default.is_some() {
            return false;
        }
        self.table.default = Some(backend);
        true
    }

    /// The table, each host group's paths sorted by precedence (longest first, Exact before Prefix).
    pub fn build(mut self) -> RouteTable<B> {
        let order = |paths: &mut Vec<PathRoute<B>>| {
            // longest first; on equal length Exact before Prefix (stable: the earlier rule first otherwise)
            paths.sort_by(|a, b| {
                b.len
                    .cmp(&a.len)
                    .then_with(|| (a.kind == PathKind::Prefix).cmp(&(b.kind == PathKind::Prefix)))
            });
        };
        self.table.hosts.exact.values_mut().for_each(order);
        self.table.hosts.wildcard.values_mut().for_each(order);
        if let Some(any) = self.table.hosts.any.as_mut() {
            order(any);
        }
        self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Ingress documentation's table of examples ("Examples" under "Path types"), row by row: paths of
    /// one rule (all of the same kind unless mixed), the request path, and whether it matches.
    #[test]
    fn upstream_path_examples() {
        use PathKind::*;
        let rows: &[(&[(&str, PathKind)], &str, Option<(&str, PathKind)>)] = &[
            (&[("/", Prefix)], "/anything/at/all", Some(("/", Prefix))),
            (&[("/foo", Exact)], "/foo", Some(("/foo", Exact))),
            (&[("/foo", Exact)], "/bar", None),
            (&[("/foo", Exact)], "/foo/", None),
            (&[("/foo/", Exact)], "/foo", None),
            (&[("/foo", Prefix)], "/foo", Some(("/foo", Prefix))),
            (&[("/foo", Prefix)], "/foo/", Some(("/foo", Prefix))),
            (&[("/foo/", Prefix)], "/foo", Some(("/foo/", Prefix))),
            (&[("/foo/", Prefix)], "/foo/", Some(("/foo/", Prefix))),
            (&[("/aaa/bb", Prefix)], "/aaa/bbb", None),
            (
                &[("/aaa/bbb", Prefix)],
                "/aaa/bbb",
                Some(("/aaa/bbb", Prefix)),
            ),
            (
                &[("/aaa/bbb/", Prefix)],
                "/aaa/bbb",
                Some(("/aaa/bbb/", Prefix)),
            ),
            (
                &[("/aaa/bbb", Prefix)],
                "/aaa/bbb/",
                Some(("/aaa/bbb", Prefix)),
            ),
            (
                &[("/aaa/bbb", Prefix)],
                "/aaa/bbb/ccc",
                Some(("/aaa/bbb", Prefix)),
            ),
            (&[("/aaa/bbb", Prefix)], "/aaa/bbbxyz", None),
            (
                &[("/", Prefix), ("/aaa", Prefix)],
                "/aaa/ccc",
                Some(("/aaa", Prefix)),
            ),
            (
                &[("/", Prefix), ("/aaa", Prefix), ("/aaa/bbb", Prefix)],
                "/aaa/bbb",
                Some(("/aaa/bbb", Prefix)),
            ),
            (
                &[("/", Prefix), ("/aaa", Prefix), ("/aaa/bbb", Prefix)],
                "/ccc",
                Some(("/", Prefix)),
            ),
            (&[("/aaa", Prefix)], "/ccc", None),
            (
                &[("/foo", Prefix), ("/foo", Exact)],
                "/foo",
                Some(("/foo", Exact)),
            ),
            (
                &[("/foo", Exact), ("/foo", Prefix)],
                "/foo",
                Some(("/foo", Exact)),
            ),
            // more of ours: the longest match beats Exact; Exact wins only on equal length
            (
                &[("/foo", Exact), ("/foo/bar", Prefix)],
                "/foo/bar",
                Some(("/foo/bar", Prefix)),
            ),
            (
                &[("/foo", Exact), ("/", Prefix)],
                "/foo/",
                Some(("/", Prefix)),
            ),
            (
                &[("/foo/", Prefix), ("/foo", Exact)],
                "/foo",
                Some(("/foo", Exact)),
            ),
            (
                &[("/foo/", Exact), ("/foo", Prefix)],
                "/foo/",
                Some(("/foo/", Exact)),
            ),
            // case-sensitive, and `//` is no element
            (&[("/Foo", Prefix)], "/foo", None),
            (&[("/a/b", Prefix)], "/a//b/c", Some(("/a/b", Prefix))),
        ];
        for (rules, req, want) in rows {
            let mut b = RouteTableBuilder::default();
            for (i, (p, k)) in rules.iter().enumerate() {
                assert!(b.add(Some("h"), p, *k, i));
            }
            let t = b.build();
            let got = match t.route("h", req) {
                Route::Rule {
                    path,
                    kind,
                    backend,
                } => {
                    assert_eq!(
                        rules[*backend],
                        (path, kind),
                        "backend index follows the rule"
                    );
                    Some((path, kind))
                }
                Route::Default(_) => unreachable!("no default backend"),
                Route::NotFound => None,
            };
            assert_eq!(got, *want, "rules {rules:?}, request {req:?}");
        }
    }

    #[test]
    fn hosts_precise_then_wildcard_then_any() {
        let mut b = RouteTableBuilder::default();
        b.add(Some("foo.bar.com"), "/", PathKind::Prefix, "precise");
        b.add(Some("*.bar.com"), "/", PathKind::Prefix, "wildcard");
        b.add(None, "/", PathKind::Prefix, "any");
        b.add(Some("only-api.com"), "/api", PathKind::Prefix, "api");
        b.default_backend("default");
        let t = b.build();
        let rows: &[(&str, &str, Route<'_, &str>)] = &[
            (
                "foo.bar.com",
                "/x",
                Route::Rule {
                    path: "/",
                    kind: PathKind::Prefix,
                    backend: &"precise",
                },
            ),
            (
                "FOO.bar.com:8080",
                "/x",
                Route::Rule {
                    path: "/",
                    kind: PathKind::Prefix,
                    backend: &"precise",
                },
            ),
            (
                "foo.bar.com.",
                "/",
                Route::Rule {
                    path: "/",
                    kind: PathKind::Prefix,
                    backend: &"precise",
                },
            ),
            (
                "baz.bar.com",
                "/x",
                Route::Rule {
                    path: "/",
                    kind: PathKind::Prefix,
                    backend: &"wildcard",
                },
            ),
            // a wildcard covers exactly one label
            (
                "bar.com",
                "/x",
                Route::Rule {
                    path: "/",
                    kind: PathKind::Prefix,
                    backend: &"any",
                },
            ),
            (
                "a.baz.bar.com",
                "/x",
                Route::Rule {
                    path: "/",
                    kind: PathKind::Prefix,
                    backend: &"any",
                },
            ),
            (
                ".bar.com",
                "/x",
                Route::Rule {
                    path: "/",
                    kind: PathKind::Prefix,
                    backend: &"any",
                },
            ),
            (
                "10.0.0.1:80",
                "/",
                Route::Rule {
                    path: "/",
                    kind: PathKind::Prefix,
                    backend: &"any",
                },
            ),
            (
                "[::1]:80",
                "/",
                Route::Rule {
                    path: "/",
                    kind: PathKind::Prefix,
                    backend: &"any",
                },
            ),
            (
                "",
                "/",
                Route::Rule {
                    path: "/",
                    kind: PathKind::Prefix,
                    backend: &"any",
                },
            ),
            // the host's group has no matching path: the default backend, not the any-host rules
            ("only-api.com", "/web", Route::Default(&"default")),
            (
                "only-api.com",
                "/api/v1",
                Route::Rule {
                    path: "/api",
                    kind: PathKind::Prefix,
                    backend: &"api",
                },
            ),
        ];
        for (host, path, want) in rows {
            assert_eq!(t.route(host, path), *want, "{host} {path}");
        }
    }

    #[test]
    fn no_rule_and_no_default_is_not_found() {
        let mut b = RouteTableBuilder::default();
        b.add(Some("a.com"), "/app", PathKind::Exact, 1);
        let t = b.build();
        assert_eq!(t.route("b.com", "/app"), Route::NotFound);
        assert_eq!(t.route("a.com", "/app/x"), Route::NotFound);
        assert_eq!(
            RouteTable::<u8>::default().route("a.com", "/"),
            Route::NotFound
        );
    }

    #[test]
    fn first_rule_and_first_default_win() {
        let mut b = RouteTableBuilder::default();
        assert!(b.add(Some("a.com"), "/", PathKind::Prefix, "old"));
        assert!(
            !b.add(Some("A.com"), "/", PathKind::Prefix, "new"),
            "same host, path and kind"
        );
        assert!(
            b.add(Some("a.com"), "/", PathKind::Exact, "exact"),
            "another kind is another rule"
        );
        assert!(b.default_backend("d1"));
        assert!(!b.default_backend("d2"));
        let t = b.build();
        assert_eq!(
            t.route("a.com", "/x"),
            Route::Rule {
                path: "/",
                kind: PathKind::Prefix,
                backend: &"old"
            }
        );
        assert_eq!(
            t.route("a.com", "/"),
            Route::Rule {
                path: "/",
                kind: PathKind::Exact,
                backend: &"exact"
            }
        );
        assert_eq!(t.default_backend(), Some(&"d1"));
    }

    #[test]
    fn host_normalization() {
        for (raw, want) in [
            ("Example.COM", "example.com"),
            ("example.com:443", "example.com"),
            ("example.com.", "example.com"),
            ("[2001:db8::1]:8443", "[2001:db8::1]"),
            ("[2001:db8::1]", "[2001:db8::1]"),
            ("10.1.2.3:80", "10.1.2.3"),
            ("host:notaport", "host:notaport"),
        ] {
            assert_eq!(normalize_host(raw), want, "{raw}");
        }
    }
}
