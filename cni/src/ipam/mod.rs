//! IP address management. `host_local` is the allocator behind `rkube-host-local`: address ranges on this host,
//! leases kept as files under a data directory and guarded by a file lock.

pub mod host_local;
