//! The plain port's own HTTP/1.x server, for simple requests: a method and an origin-form target, no body (no
//! Transfer-Encoding, no Content-Length but 0), no upgrade, no `Expect`. It reads a request head, parses it in
//! place (httparse), writes the endpoint's request head straight from the client's headers (hop-by-hop ones
//! dropped, X-Forwarded-* and X-Real-IP set), and writes the answer's head and a small body in one write: no
//! header map, task or dispatcher per request, which were most of what the ingress spent per request above nginx.
//!
//! Anything else on a connection (a request with a body, an upgrade, a head it cannot parse, one over 64 KiB) hands
//! the connection, with the bytes read so far ([`Rewind`]), to hyper's server for the rest of its life: hyper
//! answers what this does not take (100-continue, 400, 431...). HTTPS stays on hyper.
//!
//! The client's connection is kept after an answer as hyper keeps it: HTTP/1.1 unless the client asked to close,
//! HTTP/1.0 only when it asked for keep-alive; a body of unknown length goes chunked to an HTTP/1.1 client and
//! until close to an HTTP/1.0 one. Pipelined requests are served in order from what was read.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::{proxy, upstream};

/// The largest request head taken here (larger ones go to hyper, which refuses them past its own limit).
const MAX_HEAD: usize = 64 * 1024;
/// The most headers in a request taken here (hyper's limit: 100).
const MAX_HEADERS: usize = 64;
/// Room made in the buffer before each read.
const READ_SIZE: usize = 8 * 1024;

/// Whether a client's header is never passed on: hop-by-hop ([`proxy::HOP_BY_HOP`], and Upgrade: a simple request
/// asks for none) or one the proxy sets itself ([`proxy::SET_BY_PROXY`]); the same lists hyper's path strips.
fn dropped(name: &str) -> bool {
    name.eq_ignore_ascii_case("upgrade")
        || proxy::HOP_BY_HOP
            .iter()
            .chain(proxy::SET_BY_PROXY.iter().copied())
            .any(|n| name.eq_ignore_ascii_case(n.as_str()))
}

/// A request this server takes.
#[derive(Debug)]
pub(crate) struct Simple<'a> {
    pub(crate) method: &'a str,
    /// Path and query.
    pub(crate) target: &'a str,
    /// The path alone.
    pub(crate) path: &'a str,
    /// The Host header's value ("" without one).
    pub(crate) host: &'a str,
    pub(crate) http10: bool,
    /// Whether the client keeps the connection after this request.
    pub(crate) keep_alive: bool,
    headers: &'a [httparse::Header<'a>],
}

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<T> {
    /// Not a whole head yet.
    Partial,
    /// Not a request this server takes: hyper's.
    Other,
    /// A simple request, `len` bytes long, and what the caller made of it.
    Request(usize, T),
}

/// Parses a request head at the start of `buf`; a simple one is given to `prepare` while its parts borrow `buf`.
pub(crate) fn parse<T>(buf: &[u8], prepare: impl FnOnce(&Simple<'_>) -> T) -> Parsed<T> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Other;
    };
    if !target.starts_with('/') {
        return Parsed::Other;
    }
    let (mut host, mut close, mut keep_alive) = (None, false, false);
    for h in req.headers.iter() {
        let is = |name: &str| h.name.eq_ignore_ascii_case(name);
        if is("host") {
            match (host, std::str::from_utf8(h.value)) {
                (None, Ok(v)) => host = Some(v),
                _ => return Parsed::Other,
            }
        } else if is("content-length") {
            if h.value.trim_ascii() != b"0" {
                return Parsed::Other;
            }
        } else if is("transfer-encoding") || is("upgrade") || is("expect") {
            return Parsed::Other;
        } else if is("connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::Other;
                }
            }
        }
    }
    let http10 = version == 0;
    let simple = Simple {
        method,
        target,
        path: target.split('?').next().unwrap_or(target),
        host: host.unwrap_or(""),
        http10,
        keep_alive: !close && (!http10 || keep_alive),
        headers: req.headers,
    };
    Parsed::Request(len, prepare(&simple))
}

