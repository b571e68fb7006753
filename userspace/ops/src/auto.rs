//! The adaptive loop (`adaptctl auto`). Sample, find hot functions the
//! library covers, inject the best, check that they helped, revert the ones
//! that did not — and log every decision.
//!
//! One round per target process:
//! 1. profile it for one window (`--window`), at the policy's frequency;
//! 2. turn hot functions with a segment into candidates (segment allowed by
//!    the policy, exact numerics unless it sets `allow_float_reassociate`,
//!    a plan that passes the verifier, the prologue and contract
//!    checks), count for a moment the sizes each is called with (the log2
//!    histogram of its length argument) and measure the variants against
//!    the original at those sizes, weighted by the time each takes
//!    (`adapt_select`), then rank them by expected gain
//!    (`adapt_auto::opportunity`);
//! 3. for each, best first, judge it by **time per call** (`per_call`):
//!    interleaved windows with a call counter at the function's entry,
//!    first in front of the original, then in front of the candidate
//!    (automatic requests: quarantined variants are refused by the module,
//!    which also enforces enable, limits, targets); samples × period ÷
//!    calls on each side, a 95 % interval on the ratio
//!    (`adapt_auto::per_call`), more windows while it cannot decide (at
//!    most four pairs), then inject the kept ones for good, without the
//!    counter;
//! 4. where no counter can go in (an entry that cannot be relocated),
//!    inject it and judge by shares of CPU time instead
//!    (`adapt_auto::verdict`, with the measurement before injecting as
//!    the prior for a saturated process): keep it, or revert it and say
//!    why. Undecided after three windows: revert.
//!
//! Without `--once` it repeats (every process the policy allows with
//! `--all`, newly started ones included) until `--duration` ends or it is
//! stopped (SIGINT/SIGTERM), then reverts every injection it made and kept.
//! With `--once` it does one round and leaves the kept injections in place.

mod per_call;
pub mod processes;

use crate::collect;
use crate::inject::{self, Done};
use crate::library_index::LibraryIndex;
use crate::measure;
use crate::plan::{self, Request};
use crate::timings::Timings;
use adapt_abi as abi;
use adapt_auto::opportunity::Thresholds;
use adapt_auto::verdict::Criterion;
use adapt_auto::{judge, rank, Candidate, DecisionKind, DecisionLog, Subject, Verdict, Window};
use adapt_client::inject as module;
use adapt_client::Device;
use adapt_profile::Profile;
use processes::{allowed_processes, command_of, policy_allows};
use serde_json::json;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How the loop runs (`adaptctl auto`'s options).
#[derive(Debug, Clone)]
pub struct Options {
    /// Processes to watch; empty with `all`.
    pub pids: Vec<u32>,
    /// Every process the policy allows, including ones that start later.
    pub all: bool,
    /// Stop after this long; `None`: until stopped, or one round with `once`.
    pub duration: Option<Duration>,
    /// One round, leaving the kept injections in place.
    pub once: bool,
    /// Say what would be injected; change nothing.
    pub dry_run: bool,
    /// Sampling window for each profile and each verdict.
    pub window: Duration,
    /// Smallest share of a process's samples worth an injection.
    pub min_share: f64,
    /// The optimization library (default: the default library).
    pub library: Option<PathBuf>,
    /// Inject the best variant the CPU supports without measuring it
    /// against the original first.
    pub no_measure: bool,
}

/// What one round's steps share.
struct Context<'a> {
    device: &'a Device,
    args: &'a Options,
    library: &'a LibraryIndex,
    stop: &'a AtomicBool,
    /// Sampling frequency, Hz.
    freq: u32,
    /// The policy's regression margin, e.g. 0.05.
    margin: f64,
}

/// An injection auto made and still has to judge (or has kept).
struct Pending {
    /// The process, function, segment and variant.
    subject: Subject,
    id: u64,
    /// The mapping name the segment shows up as in profiles.
    mapping: String,
    before: Window,
    windows: u32,
    /// The speedup measured before injecting (the prior), if any.
    measured: Option<f64>,
}

