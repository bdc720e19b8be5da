//! The proxy's own HTTP/1.1 client, for requests without a body (GET, HEAD, DELETE...: nearly all of them): the
//! request's head goes out in one write on a pooled connection, the answer's head is parsed in place
//! (httparse), and its body is read whole when it is small, or else streamed by the client connection's own task
//! as the client takes it. No task, channel or dispatcher per endpoint connection, as hyper's client connection
//! has: behind an endpoint that keeps connections open, those were most of the ingress's extra CPU per request
//! against nginx. Requests with a body, and upgrades, still go through hyper's client.
//!
//! What it follows (RFC 9112): an answer's body length from the request's method and the answer's status first
//! (HEAD, 1xx, 204 and 304 have none), then Transfer-Encoding (chunked; any other coding: read until close), then
//! Content-Length (several that differ: refused), else read until close. Interim answers (1xx but 101) are
//! skipped. A connection goes back to its pool only when its answer has been read to its exact end with nothing
//! behind it and the endpoint keeps it open. A reused connection that fails before any byte of an answer has come
//! back (the endpoint closed it while it was idle) is reported as [`Failure::Unanswered`], for the caller to send
//! an idempotent request again on another connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::pool::Pool;

/// The largest answer head accepted (nginx's `proxy_buffer_size` is 4-8 KiB; hyper's default limit is 400 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// The most headers in an answer (hyper's client: 100).
const MAX_HEADERS: usize = 100;
/// Room made in a connection's buffer before each read.
const READ_SIZE: usize = 16 * 1024;
/// The longest chunk-size line or trailer line accepted.
const MAX_LINE: usize = 4096;

/// A connection to an endpoint, with what has been read from it and not yet used.
pub(crate) struct Conn {
    tcp: TcpStream,
    buf: BytesMut,
}

impl crate::pool::Idle for Conn {
    /// Idle, a connection has nothing to read: data or an end there means the endpoint closed it or broke the
    /// protocol. Tokio knows whether the socket became readable since the last read, so this costs no syscall
    /// unless it did.
    fn usable(&self) -> bool {
        self.buf.is_empty()
            && matches!(self.tcp.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// A new TCP connection to `endpoint` (TCP_NODELAY, within `timeout`), for this client and hyper's alike.
pub(crate) async fn connect_tcp(
    endpoint: SocketAddr,
    timeout: std::time::Duration,
) -> Result<TcpStream, String> {
    let socket = if endpoint.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    socket
        .set_nodelay(true)
        .map_err(|e| format!("socket: {e}"))?;
    tokio::time::timeout(timeout, socket.connect(endpoint))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))
}

impl Conn {
    /// A new connection to `endpoint` ([`connect_tcp`]).
    pub(crate) async fn connect(
        endpoint: SocketAddr,
        timeout: std::time::Duration,
    ) -> Result<Conn, String> {
        Ok(Conn::new(connect_tcp(endpoint, timeout).await?))
    }

    fn new(tcp: TcpStream) -> Conn {
        Conn {
            tcp,
            buf: BytesMut::new(),
        }
    }

    /// Reads what the socket has into the buffer: the bytes read, 0 at the end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.tcp), cx, &mut self.buf)
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// It has none.
    Empty,
    /// After this many bytes.
    Length(u64),
    /// Chunked: at the last (empty) chunk and the trailers.
    Chunked,
    /// When the endpoint closes the connection.
    UntilClose,
}

/// An answer's head, read.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) parts: http::response::Parts,
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request after this answer's body.
    pub(crate) keep_alive: bool,
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No byte of an answer came back: the request may not have reached the endpoint.
    Unanswered(io::Error),
    /// Anything else: a broken or refused answer, or a connection lost in the middle of one.
    Broken(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unanswered(e) => write!(f, "no answer: {e}"),
            Failure::Broken(e) => f.write_str(e),
        }
    }
}

