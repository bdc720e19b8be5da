//! SPDY/3.1, the multiplexing layer kubectl up to 1.29 speaks for exec/attach/cp and up to 1.30 for
//! port-forward (after an HTTP `Upgrade: SPDY/3.1`), and 1.31+ tunnels inside a WebSocket for port-forward.
//!
//! Owns: the frame codec (control frames SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS,
//! WINDOW_UPDATE; DATA frames), header blocks compressed with one zlib context per direction primed with the
//! SPDY/3 dictionary, and a server-side session that accepts the client's streams, answers each with a
//! SYN_REPLY and hands it out as a [`Stream`] (a data receiver plus a [`StreamWriter`]).
//!
//! Flow control: the receive side sends WINDOW_UPDATE (stream and session) as the consumer takes data.
//! spdystream, the Go library behind kubectl, neither sends WINDOW_UPDATE nor waits for one; holding it to the
//! default 64 KiB window would stall every stream after 64 KiB. So the send window is enforced only once the
//! peer shows it does flow control (it sends a WINDOW_UPDATE or an INITIAL_WINDOW_SIZE setting).
//!
//! Must not: interpret stream contents (exec and port-forward do, in their own modules).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// Initial flow-control window of streams and of the session (SPDY/3.1).
pub const DEFAULT_WINDOW: i64 = 64 * 1024;
/// Largest DATA payload we send in one frame.
const MAX_CHUNK: usize = 32 * 1024;
/// Largest frame we accept (the 24-bit length allows 16 MiB; nothing legitimate here comes close).
const MAX_FRAME: usize = 1 << 24;

/// Frame flag: the sender's last frame on this stream (it is half-closed from that side).
pub const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM flag: the opener will not receive on this stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// Control frame type: open a stream.
pub const TYPE_SYN_STREAM: u16 = 1;
/// Control frame type: accept a stream.
pub const TYPE_SYN_REPLY: u16 = 2;
/// Control frame type: abort a stream.
pub const TYPE_RST_STREAM: u16 = 3;
/// Control frame type: connection settings (the initial window size is the one read).
pub const TYPE_SETTINGS: u16 = 4;
/// Control frame type: a ping, echoed back.
pub const TYPE_PING: u16 = 6;
/// Control frame type: no more streams on this connection.
pub const TYPE_GOAWAY: u16 = 7;
/// Control frame type: more headers for a stream.
pub const TYPE_HEADERS: u16 = 8;
/// Control frame type: more flow-control window for a stream or (stream 0) the session.
pub const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status: the peer broke the protocol (a bad stream id, a duplicate stream).
pub const RST_PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status: the stream is no longer wanted (nobody takes it, or its handler gave up).
pub const RST_CANCEL: u32 = 5;
/// RST_STREAM status: the peer sent more than the window allowed.
pub const RST_FLOW_CONTROL_ERROR: u32 = 7;

/// SETTINGS id of the initial window size.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

/// Words of the SPDY/3 header dictionary (draft 3, section 2.6.10.1), each stored with a 4-byte big-endian
/// length in front; [`DICTIONARY_TAIL`] follows them verbatim.
const DICTIONARY_WORDS: &[&str] = &[
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
    "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
    "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
    "keep-alive", "origin",
];
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized",
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 header compression dictionary.
pub fn dictionary() -> Vec<u8> {
    let mut d = Vec::with_capacity(1500);
    for w in DICTIONARY_WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    d
}

/// Header name/value pairs of a stream (names lowercase, as SPDY requires).
pub type Headers = Vec<(String, String)>;