/// Runs the loop (see the module documentation) until it is done or
/// `stop` is set, recording every decision in `log`. Phases of the first
/// round (`profile`, `plan`, `measure`, `upload`, `inject`, `judge`; a
/// per-call trial adds each counting `window` and its `revert`) are marked
/// in `timings`.
pub fn run<W: Write>(
    device: &Device,
    args: &Options,
    log: &mut DecisionLog<W>,
    stop: &AtomicBool,
    timings: &mut Timings,
) -> crate::Result<()> {
    let library = LibraryIndex::load(args.library.as_deref())?;
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let mut kept: Vec<Pending> = Vec::new();
    // (pid, function) pairs already judged not worth it: not retried.
    let mut rejected: HashSet<(u32, String)> = HashSet::new();
    let me = std::process::id();

    loop {
        let policy = adapt_client::policy::get_policy_raw(device)?;
        let targets = if args.all {
            allowed_processes(&policy, me)
        } else {
            args.pids.clone()
        };
        for pid in targets {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if !policy_allows(&policy, pid) {
                log.record(
                    DecisionKind::Skipped,
                    &Subject::process(pid, &command_of(pid)),
                    "not a target of the policy (uids, commands, executables): left alone",
                    serde_json::Value::Null,
                );
                continue;
            }
            let already: HashSet<String> = kept
                .iter()
                .filter(|p| p.subject.pid == pid)
                .map(|p| p.subject.function.clone())
                .chain(
                    rejected
                        .iter()
                        .filter(|(p, _)| *p == pid)
                        .map(|(_, f)| f.clone()),
                )
                .collect();
            let judged_before = log.decisions.len();
            let outcome = round(
                device, args, &policy, &library, pid, &already, log, stop, timings,
            );
            for d in &log.decisions[judged_before..] {
                if d.kind == DecisionKind::Reverted {
                    rejected.insert((d.subject.pid, d.subject.function.clone()));
                }
            }
            match outcome {
                Ok(mut new_kept) => kept.append(&mut new_kept),
                Err(err) => log.record(
                    DecisionKind::Gone,
                    &Subject::process(pid, &command_of(pid)),
                    err.to_string(),
                    serde_json::Value::Null,
                ),
            }
        }
        // Forget kept injections whose process went away.
        kept.retain(|p| Path::new(&format!("/proc/{}", p.subject.pid)).exists());
        let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
        if args.once || out_of_time || stop.load(Ordering::Relaxed) {
            break;
        }
        sleep_or_stop(args.window, stop);
    }

    if !args.once && !args.dry_run {
        for p in kept.drain(..) {
            let details = json!({"id": p.id});
            revert_with(
                device,
                log,
                &p,
                "auto stopped: reverted",
                "auto stopped",
                details,
            );
        }
    }
    Ok(())
}

