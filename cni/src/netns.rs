//! Network namespaces named by path (`CNI_NETNS`): opening one, and running a closure inside it, switching the
//! calling thread in and back out around the closure.

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
    #[error("enter network namespace {path}: {source} (CNI_NETNS must name a network namespace, e.g. /var/run/netns/<name> or /proc/<pid>/ns/net)")]
    Enter {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
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

    /// "netns /var/run/netns/x", for messages.
    pub fn describe(&self) -> String {
        format!("netns {}", self.path.display())
    }

    /// The namespace's fd, valid as long as `self` lives (for IFLA_NET_NS_FD).
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `f` inside this namespace and returns to the caller's namespace before returning, even if `f`
    /// panics. The switch is done on the calling thread (two `setns` calls, no thread to schedule): plugins are
    /// single-threaded, so nothing else can observe the thread outside the host namespace. Netlink sockets
    /// opened inside `f` stay bound to this namespace afterwards.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T, NetnsError> {
        let home_path = Path::new("/proc/thread-self/ns/net");
        let home = File::open(home_path).map_err(|source| NetnsError::Open { path: home_path.to_path_buf(), source })?;
        setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter { path: self.path.clone(), source })?;
        let _back = Return(home);
        Ok(f())
    }
}

/// Switches the thread back to the namespace it came from when dropped.
struct Return(File);

impl Drop for Return {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.0, CloneFlags::CLONE_NEWNET) {
            // Going on in the container's namespace would configure the wrong network: stop here.
            eprintln!("rkube-cni: cannot return to the host network namespace: {e}");
            std::process::abort();
        }
    }
}
