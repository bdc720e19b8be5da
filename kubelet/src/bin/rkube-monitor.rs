//! `rkube-monitor`: holds one container's stdio, writes its CRI log and records its exit code, outliving the
//! kubelet. All logic lives in the small `rkube-monitor` crate, so this binary links nothing of the kubelet.

fn main() {
    std::process::exit(rkube_monitor::main());
}
