//! `rkube completion bash|zsh|fish`: the shell completion script for the `rkube` command, generated from its own
//! argument definitions by clap_complete, so it never disagrees with the binary it came from. Like
//! `kubectl completion`: `source <(rkube completion bash)`, or save it where the shell looks
//! (`/etc/bash_completion.d/rkube`, a directory of `$fpath` as `_rkube`, `~/.config/fish/completions/rkube.fish`).

use clap_complete::Shell;

/// The shells a script is made for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Target {
    Bash,
    Zsh,
    Fish,
}

#[derive(clap::Args)]
pub struct Args {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: Target,
}

/// Prints the script for `cmd` (the whole `rkube` command) on stdout.
pub fn run(args: Args, mut cmd: clap::Command) -> anyhow::Result<()> {
    let shell = match args.shell {
        Target::Bash => Shell::Bash,
        Target::Zsh => Shell::Zsh,
        Target::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "rkube", &mut script);
    // written whole: a failed write leaves no half script behind a zero exit
    use std::io::Write;
    std::io::stdout().write_all(&script)?;
    Ok(())
}