/// Who the request is from, as the endpoint is told.
pub(crate) struct Forwarded<'a> {
    /// The client's address (X-Forwarded-For, X-Real-IP).
    pub(crate) ip: Option<&'a [u8]>,
    /// The port the request came in on (X-Forwarded-Port).
    pub(crate) port: &'a [u8],
    /// `http` or `https` (X-Forwarded-Proto).
    pub(crate) proto: &'static str,
}

/// The endpoint's request head for `req`: HTTP/1.1, the client's headers but the hop-by-hop ones (and those its
/// Connection header names) and the client's own X-Forwarded-* and X-Real-IP, then ours (as ingress-nginx).
pub(crate) fn endpoint_head(req: &Simple<'_>, from: &Forwarded<'_>) -> Vec<u8> {
    let named = |name: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
    };
    let mut out = Vec::with_capacity(256 + req.headers.len() * 32);
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers {
        if dropped(h.name) || named(h.name) {
            continue;
        }
        put_header(&mut out, h.name.as_bytes(), h.value);
    }
    if let Some(ip) = from.ip {
        put_header(&mut out, b"x-forwarded-for", ip);
        put_header(&mut out, b"x-real-ip", ip);
    }
    put_header(&mut out, b"x-forwarded-host", req.host.as_bytes());
    put_header(&mut out, b"x-forwarded-port", from.port);
    put_header(&mut out, b"x-forwarded-proto", from.proto.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How an answer's body reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// As its Content-Length says (or none: HEAD, 1xx, 204, 304).
    Length,
    /// Chunked (an HTTP/1.1 client, a body of unknown length).
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, a body of unknown length).
    Close,
}

