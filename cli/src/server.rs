//! `rkube server`: apiserver + scheduler + controllers in one process.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Directory for the embedded store and the admin kubeconfig
    #[arg(long, default_value = "/var/lib/rkube/server")]
    pub data_dir: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::bail!("rkube server is not built yet (data dir {})", args.data_dir.display())
}
