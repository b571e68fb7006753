//! `cargo vm demo`. For now: boot a guest with adapt.ko loaded and show
//! `adaptctl status`. Later issues grow it into the full demonstration
//! (a slow program, adapt finding its hot function, the swap, the speed-up).

use std::process::ExitCode;

use anyhow::Result;

use super::guest_args::GuestArgs;
use super::report;
use crate::guest::DEFAULT_TIMEOUT;
use crate::pipeline;
use crate::progress::say;

/// Build, boot a guest, load adapt.ko and show `adaptctl status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub guest: GuestArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let artifacts = pipeline::build_all()?;
    let guest = args.guest.guest(artifacts, Some(DEFAULT_TIMEOUT));
    say("demo: booting a guest with adapt.ko loaded, running `adaptctl status`");
    let out = guest.run(&["adaptctl", "status"])?;
    Ok(report::finish(&out))
}