/// The first value of header `name` (case-insensitive).
pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// One SPDY frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// SYN_STREAM: the peer opens a stream.
    SynStream {
        /// The stream, 31 bits (odd: opened by the client).
        stream_id: u32,
        /// The stream it belongs to (server push; 0 here).
        associated_to: u32,
        /// 0 (highest) to 7.
        priority: u8,
        /// [`FLAG_FIN`] (and on SYN_STREAM [`FLAG_UNIDIRECTIONAL`]).
        flags: u8,
        /// The decompressed header block.
        headers: Headers,
    },
    /// SYN_REPLY: the stream is accepted.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// [`FLAG_FIN`] (and on SYN_STREAM [`FLAG_UNIDIRECTIONAL`]).
        flags: u8,
        /// The decompressed header block.
        headers: Headers,
    },
    /// RST_STREAM: the stream is aborted.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why: `RST_*`.
        status: u32,
    },
    /// SETTINGS: connection parameters.
    Settings {
        /// The frame's flags (CLEAR_SETTINGS).
        flags: u8,
        /// (flags, id, value) entries; id [`SETTINGS_INITIAL_WINDOW_SIZE`] is the one acted on.
        entries: Vec<(u8, u32, u32)>,
    },
    /// PING, which the receiver echoes.
    Ping {
        /// The ping's id.
        id: u32,
    },
    /// GOAWAY: no stream after `last_good_stream_id` will be handled.
    GoAway {
        /// The last stream the sender accepted.
        last_good_stream_id: u32,
        /// 0 OK, 1 protocol error, 2 internal error.
        status: u32,
    },
    /// HEADERS: more headers for an open stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// [`FLAG_FIN`] (and on SYN_STREAM [`FLAG_UNIDIRECTIONAL`]).
        flags: u8,
        /// The decompressed header block.
        headers: Headers,
    },
    /// WINDOW_UPDATE: the receiver took `delta` more bytes.
    WindowUpdate {
        /// The stream, or 0 for the whole session.
        stream_id: u32,
        /// Bytes added to the sender's window.
        delta: u32,
    },
    /// A DATA frame.
    Data {
        /// The stream.
        stream_id: u32,
        /// [`FLAG_FIN`] on the last one.
        flags: u8,
        /// The payload (empty with FIN alone).
        data: Bytes,
    },
    /// A control frame of a type this codec does not know (ignored, as the spec asks).
    Unknown {
        /// Its type field.
        frame_type: u16,
    },
}

/// Why a frame could not be encoded or decoded. A session that reads a bad frame sends GOAWAY (protocol error)
/// and closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// A control frame of a version other than 3.
    #[error("spdy: unsupported protocol version {0} in a control frame (only 3 is spoken)")]
    Version(u16),
    /// A control frame shorter than its type's fixed fields.
    #[error("spdy: {what} frame is {len} bytes, too short")]
    Short {
        /// The frame type.
        what: &'static str,
        /// Its length, bytes.
        len: usize,
    },
    /// A frame read, or a DATA payload to send, of 16 MiB (the 24-bit length field's limit) or more.
    #[error("spdy: frame of {0} bytes is larger than allowed")]
    TooLarge(usize),
    /// A header block that does not (de)compress or does not parse.
    #[error("spdy: header block: {0}")]
    HeaderBlock(String),
    /// Reading or writing the connection failed.
    #[error("spdy: connection: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes and decodes frames; holds the two zlib contexts of one connection.
pub struct Codec {
    compress: Compress,
    decompress: Decompress,
    dict: Vec<u8>,
}

impl Default for Codec {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec {
    /// A codec for a new connection: both zlib contexts fresh, primed with [`dictionary`].
    pub fn new() -> Codec {
        let dict = dictionary();
        let mut compress = Compress::new(Compression::default(), true);
        compress.set_dictionary(&dict).expect("a fresh deflate stream accepts a dictionary");
        Codec { compress, decompress: Decompress::new(true), dict }
    }

