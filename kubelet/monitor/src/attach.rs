//! `kubectl attach` at the monitor: every container's monitor listens on `<dir>/attach.sock`
//! ([`crate::ATTACH_SOCKET`]). An attached client (the kubelet serving `/attach`) gets the container's output
//! live, as it is read, partial lines included; and, for a container with `stdin: true`, what the client sends
//! goes into the container's stdin (a pipe the monitor holds, or the pty master of a `tty: true` container).
//! With `stdinOnce` the stdin is closed when the first client that used it is done, so the container reads
//! end-of-file; without it the next attach types into the same stdin, as upstream.
//!
//! Both directions are frames `[kind: u8][length: u32 big-endian][payload]` ([`Frame`]): the monitor sends
//! `STDOUT`/`STDERR`; the client sends `STDIN`, `STDIN_CLOSE` (its input ended) and `RESIZE` (columns, rows as
//! two u16, for a terminal). No thread and no blocking write: sockets and the stdin pipe are non-blocking, what
//! a slow client has not taken waits in its own bounded buffer (a client further behind is dropped), and what
//! the container has not read waits in `pending` while clients are not read.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags};

/// Output the container wrote to stdout (monitor → client).
pub const STDOUT: u8 = 1;
/// Output the container wrote to stderr (monitor → client).
pub const STDERR: u8 = 2;
/// Input for the container's stdin (client → monitor).
pub const STDIN: u8 = 0;
/// The client's input ended (client → monitor); ends a stdinOnce container's stdin.
pub const STDIN_CLOSE: u8 = 3;
/// A terminal size: columns then rows, u16 big-endian each (client → monitor).
pub const RESIZE: u8 = 4;

const HEADER: usize = 5;
/// At most this many clients at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 8;
/// Output a client may fall behind by before it is dropped.
const MAX_BEHIND: usize = 1 << 20;

/// Appends one frame to `out`.
pub fn encode(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// One decoded frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// [`STDOUT`], [`STDERR`], [`STDIN`], [`STDIN_CLOSE`] or [`RESIZE`].
    pub kind: u8,
    /// The frame's bytes.
    pub payload: Vec<u8>,
}

/// Takes the complete frames off the front of `buf`, leaving a partial one.
pub fn decode(buf: &mut Vec<u8>) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut at = 0;
    while buf.len() - at >= HEADER {
        let len = u32::from_be_bytes([buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4]]) as usize;
        if buf.len() - at - HEADER < len {
            break;
        }
        frames.push(Frame { kind: buf[at], payload: buf[at + HEADER..at + HEADER + len].to_vec() });
        at += HEADER + len;
    }
    buf.drain(..at);
    frames
}

/// A path to `name` inside `dir` that fits a socket address (108 bytes) however deep `dir` is: through the
/// descriptor `dir_fd` of that directory, `/proc/self/fd/<n>/<name>`.
pub fn short_socket_path(dir_fd: &impl AsRawFd, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir_fd.as_raw_fd()))
}

struct Client {
    sock: UnixStream,
    /// Bytes received and not yet a whole frame.
    inbuf: Vec<u8>,
    /// Frames not yet taken by the client.
    outbuf: Vec<u8>,
    /// Sent stdin (so its hang-up ends a stdin session).
    used_stdin: bool,
    stdin_closed: bool,
}

/// Where a container's stdin goes.
pub enum Stdin {
    /// `stdin: false`: nothing; input is dropped.
    None,
    /// The write end of the container's stdin pipe.
    Pipe(File),
    /// A `tty: true` container's pty master (input and resizes).
    Tty(File),
}

/// The attach socket of one container: accepts clients, sends them the output, feeds their input to [`Stdin`].
pub struct AttachServer {
    path: PathBuf,
    listener: Option<UnixListener>,
    clients: Vec<Client>,
    stdin: Option<File>,
    /// The pty master, for resizes.
    tty: Option<File>,
    pending: Vec<u8>,
    once: bool,
}

/// Makes a pipe for a container's stdin: (read end for the container, write end, non-blocking, for the monitor).
pub fn stdin_pipe() -> std::io::Result<(OwnedFd, File)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    fcntl(&write, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok((read, File::from(write)))
}

