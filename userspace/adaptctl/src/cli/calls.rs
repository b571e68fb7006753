//! `adaptctl calls --pid P --symbol NAME [--arg N] [--duration 5s]`: count
//! a function's calls (and one argument's histogram) in a running process.

use super::render;
use adapt_client::Device;
use adapt_ops::calls;
use adapt_ops::timings::Timings;
use adapt_target::CheckOptions;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The process to count in.
    #[arg(long)]
    pid: u32,

    /// The function to count (resolved as for `adaptctl inject`).
    #[arg(long, value_name = "NAME")]
    symbol: String,

    /// The object to look in (path or soname), when the name is ambiguous.
    #[arg(long, value_name = "PATH|SONAME")]
    object: Option<String>,

    /// Also take the log2 histogram of integer argument N: the N-th
    /// integer or pointer argument, 0-based (0 is rdi, 5 is r9;
    /// floating-point arguments travel elsewhere and are not counted),
    /// e.g. `--arg 2` for the length of `crc32_z(crc, buf, len)`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=5))]
    arg: Option<u8>,

    /// How long to count.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Accept an entry whose function contains indirect jumps (as for
    /// `adaptctl inject`).
    #[arg(long)]
    allow_indirect_jumps: bool,

    /// Print a JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    /// Print on stderr where the wall time went.
    #[arg(long)]
    timings: bool,
}

pub(crate) fn run(device_path: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let mut timings = Timings::start(args.timings);
    let device = Device::open_checked(device_path)?;
    timings.mark("open");
    let stop = super::signals::stop_flag()?;
    let options = CheckOptions {
        allow_indirect_jumps: args.allow_indirect_jumps,
    };
    let plan = calls::plan(
        args.pid,
        &args.symbol,
        args.object.as_deref(),
        args.arg,
        options,
        &mut timings,
    )
    .map_err(|e| adapt_ops::inject::explain_modified(Some(&device), args.pid, e))?;
    let report = calls::run(&device, &plan, args.arg, args.duration, &stop, &mut timings)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    timings.mark("report");
    timings.print();
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &calls::Report) {
    println!(
        "{} at {:#x} in pid {} ({}): {} calls in {:.2} s, {:.0} calls/s",
        r.symbol, r.address, r.pid, r.object, r.calls, r.seconds, r.calls_per_second
    );
    println!(
        "  counted by injection #{} (reverted); threads held {} to inject, {} to revert",
        r.injection,
        render::duration_ns(r.inject_pause_ns),
        render::duration_ns(r.revert_pause_ns)
    );
    let Some(arg) = r.arg else { return };
    println!("  argument {arg} (log2 buckets):");
    let widest = r
        .histogram
        .iter()
        .map(|b| b.calls)
        .max()
        .unwrap_or(0)
        .max(1);
    for b in &r.histogram {
        let range = if b.from == b.to {
            format!("{}", b.from)
        } else {
            format!("{}..={}", b.from, b.to)
        };
        let share = 100.0 * b.calls as f64 / r.calls.max(1) as f64;
        let bar = "#".repeat(((b.calls as f64 / widest as f64) * 40.0).round() as usize);
        println!("  {range:>24} {:>12} {share:5.1}% {bar}", b.calls);
    }
}
