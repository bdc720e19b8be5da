//! Who may talk to a plain-HTTP listener. Plain HTTP has no authentication (every request is the privileged
//! `system:unsecured`), so a web page in a browser on the same machine must not be able to use it:
//!
//! - a cross-site request (a form POST, `fetch` with `mode: no-cors`, a WebSocket to `pods/exec`) carries an
//!   `Origin` (and, in current browsers, `Sec-Fetch-Site`) naming the page's site: refused unless it is the
//!   listener's own origin;
//! - DNS rebinding (the attacker's name resolving to 127.0.0.1, so the page is "same-origin") shows in `Host`:
//!   refused unless `Host` is an IP address, `localhost` or a name the server was told it is reached by.
//!
//! kubectl, client-go, kube-rs and the Python client send neither `Origin` nor `Sec-Fetch-*` (the Python
//! client's WebSocket library sends its own origin, which is allowed). HTTPS listeners do not need this:
//! a browser cannot present the client certificate or token they require.
//!
//! Must not: loosen anything on HTTPS listeners, nor allow a `Host` an attacker's DNS can point here.

use http::HeaderMap;

use crate::status::ApiError;

/// Checks a plain-HTTP request's `Host`, `Origin` and `Sec-Fetch-Site`; `names` are the host names (not IP
/// addresses) the server is reached by besides `localhost`.
pub fn check_plain_http(headers: &HeaderMap, uri_host: Option<&str>, names: &[String]) -> Result<(), ApiError> {
    let header = |name: http::header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}").trim().to_string());
    let host = header(http::header::HOST).or_else(|| uri_host.map(str::to_string));
    if let Some(host) = &host {
        if !host_allowed(host, names) {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "forbidden: the plain-HTTP API answers requests addressed to an IP address, localhost or a name it was given (--advertise-address); Host {host:?} is none of them"
                ),
            ));
        }
    }
    if let Some(origin) = header(http::header::ORIGIN) {
        let own = host.as_deref().is_some_and(|h| origin.eq_ignore_ascii_case(&format!("http://{h}")));
        if !own {
            return Err(cross_origin(&origin));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site.trim(), "same-origin" | "none") {
            return Err(cross_origin(&format!("a {site} page")));
        }
    }
    Ok(())
}

fn cross_origin(from: &str) -> ApiError {
    ApiError::new(
        403,
        "Forbidden",
        format!("forbidden: cross-origin request from {from:?} refused: the plain-HTTP API has no authentication and answers only its own origin"),
    )
}

/// Whether `host` (a Host header: name or address, optionally with a port) may address this server.
fn host_allowed(host: &str, names: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port or [v6]
        Some(rest) => match rest.split_once(']') {
            Some((v6, after)) if after.is_empty() || port_ok(after.strip_prefix(':')) => return v6.parse::<std::net::Ipv6Addr>().is_ok(),
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((n, port)) if port_ok(Some(port)) => n,
            Some(_) => return false,
            None => host,
        },
    };
    if name.parse::<std::net::Ipv4Addr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    names.iter().any(|n| n.parse::<std::net::IpAddr>().is_err() && n.eq_ignore_ascii_case(name))
}

fn port_ok(port: Option<&str>) -> bool {
    port.is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    fn check(pairs: &[(&'static str, &str)]) -> Result<(), ApiError> {
        check_plain_http(&headers(pairs), None, &["api.cluster.lan".into(), "10.0.0.5".into()])
    }

    #[test]
    fn clients_without_a_browser_origin_pass() {
        for host in ["127.0.0.1:6443", "127.0.0.1", "localhost:6443", "LOCALHOST", "[::1]:6443", "[::1]", "10.1.2.3:443", "api.cluster.lan:6443"] {
            check(&[("host", host)]).unwrap_or_else(|e| panic!("{host}: {e}"));
        }
        check(&[]).expect("no Host (HTTP/1.0)");
        check(&[("host", "127.0.0.1:6443"), ("origin", "http://127.0.0.1:6443")]).expect("its own origin (websocket-client)");
        check(&[("host", "127.0.0.1:6443"), ("sec-fetch-site", "same-origin")]).expect("same-origin fetch");
    }

    #[test]
    fn browsers_from_other_sites_and_rebound_names_are_refused() {
        for pairs in [
            &[("host", "127.0.0.1:6443"), ("origin", "http://evil.example")][..],
            &[("host", "127.0.0.1:6443"), ("origin", "null")][..],
            &[("host", "127.0.0.1:6443"), ("origin", "http://127.0.0.1:8080")][..],
            &[("host", "127.0.0.1:6443"), ("origin", "https://127.0.0.1:6443")][..],
            &[("host", "127.0.0.1:6443"), ("sec-fetch-site", "cross-site")][..],
            &[("host", "127.0.0.1:6443"), ("sec-fetch-site", "same-site")][..],
            &[("host", "rebind.evil.example:6443"), ("origin", "http://rebind.evil.example:6443")][..],
            &[("host", "rebind.evil.example:6443")][..],
            &[("host", "localhost.evil.example")][..],
            &[("host", "127.0.0.1:port")][..],
            &[("host", "[::1]x")][..],
        ] {
            let e = check(pairs).expect_err(&format!("{pairs:?}"));
            assert_eq!((e.code, e.reason), (403, "Forbidden"), "{pairs:?}");
        }
    }
}
