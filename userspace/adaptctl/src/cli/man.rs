//! `adaptctl man [--out DIR]`: the manual pages, generated from the clap
//! definitions: adaptctl(8), and with --out one page per subcommand
//! (adaptctl-inject(8), adaptctl-library-load(8), …).

use anyhow::Context;
use clap::CommandFactory;
use clap_mangen::Man;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The manual section: adaptctl is a system administration tool.
pub(crate) const SECTION: &str = "8";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Write every page (adaptctl.8 and adaptctl-SUBCOMMAND.8) into this
    /// directory, creating it, and print their paths; without it, print
    /// adaptctl(8) on stdout (try `adaptctl man | man -l -`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.out {
        None => page(super::Cli::command()).render(&mut std::io::stdout().lock())?,
        Some(dir) => {
            for path in write_all(dir)? {
                println!("{}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn page(cmd: clap::Command) -> Man {
    Man::new(cmd)
        .section(SECTION)
        .source(concat!("adaptctl ", env!("CARGO_PKG_VERSION")))
        .manual("adapt")
}

/// Writes adaptctl's page and one per (nested) subcommand into `dir`;
/// returns their paths, adaptctl.8 first.
pub(crate) fn write_all(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Built, so that each subcommand carries its page name
    // (adaptctl-library-load) as its display name; `help` gets no page.
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    let mut todo = vec![cmd];
    while let Some(cmd) = todo.pop() {
        let mut subs: Vec<_> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .cloned()
            .collect();
        subs.reverse();
        let man = page(cmd);
        let path = dir.join(man.get_filename());
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        man.render(&mut file)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        todo.extend(subs);
    }
    Ok(written)
}
