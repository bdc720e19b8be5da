//! Leases on disk: `dataDir/<network>/<ip>` holds `<container id>\r\n<ifname>`, `last_reserved_ip.<set>` the last
//! address handed out per range set, and `lock` is held with an exclusive `flock` for as long as a [`Store`] lives,
//! so ADDs from concurrent processes are serialized.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use fs2::FileExt;

use super::IpamError;

/// One lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: IpAddr,
    pub container_id: String,
    pub ifname: String,
}

/// The lease directory of one network, locked while this value lives.
pub struct Store {
    dir: PathBuf,
    _lock: File,
}

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> IpamError + 'a {
    move |source| IpamError::Io { path: path.to_path_buf(), op, source }
}

impl Store {
    /// Creates `data_dir/network` if needed and takes its lock (blocking until other plugins release it).
    pub fn open(data_dir: &Path, network: &str) -> Result<Store, IpamError> {
        let dir = data_dir.join(network);
        fs::create_dir_all(&dir).map_err(io(&dir, "create lease directory"))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path, "open lock file"))?;
        lock.lock_exclusive().map_err(io(&lock_path, "take lock"))?;
        Ok(Store { dir, _lock: lock })
    }

    fn lease_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    pub fn is_taken(&self, ip: IpAddr) -> bool {
        self.lease_path(ip).exists()
    }

    /// Records `ip` for the attachment; fails if the file appeared meanwhile (it cannot while we hold the lock).
    pub fn reserve(&self, ip: IpAddr, container_id: &str, ifname: &str, set: usize) -> Result<(), IpamError> {
        let path = self.lease_path(ip);
        let mut f = OpenOptions::new().write(true).create_new(true).open(&path).map_err(io(&path, "create lease"))?;
        f.write_all(format!("{container_id}\r\n{ifname}").as_bytes()).map_err(io(&path, "write lease"))?;
        let last = self.dir.join(format!("last_reserved_ip.{set}"));
        fs::write(&last, ip.to_string()).map_err(io(&last, "record last reserved address"))?;
        Ok(())
    }

    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        fs::read_to_string(self.dir.join(format!("last_reserved_ip.{set}"))).ok()?.trim().parse().ok()
    }

    /// Every lease in the directory.
    pub fn leases(&self) -> Result<Vec<Lease>, IpamError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir, "list leases"))? {
            let entry = entry.map_err(io(&self.dir, "list leases"))?;
            let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse::<IpAddr>().ok()) else { continue };
            let path = entry.path();
            let text = match fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path, "read lease")(e)),
            };
            let mut lines = text.split("\r\n").chain(std::iter::once(""));
            let container_id = lines.next().unwrap_or("").trim().to_string();
            let ifname = lines.next().unwrap_or("").trim().to_string();
            out.push(Lease { ip, container_id, ifname });
        }
        Ok(out)
    }

    /// Addresses leased to `container_id`/`ifname`.
    pub fn find(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        Ok(self
            .leases()?
            .into_iter()
            .filter(|l| l.container_id == container_id && l.ifname == ifname)
            .map(|l| l.ip)
            .collect())
    }

    pub fn release(&self, ip: IpAddr) -> Result<(), IpamError> {
        let path = self.lease_path(ip);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, "remove lease")(e)),
        }
    }

    /// Releases every address of `container_id`/`ifname`; releasing none is not an error (DEL is idempotent).
    pub fn release_owner(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        let ips = self.find(container_id, ifname)?;
        for ip in &ips {
            self.release(*ip)?;
        }
        Ok(ips)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{allocate, resolve, IpamError};
    use super::*;
    use std::collections::HashSet;

    fn resolved(dir: &Path, ipam: serde_json::Value) -> super::super::Resolved {
        let mut ipam = ipam;
        ipam["dataDir"] = serde_json::Value::String(dir.display().to_string());
        resolve(&serde_json::json!({"cniVersion":"1.0.0","name":"testnet","type":"rkube-host-local","ipam":ipam})).unwrap()
    }

    #[test]
    fn leases_are_files_in_reference_format() {
        let d = tempfile::tempdir().unwrap();
        let r = resolved(d.path(), serde_json::json!({"subnet":"10.7.0.0/29"}));
        let ips = allocate(&r, "c1", "eth0").unwrap();
        assert_eq!(ips[0].address.to_string(), "10.7.0.2/29");
        assert_eq!(ips[0].gateway.unwrap().to_string(), "10.7.0.1");
        let text = fs::read_to_string(d.path().join("testnet/10.7.0.2")).unwrap();
        assert_eq!(text, "c1\r\neth0");
        // ADD again for the same attachment returns the same address.
        assert_eq!(allocate(&r, "c1", "eth0").unwrap(), ips);
    }

    #[test]
    fn exhaustion_is_reported_and_release_frees() {
        let d = tempfile::tempdir().unwrap();
        // /29: .1 gateway, .2-.6 usable: five leases.
        let r = resolved(d.path(), serde_json::json!({"ranges":[[{"subnet":"10.7.0.0/29"}]]}));
        let mut got = HashSet::new();
        for i in 0..5 {
            got.insert(allocate(&r, &format!("c{i}"), "eth0").unwrap()[0].address.addr());
        }
        assert_eq!(got.len(), 5);
        let e = allocate(&r, "c9", "eth0").unwrap_err();
        assert!(matches!(e, IpamError::Exhausted { .. }), "{e}");
        assert!(e.to_string().contains("10.7.0.0/29"));
        let store = Store::open(d.path(), "testnet").unwrap();
        let freed = store.release_owner("c2", "eth0").unwrap();
        assert_eq!(freed.len(), 1);
        assert!(store.release_owner("c2", "eth0").unwrap().is_empty(), "second release is a no-op");
        drop(store);
        assert_eq!(allocate(&r, "c9", "eth0").unwrap()[0].address.addr(), freed[0]);
    }

    #[test]
    fn dual_stack_gets_one_of_each_and_rolls_back_on_exhaustion() {
        let d = tempfile::tempdir().unwrap();
        let r = resolved(d.path(), serde_json::json!({"ranges":[[{"subnet":"10.7.0.0/29"}],[{"subnet":"fd00:7::/126"}]]}));
        // fd00:7::/126: ::0 network, ::1 gateway, ::2 and ::3 usable.
        let a = allocate(&r, "a", "eth0").unwrap();
        assert_eq!(a.len(), 2);
        assert!(a[1].address.addr().is_ipv6());
        allocate(&r, "b", "eth0").unwrap();
        let e = allocate(&r, "c", "eth0").unwrap_err();
        assert!(matches!(e, IpamError::Exhausted { .. }));
        let store = Store::open(d.path(), "testnet").unwrap();
        assert!(store.find("c", "eth0").unwrap().is_empty(), "the v4 address of a failed ADD is given back");
    }

    #[test]
    fn concurrent_allocations_never_collide() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().to_path_buf();
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let r = resolved(&path, serde_json::json!({"subnet":"10.7.0.0/24"}));
                    allocate(&r, &format!("c{i}"), "eth0").unwrap()[0].address.addr()
                })
            })
            .collect();
        let ips: HashSet<IpAddr> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(ips.len(), 16);
    }
}
