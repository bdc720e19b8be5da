//! A container's stdin (`stdin: true` in the pod spec): the monitor holds the write end of the pipe the
//! container reads, and listens on `<dir>/attach.sock` ([`crate::STDIN_SOCKET`]). What an attached client (the
//! kubelet serving `kubectl attach -i` / `kubectl run -i`) writes to that socket goes into the pipe. With
//! `stdinOnce` the pipe is closed, so the container reads end-of-file, when the first client hangs up; without
//! it stdin stays open for the next attach, as upstream.
//!
//! No thread and no blocking write: the pipe's write end is non-blocking, a chunk the container has not yet
//! taken waits in `pending`, and clients are not read again until it has gone in.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags};

/// At most this many clients feed one container's stdin at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 8;

/// A path to `name` inside `dir` that fits a socket address (108 bytes) however deep `dir` is: through the
/// descriptor `dir_fd` of that directory, `/proc/self/fd/<n>/<name>`.
pub fn short_socket_path(dir_fd: &impl AsRawFd, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir_fd.as_raw_fd()))
}

pub struct StdinRelay {
    path: PathBuf,
    listener: Option<UnixListener>,
    clients: Vec<UnixStream>,
    /// The pipe's write end; `None` once closed (stdinOnce, or the container closed its end).
    pipe: Option<std::fs::File>,
    pending: Vec<u8>,
    once: bool,
}

