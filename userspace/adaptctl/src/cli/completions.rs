//! `adaptctl completions SHELL`: the shell completion script, generated from
//! the same clap definitions as the parser (so it never goes stale).

use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Where packages install them (the Debian package does this):
  bash  /usr/share/bash-completion/completions/adaptctl
  zsh   /usr/share/zsh/vendor-completions/_adaptctl
  fish  /usr/share/fish/vendor_completions.d/adaptctl.fish

For your own shell only, e.g.: adaptctl completions bash > ~/.local/share/bash-completion/completions/adaptctl")]
pub(crate) struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    std::io::stdout().write_all(&script(args.shell))?;
    Ok(ExitCode::SUCCESS)
}

/// The script for `shell` (generated in memory: a closed pipe is then an
/// error of the write, not a panic inside the generator).
pub(crate) fn script(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut super::Cli::command(), "adaptctl", &mut out);
    out
}
