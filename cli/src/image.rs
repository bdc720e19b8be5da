//! `rkube image ...`: the node's image store from the command line.

#[derive(clap::Subcommand)]
pub enum Command {
    /// List images in the store
    Ls,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Ls => anyhow::bail!("rkube image ls is not built yet"),
    }
}
