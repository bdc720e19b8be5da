//! `rkube-controllers`: the scheduler and controller manager as a separate process (wired in a later commit).
fn main() {
    eprintln!("rkube-controllers: not wired to an apiserver yet");
    std::process::exit(2);
}
