//! `cargo vm demo`: the adaptive loop on a real program, in a guest.
//!
//! Boots a guest, starts an unmodified python3 whose time goes to the
//! system libz.so.1, shows its throughput, lets `adaptctl auto` find the hot
//! functions, measure the library's variants against them, inject the
//! winners and judge them, shows the new throughput and the speedup, then
//! reverts and shows the throughput back. The guest side is
//! `qemu-tests/demo/demo.sh`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use super::guest_args::GuestArgs;
use super::report;
use crate::kernel::Flavor;
use crate::pipeline;
use crate::progress::say;

/// Run the demonstration.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub guest: GuestArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let artifacts = pipeline::build_all(args.guest.kernel_or(Flavor::Test))?;
    let root = artifacts.workspace_root.clone();
    let guest = args
        .guest
        .guest(artifacts, Some(Duration::from_secs(600)))
        .echo_to_stdout();
    say("demo: booting a guest with adapt.ko loaded (TCG: everything runs emulated, several times slower than native)");
    let script = root.join("qemu-tests/demo/demo.sh");
    let workloads = root.join("qemu-tests/workloads");
    let out = guest.run(&[
        "sh",
        &script.display().to_string(),
        &workloads.display().to_string(),
    ])?;
    Ok(report::finish(&out))
}
