//! This node in the API: the Node object (capacity, addresses, nodeInfo, conditions, images), its Lease in
//! kube-node-lease, both kept fresh every 10 s; node-pressure eviction. On the host: what the rkube nodes of one
//! host share (process scans, ip_forward) in [`host`], a node process's claim on its data dir (`rkube.pid`) in
//! [`data_dir`], and taking a node off the host (`rkube down`) in [`teardown`].
//!
//! What lives where: [`machine`] reads the machine's figures, [`status`] turns them into the Node's status
//! (pure), [`register`] creates the Node and writes that status, [`lease`] renews the Lease; [`eviction`] decides
//! pressure and which pod goes (pure, but for reading usage); [`certs`] keeps the node's client certificate and
//! (in [`certs::serving`]) its serving certificate renewed through CertificateSigningRequests; the pod network
//! between nodes is [`routes`] (host-gw: a route per peer) or [`vxlan`] (a VXLAN device with its routes,
//! neighbours and fdb entries), each a pure plan and a reconciler.

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