/// Whether a request may be sent again when its connection was lost before any answer (RFC 9110 section 9.2.2).
pub(crate) fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// The request's head as HTTP/1.1 puts it on the wire (origin form: the caller has made the target one).
pub(crate) fn encode_request(parts: &http::request::Parts) -> Vec<u8> {
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let size = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum::<usize>();
    let mut out = Vec::with_capacity(parts.method.as_str().len() + target.len() + size + 16);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Sends `request` (a head from [`encode_request`]) on `conn` and reads the answer's head; `head_request`: the
/// request's method is HEAD (its answer has no body whatever its headers say).
pub(crate) async fn exchange(
    conn: &mut Conn,
    request: &[u8],
    head_request: bool,
) -> Result<Answer, Failure> {
    conn.tcp
        .write_all(request)
        .await
        .map_err(Failure::Unanswered)?;
    let mut answered = false;
    loop {
        match parse_head(&mut conn.buf, head_request).map_err(Failure::Broken)? {
            Parsed::Final(answer) => return Ok(answer),
            Parsed::Interim => answered = true,
            Parsed::Partial => {
                if conn.buf.len() > MAX_HEAD {
                    return Err(Failure::Broken(format!(
                        "the answer's head is over {MAX_HEAD} bytes"
                    )));
                }
                answered |= !conn.buf.is_empty();
                match conn.fill().await {
                    Ok(0) if !answered => {
                        return Err(Failure::Unanswered(io::ErrorKind::UnexpectedEof.into()))
                    }
                    Ok(0) => {
                        return Err(Failure::Broken(
                            "the endpoint closed the connection in the answer's head".into(),
                        ))
                    }
                    Ok(_) => {}
                    Err(e) if !answered => return Err(Failure::Unanswered(e)),
                    Err(e) => return Err(Failure::Broken(format!("reading the answer: {e}"))),
                }
            }
        }
    }
}

/// Reads the rest of a body of `len` bytes and takes it from the connection's buffer.
pub(crate) async fn read_body(conn: &mut Conn, len: usize) -> Result<Bytes, String> {
    while conn.buf.len() < len {
        match conn.fill().await {
            Ok(0) => {
                return Err(format!(
                    "the endpoint closed the connection after {} of the body's {len} bytes",
                    conn.buf.len()
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(format!("reading the body: {e}")),
        }
    }
    Ok(conn.buf.split_to(len).freeze())
}

enum Parsed {
    /// More bytes are needed.
    Partial,
    /// An interim (1xx) answer was taken from the buffer; the final one follows.
    Interim,
    Final(Answer),
}

/// Parses an answer's head at the start of `buf`, taking it from there when complete.
fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Parsed, String> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut slots);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(e) => return Err(format!("the endpoint's answer is not HTTP/1.x: {e}")),
    };
    let code = r.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| format!("bad status code {code}"))?;
    let version = if r.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err("101 Switching Protocols to a request that did not ask to upgrade".into());
    }
    if status.is_informational() {
        let _ = buf.split_to(len);
        return Ok(Parsed::Interim);
    }
    // the head, shared by the header values (no copy of each)
    let spans: Vec<(HeaderName, std::ops::Range<usize>)> = {
        let base = buf.as_ptr() as usize;
        r.headers
            .iter()
            .map(|h| {
                let name = HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| format!("bad header name {:?}", h.name))?;
                let start = h.value.as_ptr() as usize - base;
                Ok((name, start..start + h.value.len()))
            })
            .collect::<Result<_, String>>()?
    };
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(spans.len());
    for (name, span) in spans {
        let value = HeaderValue::from_maybe_shared(head.slice(span))
            .map_err(|_| format!("bad value of header {name}"))?;
        headers.append(name, value);
    }
    let framing = framing(status, &headers, head_request)?;
    let keep_alive = framing != Framing::UntilClose && keeps_alive(version, &headers);
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Parsed::Final(Answer {
        parts,
        framing,
        keep_alive,
    }))
}

