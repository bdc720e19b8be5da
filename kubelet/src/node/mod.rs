//! This node in the API: the Node object (capacity, addresses, nodeInfo, conditions, images), its Lease in
//! kube-node-lease, both kept fresh every 10 s; node-pressure eviction.

pub mod eviction;
pub mod lease;
pub mod machine;
pub mod register;
pub mod routes;
pub mod status;
