//! `adaptctl profile`: sample a running process and rank its functions.

use adapt_abi as abi;
use adapt_client::{Device, SamplingEvent};
use adapt_ops::collect;
use adapt_ops::library_index::LibraryIndex;
use adapt_profile::{flamegraph, Profile};
use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Process to profile (all its threads, including ones it starts later).
    #[arg(long)]
    pid: u32,

    /// How long to sample, e.g. `5s`, `500ms`, `1m`. Profiling also ends when
    /// the process exits.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Samples per second on each CPU the process runs on
    /// (10..=10000; default 1000).
    #[arg(long, default_value_t = abi::ADAPT_PROFILE_FREQ_DEFAULT)]
    freq: u32,

    /// Show only the N hottest functions (the JSON document has them all).
    #[arg(long, default_value_t = 15)]
    top: usize,

    /// Use the software cpu-clock event even if a sampling PMU is present.
    #[arg(long)]
    software: bool,

    /// Optimization library to match functions against (default: the
    /// library found next to adaptctl, or $ADAPT_LIBRARY).
    #[arg(long, value_name = "DIR")]
    library: Option<PathBuf>,

    /// Also write a flame graph of the samples to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    flamegraph: Option<PathBuf>,

    /// Then count the calls of the N hottest functions the library covers
    /// (default 3) during a second window of the same length: calls per
    /// second and time per call (samples × period ÷ calls, with a 95%
    /// interval). Injects a counting segment at each (see `adaptctl
    /// calls`) and reverts it afterwards. Needs root.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "3")]
    calls: Option<usize>,

    /// Print a JSON document instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The `--json` document (stable: fields are only ever added).
#[derive(Debug, Serialize)]
struct Report {
    pid: u32,
    command: String,
    event: SamplingEvent,
    freq_hz: u32,
    duration_s: f64,
    effective_rate_hz: f64,
    recorded_samples: u64,
    dropped_samples: u64,
    target_exited: bool,
    library: Option<PathBuf>,
    #[serde(flatten)]
    profile: Profile,
    /// With --calls: the counted window's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    calls: Option<Vec<adapt_ops::calls::CallRate>>,
}

pub(crate) fn run(device: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let device = Device::open(device)?;
    let library = LibraryIndex::load(args.library.as_deref())?;
    for problem in &library.unreadable {
        eprintln!("adaptctl: warning: skipping library segment {problem}");
    }
    let command = adapt_ops::auto::processes::command_of(args.pid);
    let collected = collect::collect(
        &device,
        &collect::Sampling {
            pid: args.pid,
            freq: args.freq,
            software: args.software,
            duration: args.duration,
            library: &library,
            stop: None,
        },
    )?;
    let elapsed = collected.elapsed.as_secs_f64();
    let profile = collected.profile;
    let calls = match args.calls {
        Some(n) if !collected.target_exited => {
            let covered: Vec<(String, String)> = profile
                .functions
                .iter()
                .filter(|f| f.segment.is_some())
                .take(n)
                .map(|f| (f.function.clone(), f.object.clone()))
                .collect();
            let sampling = collect::Sampling {
                pid: args.pid,
                freq: args.freq,
                software: args.software,
                duration: args.duration,
                library: &library,
                stop: None,
            };
            let mut timings = adapt_ops::timings::Timings::start(false);
            Some(adapt_ops::calls::rates(
                &device,
                &sampling,
                &covered,
                &mut timings,
            )?)
        }
        _ => None,
    };
    let report = Report {
        pid: args.pid,
        command,
        event: collected.event,
        freq_hz: collected.freq_hz,
        duration_s: elapsed,
        effective_rate_hz: if elapsed > 0.0 {
            profile.total_samples as f64 / elapsed
        } else {
            0.0
        },
        recorded_samples: collected.recorded,
        dropped_samples: collected.dropped,
        target_exited: collected.target_exited,
        library: library.dir.clone(),
        profile,
        calls,
    };

    if let Some(path) = &args.flamegraph {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let title = format!("adapt profile of pid {} ({})", report.pid, report.command);
        flamegraph::write_svg(&report.profile, &title, std::io::BufWriter::new(file)).map_err(
            |err| anyhow::anyhow!("cannot write the flame graph {}: {err}", path.display()),
        )?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, args.top));
        if let Some(path) = &args.flamegraph {
            println!("flame graph written to {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render(r: &Report, top: usize) -> String {
    let mut out = format!(
        "pid {} ({}): {:.2} s of {} sampling at {} Hz: {} samples ({:.0}/s), {} dropped, {} thread(s){}\n",
        r.pid,
        r.command,
        r.duration_s,
        r.event.name(),
        r.freq_hz,
        r.profile.total_samples,
        r.effective_rate_hz,
        r.dropped_samples,
        r.profile.threads,
        if r.target_exited { ", target exited" } else { "" },
    );
    if r.profile.functions.is_empty() {
        out.push_str("no samples: the process did not run on a CPU while it was sampled\n");
        return out;
    }
    let width = r
        .profile
        .functions
        .iter()
        .take(top)
        .map(|f| f.function.len())
        .max()
        .unwrap_or(8)
        .clamp(8, 48);
    out.push_str(&format!(
        "{:>4}  {:>6}  {:>8}  {:<width$}  {:<10}  {}\n",
        "rank", "share", "samples", "function", "segment", "object"
    ));
    for f in r.profile.functions.iter().take(top) {
        out.push_str(&format!(
            "{:>4}  {:>5.1}%  {:>8}  {:<width$}  {:<10}  {}\n",
            f.rank,
            f.share * 100.0,
            f.samples,
            f.function,
            f.segment.as_deref().unwrap_or("-"),
            f.object,
        ));
    }
    if r.profile.functions.len() > top {
        out.push_str(&format!(
            "({} more; --top N or --json to see them)\n",
            r.profile.functions.len() - top
        ));
    }
    if let Some(calls) = &r.calls {
        out.push_str(&render_calls(calls));
    }
    out
}

fn render_calls(calls: &[adapt_ops::calls::CallRate]) -> String {
    if calls.is_empty() {
        return "calls: no function the library covers was sampled\n".to_owned();
    }
    let mut out = format!(
        "calls, counted in a second window:\n{:>14}  {:>12}  {:<26}  function\n",
        "calls/s", "ns/call", "95% interval"
    );
    for c in calls {
        match (
            &c.error,
            c.ns_per_call,
            c.ns_per_call_low,
            c.ns_per_call_high,
        ) {
            (Some(err), ..) => out.push_str(&format!(
                "{:>14}  {:>12}  {:<26}  {} ({err})\n",
                "-", "-", "-", c.function
            )),
            (None, Some(ns), Some(lo), Some(hi)) => out.push_str(&format!(
                "{:>14.0}  {ns:>12.1}  {:<26}  {}\n",
                c.calls_per_second,
                format!("{lo:.1}–{hi:.1}"),
                c.function
            )),
            _ => out.push_str(&format!(
                "{:>14.0}  {:>12}  {:<26}  {}\n",
                c.calls_per_second, "-", "(no samples or calls)", c.function
            )),
        }
    }
    out
}
