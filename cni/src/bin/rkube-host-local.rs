//! `rkube-host-local`: the CNI IPAM plugin. Reads the CNI environment and config, prints a result or error JSON.

fn main() {
    std::process::exit(rkube_cni::plugin::run(&rkube_cni::ipam::host_local::HostLocal));
}