impl StdinRelay {
    /// Makes the pipe and binds `<dir>/<name>`; returns the relay and the read end for the container.
    pub fn bind(dir: &Path, name: &str, once: bool) -> std::io::Result<(StdinRelay, OwnedFd)> {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let dir_fd = std::fs::File::open(dir)?;
        let listener = UnixListener::bind(short_socket_path(&dir_fd, name))?;
        listener.set_nonblocking(true)?;
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        fcntl(&write, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let relay = StdinRelay {
            path,
            listener: Some(listener),
            clients: Vec::new(),
            pipe: Some(std::fs::File::from(write)),
            pending: Vec::new(),
            once,
        };
        Ok((relay, read))
    }

    fn accepting(&self) -> bool {
        self.pipe.is_some() && self.clients.len() < MAX_CLIENTS && self.listener.is_some()
    }

    fn reading(&self) -> bool {
        self.pipe.is_some() && self.pending.is_empty()
    }

    /// Adds what the relay waits for to `fds`; [`StdinRelay::handle`] takes the results in the same order.
    pub fn interest<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) {
        if let (true, Some(l)) = (self.accepting(), &self.listener) {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        if let (false, Some(p)) = (self.pending.is_empty(), &self.pipe) {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLOUT));
        }
        if self.reading() {
            for c in &self.clients {
                fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
            }
        }
    }

    /// Acts on the poll results of what [`StdinRelay::interest`] added (same state, same order).
    pub fn handle(&mut self, revents: &[PollFlags], buf: &mut [u8]) {
        let mut it = revents.iter().copied();
        let accept = self.accepting() && it.next().is_some_and(|r| !r.is_empty());
        let writable = !self.pending.is_empty() && self.pipe.is_some() && it.next().is_some_and(|r| !r.is_empty());
        let readable: Vec<bool> = if self.reading() { self.clients.iter().map(|_| it.next().is_some_and(|r| !r.is_empty())).collect() } else { Vec::new() };
        if writable {
            let pending = std::mem::take(&mut self.pending);
            self.feed(&pending);
        }
        let mut hung_up = false;
        for (i, ready) in readable.into_iter().enumerate().rev() {
            if !ready || self.pipe.is_none() {
                continue;
            }
            match self.clients[i].read(buf) {
                Ok(0) => {
                    self.clients.swap_remove(i);
                    hung_up = true;
                }
                Ok(n) => self.feed(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.clients.swap_remove(i);
                    hung_up = true;
                }
            }
        }
        if hung_up && self.once {
            // stdinOnce: the first session is over, the container reads end-of-file
            self.close();
        }
        if accept {
            if let Some(l) = &self.listener {
                while self.clients.len() < MAX_CLIENTS {
                    match l.accept() {
                        Ok((c, _)) => {
                            let _ = c.set_nonblocking(true);
                            self.clients.push(c);
                        }
                        Err(_) => break,
                    }
                }
            }
        }
    }

    /// Writes `data` into the pipe as far as it takes it; the rest waits in `pending`.
    fn feed(&mut self, mut data: &[u8]) {
        let Some(pipe) = self.pipe.as_mut() else { return };
        if !self.pending.is_empty() {
            // behind what waits already: keep the order
            self.pending.extend_from_slice(data);
            return;
        }
        while !data.is_empty() {
            match pipe.write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.pending.extend_from_slice(data);
                    return;
                }
                Err(_) => {
                    // the container closed its stdin (or is gone): nobody will read again
                    self.close();
                    return;
                }
            }
        }
    }

    /// Closes the container's stdin for good: no more clients, no socket.
    pub fn close(&mut self) {
        self.pipe = None;
        self.pending.clear();
        self.clients.clear();
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for StdinRelay {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{poll, PollTimeout};
    use std::io::Read;

    /// Runs one poll round of the relay.
    fn round(relay: &mut StdinRelay, buf: &mut [u8]) {
        let revents: Vec<PollFlags> = {
            let mut fds = Vec::new();
            relay.interest(&mut fds);
            if fds.is_empty() {
                return;
            }
            poll(&mut fds, PollTimeout::from(200u16)).expect("poll");
            fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect()
        };
        relay.handle(&revents, buf);
    }

    fn read_some(r: &mut std::fs::File) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        let n = r.read(&mut out).expect("read pipe");
        out.truncate(n);
        out
    }

    #[test]
    fn client_bytes_reach_the_pipe_and_stdin_once_closes_it() {
        let dir = tempfile::tempdir().expect("tmp");
        // a directory deeper than a socket address can name: the /proc/self/fd path still fits
        let deep = dir.path().join("d".repeat(100)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).expect("mkdir");
        let (mut relay, read) = StdinRelay::bind(&deep, crate::STDIN_SOCKET, true).expect("bind");
        let mut read = std::fs::File::from(read);
        let mut buf = vec![0u8; 1024];
        let dir_fd = std::fs::File::open(&deep).expect("open dir");
        let mut c = UnixStream::connect(short_socket_path(&dir_fd, crate::STDIN_SOCKET)).expect("connect");
        round(&mut relay, &mut buf); // accept
        c.write_all(b"hello\n").expect("write");
        round(&mut relay, &mut buf);
        assert_eq!(read_some(&mut read), b"hello\n");
        drop(c);
        round(&mut relay, &mut buf);
        assert_eq!(read_some(&mut read), b"", "stdinOnce: end-of-file after the first client hangs up");
        assert!(!deep.join(crate::STDIN_SOCKET).exists(), "socket removed once stdin is closed");
    }

    #[test]
    fn without_stdin_once_the_next_client_gets_in() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut relay, read) = StdinRelay::bind(dir.path(), "s.sock", false).expect("bind");
        let mut read = std::fs::File::from(read);
        let mut buf = vec![0u8; 1024];
        for word in [&b"one"[..], b"two"] {
            let mut c = UnixStream::connect(dir.path().join("s.sock")).expect("connect");
            round(&mut relay, &mut buf);
            c.write_all(word).expect("write");
            round(&mut relay, &mut buf);
            assert_eq!(read_some(&mut read), word);
            drop(c);
            round(&mut relay, &mut buf);
        }
        assert!(dir.path().join("s.sock").exists());
    }

    #[test]
    fn a_full_pipe_holds_the_rest_until_the_container_reads() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut relay, read) = StdinRelay::bind(dir.path(), "s.sock", false).expect("bind");
        let mut read = std::fs::File::from(read);
        let mut buf = vec![0u8; 64 * 1024];
        let mut c = UnixStream::connect(dir.path().join("s.sock")).expect("connect");
        round(&mut relay, &mut buf);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let writer = std::thread::spawn(move || {
            c.write_all(&data).expect("write");
            data
        });
        let mut got = Vec::new();
        while got.len() < 300_000 {
            round(&mut relay, &mut buf);
            let mut chunk = vec![0u8; 32 * 1024];
            // the pipe has data whenever the relay wrote some; non-blocking read to avoid a stall
            let _ = fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
            if let Ok(n) = read.read(&mut chunk) {
                got.extend_from_slice(&chunk[..n]);
            }
        }
        assert_eq!(got, writer.join().expect("writer"), "every byte, in order");
    }
}
