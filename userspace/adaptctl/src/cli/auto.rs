//! `adaptctl auto`: the adaptive loop. Sample, find hot functions the
//! library covers, inject the best, check that they helped, revert the ones
//! that did not — and log every decision.
//!
//! One round per target process:
//! 1. profile it for one window (`--window`), at the policy's frequency;
//! 2. turn hot functions with a segment into candidates (segment allowed by
//!    the policy, a plan that passes the verifier, the prologue and contract
//!    checks), rank them by expected gain (`adapt_auto::opportunity`);
//! 3. inject the best ones (automatic requests: quarantined variants are
//!    refused by the module, which also enforces enable, limits, targets);
//! 4. profile again and judge each injection (`adapt_auto::verdict`): keep
//!    it, or revert it and say why. Undecided after three windows: revert.
//!
//! Without `--once` it repeats (every process the policy allows with
//! `--all`, newly started ones included) until `--duration` ends or it is
//! stopped (SIGINT/SIGTERM), then reverts every injection it made and kept.
//! With `--once` it does one round and leaves the kept injections in place.

use super::inject_plan::{self, Request};
use super::library_index::LibraryIndex;
use super::timings::Timings;
use adapt_abi as abi;
use adapt_auto::opportunity::Thresholds;
use adapt_auto::verdict::Criterion;
use adapt_auto::{judge, rank, Candidate, DecisionKind, DecisionLog, Verdict, Window};
use adapt_client::inject::{self, InjectRequest};
use adapt_client::{upload, Device, ProfileSession};
use adapt_profile::{Profile, ProfileBuilder, Symbolizer};
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    #[arg(long)]
    no_measure: bool,
}

/// An injection auto made and still has to judge (or has kept).
struct Pending {
    pid: u32,
    command: String,
    id: u64,
    function: String,
    segment: String,
    variant: String,
    /// The mapping name the segment shows up as in profiles.
    mapping: String,
    before: Window,
    windows: u32,
}

pub(crate) fn run(device_path: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let device = super::module_open::open_checked(device_path)?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;

    let library = LibraryIndex::load(args.library.as_deref())?;
    let mut log = DecisionLog::new(std::io::stdout(), args.json);
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let mut kept: Vec<Pending> = Vec::new();
    // (pid, function) pairs already judged not worth it: not retried.
    let mut rejected: HashSet<(u32, String)> = HashSet::new();
    let me = std::process::id();

    loop {
        let policy = inject::get_policy_raw(&device)?;
        let targets = if args.all {
            allowed_processes(&policy, me)
        } else {
            args.pid.clone()
        };
        for pid in targets {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if !policy_allows(&policy, pid) {
                log.record(
                    DecisionKind::Skipped,
                    pid,
                    &command_of(pid),
                    "",
                    "",
                    "",
                    "not a target of the policy (uids, commands, executables): left alone",
                    serde_json::Value::Null,
                );
                continue;
            }
            let already: HashSet<String> = kept
                .iter()
                .filter(|p| p.pid == pid)
                .map(|p| p.function.clone())
                .chain(
                    rejected
                        .iter()
                        .filter(|(p, _)| *p == pid)
                        .map(|(_, f)| f.clone()),
                )
                .collect();
            let judged_before = log.decisions.len();
            let outcome = round(
                &device, args, &policy, &library, pid, &already, &mut log, &stop,
            );
            for d in &log.decisions[judged_before..] {
                if d.kind == DecisionKind::Reverted {
                    rejected.insert((d.pid, d.function.clone()));
                }
            }
            match outcome {
                Ok(mut new_kept) => kept.append(&mut new_kept),
                Err(err) => log.record(
                    DecisionKind::Gone,
                    pid,
                    &command_of(pid),
                    "",
                    "",
                    "",
                    format!("{err:#}"),
                    serde_json::Value::Null,
                ),
            }
        }
        // Forget kept injections whose process went away.
        kept.retain(|p| Path::new(&format!("/proc/{}", p.pid)).exists());
        let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
        if args.once || out_of_time || stop.load(Ordering::Relaxed) {
            break;
        }
        sleep_or_stop(args.window, &stop);
    }

    if !args.once && !args.dry_run {
        for p in kept.drain(..) {
            let reason = match inject::revert(&device, p.id) {
                Ok(_) => "auto stopped: reverted".to_owned(),
                Err(err) => format!("auto stopped; revert failed: {err}"),
            };
            log.record(
                DecisionKind::Reverted,
                p.pid,
                &p.command,
                &p.function,
                &p.segment,
                &p.variant,
                reason,
                json!({"id": p.id}),
            );
        }
    }
    if !args.json {
        summary(&log);
    }
    Ok(ExitCode::SUCCESS)
}

