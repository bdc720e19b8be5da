//! This host as the rkube nodes on it share it: which rkube node processes run here (a scan of /proc), whether
//! the rkube holding a data dir still lives, the host's name and primary address, and `net.ipv4.ip_forward`,
//! which the bridge network turns on: the first node to start records the original, the last `rkube down` puts
//! it back ([`IpForward`]).
//!
//! Must not: tear down a node's own objects (that is [`super::teardown`]), or touch cgroups (the runtime's).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What went wrong with the host-wide ip_forward record, on which file.
#[derive(Debug, thiserror::Error)]
pub enum IpForwardError {
    /// The record of the original value (or its lock file) could not be made, locked or written.
    #[error("ip_forward record {path}: {source}")]
    Record {
        /// The record or its lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The sysctl could not be read.
    #[error("read {path}: {source}")]
    Sysctl {
        /// The sysctl's file under /proc/sys.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
}

/// True when `pid` is a live (not zombie) rkube process; a just-killed one gets two seconds to go away.
pub fn rkube_alive(pid: i32) -> bool {
    let check = || {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        matches!(proc_state(pid), Some(c) if c != 'Z' && c != 'X') && String::from_utf8_lossy(&cmd).contains("rkube")
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while check() {
        if Instant::now() > deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Whether `argv` (a /proc cmdline split at NULs) is an `rkube up` or `rkube kubelet`.
fn is_node_command(argv: &[&[u8]]) -> bool {
    let is_rkube = argv.first().is_some_and(|a| a.ends_with(b"/rkube") || *a == b"rkube");
    is_rkube && matches!(argv.get(1), Some(&b"up") | Some(&b"kubelet"))
}

/// Pids of other running `rkube up` / `rkube kubelet` processes on this host.
pub fn other_nodes_running() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            is_node_command(&argv) && proc_state(*pid) != Some('Z')
        })
        .collect()
}

/// The host's primary IPv4 address: the source address of the default route's interface.
pub fn primary_address() -> Option<String> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    let iface = default_route_interface(&routes)?;
    let out = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "dev", &iface]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().skip_while(|w| *w != "inet").nth(1).and_then(|cidr| cidr.split('/').next()).map(str::to_string)
}

/// The interface of the default route in /proc/net/route's text.
fn default_route_interface(routes: &str) -> Option<String> {
    routes
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[1] == "00000000")
        .map(|f| f[0].to_string())
}

/// The host name, lowercased as a node name must be.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_lowercase()).unwrap_or_else(|_| "rkube-node".into())
}

/// `net.ipv4.ip_forward` across the rkube nodes of one host. Paths are fields so tests use a temp dir.
#[derive(Clone, Debug)]
pub struct IpForward {
    /// The original value, as it was before any rkube node ran (`/run/rkube/ip_forward.orig`: /run is emptied on
    /// reboot, as is the sysctl).
    pub record: PathBuf,
    /// The sysctl (`/proc/sys/net/ipv4/ip_forward`).
    pub sysctl: PathBuf,
}

impl IpForward {
    /// The host's record and sysctl.
    pub fn host() -> IpForward {
        IpForward { record: "/run/rkube/ip_forward.orig".into(), sysctl: "/proc/sys/net/ipv4/ip_forward".into() }
    }

    /// Held while the record is read or changed, so a node starting as the last one stops cannot see the record
    /// and then lose it (forwarding stayed on with nothing to restore it, under parallel tests and benchmarks).
    fn lock(&self) -> Result<std::fs::File, IpForwardError> {
        use fs2::FileExt;
        let lock = self.record.with_extension("lock");
        let err = |source| IpForwardError::Record { path: lock.clone(), source };
        std::fs::create_dir_all(lock.parent().unwrap_or(Path::new("/"))).map_err(err)?;
        let f = std::fs::File::options().create(true).truncate(false).write(true).open(&lock).map_err(err)?;
        f.lock_exclusive().map_err(err)?;
        Ok(f)
    }

