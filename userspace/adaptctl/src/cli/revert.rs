//! `adaptctl revert --pid P (--id N | --symbol NAME | --all)`: restore the
//! original code of live injections.

use super::render;
use adapt_client::inject::Reverted;
use adapt_client::Device;
use adapt_ops::revert::{self, Which};
use adapt_ops::timings::Timings;
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "symbol", "all"])))]
pub(crate) struct Args {
    /// The process the injections are in (required with --symbol and
    /// --all; with --id it is checked against the injection's).
    #[arg(long, required_unless_present = "id")]
    pid: Option<u32>,

    /// The injection id (from `adaptctl inject` or `adaptctl list`).
    #[arg(long, value_name = "N")]
    id: Option<u64>,

    /// The injection at this function of the process.
    #[arg(long, value_name = "NAME")]
    symbol: Option<String>,

    /// With --symbol: the object to look in (as for `adaptctl inject`).
    #[arg(long, value_name = "PATH|SONAME", requires = "symbol")]
    object: Option<String>,

    /// Every injection into the process.
    #[arg(long)]
    all: bool,

    /// Print a JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    /// Print on stderr where the wall time went: startup, open, find
    /// (which injections), revert (and how long the module held the
    /// target's threads), report.
    #[arg(long)]
    timings: bool,
}

/// The `--json` document (fields are only ever added).
#[derive(Debug, Serialize)]
struct Report {
    reverted: Vec<Reverted>,
}

pub(crate) fn run(device_path: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let mut timings = Timings::start(args.timings);
    let device = Device::open_checked(device_path)?;
    timings.mark("open");
    // clap requires --pid unless --id is given.
    let pid = args.pid.unwrap_or_default();
    let which = match (args.id, &args.symbol) {
        (Some(id), _) => Which::Id { id, pid: args.pid },
        (None, Some(symbol)) => Which::Symbol {
            pid,
            symbol,
            object: args.object.as_deref(),
        },
        (None, None) => Which::All { pid },
    };
    let ids = revert::find(&device, &which)?;
    timings.mark("find");
    let reverted = revert::revert_all(&device, &ids, &mut timings, |r| {
        if !args.json {
            println!(
                "reverted injection #{}: pause {}, rendezvous attempts {}",
                r.id,
                render::duration_ns(r.pause_ns),
                r.attempts
            );
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&Report { reverted })?);
    } else if reverted.is_empty() {
        println!("no live injection in pid {pid}");
    }
    timings.mark("report");
    timings.print();
    Ok(ExitCode::SUCCESS)
}