/// One round on one process; returns the injections it kept.
#[allow(clippy::too_many_arguments)]
fn round(
    device: &Device,
    args: &Args,
    policy: &abi::AdaptPolicy,
    library: &LibraryIndex,
    pid: u32,
    already: &HashSet<String>,
    log: &mut DecisionLog<std::io::Stdout>,
    stop: &AtomicBool,
) -> anyhow::Result<Vec<Pending>> {
    let command = command_of(pid);
    let freq = abi::ADAPT_PROFILE_FREQ_DEFAULT.clamp(policy.freq_min_hz, policy.freq_max_hz);
    let margin = f64::from(policy.regression_margin_permille) / 1000.0;
    let allowed_segments: Vec<&str> = policy
        .segments
        .iter()
        .take(policy.nsegments as usize)
        .filter_map(|s| abi::name_str(s))
        .collect();

    let profile = profile_window(device, pid, freq, args.window, library, stop)?;
    let mut candidates = Vec::new();
    // What the measurement said about each original (evidence, the
    // unprivileged uid that ran it), for the decisions below.
    let mut measured_original: std::collections::HashMap<(u32, String), serde_json::Value> =
        Default::default();
    for f in &profile.functions {
        let Some(segment) = &f.segment else { continue };
        if already.contains(&f.function) {
            continue;
        }
        if f.share < args.min_share {
            continue;
        }
        log.record(
            DecisionKind::Opportunity,
            pid,
            &command,
            &f.function,
            segment,
            "",
            format!("{:.1}% of samples ({} of {}) in {}", f.share * 100.0, f.samples, profile.total_samples, f.object),
            json!({"share": f.share, "samples": f.samples, "total": profile.total_samples, "object": f.object}),
        );
        if !allowed_segments.is_empty() && !allowed_segments.contains(&segment.as_str()) {
            log.record(
                DecisionKind::Skipped,
                pid,
                &command,
                &f.function,
                segment,
                "",
                "segment not allowed by the policy",
                serde_json::Value::Null,
            );
            continue;
        }
        let request = Request {
            pid,
            symbol: &f.function,
            object: Some(&f.object),
            segment: Some(segment),
            function: None,
            variant: None,
            assume_contract: None,
            allow_indirect_jumps: false,
            dir: args.library.as_deref().or(library.dir.as_deref()),
        };
        let mut plan = match inject_plan::plan(&request, &mut Timings::start(false)) {
            Ok(plan) => plan,
            Err(err) => {
                log.record(
                    DecisionKind::Skipped,
                    pid,
                    &command,
                    &f.function,
                    segment,
                    "",
                    format!("{err:#}"),
                    serde_json::Value::Null,
                );
                continue;
            }
        };
        // Measure the variants against the original here, on this machine
        // (cached per CPU model and variant): pick the fastest, or nothing.
        let speedup = if args.no_measure {
            None
        } else {
            match super::bench::measure_before_inject(&mut plan, None) {
                Ok(selection) => {
                    measured_original.insert(
                        (pid, f.function.clone()),
                        super::bench::original_summary(&selection),
                    );
                    match &selection.decision.choice {
                        adapt_select::Choice::Variant { speedup, .. } => Some(*speedup),
                        adapt_select::Choice::Nothing { reason } => {
                            log.record(
                                DecisionKind::Skipped,
                                pid,
                                &command,
                                &f.function,
                                segment,
                                "",
                                format!(
                                    "measured on this machine: {reason}; {}",
                                    super::bench::original_sentence(&selection)
                                ),
                                json!({
                                    "decision": selection.decision,
                                    "original": super::bench::original_summary(&selection),
                                }),
                            );
                            continue;
                        }
                        // The original could not run here: judge in the target.
                        adapt_select::Choice::OriginalUnavailable { .. } => None,
                    }
                }
                Err(err) => {
                    log.record(
                        DecisionKind::Skipped,
                        pid,
                        &command,
                        &f.function,
                        segment,
                        "",
                        format!("measurement failed: {err:#}"),
                        serde_json::Value::Null,
                    );
                    continue;
                }
            }
        };
        candidates.push((
            Candidate {
                pid,
                function: f.function.clone(),
                object: f.object.clone(),
                segment: plan.segment.clone(),
                variant: plan.variant.clone(),
                share: f.share,
                samples: f.samples,
                speedup,
            },
            plan,
        ));
    }

    let thresholds = Thresholds {
        min_share: args.min_share,
        min_samples: 20,
        min_speedup: 1.0 + margin,
    };
    let ranked = rank(
        candidates.iter().map(|(c, _)| c.clone()).collect(),
        thresholds,
    );
    let mut pending = Vec::new();
    for opportunity in ranked {
        let c = &opportunity.candidate;
        let Some((_, plan)) = candidates.iter().find(|(k, _)| k.function == c.function) else {
            continue;
        };
        let details = json!({"expected_gain": opportunity.expected_gain, "share": c.share});
        if args.dry_run {
            log.record(
                DecisionKind::WouldInject,
                pid,
                &command,
                &c.function,
                &c.segment,
                &c.variant,
                format!(
                    "expected to save {:.1}% of its CPU time",
                    opportunity.expected_gain * 100.0
                ),
                details,
            );
            continue;
        }
        let variant_id = match upload::ensure_loaded(device, &plan.verified, &plan.variant) {
            Ok(outcome) => outcome.id,
            Err(err) => {
                log.record(
                    DecisionKind::Skipped,
                    pid,
                    &command,
                    &c.function,
                    &c.segment,
                    &c.variant,
                    format!(
                        "loading {}/{} into the module: {err}",
                        plan.segment, plan.variant
                    ),
                    serde_json::Value::Null,
                );
                continue;
            }
        };
        let request = InjectRequest {
            pid,
            target: plan.target.symbol.address,
            variant_id,
            entry: plan.entry,
            contract_hash: plan.contract.hash,
            expected: plan.target.patch.bytes().to_vec(),
            automatic: true,
        };
        match inject::inject(device, &request) {
            Ok(injected) => {
                log.record(
                    DecisionKind::Injected,
                    pid,
                    &command,
                    &c.function,
                    &c.segment,
                    &c.variant,
                    format!(
                        "#{}: expected to save {:.1}%; threads held {}{}",
                        injected.id,
                        opportunity.expected_gain * 100.0,
                        super::list::duration_ns(injected.pause_ns),
                        measured_original
                            .get(&(pid, c.function.clone()))
                            .and_then(|o| o["sentence"].as_str())
                            .map_or(String::new(), |s| format!("; {s}"))
                    ),
                    json!({
                        "id": injected.id,
                        "pause_ns": injected.pause_ns,
                        "expected_gain": opportunity.expected_gain,
                        "original": measured_original.get(&(pid, c.function.clone())),
                    }),
                );
                pending.push(Pending {
                    pid,
                    command: command.clone(),
                    id: injected.id,
                    function: c.function.clone(),
                    segment: c.segment.clone(),
                    variant: c.variant.clone(),
                    mapping: format!("[adapt:{}-{}]", c.segment, c.variant),
                    before: Window {
                        total: profile.total_samples,
                        in_code: c.samples,
                    },
                    windows: 0,
                });
            }
            Err(err) => log.record(
                DecisionKind::Skipped,
                pid,
                &command,
                &c.function,
                &c.segment,
                &c.variant,
                err.to_string(),
                serde_json::Value::Null,
            ),
        }
    }

    // Judge what was injected.
    let criterion = Criterion {
        margin,
        ..Criterion::default()
    };
    let mut kept = Vec::new();
    while !pending.is_empty() {
        let after_profile = match profile_window(device, pid, freq, args.window, library, stop) {
            Ok(p) => p,
            Err(err) => {
                for p in pending.drain(..) {
                    log.record(
                        DecisionKind::Gone,
                        pid,
                        &p.command,
                        &p.function,
                        &p.segment,
                        &p.variant,
                        format!("{err:#}"),
                        json!({"id": p.id}),
                    );
                }
                break;
            }
        };
        let mut still = Vec::new();
        for mut p in pending.drain(..) {
            p.windows += 1;
            let in_segment: u64 = after_profile
                .functions
                .iter()
                .filter(|f| f.function.ends_with(&p.mapping))
                .map(|f| f.samples)
                .sum();
            let after = Window {
                total: after_profile.total_samples,
                in_code: in_segment,
            };
            let verdict = judge(p.before, after, None, criterion);
            let details =
                json!({"id": p.id, "before": p.before, "after": after, "verdict": verdict});
            match verdict.keep() {
                Some(true) => {
                    log.record(
                        DecisionKind::Kept,
                        p.pid,
                        &p.command,
                        &p.function,
                        &p.segment,
                        &p.variant,
                        verdict.reason(),
                        details,
                    );
                    kept.push(p);
                }
                Some(false) => revert_with(device, log, &p, &verdict, details),
                None if p.windows >= 3 || stop.load(Ordering::Relaxed) => {
                    let verdict = Verdict::Undecided {
                        reason: format!(
                            "{} (gave up after {} windows)",
                            verdict.reason(),
                            p.windows
                        ),
                    };
                    revert_with(device, log, &p, &verdict, details);
                }
                None => still.push(p),
            }
        }
        pending = still;
    }
    Ok(kept)
}