    fn encode_headers(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let mut raw = Vec::new();
        raw.put_u32(headers.len() as u32);
        for (k, v) in headers {
            raw.put_u32(k.len() as u32);
            raw.extend_from_slice(k.to_ascii_lowercase().as_bytes());
            raw.put_u32(v.len() as u32);
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        let before = self.compress.total_in();
        loop {
            let consumed = (self.compress.total_in() - before) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            self.compress
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::HeaderBlock(format!("compress: {e}")))?;
            let consumed = (self.compress.total_in() - before) as usize;
            // A sync flush is complete when all input is taken and the output did not fill the buffer.
            if consumed == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }

    fn decode_headers(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let mut out: Vec<u8> = Vec::with_capacity(block.len() * 4 + 64);
        let before = self.decompress.total_in();
        loop {
            let consumed = (self.decompress.total_in() - before) as usize;
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity().max(1024));
            }
            match self.decompress.decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.decompress
                        .set_dictionary(&self.dict)
                        .map_err(|e| SpdyError::HeaderBlock(format!("set the SPDY/3 dictionary: {e}")))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::HeaderBlock(format!("decompress: {e}"))),
            }
            let consumed = (self.decompress.total_in() - before) as usize;
            if consumed == block.len() && out.len() < out.capacity() {
                break;
            }
        }
        parse_header_block(&out)
    }

    /// Appends the wire form of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), SpdyError> {
        let control = |out: &mut BytesMut, typ: u16, flags: u8, body: &[u8]| {
            out.put_u16(0x8000 | VERSION);
            out.put_u16(typ);
            out.put_u32(((flags as u32) << 24) | body.len() as u32);
            out.extend_from_slice(body);
        };
        match frame {
            Frame::SynStream { stream_id, associated_to, priority, flags, headers } => {
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(associated_to & 0x7fff_ffff);
                body.put_u8((priority & 0x7) << 5);
                body.put_u8(0);
                body.extend(self.encode_headers(headers)?);
                control(out, TYPE_SYN_STREAM, *flags, &body);
            }
            Frame::SynReply { stream_id, flags, headers } | Frame::Headers { stream_id, flags, headers } => {
                let typ = if matches!(frame, Frame::SynReply { .. }) { TYPE_SYN_REPLY } else { TYPE_HEADERS };
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.extend(self.encode_headers(headers)?);
                control(out, typ, *flags, &body);
            }
            Frame::RstStream { stream_id, status } => {
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(*status);
                control(out, TYPE_RST_STREAM, 0, &body);
            }
            Frame::Settings { flags, entries } => {
                let mut body = Vec::new();
                body.put_u32(entries.len() as u32);
                for (f, id, v) in entries {
                    body.put_u32(((*f as u32) << 24) | (id & 0x00ff_ffff));
                    body.put_u32(*v);
                }
                control(out, TYPE_SETTINGS, *flags, &body);
            }
            Frame::Ping { id } => control(out, TYPE_PING, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good_stream_id, status } => {
                let mut body = Vec::new();
                body.put_u32(last_good_stream_id & 0x7fff_ffff);
                body.put_u32(*status);
                control(out, TYPE_GOAWAY, 0, &body);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(delta & 0x7fff_ffff);
                control(out, TYPE_WINDOW_UPDATE, 0, &body);
            }
            Frame::Data { stream_id, flags, data } => {
                if data.len() >= MAX_FRAME {
                    return Err(SpdyError::TooLarge(data.len()));
                }
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(((*flags as u32) << 24) | data.len() as u32);
                out.extend_from_slice(data);
            }
            Frame::Unknown { .. } => {}
        }
        Ok(())
    }

    /// Takes one complete frame off the front of `buf`, or None when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
        if len >= MAX_FRAME {
            return Err(SpdyError::TooLarge(len));
        }
        if buf.len() < 8 + len {
            buf.reserve(8 + len - buf.len());
            return Ok(None);
        }
        let mut head = buf.split_to(8);
        let body = buf.split_to(len).freeze();
        let first = head.get_u32();
        let flags = head[0];
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data { stream_id: first & 0x7fff_ffff, flags, data: body }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        let typ = (first & 0xffff) as u16;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let need = |what: &'static str, n: usize| if body.len() < n { Err(SpdyError::Short { what, len: body.len() }) } else { Ok(()) };
        let u32_at = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        let frame = match typ {
            TYPE_SYN_STREAM => {
                need("SYN_STREAM", 10)?;
                let headers = self.decode_headers(&body[10..])?;
                Frame::SynStream {
                    stream_id: u32_at(0) & 0x7fff_ffff,
                    associated_to: u32_at(4) & 0x7fff_ffff,
                    priority: body[8] >> 5,
                    flags,
                    headers,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                need("SYN_REPLY", 4)?;
                let headers = self.decode_headers(&body[4..])?;
                let stream_id = u32_at(0) & 0x7fff_ffff;
                if typ == TYPE_SYN_REPLY {
                    Frame::SynReply { stream_id, flags, headers }
                } else {
                    Frame::Headers { stream_id, flags, headers }
                }
            }
            TYPE_RST_STREAM => {
                need("RST_STREAM", 8)?;
                Frame::RstStream { stream_id: u32_at(0) & 0x7fff_ffff, status: u32_at(4) }
            }
            TYPE_SETTINGS => {
                need("SETTINGS", 4)?;
                let n = u32_at(0) as usize;
                need("SETTINGS", 4 + n.saturating_mul(8))?;
                let entries = (0..n)
                    .map(|i| {
                        let a = u32_at(4 + i * 8);
                        ((a >> 24) as u8, a & 0x00ff_ffff, u32_at(8 + i * 8))
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            TYPE_PING => {
                need("PING", 4)?;
                Frame::Ping { id: u32_at(0) }
            }
            TYPE_GOAWAY => {
                need("GOAWAY", 4)?;
                let status = if body.len() >= 8 { u32_at(4) } else { 0 };
                Frame::GoAway { last_good_stream_id: u32_at(0) & 0x7fff_ffff, status }
            }
            TYPE_WINDOW_UPDATE => {
                need("WINDOW_UPDATE", 8)?;
                Frame::WindowUpdate { stream_id: u32_at(0) & 0x7fff_ffff, delta: u32_at(4) & 0x7fff_ffff }
            }
            other => Frame::Unknown { frame_type: other },
        };
        Ok(Some(frame))
    }
}

fn parse_header_block(raw: &[u8]) -> Result<Headers, SpdyError> {
    let mut b = raw;
    let bad = |m: &str| SpdyError::HeaderBlock(m.to_string());
    let take_u32 = |b: &mut &[u8]| -> Result<usize, SpdyError> {
        if b.len() < 4 {
            return Err(bad("truncated length"));
        }
        let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        *b = &b[4..];
        Ok(v)
    };
    let take_str = |b: &mut &[u8], n: usize| -> Result<String, SpdyError> {
        if b.len() < n {
            return Err(bad("truncated string"));
        }
        let s = String::from_utf8_lossy(&b[..n]).into_owned();
        *b = &b[n..];
        Ok(s)
    };
    let count = take_u32(&mut b)?;
    let mut out = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = take_u32(&mut b)?;
        let name = take_str(&mut b, n)?;
        let n = take_u32(&mut b)?;
        let value = take_str(&mut b, n)?;
        // Several values of one name are NUL-separated.
        for v in value.split('\0') {
            out.push((name.to_ascii_lowercase(), v.to_string()));
        }
    }
    Ok(out)
}

/// Send-side flow control shared by the session and its streams.
struct Flow {
    /// The peer does flow control (sent WINDOW_UPDATE or INITIAL_WINDOW_SIZE): windows are enforced.
    enforced: AtomicBool,
    session: AtomicI64,
    initial: AtomicI64,
    notify: Notify,
}

struct StreamState {
    data: mpsc::Sender<Bytes>,
    send_window: Arc<AtomicI64>,
}

/// Writes to one stream of a session; cloneable.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
    flow: Arc<Flow>,
    window: Arc<AtomicI64>,
    closed: Arc<AtomicBool>,
}

