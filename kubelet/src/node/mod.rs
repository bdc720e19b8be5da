//! This node in the API: the Node object (capacity, addresses, nodeInfo, conditions, images), its Lease in
//! kube-node-lease, both kept fresh every 10 s; node-pressure eviction. On the host: what the rkube nodes of one
//! host share (process scans, ip_forward) in [`host`], a node process's claim on its data dir (`rkube.pid`) in
//! [`data_dir`], and taking a node off the host (`rkube down`) in [`teardown`].

pub mod data_dir;
pub mod certs;
pub mod eviction;
pub mod host;
pub mod lease;
pub mod machine;
pub mod register;
pub mod routes;
pub mod status;
pub mod teardown;
pub mod vxlan;
