//! `net.ipv4.ip_forward` across the rkube nodes of one host: the first to start records the original, the last
//! `rkube down` puts it back.

use std::path::Path;

use anyhow::Context;

/// Host-wide record of `net.ipv4.ip_forward` as it was before any rkube node ran: the bridge network turns
/// forwarding on, and the last `rkube down` puts the original back. /run is emptied on reboot, as is the
/// sysctl.
const IP_FORWARD_RECORD: &str = "/run/rkube/ip_forward.orig";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Held while the record is read or changed, so a node starting as the last one stops cannot see the record and
/// then lose it (forwarding stayed on with nothing to restore it, under parallel tests and benchmarks).
fn lock_record() -> anyhow::Result<std::fs::File> {
    use fs2::FileExt;
    let lock = Path::new(IP_FORWARD_RECORD).with_extension("lock");
    std::fs::create_dir_all(lock.parent().unwrap_or(Path::new("/"))).with_context(|| format!("create {}", lock.display()))?;
    let f = std::fs::File::options().create(true).truncate(false).write(true).open(&lock).with_context(|| format!("open {}", lock.display()))?;
    f.lock_exclusive().with_context(|| format!("lock {}", lock.display()))?;
    Ok(f)
}

/// Records the current ip_forward unless an earlier rkube already did (then that one is the original).
pub fn record() -> anyhow::Result<()> {
    let _lock = lock_record()?;
    let rec = Path::new(IP_FORWARD_RECORD);
    if rec.exists() {
        return Ok(());
    }
    let now = std::fs::read_to_string(IP_FORWARD).with_context(|| format!("read {IP_FORWARD}"))?;
    std::fs::write(rec, now.trim()).with_context(|| format!("write {}", rec.display()))
}

/// Puts ip_forward back to the recorded original when no other rkube node runs on this host. Returns what
/// it did, for the user.
pub fn restore() -> Option<String> {
    // a node starting now waits, then records the restored value as its original
    let _lock = match lock_record() {
        Ok(l) => l,
        Err(e) => return Some(format!("net.ipv4.ip_forward left as is: {e:#}")),
    };
    let rec = Path::new(IP_FORWARD_RECORD);
    let orig = std::fs::read_to_string(rec).ok()?;
    let others = super::node::other_nodes_running();
    if !others.is_empty() {
        return Some(format!("net.ipv4.ip_forward left as is: other rkube nodes still run here (pids {others:?})"));
    }
    match std::fs::write(IP_FORWARD, orig.trim()) {
        Ok(()) => {
            let _ = std::fs::remove_file(rec);
            Some(format!("net.ipv4.ip_forward restored to {}", orig.trim()))
        }
        Err(e) => Some(format!("could not restore net.ipv4.ip_forward to {}: {e}", orig.trim())),
    }
}