impl StreamWriter {
    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends `data` as DATA frames, waiting for window when the peer does flow control.
    pub async fn write(&self, mut data: &[u8]) -> std::io::Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, format!("spdy stream {} is closed", self.id)));
        }
        while !data.is_empty() {
            let mut n = data.len().min(MAX_CHUNK);
            if self.flow.enforced.load(Ordering::SeqCst) {
                loop {
                    let notified = self.flow.notify.notified();
                    let avail = self.window.load(Ordering::SeqCst).min(self.flow.session.load(Ordering::SeqCst));
                    if avail > 0 {
                        n = n.min(avail as usize);
                        break;
                    }
                    if self.out.is_closed() {
                        return Err(gone());
                    }
                    notified.await;
                }
            }
            self.window.fetch_sub(n as i64, Ordering::SeqCst);
            self.flow.session.fetch_sub(n as i64, Ordering::SeqCst);
            let frame = Frame::Data { stream_id: self.id, flags: 0, data: Bytes::copy_from_slice(&data[..n]) };
            self.out.send(frame).await.map_err(|_| gone())?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Half-closes the stream (an empty DATA frame with FIN); later writes fail.
    pub async fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = self.out.send(Frame::Data { stream_id: self.id, flags: FLAG_FIN, data: Bytes::new() }).await;
        }
    }

    /// Aborts the stream with RST_STREAM.
    pub async fn reset(&self, status: u32) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = self.out.send(Frame::RstStream { stream_id: self.id, status }).await;
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "spdy connection closed")
}

