//! `rkube-monitor`: holds one container's stdio, writes its CRI log and records its exit code, outliving the
//! kubelet. All logic lives in `rkube_kubelet::monitor`.

fn main() {
    std::process::exit(rkube_kubelet::monitor::main());
}
