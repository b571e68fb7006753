//! `adaptctl auto`: the adaptive loop of `adapt_ops::auto` (read its
//! documentation for the rounds), with every decision printed as it is
//! made, a summary at the end, and SIGINT/SIGTERM ending it cleanly.

use adapt_auto::{DecisionKind, DecisionLog};
use adapt_client::Device;
use adapt_ops::auto::{self, Options};
use adapt_ops::timings::Timings;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Process to watch (repeat for several).
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    pid: Vec<u32>,

    /// Watch every process the policy allows, including ones that start
    /// later.
    #[arg(long)]
    all: bool,

    /// Stop after this long (e.g. `2m`); default: run until stopped, or one
    /// round with --once.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,

    /// One round: profile, inject, judge, then exit leaving kept injections.
    #[arg(long)]
    once: bool,

    /// Say what would be injected; change nothing.
    #[arg(long)]
    dry_run: bool,

    /// One JSON document per decision (JSON lines) instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    /// Sampling window for each profile and each verdict.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    window: Duration,

    /// Smallest share of a process's samples worth an injection.
    #[arg(long, default_value_t = 0.05)]
    min_share: f64,

    /// Optimization library (default: the one next to adaptctl).
    #[arg(long, value_name = "DIR")]
    library: Option<PathBuf>,

    /// Do not measure the variants against the original on this machine
    /// before injecting (as `adaptctl bench` does): inject the best variant
    /// the CPU supports and let the verdict after injection decide.
    #[arg(long, env = "ADAPT_NO_MEASURE", value_parser = clap::builder::FalseyValueParser::new())]
    no_measure: bool,

    /// Print on stderr where the wall time went: startup, open, then for
    /// the first round profile, plan, measure, upload, inject (and how long
    /// the module held the target's threads) and judge; a per-call trial
    /// adds each counting window and the revert after it.
    #[arg(long)]
    timings: bool,
}

pub(crate) fn run(device_path: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let mut timings = Timings::start(args.timings);
    let device = Device::open_checked(device_path)?;
    timings.mark("open");
    let stop = super::signals::stop_flag()?;
    let options = Options {
        pids: args.pid.clone(),
        all: args.all,
        duration: args.duration,
        once: args.once,
        dry_run: args.dry_run,
        window: args.window,
        min_share: args.min_share,
        library: args.library.clone(),
        no_measure: args.no_measure,
    };
    let mut log = DecisionLog::new(std::io::stdout(), args.json);
    auto::run(&device, &options, &mut log, &stop, &mut timings)?;
    if !args.json {
        summary(&log);
    }
    timings.print();
    Ok(ExitCode::SUCCESS)
}

fn summary(log: &DecisionLog<std::io::Stdout>) {
    let count = |k: DecisionKind| log.decisions.iter().filter(|d| d.kind == k).count();
    println!(
        "auto: {} opportunities, {} injected, {} kept, {} reverted, {} skipped",
        count(DecisionKind::Opportunity),
        count(DecisionKind::Injected) + count(DecisionKind::WouldInject),
        count(DecisionKind::Kept),
        count(DecisionKind::Reverted),
        count(DecisionKind::Skipped)
    );
}