/// A stream the client opened: its headers, the data it sends (ends at FIN or RST), and a writer.
pub struct Stream {
    /// The stream's id (odd).
    pub id: u32,
    /// Its SYN_STREAM headers (`streamtype`, `port`, `requestid`...).
    pub headers: Headers,
    data: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Frame>,
    /// Writes to the peer on this stream.
    pub writer: StreamWriter,
}

impl Stream {
    /// The next chunk from the peer; None once it half-closed (or reset) the stream. Each chunk taken gives the
    /// peer that much window back.
    pub async fn read(&mut self) -> Option<Bytes> {
        let chunk = self.data.recv().await?;
        if !chunk.is_empty() {
            let delta = chunk.len() as u32;
            let _ = self.out.try_send(Frame::WindowUpdate { stream_id: self.id, delta });
            let _ = self.out.try_send(Frame::WindowUpdate { stream_id: 0, delta });
        }
        Some(chunk)
    }

    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The server side of a SPDY connection: streams opened by the client arrive on `incoming`; dropping the
/// session (and every stream writer) ends the connection with a GOAWAY.
pub struct Session {
    /// The streams the client opens, each already answered with SYN_REPLY.
    pub incoming: mpsc::Receiver<Stream>,
    out: mpsc::Sender<Frame>,
}

impl Session {
    /// Starts reading and writing frames on `io`.
    pub fn serve<T>(io: T) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel::<Frame>(256);
        let (in_tx, in_rx) = mpsc::channel::<Stream>(16);
        let codec = Arc::new(Mutex::new(Codec::new()));
        let flow = Arc::new(Flow {
            enforced: AtomicBool::new(false),
            session: AtomicI64::new(DEFAULT_WINDOW),
            initial: AtomicI64::new(DEFAULT_WINDOW),
            notify: Notify::new(),
        });
        tokio::spawn(write_loop(wr, out_rx, codec.clone()));
        tokio::spawn(read_loop(rd, codec, out_tx.clone(), in_tx, flow));
        Session { incoming: in_rx, out: out_tx }
    }

