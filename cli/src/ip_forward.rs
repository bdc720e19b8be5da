//! `net.ipv4.ip_forward` across the rkube nodes of one host: recorded by the first node to start, restored by
//! the last `rkube down` (`rkube_kubelet::node::host::IpForward`, which owns it).

/// Records the host's ip_forward unless an earlier rkube node already did.
pub fn record() -> Result<(), rkube_kubelet::node::host::IpForwardError> {
    rkube_kubelet::node::host::record_ip_forward()
}