/// The answer's head for the client: the status line (HTTP/1.1, as nginx), the headers (the caller has dropped
/// the hop-by-hop ones), a Date when the endpoint sent none (as hyper and nginx), the framing, and Connection
/// when the client needs telling (`close` to HTTP/1.1, `keep-alive` to HTTP/1.0).
pub(crate) fn answer_head(
    status: StatusCode,
    headers: &HeaderMap,
    framing: BodyFraming,
    keep_alive: bool,
    http10: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + headers.len() * 40);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        put_header(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !headers.contains_key(header::DATE) {
        DATE.with_borrow_mut(|date| put_header(&mut out, b"date", date.now()));
    }
    if framing == BodyFraming::Chunked {
        put_header(&mut out, b"transfer-encoding", b"chunked");
    }
    match (keep_alive, http10) {
        (false, false) => put_header(&mut out, b"connection", b"close"),
        (true, true) => put_header(&mut out, b"connection", b"keep-alive"),
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The HTTP date, made again once a second.
struct Date {
    second: u64,
    text: String,
}

impl Date {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        self.text.as_bytes()
    }
}

thread_local! {
    static DATE: RefCell<Date> = const { RefCell::new(Date { second: 0, text: String::new() }) };
}

/// Whether an answer with this status to this request carries a body.
fn has_body(status: StatusCode, head_request: bool) -> bool {
    !(head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// A client connection on the plain port, with what has been read from it and not yet served.
pub(crate) struct ClientConn {
    pub(crate) tcp: TcpStream,
    pub(crate) buf: BytesMut,
}

/// What comes next on a client connection.
pub(crate) enum Next<T> {
    /// A simple request, prepared.
    Request(T),
    /// Something for hyper: the connection goes to it, with what was read.
    Other,
    /// The client closed the connection (or it failed) between requests.
    Closed,
}

impl ClientConn {
    pub(crate) fn new(tcp: TcpStream) -> ClientConn {
        ClientConn {
            tcp,
            buf: BytesMut::new(),
        }
    }

    /// Reads up to the next whole request head and, when it is simple, gives it to `prepare`.
    pub(crate) async fn next_request<T>(
        &mut self,
        mut prepare: impl FnMut(&Simple<'_>) -> T,
    ) -> Next<T> {
        loop {
            if !self.buf.is_empty() {
                match parse(&self.buf, &mut prepare) {
                    Parsed::Request(len, prepared) => {
                        self.buf.advance(len);
                        return Next::Request(prepared);
                    }
                    Parsed::Partial if self.buf.len() <= MAX_HEAD => {}
                    Parsed::Partial | Parsed::Other => return Next::Other,
                }
            }
            if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
                self.buf.reserve(READ_SIZE);
            }
            match tokio::io::AsyncReadExt::read_buf(&mut self.tcp, &mut self.buf).await {
                Ok(0) | Err(_) => return Next::Closed,
                Ok(_) => {}
            }
        }
    }

    /// Writes an answer: its head and, unless the request was HEAD, its body (one write when it is whole).
    /// Whether the connection may carry another request.
    pub(crate) async fn answer(
        &mut self,
        mut parts: http::response::Parts,
        body: upstream::Body,
        req: &Served,
    ) -> bool {
        let with_body = has_body(parts.status, req.head_request);
        let (framing, keep_alive) = match &body {
            upstream::Body::Whole(whole) => {
                if with_body && !parts.headers.contains_key(header::CONTENT_LENGTH) {
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, whole.len().into());
                }
                (BodyFraming::Length, req.keep_alive)
            }
            upstream::Body::Streamed(s) if hyper::body::Body::size_hint(s).exact().is_some() => {
                (BodyFraming::Length, req.keep_alive)
            }
            upstream::Body::Streamed(_) => {
                parts.headers.remove(header::CONTENT_LENGTH);
                if req.http10 {
                    (BodyFraming::Close, false)
                } else {
                    (BodyFraming::Chunked, req.keep_alive)
                }
            }
        };
        let mut out = answer_head(
            parts.status,
            &parts.headers,
            framing,
            keep_alive,
            req.http10,
        );
        match body {
            upstream::Body::Whole(whole) => {
                if with_body {
                    out.extend_from_slice(&whole);
                }
                self.tcp.write_all(&out).await.is_ok() && keep_alive
            }
            upstream::Body::Streamed(mut body) => {
                if self.tcp.write_all(&out).await.is_err() {
                    return false;
                }
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else {
                        // the endpoint failed in the middle of the body: the client sees it end short
                        return false;
                    };
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    let written = if framing == BodyFraming::Chunked {
                        let mut chunk = Vec::with_capacity(data.len() + 20);
                        chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                        chunk.extend_from_slice(&data);
                        chunk.extend_from_slice(b"\r\n");
                        self.tcp.write_all(&chunk).await
                    } else {
                        self.tcp.write_all(&data).await
                    };
                    if written.is_err() {
                        return false;
                    }
                }
                if framing == BodyFraming::Chunked
                    && self.tcp.write_all(b"0\r\n\r\n").await.is_err()
                {
                    return false;
                }
                keep_alive
            }
        }
    }
}

/// What the answer to a request needs to know of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Served {
    pub(crate) head_request: bool,
    pub(crate) http10: bool,
    pub(crate) keep_alive: bool,
}

impl Served {
    pub(crate) fn of(req: &Simple<'_>) -> Served {
        Served {
            head_request: req.method == "HEAD",
            http10: req.http10,
            keep_alive: req.keep_alive,
        }
    }
}

/// A connection with bytes already read from it put back in front, for hyper to read first.
pub(crate) struct Rewind<T> {
    prefix: Bytes,
    io: T,
}

impl<T> Rewind<T> {
    pub(crate) fn new(prefix: Bytes, io: T) -> Rewind<T> {
        Rewind { prefix, io }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`parse`] makes of `head`: None for hyper's, else (method, target, path, host, http10, keep_alive).
    fn simple(head: &str) -> Option<(String, String, String, String, bool, bool)> {
        match parse(head.as_bytes(), |r| {
            (
                r.method.to_string(),
                r.target.to_string(),
                r.path.to_string(),
                r.host.to_string(),
                r.http10,
                r.keep_alive,
            )
        }) {
            Parsed::Request(len, got) => {
                assert_eq!(len, head.len());
                Some(got)
            }
            Parsed::Other => None,
            Parsed::Partial => panic!("{head:?} is whole"),
        }
    }

