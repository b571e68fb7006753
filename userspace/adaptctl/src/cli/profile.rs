//! `adaptctl profile`: sample a running process and rank its functions.

use super::library_index::LibraryIndex;
use adapt_abi as abi;
use adapt_client::{Device, ProfileSession, SamplingEvent};
use adapt_profile::{flamegraph, Profile, ProfileBuilder, Symbolizer};
use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How often the sample buffers are emptied.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

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
}

pub(crate) fn run(device: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let device = Device::open(device)?;
    let library = LibraryIndex::load(args.library.as_deref())?;
    for problem in &library.unreadable {
        eprintln!("adaptctl: warning: skipping library segment {problem}");
    }
    let command = std::fs::read_to_string(format!("/proc/{}/comm", args.pid))
        .map(|c| c.trim().to_owned())
        .unwrap_or_default();
    // Start first: the module's checks give the precise error for a bad pid.
    let session = ProfileSession::start(&device, args.pid, args.freq, args.software)?;
    let mut symbolizer = Symbolizer::new(args.pid).with_context(|| {
        format!(
            "cannot read the mappings of pid {} (/proc/{}/maps)",
            args.pid, args.pid
        )
    })?;
    let started = Instant::now();
    let mut builder = ProfileBuilder::default();
    let (mut recorded, mut dropped): (u64, u64);
    let mut exited = false;
    loop {
        let deadline_passed = started.elapsed() >= args.duration;
        // Drain everything that is waiting.
        loop {
            let batch = session.read(abi::ADAPT_PROFILE_READ_MAX)?;
            recorded = batch.recorded;
            dropped = batch.dropped;
            exited |= batch.target_exited;
            for sample in &batch.samples {
                let in_kernel = u32::from(sample.flags) & abi::ADAPT_SAMPLE_F_KERNEL != 0;
                if !in_kernel && !symbolizer.covers(sample.ip) {
                    // A library loaded or a segment mapped since the last look.
                    symbolizer.refresh();
                }
                builder.add(
                    symbolizer.locate(sample.ip, in_kernel),
                    sample.tid,
                    in_kernel,
                );
            }
            if batch.samples.is_empty() || exited {
                break;
            }
        }
        if exited || deadline_passed {
            break;
        }
        std::thread::sleep(POLL_INTERVAL.min(args.duration.saturating_sub(started.elapsed())));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let event = session.event();
    let freq_hz = session.freq_hz();
    session.stop()?;

    let profile = builder.finish(|function, _| library.segment_for(function).map(str::to_owned));
    let report = Report {
        pid: args.pid,
        command,
        event,
        freq_hz,
        duration_s: elapsed,
        effective_rate_hz: if elapsed > 0.0 {
            profile.total_samples as f64 / elapsed
        } else {
            0.0
        },
        recorded_samples: recorded,
        dropped_samples: dropped,
        target_exited: exited,
        library: library.dir.clone(),
        profile,
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
    out
}
