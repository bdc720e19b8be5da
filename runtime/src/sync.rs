//! The socketpair between the process that creates a container and the container's init child: short messages,
//! one per step, so neither side ever polls.
//!
//! Child -> parent: `D` setup done, `E<msg>` failed, `U` user namespace made (write id maps), `H` namespaces ready
//! (run prestart/createRuntime hooks). Parent -> child: `G<state json>` go on.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

/// One end of the sync channel.
pub struct Channel(pub OwnedFd);

/// A pair of connected ends (parent, child).
pub fn pair() -> std::io::Result<(Channel, Channel)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn send(&self, kind: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(payload.len() + 1);
        buf.push(kind);
        buf.extend_from_slice(payload);
        send(self.0.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL)?;
        Ok(())
    }

    /// Receives one message; `None` when the other end closed (it exited).
    pub fn recv(&self) -> std::io::Result<Option<(u8, Vec<u8>)>> {
        self.recv_flags(MsgFlags::empty())
    }

    /// The error the other end reported before it went away (an `E` message already queued), if any; does not
    /// block. The creating side asks this whenever talking to the init fails, so the caller sees the init's own
    /// message ("mounts: /proc: ...") and not "write to init: Broken pipe".
    pub fn pending_error(&self) -> Option<String> {
        loop {
            match self.recv_flags(MsgFlags::MSG_DONTWAIT) {
                Ok(Some((b'E', m))) => return Some(String::from_utf8_lossy(&m).into_owned()),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    fn recv_flags(&self, flags: MsgFlags) -> std::io::Result<Option<(u8, Vec<u8>)>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match recv(self.0.as_raw_fd(), &mut buf, flags) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    buf.truncate(n);
                    let kind = buf[0];
                    buf.remove(0);
                    return Ok(Some((kind, buf)));
                }
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
