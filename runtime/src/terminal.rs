//! `process.terminal`: a pty made inside the container (from its own devpts), whose master is handed to the
//! caller over `--console-socket` (SCM_RIGHTS, as runc does), and whose slave becomes the process's stdio and
//! controlling terminal.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

/// Errors making the terminal, naming the step.
#[derive(Debug, thiserror::Error)]
#[error("process.terminal: {what}: {reason}")]
pub struct TerminalError {
    pub what: &'static str,
    pub reason: String,
}

fn terr(what: &'static str) -> impl Fn(nix::Error) -> TerminalError {
    move |e| TerminalError { what, reason: e.to_string() }
}

/// Makes the pty, sends the master over `socket`, and makes the slave our stdio and controlling terminal.
pub fn setup(socket: RawFd, size: Option<(u16, u16)>) -> Result<(), TerminalError> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).map_err(terr("open /dev/ptmx"))?;
    grantpt(&master).map_err(terr("grantpt"))?;
    unlockpt(&master).map_err(terr("unlockpt"))?;
    let name = ptsname_r(&master).map_err(terr("ptsname"))?;
    let slave: OwnedFd = nix::fcntl::open(name.as_str(), OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .map_err(terr("open pty slave"))?;
    if let Some((rows, cols)) = size {
        crate::sys::set_winsize(slave.as_raw_fd(), rows, cols).map_err(|e| TerminalError { what: "set console size", reason: e.to_string() })?;
    }
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::empty(), None).map_err(terr("send pty master over --console-socket"))?;
    drop(master);
    nix::unistd::setsid().map_err(terr("setsid"))?;
    crate::sys::set_controlling_tty(slave.as_raw_fd()).map_err(|e| TerminalError { what: "TIOCSCTTY", reason: e.to_string() })?;
    nix::unistd::dup2_stdin(&slave).map_err(terr("dup pty onto stdin"))?;
    nix::unistd::dup2_stdout(&slave).map_err(terr("dup pty onto stdout"))?;
    nix::unistd::dup2_stderr(&slave).map_err(terr("dup pty onto stderr"))?;
    Ok(())
}
