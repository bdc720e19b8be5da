//! `rkube-runtime`: a runc-compatible CLI over the rkube_runtime library. Single-threaded by construction, so it
//! forks the container's init directly (no re-exec hop).

mod cli;

fn main() {
    rkube_runtime::init::run_if_init();
    std::process::exit(cli::main());
}
