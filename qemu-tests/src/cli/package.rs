//! `cargo vm package`.

use std::process::ExitCode;

use anyhow::Result;

use crate::package;
use crate::progress::say;
use crate::workspace::Workspace;

/// Build the Debian package `adapt` (target/debian/adapt_VERSION-1_amd64.deb).
///
/// Installs cargo-deb first if it is missing (`cargo install --locked
/// cargo-deb`), builds the release adaptctl and the segment library,
/// verifies the library, generates the man pages and completions, stages
/// the module source for DKMS, and packs everything with `cargo deb`. A
/// second run rebuilds only what changed.
///
/// Contents: /usr/bin/adaptctl; /usr/lib/adapt/library/ (adaptctl's
/// default library); /usr/src/adapt-VERSION/ with dkms.conf (the postinst
/// builds adapt.ko with DKMS for each installed kernel built with
/// CONFIG_RUST=y); adapt-auto.service (not enabled); /etc/adapt/policy.toml
/// (a conffile); adaptctl(8) and a page per subcommand; bash, zsh and fish
/// completions. Install with `apt install ./target/debian/adapt_*.deb`
/// (it depends on dkms).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<ExitCode> {
    let ws = Workspace::locate()?;
    let built = package::build(&ws)?;
    say(format_args!("install: apt install {}", built.deb.display()));
    println!("{}", built.deb.display());
    Ok(ExitCode::SUCCESS)
}