    /// Records the current value unless an earlier rkube already did (then that one is the original).
    pub fn record(&self) -> Result<(), IpForwardError> {
        let _lock = self.lock()?;
        if self.record.exists() {
            return Ok(());
        }
        let now = std::fs::read_to_string(&self.sysctl).map_err(|source| IpForwardError::Sysctl { path: self.sysctl.clone(), source })?;
        std::fs::write(&self.record, now.trim()).map_err(|source| IpForwardError::Record { path: self.record.clone(), source })
    }

    /// Puts the recorded original back unless another rkube node runs on this host. Returns what it did, for the
    /// user; None when there was nothing recorded.
    pub fn restore(&self) -> Option<String> {
        self.restore_unless_running(other_nodes_running)
    }

    /// [`Self::restore`] with the scan for other nodes given, done under the lock (a node starting now waits,
    /// then records the restored value as its original).
    pub fn restore_unless_running(&self, others: impl FnOnce() -> Vec<i32>) -> Option<String> {
        let _lock = match self.lock() {
            Ok(l) => l,
            Err(e) => return Some(format!("net.ipv4.ip_forward left as is: {e}")),
        };
        let orig = std::fs::read_to_string(&self.record).ok()?;
        let others = others();
        if !others.is_empty() {
            return Some(format!("net.ipv4.ip_forward left as is: other rkube nodes still run here (pids {others:?})"));
        }
        match std::fs::write(&self.sysctl, orig.trim()) {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.record);
                Some(format!("net.ipv4.ip_forward restored to {}", orig.trim()))
            }
            Err(e) => Some(format!("could not restore net.ipv4.ip_forward to {}: {e}", orig.trim())),
        }
    }
}

/// [`IpForward::record`] on the host.
pub fn record_ip_forward() -> Result<(), IpForwardError> {
    IpForward::host().record()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path, value: &str) -> IpForward {
        let f = IpForward { record: dir.join("run/ip_forward.orig"), sysctl: dir.join("ip_forward") };
        std::fs::write(&f.sysctl, value).expect("write sysctl");
        f
    }

    #[test]
    fn the_first_record_is_the_original_and_the_last_node_down_restores_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = fake(dir.path(), "0\n");
        f.record().expect("record");
        std::fs::write(&f.sysctl, "1").expect("the bridge turns it on");
        f.record().expect("a second node records nothing new");
        assert_eq!(std::fs::read_to_string(&f.record).expect("record"), "0");
        let msg = f.restore_unless_running(|| vec![4242]).expect("said");
        assert!(msg.contains("left as is") && msg.contains("4242"), "{msg}");
        assert_eq!(std::fs::read_to_string(&f.sysctl).expect("sysctl"), "1", "another node still forwards");
        assert_eq!(f.restore_unless_running(Vec::new).as_deref(), Some("net.ipv4.ip_forward restored to 0"));
        assert_eq!(std::fs::read_to_string(&f.sysctl).expect("sysctl"), "0");
        assert!(!f.record.exists(), "the record goes with the restore");
        assert_eq!(f.restore_unless_running(Vec::new), None, "nothing recorded: nothing to say");
    }

    #[test]
    fn record_names_the_sysctl_it_cannot_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = IpForward { record: dir.path().join("orig"), sysctl: dir.path().join("missing") };
        let e = f.record().expect_err("no sysctl").to_string();
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn node_commands_and_the_default_route_are_recognised() {
        assert!(is_node_command(&[b"/usr/local/bin/rkube", b"up", b"--data-dir"]));
        assert!(is_node_command(&[b"rkube", b"kubelet"]));
        assert!(!is_node_command(&[b"/usr/bin/rkube", b"down"]));
        assert!(!is_node_command(&[b"/usr/bin/rkube-runtime", b"up"]));
        let routes = "Iface\tDestination\tGateway\nbr0\t0000A8C0\t00000000\neth0\t00000000\t0100A8C0\n";
        assert_eq!(default_route_interface(routes).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface("Iface\tDestination\n"), None);
    }
}