    #[test]
    fn simple_requests_and_what_goes_to_hyper() {
        let got = simple("GET /a/b?c=d HTTP/1.1\r\nHost: x.example\r\n\r\n").expect("simple");
        assert_eq!(
            got,
            (
                "GET".into(),
                "/a/b?c=d".into(),
                "/a/b".into(),
                "x.example".into(),
                false,
                true
            )
        );
        let got = simple("HEAD / HTTP/1.0\r\n\r\n").expect("simple");
        assert_eq!(
            (got.3.as_str(), got.4, got.5),
            ("", true, false),
            "HTTP/1.0 closes"
        );
        let got = simple("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").expect("simple");
        assert!(got.5, "unless it asks for keep-alive");
        let got = simple("GET / HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .expect("simple");
        assert!(!got.5, "HTTP/1.1 keeps unless it asks to close");
        for other in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
            "PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET http://x.example/ HTTP/1.1\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert_eq!(simple(other), None, "{other:?} goes to hyper");
        }
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x", |_| ()), Parsed::Partial);
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect();
        assert_eq!(
            simple(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            None,
            "too many headers"
        );
    }

    #[test]
    fn the_endpoint_head_drops_hop_by_hop_and_sets_who_asked() {
        let head = "GET /p?q HTTP/1.0\r\nHost: x.example\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\n\
                    Keep-Alive: timeout=5\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: gopher\r\nAccept: */*\r\n\r\n";
        let from = Forwarded {
            ip: Some(b"10.1.2.3"),
            port: b"80",
            proto: "http",
        };
        let Parsed::Request(_, out) = parse(head.as_bytes(), |r| endpoint_head(r, &from)) else {
            panic!("simple")
        };
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "GET /p?q HTTP/1.1\r\nHost: x.example\r\nAccept: */*\r\nx-forwarded-for: 10.1.2.3\r\n\
             x-real-ip: 10.1.2.3\r\nx-forwarded-host: x.example\r\nx-forwarded-port: 80\r\nx-forwarded-proto: http\r\n\r\n"
        );
    }

    #[test]
    fn the_answer_head_says_framing_connection_and_date() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "text/plain".parse().expect("value"));
        let head_of = |h: &HeaderMap, framing, keep, http10| {
            String::from_utf8(answer_head(StatusCode::OK, h, framing, keep, http10)).expect("utf8")
        };
        let head = |framing, keep, http10| head_of(&h, framing, keep, http10);
        let plain = head(BodyFraming::Length, true, false);
        assert!(
            plain.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: "),
            "{plain}"
        );
        assert!(plain.ends_with(" GMT\r\n\r\n"), "{plain}");
        assert!(head(BodyFraming::Chunked, true, false).contains("transfer-encoding: chunked\r\n"));
        assert!(head(BodyFraming::Length, false, false).contains("connection: close\r\n"));
        assert!(head(BodyFraming::Length, true, true).contains("connection: keep-alive\r\n"));
        assert!(
            !head(BodyFraming::Close, false, true).contains("connection"),
            "HTTP/1.0 closes anyway"
        );
        let mut h = h.clone();
        h.insert(
            header::DATE,
            "Thu, 01 Jan 1970 00:00:00 GMT".parse().expect("value"),
        );
        let dated = head_of(&h, BodyFraming::Length, true, false);
        assert_eq!(
            dated.matches("date: ").count(),
            1,
            "the endpoint's date only: {dated}"
        );
        let teapot = answer_head(
            StatusCode::IM_A_TEAPOT,
            &h,
            BodyFraming::Length,
            true,
            false,
        );
        assert!(teapot.starts_with(b"HTTP/1.1 418 I'm a teapot\r\n"));
    }

    #[test]
    fn bodies_by_status_and_method() {
        assert!(has_body(StatusCode::OK, false));
        assert!(has_body(StatusCode::NOT_FOUND, false));
        assert!(!has_body(StatusCode::OK, true), "HEAD");
        assert!(!has_body(StatusCode::NO_CONTENT, false));
        assert!(!has_body(StatusCode::NOT_MODIFIED, false));
        assert!(!has_body(StatusCode::CONTINUE, false));
    }
}
