//! `cargo vm shell`.

use std::process::ExitCode;

use anyhow::Result;

use super::guest_args::GuestArgs;
use super::report;
use crate::kernel::Flavor;
use crate::pipeline;
use crate::progress::say;

/// Build as needed and boot the same guest as `exec`, with an interactive
/// root shell on this terminal.
///
/// adapt.ko is loaded ($ADAPT_KO), adaptctl is on PATH, the workspace is at
/// its own path. Leave with `exit` or Ctrl-D: the guest powers off and the
/// runner exits with the shell's status (or 101 if the kernel logged a
/// problem). Kernel messages go to the console log, not the terminal: read
/// them with `dmesg` in the guest.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub guest: GuestArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let artifacts = pipeline::build_all(args.guest.kernel_or(Flavor::Test))?;
    let guest = args.guest.guest(artifacts, None);
    say("booting the guest shell (exit or Ctrl-D to leave)");
    let out = guest.shell()?;
    Ok(report::finish(&out))
}