impl AttachServer {
    /// Binds `<dir>/<name>`; `stdin` is where clients' input goes, `once` is stdinOnce.
    pub fn bind(dir: &Path, name: &str, stdin: Stdin, once: bool) -> std::io::Result<AttachServer> {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let dir_fd = File::open(dir)?;
        let listener = UnixListener::bind(short_socket_path(&dir_fd, name))?;
        listener.set_nonblocking(true)?;
        let (stdin, tty) = match stdin {
            Stdin::None => (None, None),
            Stdin::Pipe(w) => (Some(w), None),
            Stdin::Tty(master) => {
                let w = master.try_clone()?;
                fcntl(&w, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
                (Some(w), Some(master))
            }
        };
        Ok(AttachServer { path, listener: Some(listener), clients: Vec::new(), stdin, tty, pending: Vec::new(), once })
    }

    fn accepting(&self) -> bool {
        self.clients.len() < MAX_CLIENTS && self.listener.is_some()
    }

    fn reading(&self) -> bool {
        self.pending.is_empty()
    }

    /// Adds what the server waits for to `fds`; [`AttachServer::handle`] takes the results in the same order.
    pub fn interest<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) {
        if let (true, Some(l)) = (self.accepting(), &self.listener) {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        if let (false, Some(p)) = (self.pending.is_empty(), &self.stdin) {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLOUT));
        }
        let reading = self.reading();
        for c in &self.clients {
            let mut flags = PollFlags::empty();
            if reading {
                flags |= PollFlags::POLLIN;
            }
            if !c.outbuf.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.sock.as_fd(), flags));
        }
    }

    /// Acts on the poll results of what [`AttachServer::interest`] added (same state, same order).
    pub fn handle(&mut self, revents: &[PollFlags], buf: &mut [u8]) {
        let mut it = revents.iter().copied();
        let accept = self.accepting() && it.next().is_some_and(|r| !r.is_empty());
        let writable = !self.pending.is_empty() && self.stdin.is_some() && it.next().is_some_and(|r| !r.is_empty());
        let ready: Vec<PollFlags> = self.clients.iter().map(|_| it.next().unwrap_or(PollFlags::empty())).collect();
        if writable {
            let pending = std::mem::take(&mut self.pending);
            self.feed(&pending);
        }
        for (i, r) in ready.into_iter().enumerate().rev() {
            if r.is_empty() {
                continue;
            }
            let mut gone = r.contains(PollFlags::POLLOUT) && !flush(&mut self.clients[i]);
            if !gone && r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                match self.clients[i].sock.read(buf) {
                    Ok(0) => gone = true,
                    Ok(n) => {
                        self.clients[i].inbuf.extend_from_slice(&buf[..n]);
                        let frames = decode(&mut self.clients[i].inbuf);
                        for f in frames {
                            self.on_frame(i, f);
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                    Err(_) => gone = true,
                }
            }
            if gone {
                let c = self.clients.swap_remove(i);
                if c.used_stdin && !c.stdin_closed {
                    self.stdin_session_over();
                }
            }
        }
        if accept {
            if let Some(l) = &self.listener {
                while self.clients.len() < MAX_CLIENTS {
                    match l.accept() {
                        Ok((sock, _)) => {
                            let _ = sock.set_nonblocking(true);
                            self.clients.push(Client { sock, inbuf: Vec::new(), outbuf: Vec::new(), used_stdin: false, stdin_closed: false });
                        }
                        Err(_) => break,
                    }
                }
            }
        }
    }

    fn on_frame(&mut self, client: usize, f: Frame) {
        match f.kind {
            STDIN => {
                let c = &mut self.clients[client];
                if !c.stdin_closed {
                    c.used_stdin = true;
                    self.feed(&f.payload);
                }
            }
            STDIN_CLOSE => {
                let c = &mut self.clients[client];
                if !c.stdin_closed {
                    c.stdin_closed = true;
                    self.stdin_session_over();
                }
            }
            RESIZE if f.payload.len() == 4 => {
                if let Some(t) = &self.tty {
                    let cols = u16::from_be_bytes([f.payload[0], f.payload[1]]);
                    let rows = u16::from_be_bytes([f.payload[2], f.payload[3]]);
                    set_winsize(t, rows, cols);
                }
            }
            _ => {}
        }
    }

    /// A client's stdin ended: with stdinOnce, the container's stdin closes for good.
    fn stdin_session_over(&mut self) {
        if self.once {
            self.stdin = None;
            self.pending.clear();
        }
    }

    /// Writes `data` into the container's stdin as far as it takes it; the rest waits in `pending`.
    fn feed(&mut self, mut data: &[u8]) {
        let Some(w) = self.stdin.as_mut() else { return };
        if !self.pending.is_empty() {
            // behind what waits already: keep the order
            self.pending.extend_from_slice(data);
            return;
        }
        while !data.is_empty() {
            match w.write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.pending.extend_from_slice(data);
                    return;
                }
                Err(_) => {
                    // the container closed its stdin (or is gone): nobody reads it again
                    self.stdin = None;
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    /// Sends output to every attached client (kind [`STDOUT`] or [`STDERR`]).
    pub fn broadcast(&mut self, kind: u8, data: &[u8]) {
        if self.clients.is_empty() || data.is_empty() {
            return;
        }
        self.clients.retain_mut(|c| {
            if c.outbuf.len() > MAX_BEHIND {
                return false; // not reading: let it go rather than hold the container's output
            }
            encode(kind, data, &mut c.outbuf);
            flush(c)
        });
    }

    /// The container is gone: last output out as far as clients take it now, then the socket goes.
    pub fn close(&mut self) {
        for c in &mut self.clients {
            let _ = c.sock.set_nonblocking(false);
            let _ = c.sock.set_write_timeout(Some(std::time::Duration::from_millis(200)));
            let _ = flush(c);
        }
        self.clients.clear();
        self.stdin = None;
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for AttachServer {
    fn drop(&mut self) {
        self.close();
    }
}

/// Writes what the client can take now; false when the client is gone.
fn flush(c: &mut Client) -> bool {
    while !c.outbuf.is_empty() {
        match c.sock.write(&c.outbuf) {
            Ok(0) => return false,
            Ok(n) => {
                c.outbuf.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    true
}

/// TIOCSWINSZ on a pty (master or slave).
pub fn set_winsize(tty: &impl AsRawFd, rows: u16, cols: u16) {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which is valid for the call.
    unsafe {
        libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &ws);
    }
}

/// Receives the pty master the runtime sends over a console socket (SCM_RIGHTS, as runc's `--console-socket`).
pub fn recv_pty_master(sock: &UnixStream) -> std::io::Result<File> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut name = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us; nothing else owns it.
                return Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
            }
        }
    }
    Err(std::io::Error::other("the runtime sent no pty master over the console socket"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{poll, PollTimeout};

    /// Runs one poll round of the server.
    fn round(s: &mut AttachServer, buf: &mut [u8]) {
        let revents: Vec<PollFlags> = {
            let mut fds = Vec::new();
            s.interest(&mut fds);
            if fds.is_empty() {
                return;
            }
            poll(&mut fds, PollTimeout::from(200u16)).expect("poll");
            fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect()
        };
        s.handle(&revents, buf);
    }

    fn read_some(r: &mut File) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        let n = r.read(&mut out).expect("read pipe");
        out.truncate(n);
        out
    }

    fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode(kind, data, &mut v);
        v
    }

    fn read_frames(c: &mut UnixStream, want: usize) -> Vec<Frame> {
        let mut buf = Vec::new();
        let mut got = Vec::new();
        c.set_read_timeout(Some(std::time::Duration::from_secs(5))).expect("timeout");
        while got.len() < want {
            let mut chunk = [0u8; 256];
            let n = c.read(&mut chunk).expect("read frames");
            assert!(n > 0, "closed before {want} frames");
            buf.extend_from_slice(&chunk[..n]);
            got.extend(decode(&mut buf));
        }
        got
    }

    #[test]
    fn frames_round_trip_and_partial_frames_wait() {
        let mut buf = frame(STDOUT, b"hello");
        buf.extend(frame(RESIZE, &[0, 80, 0, 24]));
        let tail = frame(STDIN, b"later");
        buf.extend_from_slice(&tail[..3]);
        let got = decode(&mut buf);
        assert_eq!(got, vec![Frame { kind: STDOUT, payload: b"hello".to_vec() }, Frame { kind: RESIZE, payload: vec![0, 80, 0, 24] }]);
        assert_eq!(buf, tail[..3].to_vec());
        buf.extend_from_slice(&tail[3..]);
        assert_eq!(decode(&mut buf), vec![Frame { kind: STDIN, payload: b"later".to_vec() }]);
        assert!(buf.is_empty());
    }

    #[test]
    fn stdin_reaches_the_pipe_output_reaches_clients_and_stdin_once_closes() {
        let dir = tempfile::tempdir().expect("tmp");
        // a directory deeper than a socket address can name: the /proc/self/fd path still fits
        let deep = dir.path().join("d".repeat(100)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).expect("mkdir");
        let (read, write) = stdin_pipe().expect("pipe");
        let mut s = AttachServer::bind(&deep, crate::ATTACH_SOCKET, Stdin::Pipe(write), true).expect("bind");
        let mut read = File::from(read);
        let mut buf = vec![0u8; 1024];
        let dir_fd = File::open(&deep).expect("open dir");
        let mut watcher = UnixStream::connect(short_socket_path(&dir_fd, crate::ATTACH_SOCKET)).expect("connect");
        let mut typist = UnixStream::connect(short_socket_path(&dir_fd, crate::ATTACH_SOCKET)).expect("connect");
        round(&mut s, &mut buf); // accept both
        // a client that only watches and leaves does not end the stdin session
        s.broadcast(STDOUT, b"out-1");
        assert_eq!(read_frames(&mut watcher, 1), vec![Frame { kind: STDOUT, payload: b"out-1".to_vec() }]);
        drop(watcher);
        typist.write_all(&frame(STDIN, b"hello\n")).expect("write");
        round(&mut s, &mut buf);
        round(&mut s, &mut buf);
        assert_eq!(read_some(&mut read), b"hello\n");
        s.broadcast(STDERR, b"err-1");
        assert_eq!(read_frames(&mut typist, 2), vec![
            Frame { kind: STDOUT, payload: b"out-1".to_vec() },
            Frame { kind: STDERR, payload: b"err-1".to_vec() },
        ]);
        typist.write_all(&frame(STDIN_CLOSE, b"")).expect("close stdin");
        round(&mut s, &mut buf);
        assert_eq!(read_some(&mut read), b"", "stdinOnce: end-of-file when the first stdin session ends");
        // the output still flows to the client after its stdin closed
        s.broadcast(STDOUT, b"after");
        assert_eq!(read_frames(&mut typist, 1), vec![Frame { kind: STDOUT, payload: b"after".to_vec() }]);
        s.close();
        assert!(!deep.join(crate::ATTACH_SOCKET).exists(), "socket removed with the container");
    }

    #[test]
    fn without_stdin_once_the_next_client_types_into_the_same_stdin() {
        let dir = tempfile::tempdir().expect("tmp");
        let (read, write) = stdin_pipe().expect("pipe");
        let mut s = AttachServer::bind(dir.path(), "s.sock", Stdin::Pipe(write), false).expect("bind");
        let mut read = File::from(read);
        let mut buf = vec![0u8; 1024];
        for word in [&b"one"[..], b"two"] {
            let mut c = UnixStream::connect(dir.path().join("s.sock")).expect("connect");
            round(&mut s, &mut buf);
            c.write_all(&frame(STDIN, word)).expect("write");
            round(&mut s, &mut buf);
            assert_eq!(read_some(&mut read), word);
            drop(c); // hang-up without STDIN_CLOSE: a session ended all the same
            round(&mut s, &mut buf);
        }
    }

    #[test]
    fn a_full_pipe_holds_the_rest_until_the_container_reads() {
        let dir = tempfile::tempdir().expect("tmp");
        let (read, write) = stdin_pipe().expect("pipe");
        let mut s = AttachServer::bind(dir.path(), "s.sock", Stdin::Pipe(write), false).expect("bind");
        let mut read = File::from(read);
        fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("nonblocking read end");
        let mut buf = vec![0u8; 64 * 1024];
        let mut c = UnixStream::connect(dir.path().join("s.sock")).expect("connect");
        round(&mut s, &mut buf);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut framed = Vec::new();
        for chunk in data.chunks(10_000) {
            encode(STDIN, chunk, &mut framed);
        }
        let writer = std::thread::spawn(move || {
            c.write_all(&framed).expect("write");
            c
        });
        let mut got = Vec::new();
        while got.len() < data.len() {
            round(&mut s, &mut buf);
            let mut chunk = vec![0u8; 32 * 1024];
            if let Ok(n) = read.read(&mut chunk) {
                got.extend_from_slice(&chunk[..n]);
            }
        }
        assert_eq!(got, data, "every byte, in order");
        drop(writer.join().expect("writer"));
    }

    #[test]
    fn a_client_that_stops_reading_is_dropped_not_waited_for() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = AttachServer::bind(dir.path(), "s.sock", Stdin::None, false).expect("bind");
        let mut buf = vec![0u8; 1024];
        let _stalled = UnixStream::connect(dir.path().join("s.sock")).expect("connect");
        round(&mut s, &mut buf);
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..64 {
            s.broadcast(STDOUT, &chunk); // 4 MiB, never read
        }
        assert!(s.clients.is_empty(), "dropped once more than {MAX_BEHIND} bytes behind");
    }
}
