//! `adaptctl revert --pid P (--id N | --symbol NAME | --all)`: restore the
//! original code of live injections.

use super::module_open::open_checked;
use super::timings::Timings;
use adapt_client::inject::{self, Injection, Reverted};
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

/// Errors of the command itself.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RevertCommandError {
    #[error(
        "injection #{id} is in pid {actual}, not pid {asked}: check the id with `adaptctl list`"
    )]
    OtherProcess { id: u64, asked: u32, actual: u32 },
    #[error(
        "no live injection at {symbol} ({address:#x}) in pid {pid}: see `adaptctl list --pid {pid}`"
    )]
    NotInjected {
        symbol: String,
        address: u64,
        pid: u32,
    },
}

impl RevertCommandError {
    pub(crate) fn kind(&self) -> (&'static str, u8) {
        match self {
            RevertCommandError::OtherProcess { .. } => ("other-process", 1),
            RevertCommandError::NotInjected { .. } => ("no-such-injection", 12),
        }
    }
}

pub(crate) fn run(device_path: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let mut timings = Timings::start(args.timings);
    let device = open_checked(device_path)?;
    timings.mark("open");
    let ids: Vec<u64> = match (args.id, &args.symbol) {
        (Some(id), _) => {
            if let Some(asked) = args.pid {
                let live = inject::list(&device, None)?;
                if let Some(other) = live.iter().find(|i| i.id == id && i.pid != asked) {
                    return Err(RevertCommandError::OtherProcess {
                        id,
                        asked,
                        actual: other.pid,
                    }
                    .into());
                }
            }
            vec![id]
        }
        (None, Some(symbol)) => {
            // Required by clap unless --id is given.
            let pid = args.pid.unwrap_or_default();
            let resolved = adapt_target::resolve_symbol(pid, symbol, args.object.as_deref())?;
            let address = resolved.symbol.address;
            let live = inject::list(&device, Some(pid))?;
            let ids: Vec<u64> = live
                .iter()
                .filter(|i| i.target == address)
                .map(|i| i.id)
                .collect();
            if ids.is_empty() {
                return Err(RevertCommandError::NotInjected {
                    symbol: symbol.clone(),
                    address,
                    pid,
                }
                .into());
            }
            ids
        }
        (None, None) => {
            let pid = args.pid.unwrap_or_default();
            inject::list(&device, Some(pid))?
                .iter()
                .map(|i: &Injection| i.id)
                .collect()
        }
    };

    timings.mark("find");
    let mut reverted = Vec::new();
    for id in ids {
        let r = inject::revert(&device, id)?;
        timings.mark("revert");
        timings.inside("threads held", std::time::Duration::from_nanos(r.pause_ns));
        if !args.json {
            println!(
                "reverted injection #{}: pause {}, rendezvous attempts {}",
                r.id,
                super::list::duration_ns(r.pause_ns),
                r.attempts
            );
        }
        reverted.push(r);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&Report { reverted })?);
    } else if reverted.is_empty() {
        println!("no live injection in pid {}", args.pid.unwrap_or_default());
    }
    timings.mark("report");
    timings.print();
    Ok(ExitCode::SUCCESS)
}