/// How the body of an answer ends (RFC 9112 section 6.3).
fn framing(status: StatusCode, h: &HeaderMap, head_request: bool) -> Result<Framing, String> {
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Empty);
    }
    if h.contains_key(header::TRANSFER_ENCODING) {
        let last = h
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|t| !t.is_empty());
        return Ok(match last {
            Some(t) if t.eq_ignore_ascii_case("chunked") => Framing::Chunked,
            _ => Framing::UntilClose,
        });
    }
    let mut length = None;
    for v in h.get_all(header::CONTENT_LENGTH) {
        for n in v.to_str().unwrap_or("?").split(',') {
            let n = n.trim();
            let parsed = (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| format!("bad Content-Length {n:?}"))?;
            if length.is_some_and(|l| l != parsed) {
                return Err("Content-Length headers that differ".into());
            }
            length = Some(parsed);
        }
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
pub(crate) fn keeps_alive(version: Version, h: &HeaderMap) -> bool {
    let has = |token: &str| {
        h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match version {
        Version::HTTP_10 => has("keep-alive"),
        _ => !has("close"),
    }
}

/// Where a streamed body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes to go.
    Length(u64),
    /// Chunked: a chunk-size line next.
    ChunkSize,
    /// Chunked: this many bytes of the current chunk to go.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk's data.
    ChunkEnd,
    /// Chunked: trailer lines, up to an empty one (dropped, as nginx's proxy does).
    Trailers,
    /// Until the endpoint closes.
    UntilClose,
    Done,
}

/// Where a connection goes back to, once its answer has been read to the end: a worker's pool, for an endpoint.
pub(crate) type Back = (Arc<Pool<Conn>>, SocketAddr);

/// An answer's body streamed from its connection as the client takes it; at its end, the connection goes back to
/// its pool when it may carry another request (else it is closed, as when the body is dropped before its end).
pub(crate) struct StreamedBody {
    conn: Option<Conn>,
    state: State,
    /// The pool, when the endpoint keeps the connection open.
    back: Option<Back>,
}

impl StreamedBody {
    /// The body of an answer framed as `framing` on `conn`.
    pub(crate) fn new(conn: Conn, framing: Framing, back: Option<Back>) -> StreamedBody {
        let state = match framing {
            Framing::Empty => State::Length(0),
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        StreamedBody {
            conn: Some(conn),
            state,
            back,
        }
    }

    fn end(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            release(conn, self.back.take());
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One line (up to LF, with its CR if any) taken from the start of `buf`, without its end; None when it is not
/// all there yet.
fn take_line(buf: &mut BytesMut) -> Result<Option<Bytes>, BoxError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let mut line = buf.split_to(i + 1).freeze();
            line.truncate(if i > 0 && line[i - 1] == b'\r' {
                i - 1
            } else {
                i
            });
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err("a chunked body's line is over 4096 bytes".into()),
        None => Ok(None),
    }
}

/// A chunk-size line's size (hex digits, then extensions after `;`, ignored).
fn chunk_size(line: &[u8]) -> Result<u64, BoxError> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(format!("bad chunk size {:?}", String::from_utf8_lossy(line)).into());
    }
    let text = std::str::from_utf8(digits).map_err(|_| "bad chunk size")?;
    u64::from_str_radix(text, 16).map_err(|_| format!("bad chunk size {text:?}").into())
}

impl StreamedBody {
    /// Takes one line of a chunked body's framing (a chunk size, the end of a chunk's data, a trailer).
    fn framing_line(&mut self, line: &[u8]) -> Result<(), BoxError> {
        match self.state {
            State::ChunkSize => {
                self.state = match chunk_size(line)? {
                    0 => State::Trailers,
                    n => State::ChunkData(n),
                }
            }
            State::ChunkEnd if line.is_empty() => self.state = State::ChunkSize,
            State::ChunkEnd => return Err("a chunk's data is not followed by CRLF".into()),
            State::Trailers if line.is_empty() => self.end(),
            _ => {}
        }
        Ok(())
    }
}

