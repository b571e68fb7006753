//! `adaptctl status`.

use adapt_client::{Device, Status};
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print a JSON document instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn run(device: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let device = Device::open(device)?;
    let status = Status::query(&device)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(ExitCode::SUCCESS)
}

fn render(s: &Status) -> String {
    let abi = if s.abi_match { "match" } else { "MISMATCH" };
    format!(
        "module     adapt {} ({})\n\
         ABI        v{} (adaptctl {} speaks v{}: {abi})\n\
         sampling   {}\n",
        s.module_version,
        s.device.display(),
        s.module_abi_version,
        s.adaptctl_version,
        s.adaptctl_abi_version,
        s.sampling.describe(),
    )
}
