//! `rkube`: the one user-facing command.
fn main() {
    eprintln!("rkube: no subcommands yet");
    std::process::exit(2);
}