impl hyper::body::Body for StreamedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // what the buffer holds first; a read only when nothing in it can be used
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(0) => {
                    this.end();
                    return Poll::Ready(None);
                }
                State::Length(left) | State::ChunkData(left) if !conn.buf.is_empty() => {
                    let n = left.min(conn.buf.len() as u64);
                    let data = conn.buf.split_to(n as usize).freeze();
                    this.state = match this.state {
                        State::Length(_) => State::Length(left - n),
                        _ if left == n => State::ChunkEnd,
                        _ => State::ChunkData(left - n),
                    };
                    if this.state == State::Length(0) {
                        // the connection goes back now, not when the client asks for more
                        this.end();
                    }
                    return Poll::Ready(Some(Ok(hyper::body::Frame::data(data))));
                }
                State::UntilClose if !conn.buf.is_empty() => {
                    let data = conn.buf.split().freeze();
                    return Poll::Ready(Some(Ok(hyper::body::Frame::data(data))));
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    match take_line(&mut conn.buf) {
                        Ok(Some(line)) => {
                            if let Err(e) = this.framing_line(&line) {
                                this.conn = None;
                                return Poll::Ready(Some(Err(e)));
                            }
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            this.conn = None;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                _ => {}
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if this.state == State::UntilClose => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(
                        "the endpoint closed the connection before the end of the body".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self.state {
            State::Length(n) => hyper::body::SizeHint::with_exact(n),
            State::Done => hyper::body::SizeHint::with_exact(0),
            _ => hyper::body::SizeHint::default(),
        }
    }
}

/// An endpoint's answer body: read whole, or to be streamed.
pub(crate) enum Body {
    Whole(Bytes),
    Streamed(StreamedBody),
}

/// Sends a request without a body (`request`: its head as it goes on the wire, [`encode_request`]; `method`: its
/// method) to `endpoint` over an idle connection of `pool`, or a new one (connected within `connect_timeout`), and
/// reads the answer's head, and its body too when its length is known and at most `whole_limit`. An idempotent
/// request that an idle connection lost before any answer goes again on the next idle connection, or a new one.
pub(crate) async fn send(
    pool: &Arc<Pool<Conn>>,
    endpoint: SocketAddr,
    request: &[u8],
    method: &str,
    connect_timeout: std::time::Duration,
    whole_limit: u64,
) -> Result<(http::response::Parts, Body), String> {
    let head_request = method == "HEAD";
    let again = idempotent(method);
    loop {
        let (mut conn, reused) = match pool.take(endpoint) {
            Some(conn) => (conn, true),
            None => (Conn::connect(endpoint, connect_timeout).await?, false),
        };
        let answer = match exchange(&mut conn, request, head_request).await {
            Ok(answer) => answer,
            Err(Failure::Unanswered(e)) if reused && again => {
                tracing::debug!(%endpoint, error = %e, "ingress: an idle connection to the endpoint was closed; sending again");
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        let back = answer.keep_alive.then(|| (pool.clone(), endpoint));
        let body = match answer.framing {
            Framing::Empty => {
                release(conn, back);
                Body::Whole(Bytes::new())
            }
            Framing::Length(n) if n <= whole_limit => {
                let whole = read_body(&mut conn, n as usize).await?;
                release(conn, back);
                Body::Whole(whole)
            }
            framing => Body::Streamed(StreamedBody::new(conn, framing, back)),
        };
        return Ok((answer.parts, body));
    }
}

/// A connection whose answer has been read to its end goes back to its pool (`back`: the endpoint keeps it open)
/// when the endpoint sent nothing behind the answer; else it is closed.
fn release(conn: Conn, back: Option<Back>) {
    if let Some((pool, endpoint)) = back {
        if conn.buf.is_empty() {
            pool.put_back(endpoint, conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    /// An endpoint that answers each request head it reads with the next of `script` (an empty answer: the
    /// connection is closed unanswered), closing the connection after it when told to; it counts its
    /// connections and keeps the request heads.
    struct Endpoint {
        addr: SocketAddr,
        connections: Arc<AtomicUsize>,
        requests: Arc<Mutex<Vec<String>>>,
    }

    async fn endpoint(script: Vec<(&'static [u8], bool)>) -> Endpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (script, seen) = (script.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&chunk[..n]),
                        }
                        while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = got.drain(..end + 4).collect();
                            seen.lock()
                                .expect("seen")
                                .push(String::from_utf8_lossy(&head).into());
                            let next = script.lock().expect("script").pop_front();
                            let Some((answer, close)) = next else { return };
                            if answer.is_empty() {
                                return;
                            }
                            if tcp.write_all(answer).await.is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Endpoint {
            addr,
            connections,
            requests,
        }
    }

    fn request(method: &str) -> http::request::Parts {
        http::Request::builder()
            .method(method)
            .uri("/a/b?c=d")
            .header("host", "x.example")
            .header("x-forwarded-for", "10.1.2.3")
            .body(())
            .expect("request")
            .into_parts()
            .0
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    async fn get(
        pool: &Arc<Pool<Conn>>,
        ep: &Endpoint,
        method: &str,
    ) -> Result<(http::response::Parts, Bytes), String> {
        let head = encode_request(&request(method));
        let (parts, body) = send(pool, ep.addr, &head, method, TIMEOUT, 64).await?;
        let bytes = match body {
            Body::Whole(b) => b,
            Body::Streamed(s) => http_body_util::BodyExt::collect(s)
                .await
                .map_err(|e| e.to_string())?
                .to_bytes(),
        };
        Ok((parts, bytes))
    }

    fn idle(pool: &Pool<Conn>) -> usize {
        pool.reap();
        let mut n = 0;
        while pool.take_any().is_some() {
            n += 1;
        }
        n
    }

    #[test]
    fn the_request_head_is_origin_form_http11_with_every_header() {
        let head = encode_request(&request("GET"));
        assert_eq!(
            String::from_utf8(head).expect("utf8"),
            "GET /a/b?c=d HTTP/1.1\r\nhost: x.example\r\nx-forwarded-for: 10.1.2.3\r\n\r\n"
        );
    }

    #[test]
    fn framing_follows_rfc9112() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.append(*n, HeaderValue::from_static(v));
            }
            h
        };
        let ok = StatusCode::OK;
        assert_eq!(
            framing(ok, &h(&[("content-length", "5")]), false),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing(ok, &h(&[("content-length", "5")]), true),
            Ok(Framing::Empty),
            "HEAD"
        );
        assert_eq!(
            framing(StatusCode::NO_CONTENT, &h(&[]), false),
            Ok(Framing::Empty)
        );
        assert_eq!(
            framing(
                StatusCode::NOT_MODIFIED,
                &h(&[("content-length", "9")]),
                false
            ),
            Ok(Framing::Empty)
        );
        assert_eq!(
            framing(ok, &h(&[("content-length", "0")]), false),
            Ok(Framing::Empty)
        );
        assert_eq!(framing(ok, &h(&[]), false), Ok(Framing::UntilClose));
        assert_eq!(
            framing(
                ok,
                &h(&[
                    ("transfer-encoding", "gzip, chunked"),
                    ("content-length", "5")
                ]),
                false
            ),
            Ok(Framing::Chunked),
            "Transfer-Encoding wins over Content-Length"
        );
        assert_eq!(
            framing(ok, &h(&[("transfer-encoding", "gzip")]), false),
            Ok(Framing::UntilClose)
        );
        assert_eq!(
            framing(
                ok,
                &h(&[("content-length", "5"), ("content-length", "5")]),
                false
            ),
            Ok(Framing::Length(5)),
            "the same length twice"
        );
        assert!(framing(ok, &h(&[("content-length", "5, 6")]), false).is_err());
        assert!(framing(ok, &h(&[("content-length", "+5")]), false).is_err());
    }

    #[test]
    fn chunk_sizes_are_hex_with_extensions_ignored() {
        assert_eq!(chunk_size(b"1a").ok(), Some(26));
        assert_eq!(chunk_size(b"0").ok(), Some(0));
        assert_eq!(chunk_size(b"A;name=value").ok(), Some(10));
        assert!(chunk_size(b"").is_err());
        assert!(chunk_size(b"zz").is_err());
        assert!(chunk_size(b"1234567890abcdef0").is_err(), "over 15 digits");
    }

    #[tokio::test]
    async fn a_small_answer_is_read_whole_and_its_connection_reused() {
        let ep = endpoint(vec![
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
                false,
            ),
            (
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
                false,
            ),
        ])
        .await;
        let pool = Arc::new(Pool::default());
        let (parts, body) = get(&pool, &ep, "GET").await.expect("first");
        assert_eq!((parts.status, &body[..]), (StatusCode::OK, &b"hello"[..]));
        assert_eq!(parts.headers["x-a"], "1");
        let (parts, body) = get(&pool, &ep, "GET").await.expect("second");
        assert_eq!(
            (parts.status, &body[..]),
            (StatusCode::NOT_FOUND, &b"no"[..])
        );
        assert_eq!(
            ep.connections.load(Ordering::SeqCst),
            1,
            "one connection for both"
        );
        assert_eq!(
            ep.requests.lock().expect("requests")[0],
            String::from_utf8(encode_request(&request("GET"))).expect("utf8")
        );
        assert_eq!(idle(&pool), 1);
    }

    #[tokio::test]
    async fn a_chunked_answer_streams_decoded_and_its_connection_comes_back() {
        let ep = endpoint(vec![(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
            false,
        )])
        .await;
        let pool = Arc::new(Pool::default());
        let (parts, body) = get(&pool, &ep, "GET").await.expect("answer");
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(&body[..], b"hello world");
        assert_eq!(idle(&pool), 1);
    }

    #[tokio::test]
    async fn a_large_answer_streams_to_its_length() {
        let ep = endpoint(vec![(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789",
            false,
        )])
        .await;
        let pool = Arc::new(Pool::default());
        let head = encode_request(&request("GET"));
        let (parts, body) = send(&pool, ep.addr, &head, "GET", TIMEOUT, 64)
            .await
            .expect("answer");
        let Body::Streamed(body) = body else {
            panic!("100 bytes over a limit of 64 are streamed")
        };
        assert_eq!(hyper::body::Body::size_hint(&body).exact(), Some(100));
        let whole = http_body_util::BodyExt::collect(body)
            .await
            .expect("body")
            .to_bytes();
        assert_eq!((parts.status, whole.len()), (StatusCode::OK, 100));
        assert_eq!(idle(&pool), 1);
    }

    #[tokio::test]
    async fn an_answer_until_close_streams_and_its_connection_is_not_kept() {
        let ep = endpoint(vec![(b"HTTP/1.1 200 OK\r\n\r\nall of it", true)]).await;
        let pool = Arc::new(Pool::default());
        let (_, body) = get(&pool, &ep, "GET").await.expect("answer");
        assert_eq!(&body[..], b"all of it");
        assert_eq!(idle(&pool), 0);
    }

    #[tokio::test]
    async fn bodiless_answers_and_interim_ones() {
        let ep = endpoint(vec![
            (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", false),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                false,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                false,
            ),
        ])
        .await;
        let pool = Arc::new(Pool::default());
        let (parts, body) = get(&pool, &ep, "HEAD").await.expect("HEAD");
        assert_eq!((parts.status, body.len()), (StatusCode::OK, 0));
        assert_eq!(
            parts.headers["content-length"], "10",
            "HEAD keeps the length of a GET"
        );
        let (parts, body) = get(&pool, &ep, "GET").await.expect("204");
        assert_eq!(
            (parts.status, body.len()),
            (StatusCode::NO_CONTENT, 0),
            "100 skipped"
        );
        let (parts, body) = get(&pool, &ep, "GET").await.expect("304");
        assert_eq!((parts.status, body.len()), (StatusCode::NOT_MODIFIED, 0));
        assert_eq!(ep.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn close_http10_and_bytes_behind_an_answer_end_the_connection() {
        let ep = endpoint(vec![
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na",
                false,
            ),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb", false),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ncHTTP/1.1 200 OK\r\n",
                false,
            ),
        ])
        .await;
        let pool = Arc::new(Pool::default());
        for want in [b"a", b"b", b"c"] {
            let (_, body) = get(&pool, &ep, "GET").await.expect("answer");
            assert_eq!(&body[..], want);
            assert_eq!(idle(&pool), 0, "answer {:?}: not kept", want);
        }
        assert_eq!(ep.connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_idempotent_request_lost_on_an_idle_connection_goes_again_on_a_new_one() {
        // the second request's connection is closed unanswered, as by an endpoint's idle timeout
        let ep = endpoint(vec![
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", false),
            (b"", false),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb", false),
        ])
        .await;
        let pool = Arc::new(Pool::default());
        get(&pool, &ep, "GET").await.expect("first");
        let (_, body) = get(&pool, &ep, "GET").await.expect("sent again");
        assert_eq!(&body[..], b"b");
        assert_eq!(ep.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_post_lost_on_an_idle_connection_is_not_sent_again() {
        let ep = endpoint(vec![
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", false),
            (b"", false),
        ])
        .await;
        let pool = Arc::new(Pool::default());
        get(&pool, &ep, "GET").await.expect("first");
        let e = get(&pool, &ep, "POST")
            .await
            .expect_err("a POST is not sent twice");
        assert!(e.contains("no answer"), "{e}");
        assert_eq!(ep.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn broken_answers_are_errors_that_say_what() {
        for (answer, says) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"[..],
                "differ",
            ),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not HTTP/1.x"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
                "closed the connection after 5",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n",
                "not followed by CRLF",
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
                "did not ask to upgrade",
            ),
        ] {
            let ep = endpoint(vec![(answer, true)]).await;
            let pool = Arc::new(Pool::default());
            let e = get(&pool, &ep, "GET").await.expect_err("broken");
            assert!(e.contains(says), "{e:?} should say {says:?}");
            assert_eq!(idle(&pool), 0);
        }
    }
}