/// One round on one process; returns the injections it kept.
#[allow(clippy::too_many_arguments)]
fn round<W: Write>(
    device: &Device,
    args: &Options,
    policy: &abi::AdaptPolicy,
    library: &LibraryIndex,
    pid: u32,
    already: &HashSet<String>,
    log: &mut DecisionLog<W>,
    stop: &AtomicBool,
    timings: &mut Timings,
) -> crate::Result<Vec<Pending>> {
    let process = Subject::process(pid, &command_of(pid));
    let freq = abi::ADAPT_PROFILE_FREQ_DEFAULT.clamp(policy.freq_min_hz, policy.freq_max_hz);
    let margin = f64::from(policy.regression_margin_permille) / 1000.0;
    let allowed_segments: Vec<&str> = policy
        .segments
        .iter()
        .take(policy.nsegments as usize)
        .filter_map(|s| abi::name_str(s))
        .collect();
    let allow_float_reassociate = adapt_auto::policy_file::allows_float_reassociate(policy);

    let profile = profile_window(device, pid, freq, args.window, library, stop)?;
    timings.mark("profile");
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
        log.record(DecisionKind::Opportunity, &process.about(&f.function, segment, ""), format!("{:.1}% of samples ({} of {}) in {}", f.share * 100.0, f.samples, profile.total_samples, f.object), json!({"share": f.share, "samples": f.samples, "total": profile.total_samples, "object": f.object}));
        if !allowed_segments.is_empty() && !allowed_segments.contains(&segment.as_str()) {
            log.record(
                DecisionKind::Skipped,
                &process.about(&f.function, segment, ""),
                "segment not allowed by the policy",
                serde_json::Value::Null,
            );
            continue;
        }
        // Not bit-identical: only where the policy allows that contract.
        if let Some(numerics) = library.refused_numerics(segment, allow_float_reassociate) {
            log.record(
                DecisionKind::Skipped,
                &process.about(&f.function, segment, ""),
                format!(
                    "segment has {numerics} numerics (not bit-identical) and the policy's \
                     allow_float_reassociate is off"
                ),
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
            allow_float_reassociate,
            dir: args.library.as_deref().or(library.dir.as_deref()),
        };
        let mut plan = match plan::plan(&request, timings) {
            Ok(plan) => plan,
            Err(err) => {
                log.record(
                    DecisionKind::Skipped,
                    &process.about(&f.function, segment, ""),
                    err.to_string(),
                    serde_json::Value::Null,
                );
                continue;
            }
        };
        // Measure the variants against the original here, on this machine
        // (cached per CPU model and variant): pick the fastest, or nothing.
        // A Fortran BLAS segment calls the original through `fallback`:
        // judged in the target by its time per call, as before the
        // selection had BLAS drivers (`adaptctl bench dgemm` measures it
        // natively against the reference BLAS).
        let imports_blas = !plan.imports.is_empty()
            && plan
                .verified
                .function(&plan.function)
                .is_some_and(|(_, f)| {
                    adapt_select::Shape::of(&f.contract).is_ok_and(adapt_select::Shape::is_blas)
                });
        let speedup = if args.no_measure || imports_blas {
            None
        } else {
            // At the sizes the program really calls with (its length
            // argument's histogram, counted for a moment), weighted by the
            // time each takes.
            let (observed, not_observed) = per_call::observed_sizes(
                device,
                &plan,
                args.window.min(std::time::Duration::from_secs(2)),
                stop,
                timings,
            );
            log.record(
                DecisionKind::Observed,
                &process.about(&f.function, segment, ""),
                match &not_observed {
                    None => format!(
                        "measuring at the sizes it calls with: {}",
                        observed
                            .iter()
                            .map(|(bytes, calls)| format!("{bytes} B × {calls}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Some(why) => format!("measuring at the default sizes ({why})"),
                },
                json!({"observed_sizes": observed}),
            );
            let measured = measure::before_inject(&mut plan, None, &observed);
            timings.mark("measure");
            match measured {
                Ok(selection) => {
                    measured_original.insert(
                        (pid, f.function.clone()),
                        measure::original_summary(&selection),
                    );
                    match &selection.decision.choice {
                        adapt_select::Choice::Variant { speedup, .. } => Some(*speedup),
                        adapt_select::Choice::Nothing { reason } => {
                            log.record(
                                DecisionKind::Skipped,
                                &process.about(&f.function, segment, ""),
                                format!(
                                    "measured on this machine: {reason}; {}",
                                    measure::original_sentence(&selection)
                                ),
                                json!({
                                    "decision": selection.decision,
                                    "original": measure::original_summary(&selection),
                                }),
                            );
                            continue;
                        }
                        // The original could not run here: judge in the target.
                        adapt_select::Choice::OriginalUnavailable { .. } => None,
                    }
                }
                // No benchmark driver for this signature: nothing to
                // measure here,
                // so the variant CPUID order picks is judged in the target,
                // by its time per call.
                Err(crate::Error::Select(e))
                    if matches!(*e, adapt_select::SelectError::Shape { .. }) =>
                {
                    None
                }
                Err(err) => {
                    log.record(
                        DecisionKind::Skipped,
                        &process.about(&f.function, segment, ""),
                        format!("measurement failed: {err}"),
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
    let mut kept_now = Vec::new();
    for opportunity in ranked {
        let c = &opportunity.candidate;
        let Some((_, plan)) = candidates.iter().find(|(k, _)| k.function == c.function) else {
            continue;
        };
        let details = json!({"expected_gain": opportunity.expected_gain, "share": c.share});
        if args.dry_run {
            log.record(
                DecisionKind::WouldInject,
                &process.about(&c.function, &c.segment, &c.variant),
                format!(
                    "expected to save {:.1}% of its CPU time",
                    opportunity.expected_gain * 100.0
                ),
                details,
            );
            continue;
        }
        // First choice: judge by time per call (counted calls, interleaved
        // windows); where the counter cannot go in, by shares of CPU time.
        let ctx = Context {
            device,
            args,
            library,
            stop,
            freq,
            margin,
        };
        let subject = process.about(&c.function, &c.segment, &c.variant);
        let by_share = match per_call::trial(
            &ctx,
            plan,
            c,
            &subject,
            opportunity.expected_gain,
            measured_original.get(&(pid, c.function.clone())),
            log,
            timings,
        ) {
            Ok(per_call::Trial::Kept(id)) => {
                kept_now.push(Pending {
                    subject,
                    id,
                    mapping: format!("[adapt:{}-{}]", c.segment, c.variant),
                    before: Window {
                        total: profile.total_samples,
                        in_code: c.samples,
                    },
                    windows: 0,
                    measured: c.speedup,
                });
                continue;
            }
            Ok(per_call::Trial::Rejected) => continue,
            Ok(per_call::Trial::Unavailable(why)) => why,
            Err(err) => {
                log.record(
                    DecisionKind::Reverted,
                    &subject,
                    format!("measuring its time per call failed: {err}"),
                    serde_json::Value::Null,
                );
                continue;
            }
        };
        match inject::execute(device, plan, true, timings) {
            Ok(Done { injected, .. }) => {
                log.record(
                    DecisionKind::Injected,
                    &process.about(&c.function, &c.segment, &c.variant),
                    format!(
                        "#{}: expected to save {:.1}%; threads held {}{}",
                        injected.id,
                        opportunity.expected_gain * 100.0,
                        crate::timings::duration_ns(injected.pause_ns),
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
                        "judged_by_share_because": by_share,
                    }),
                );
                pending.push(Pending {
                    subject: process.about(&c.function, &c.segment, &c.variant),
                    id: injected.id,
                    mapping: format!("[adapt:{}-{}]", c.segment, c.variant),
                    before: Window {
                        total: profile.total_samples,
                        in_code: c.samples,
                    },
                    windows: 0,
                    measured: c.speedup,
                });
            }
            Err(err) => log.record(
                DecisionKind::Skipped,
                &process.about(&c.function, &c.segment, &c.variant),
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
    let mut kept = kept_now;
    while !pending.is_empty() {
        let after_profile = match profile_window(device, pid, freq, args.window, library, stop) {
            Ok(p) => {
                timings.mark("judge");
                p
            }
            Err(err) => {
                for p in pending.drain(..) {
                    log.record(
                        DecisionKind::Gone,
                        &p.subject,
                        err.to_string(),
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
            let verdict = judge(p.before, after, p.measured, criterion);
            let details =
                json!({"id": p.id, "before": p.before, "after": after, "verdict": verdict});
            match verdict.keep() {
                Some(true) => {
                    log.record(DecisionKind::Kept, &p.subject, verdict.reason(), details);
                    kept.push(p);
                }
                Some(false) => {
                    let reason = verdict.reason();
                    revert_with(device, log, &p, &reason, &reason, details);
                }
                None if p.windows >= 3 || stop.load(Ordering::Relaxed) => {
                    let verdict = Verdict::Undecided {
                        reason: format!(
                            "{} (gave up after {} windows)",
                            verdict.reason(),
                            p.windows
                        ),
                    };
                    let reason = verdict.reason();
                    revert_with(device, log, &p, &reason, &reason, details);
                }
                None => still.push(p),
            }
        }
        pending = still;
    }
    Ok(kept)
}

/// Reverts `p` and logs it: `done` when the revert worked, else `why` and
/// the failure.
fn revert_with<W: Write>(
    device: &Device,
    log: &mut DecisionLog<W>,
    p: &Pending,
    done: &str,
    why: &str,
    details: serde_json::Value,
) {
    let reason = match module::revert(device, p.id) {
        Ok(_) => done.to_owned(),
        Err(err) => format!("{why}; revert failed: {err}"),
    };
    log.record(DecisionKind::Reverted, &p.subject, reason, details);
}

/// Profiles `pid` for `window`; the process exiting is an error (there
/// is nothing left to judge).
fn profile_window(
    device: &Device,
    pid: u32,
    freq: u32,
    window: Duration,
    library: &LibraryIndex,
    stop: &AtomicBool,
) -> crate::Result<Profile> {
    let collected = collect::collect(
        device,
        &collect::Sampling {
            pid,
            freq,
            software: false,
            duration: window,
            library,
            stop: Some(stop),
        },
    )?;
    if collected.target_exited {
        return Err(crate::Error::Exited { pid });
    }
    Ok(collected.profile)
}

fn sleep_or_stop(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
}
