//! `cargo vm exec`.

use std::process::ExitCode;

use anyhow::Result;

use super::guest_args::GuestArgs;
use super::report;
use crate::guest::DEFAULT_TIMEOUT;
use crate::kernel::Flavor;
use crate::pipeline;

/// Build as needed, boot a fresh guest and run one command in it as root.
///
/// The command's output (stdout and stderr, one serial port) streams to
/// stdout; the runner's own messages go to stderr. The exit status is the
/// command's, except: 101 when the kernel console shows a WARN, BUG, oops,
/// panic, lockdep report, Rust panic, UBSAN/KASAN report or kmemleak leak;
/// 124 when the guest hit its timeout; 125 when the guest ended without
/// reporting a status (it crashed, or `insmod adapt.ko` failed); 1 when the
/// runner itself failed. The console log is kept under target/vm-runs/.
///
/// In the guest: the host's root is read-only, /tmp is a fresh tmpfs, the
/// workspace is at its own path, $ADAPT_KO is the loaded adapt.ko,
/// $ADAPT_WARN_KO a fixture module that WARNs on load, $ADAPT_RUN_DIR a
/// writable directory kept after the run, and target/release (the release
/// adaptctl and probes) then target/debug first on PATH.
///
/// Example: cargo vm exec -- sh -c 'adaptctl status; ls -l /dev/adapt'
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub guest: GuestArgs,

    /// The command and its arguments (put `--` before it when it has
    /// options of its own).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let artifacts = pipeline::build_all(args.guest.kernel_or(Flavor::Test))?;
    let guest = args.guest.guest(artifacts, Some(DEFAULT_TIMEOUT));
    let out = guest.run(&args.command)?;
    Ok(report::finish(&out))
}
