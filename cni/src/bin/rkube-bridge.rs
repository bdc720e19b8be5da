//! `rkube-bridge`: the CNI bridge plugin. Reads the CNI environment and config, prints a result or error JSON.

fn main() {
    std::process::exit(rkube_cni::plugin::run(&rkube_cni::bridge::Bridge));
}
