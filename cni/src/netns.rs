//! Network namespaces named by path (`CNI_NETNS`): opening one, and running a closure inside it on a dedicated
//! thread so the calling thread never leaves the host namespace.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {path} does not exist")]
    Missing { path: PathBuf },
    #[error("open network namespace {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("enter network namespace {path} (is it a network namespace?): {source}")]
    Enter {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("the thread working in network namespace {path} panicked")]
    Panicked { path: PathBuf },
}

/// An open network namespace.
pub struct NetNs {
    path: PathBuf,
    file: File,
}

impl NetNs {
    pub fn open(path: &Path) -> Result<NetNs, NetnsError> {
        match File::open(path) {
            Ok(file) => Ok(NetNs { path: path.to_path_buf(), file }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NetnsError::Missing { path: path.to_path_buf() }),
            Err(source) => Err(NetnsError::Open { path: path.to_path_buf(), source }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// "netns /var/run/netns/x", for messages.
    pub fn describe(&self) -> String {
        format!("netns {}", self.path.display())
    }

    /// The namespace's fd, valid as long as `self` lives (for IFLA_NET_NS_FD).
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `f` on a new thread that has entered this namespace; the thread ends with `f`.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        std::thread::scope(|s| {
            let handle = s.spawn(|| {
                setns(&self.file, CloneFlags::CLONE_NEWNET)
                    .map_err(|source| NetnsError::Enter { path: self.path.clone(), source })?;
                Ok(f())
            });
            handle.join().unwrap_or_else(|_| Err(NetnsError::Panicked { path: self.path.clone() }))
        })
    }
}
