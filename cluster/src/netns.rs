//! What a node agent (`rkube kubelet --netns NAME`, `rkube down --netns NAME`) calls first, while it is still
//! single-threaded: join the node's network namespace, and give itself a mount namespace in which sysfs's
//! network view (`/sys/class/net`, `/sys/devices/virtual/net`) is that namespace's, not the host's.
//!
//! Why not `ip netns exec`: it remounts all of /sys, which hides the cgroup hierarchies under /sys/fs/cgroup
//! the node needs, and makes every mount a slave, so the pods' root filesystems the node mounts would never be
//! the host's. Here only the two network directories are replaced; the rest of the mount tree is the host's
//! copy, and the cluster's data dir, a shared mount (see [`crate::ops`]), stays in the host's peer group, so
//! mounts under it appear on the host and `rkube cluster down` finds them.
//!
//! Why sysfs at all: the CNI plugins the node runs read bridges and ports through `/sys/class/net`, which
//! shows the namespace of whoever mounted sysfs, not of the reader.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::{ClusterError, Result};

const NONE: Option<&str> = None;

/// Joins network namespace `name` (`/run/netns/<name>`) and remounts sysfs's network view for it. Call it
/// before any thread is started.
pub fn enter(name: &str) -> Result<()> {
    let err = |op: &'static str| move |source: nix::Error| ClusterError::Netns { name: name.to_string(), op, source };
    let path = Path::new("/run/netns").join(name);
    let f = File::open(&path).map_err(crate::io_err("open network namespace", &path))?;
    setns(&f, CloneFlags::CLONE_NEWNET).map_err(err("setns"))?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(err("unshare the mount namespace"))?;
    // nothing under /sys propagates back to the host from here on
    mount(NONE, "/sys", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE).map_err(err("make /sys private"))?;
    let tmp = PathBuf::from(format!("/run/rkube/sysfs-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(crate::io_err("create a sysfs mount point", &tmp))?;
    let result = (|| {
        // a private mount point of our own, so the sysfs mounted on it is not seen anywhere else
        mount(Some(&tmp), &tmp, NONE, MsFlags::MS_BIND, NONE).map_err(err("bind the sysfs mount point"))?;
        mount(NONE, &tmp, NONE, MsFlags::MS_PRIVATE, NONE).map_err(err("make the sysfs mount point private"))?;
        mount(Some("sysfs"), &tmp, Some("sysfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, NONE).map_err(err("mount sysfs"))?;
        for sub in ["class/net", "devices/virtual/net"] {
            mount(Some(&tmp.join(sub)), &Path::new("/sys").join(sub), NONE, MsFlags::MS_BIND, NONE).map_err(err("bind the namespace's sysfs network view"))?;
        }
        Ok(())
    })();
    let _ = umount2(&tmp, MntFlags::MNT_DETACH);
    let _ = umount2(&tmp, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(&tmp);
    result
}