    /// Tells the peer no more streams are accepted.
    pub async fn go_away(&self, last_good_stream_id: u32) {
        let _ = self.out.send(Frame::GoAway { last_good_stream_id, status: 0 }).await;
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Frame>, codec: Arc<Mutex<Codec>>) {
    let mut buf = BytesMut::new();
    while let Some(frame) = rx.recv().await {
        buf.clear();
        {
            let mut c = codec.lock().expect("codec lock is never poisoned: encode does not panic");
            if let Err(e) = c.encode(&frame, &mut buf) {
                tracing::warn!(error = %e, "spdy: encode frame");
                break;
            }
            // Batch whatever else is queued into one write.
            while let Ok(f) = rx.try_recv() {
                if let Err(e) = c.encode(&f, &mut buf) {
                    tracing::warn!(error = %e, "spdy: encode frame");
                    break;
                }
            }
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut rd: R,
    codec: Arc<Mutex<Codec>>,
    out: mpsc::Sender<Frame>,
    incoming: mpsc::Sender<Stream>,
    flow: Arc<Flow>,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut streams: HashMap<u32, StreamState> = HashMap::new();
    loop {
        let frame = {
            let decoded = codec.lock().expect("codec lock is never poisoned: decode does not panic").decode(&mut buf);
            match decoded {
                Ok(Some(f)) => f,
                Ok(None) => match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                },
                Err(e) => {
                    tracing::debug!(error = %e, "spdy: bad frame, closing the connection");
                    let _ = out.send(Frame::GoAway { last_good_stream_id: 0, status: 1 }).await;
                    break;
                }
            }
        };
        match frame {
            Frame::SynStream { stream_id, flags, headers, .. } => {
                if stream_id == 0 || stream_id % 2 == 0 || streams.contains_key(&stream_id) {
                    let _ = out.send(Frame::RstStream { stream_id, status: RST_PROTOCOL_ERROR }).await;
                    continue;
                }
                let (data_tx, data_rx) = mpsc::channel::<Bytes>(64);
                let window = Arc::new(AtomicI64::new(flow.initial.load(Ordering::SeqCst)));
                let writer = StreamWriter {
                    id: stream_id,
                    out: out.clone(),
                    flow: flow.clone(),
                    window: window.clone(),
                    closed: Arc::new(AtomicBool::new(false)),
                };
                if flags & FLAG_FIN == 0 {
                    streams.insert(stream_id, StreamState { data: data_tx, send_window: window });
                }
                let _ = out.send(Frame::SynReply { stream_id, flags: 0, headers: Vec::new() }).await;
                let stream = Stream { id: stream_id, headers, data: data_rx, out: out.clone(), writer };
                if incoming.send(stream).await.is_err() {
                    let _ = out.send(Frame::RstStream { stream_id, status: RST_CANCEL }).await;
                }
            }
            Frame::Data { stream_id, flags, data } => {
                let fin = flags & FLAG_FIN != 0;
                if let Some(st) = streams.get(&stream_id) {
                    if !data.is_empty() && st.data.send(data).await.is_err() {
                        // The consumer is gone: nothing will read this stream again.
                    }
                    if fin {
                        streams.remove(&stream_id);
                    }
                } else if !fin {
                    let _ = out.send(Frame::RstStream { stream_id, status: 2 }).await;
                }
            }
            Frame::RstStream { stream_id, .. } => {
                streams.remove(&stream_id);
            }
            Frame::Headers { stream_id, flags, .. } => {
                if flags & FLAG_FIN != 0 {
                    streams.remove(&stream_id);
                }
            }
            Frame::Settings { entries, .. } => {
                for (_, id, value) in entries {
                    if id == SETTINGS_INITIAL_WINDOW_SIZE {
                        let old = flow.initial.swap(value as i64, Ordering::SeqCst);
                        for st in streams.values() {
                            st.send_window.fetch_add(value as i64 - old, Ordering::SeqCst);
                        }
                        flow.enforced.store(true, Ordering::SeqCst);
                        flow.notify.notify_waiters();
                    }
                }
            }
            Frame::WindowUpdate { stream_id, delta } => {
                flow.enforced.store(true, Ordering::SeqCst);
                if stream_id == 0 {
                    flow.session.fetch_add(delta as i64, Ordering::SeqCst);
                } else if let Some(st) = streams.get(&stream_id) {
                    st.send_window.fetch_add(delta as i64, Ordering::SeqCst);
                }
                flow.notify.notify_waiters();
            }
            Frame::Ping { id } => {
                // Client pings have odd ids; answer them. Our own (even) pings need no answer.
                if id % 2 == 1 {
                    let _ = out.send(Frame::Ping { id }).await;
                }
            }
            Frame::GoAway { .. } => break,
            Frame::SynReply { .. } | Frame::Unknown { .. } => {}
        }
    }
    // Peer gone: every reader sees the end of its stream, and writers blocked on window wake up and fail.
    drop(streams);
    flow.enforced.store(false, Ordering::SeqCst);
    flow.notify.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frames: &[Frame]) -> Vec<Frame> {
        let mut enc = Codec::new();
        let mut dec = Codec::new();
        let mut buf = BytesMut::new();
        for f in frames {
            enc.encode(f, &mut buf).expect("encode");
        }
        let mut out = Vec::new();
        while let Some(f) = dec.decode(&mut buf).expect("decode") {
            out.push(f);
        }
        assert!(buf.is_empty(), "every byte consumed");
        out
    }

    #[test]
    fn dictionary_is_the_spdy3_one() {
        let d = dictionary();
        assert_eq!(d.len(), 1423, "SPDY/3 dictionary length");
        assert!(d.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(d.ends_with(b"utf-,*,enq=0."));
    }

    #[test]
    fn control_and_data_frames_roundtrip_with_shared_compression_context() {
        let h1: Headers = vec![("streamtype".into(), "error".into()), ("port".into(), "8080".into())];
        let h2: Headers = vec![("streamtype".into(), "data".into()), ("port".into(), "8080".into())];
        let frames = vec![
            Frame::SynStream { stream_id: 1, associated_to: 0, priority: 3, flags: 0, headers: h1.clone() },
            Frame::SynStream { stream_id: 3, associated_to: 0, priority: 0, flags: FLAG_FIN, headers: h2.clone() },
            Frame::SynReply { stream_id: 1, flags: 0, headers: Vec::new() },
            Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"hello") },
            Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() },
            Frame::RstStream { stream_id: 3, status: RST_CANCEL },
            Frame::Settings { flags: 0, entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, 1000)] },
            Frame::Ping { id: 7 },
            Frame::WindowUpdate { stream_id: 1, delta: 4096 },
            Frame::Headers { stream_id: 1, flags: 0, headers: h2 },
            Frame::GoAway { last_good_stream_id: 3, status: 0 },
        ];
        assert_eq!(roundtrip(&frames), frames);
    }

    #[test]
    fn frame_layout_matches_the_spec() {
        let mut c = Codec::new();
        let mut buf = BytesMut::new();
        c.encode(&Frame::Ping { id: 0x01020304 }, &mut buf).expect("encode");
        assert_eq!(&buf[..], &[0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 1, 2, 3, 4]);
        buf.clear();
        c.encode(&Frame::Data { stream_id: 5, flags: FLAG_FIN, data: Bytes::from_static(b"ab") }, &mut buf).expect("encode");
        assert_eq!(&buf[..], &[0, 0, 0, 5, 0x01, 0, 0, 2, b'a', b'b']);
        // The first header block starts a zlib stream that names the dictionary (FDICT) by its Adler-32.
        buf.clear();
        c.encode(&Frame::SynReply { stream_id: 1, flags: 0, headers: Vec::new() }, &mut buf).expect("encode");
        assert_eq!(&buf[..4], &[0x80, 0x03, 0x00, 0x02]);
        let zlib = &buf[12..];
        assert_eq!(zlib[1] & 0x20, 0x20, "FDICT set");
        let adler = u32::from_be_bytes([zlib[2], zlib[3], zlib[4], zlib[5]]);
        let mut a: u32 = 1;
        let mut b: u32 = 0;
        for &x in &dictionary() {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(adler, (b << 16) | a);
    }

    #[test]
    fn partial_input_waits_for_the_rest_and_bad_versions_fail() {
        let mut c = Codec::new();
        let mut buf = BytesMut::new();
        c.encode(&Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"0123456789") }, &mut buf).expect("encode");
        let mut part = BytesMut::from(&buf[..9]);
        assert_eq!(Codec::new().decode(&mut part).expect("decode"), None);
        let mut bad = BytesMut::from(&[0x80u8, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(matches!(Codec::new().decode(&mut bad), Err(SpdyError::Version(2))));
        let mut unknown = BytesMut::from(&[0x80u8, 0x03, 0x00, 0x0a, 0, 0, 0, 0][..]);
        assert_eq!(Codec::new().decode(&mut unknown).expect("decode"), Some(Frame::Unknown { frame_type: 10 }));
    }

    /// A client for the session tests: writes frames, reads frames.
    struct Client {
        codec: Codec,
        io: tokio::io::DuplexStream,
        buf: BytesMut,
    }

    impl Client {
        async fn send(&mut self, f: Frame) {
            let mut b = BytesMut::new();
            self.codec.encode(&f, &mut b).expect("encode");
            self.io.write_all(&b).await.expect("write");
        }

        async fn recv(&mut self) -> Frame {
            loop {
                if let Some(f) = self.codec.decode(&mut self.buf).expect("decode") {
                    return f;
                }
                let n = self.io.read_buf(&mut self.buf).await.expect("read");
                assert!(n > 0, "connection closed while waiting for a frame");
            }
        }

        /// The next frame that is not a WINDOW_UPDATE.
        async fn recv_skip_window(&mut self) -> Frame {
            loop {
                match self.recv().await {
                    Frame::WindowUpdate { .. } => continue,
                    f => return f,
                }
            }
        }
    }

    fn pair() -> (Session, Client) {
        let (a, b) = tokio::io::duplex(1 << 20);
        (Session::serve(a), Client { codec: Codec::new(), io: b, buf: BytesMut::new() })
    }

    #[tokio::test]
    async fn session_replies_delivers_data_and_returns_window() {
        let (mut s, mut c) = pair();
        c.send(Frame::SynStream { stream_id: 1, associated_to: 0, priority: 0, flags: 0, headers: vec![("streamtype".into(), "stdin".into())] })
            .await;
        assert_eq!(c.recv().await, Frame::SynReply { stream_id: 1, flags: 0, headers: Vec::new() });
        let mut st = s.incoming.recv().await.expect("stream");
        assert_eq!(st.header("streamType"), Some("stdin"));
        c.send(Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"abc") }).await;
        c.send(Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() }).await;
        assert_eq!(st.read().await.as_deref(), Some(&b"abc"[..]));
        assert_eq!(st.read().await, None, "FIN ends the stream");
        assert_eq!(c.recv().await, Frame::WindowUpdate { stream_id: 1, delta: 3 });
        assert_eq!(c.recv().await, Frame::WindowUpdate { stream_id: 0, delta: 3 });
        st.writer.write(b"out").await.expect("write");
        st.writer.close().await;
        assert_eq!(c.recv().await, Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"out") });
        assert_eq!(c.recv().await, Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() });
        // pings from the client are echoed; even stream ids from the client are refused
        c.send(Frame::Ping { id: 9 }).await;
        assert_eq!(c.recv().await, Frame::Ping { id: 9 });
        c.send(Frame::SynStream { stream_id: 2, associated_to: 0, priority: 0, flags: 0, headers: Vec::new() }).await;
        assert_eq!(c.recv().await, Frame::RstStream { stream_id: 2, status: RST_PROTOCOL_ERROR });
    }

    #[tokio::test]
    async fn send_window_is_enforced_once_the_peer_does_flow_control() {
        let (mut s, mut c) = pair();
        c.send(Frame::Settings { flags: 0, entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, 4)] }).await;
        c.send(Frame::SynStream { stream_id: 1, associated_to: 0, priority: 0, flags: 0, headers: Vec::new() }).await;
        let st = s.incoming.recv().await.expect("stream");
        assert!(matches!(c.recv().await, Frame::SynReply { stream_id: 1, .. }));
        let w = st.writer.clone();
        let task = tokio::spawn(async move { w.write(b"0123456789").await });
        assert_eq!(c.recv_skip_window().await, Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"0123") });
        // Blocked until the window grows.
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        c.send(Frame::WindowUpdate { stream_id: 1, delta: 100 }).await;
        assert_eq!(c.recv_skip_window().await, Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"456789") });
        task.await.expect("join").expect("write");
    }

    #[tokio::test]
    async fn without_peer_flow_control_large_writes_are_not_held_at_64k() {
        let (mut s, mut c) = pair();
        c.send(Frame::SynStream { stream_id: 1, associated_to: 0, priority: 0, flags: 0, headers: Vec::new() }).await;
        let st = s.incoming.recv().await.expect("stream");
        let big = vec![7u8; 200 * 1024];
        let w = st.writer.clone();
        let task = tokio::spawn(async move { w.write(&big).await });
        let mut got = 0;
        let _ = c.recv().await; // SYN_REPLY
        while got < 200 * 1024 {
            match c.recv().await {
                Frame::Data { data, .. } => got += data.len(),
                f => panic!("unexpected {f:?}"),
            }
        }
        task.await.expect("join").expect("write");
    }
}