fn revert_with(
    device: &Device,
    log: &mut DecisionLog<std::io::Stdout>,
    p: &Pending,
    verdict: &Verdict,
    details: serde_json::Value,
) {
    let reason = match inject::revert(device, p.id) {
        Ok(_) => verdict.reason(),
        Err(err) => format!("{}; revert failed: {err}", verdict.reason()),
    };
    log.record(
        DecisionKind::Reverted,
        p.pid,
        &p.command,
        &p.function,
        &p.segment,
        &p.variant,
        reason,
        details,
    );
}

/// Profiles `pid` for `window`.
fn profile_window(
    device: &Device,
    pid: u32,
    freq: u32,
    window: Duration,
    library: &LibraryIndex,
    stop: &AtomicBool,
) -> anyhow::Result<Profile> {
    let session = ProfileSession::start(device, pid, freq, false)?;
    let mut symbolizer = Symbolizer::new(pid)?;
    let mut builder = ProfileBuilder::default();
    let started = Instant::now();
    loop {
        let batch = session.read(abi::ADAPT_PROFILE_READ_MAX)?;
        for s in &batch.samples {
            let in_kernel = u32::from(s.flags) & abi::ADAPT_SAMPLE_F_KERNEL != 0;
            if !in_kernel && !symbolizer.covers(s.ip) {
                symbolizer.refresh();
            }
            builder.add(symbolizer.locate(s.ip, in_kernel), s.tid, in_kernel);
        }
        if batch.target_exited {
            anyhow::bail!("process {pid} exited");
        }
        if started.elapsed() >= window || stop.load(Ordering::Relaxed) {
            break;
        }
        if batch.samples.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    session.stop()?;
    Ok(builder.finish(|function, _| library.segment_for(function).map(str::to_owned)))
}

fn sleep_or_stop(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn command_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_default()
}

/// User processes the policy allows (uids, command names, executables),
/// other than adaptctl itself, that used CPU recently.
fn allowed_processes(policy: &abi::AdaptPolicy, me: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || pid == 1 {
            continue;
        }
        if policy_allows(policy, pid) && busy(pid) {
            out.push(pid);
        }
    }
    out
}

/// Whether the policy's targets (uids, command names, executables) include
/// process `pid`. Kernel threads (no executable) never are.
fn policy_allows(policy: &abi::AdaptPolicy, pid: u32) -> bool {
    let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
        return false;
    };
    if policy.nexes > 0
        && !policy
            .exes
            .iter()
            .take(policy.nexes as usize)
            .any(|e| abi::name_str(e) == exe.to_str())
    {
        return false;
    }
    let comm = command_of(pid);
    if policy.ncomms > 0
        && !policy
            .comms
            .iter()
            .take(policy.ncomms as usize)
            .any(|c| abi::name_str(c) == Some(comm.as_str()))
    {
        return false;
    }
    if policy.nuids > 0 {
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok())
            });
        if !uid.is_some_and(|u| {
            policy
                .uids
                .iter()
                .take(policy.nuids as usize)
                .any(|&a| a == u)
        }) {
            return false;
        }
    }
    true
}

/// Whether the process used at least a few CPU ticks since it started —
/// idle daemons are not worth a profile.
fn busy(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Fields after the command name (which may contain spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat: 12 and 13 here.
    ticks(11) + ticks(12) >= 10
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
