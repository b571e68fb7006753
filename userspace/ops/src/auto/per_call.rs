//! Judging one candidate by its time per call (issue 12 §3).
//!
//! Interleaved windows, each with the profiler running and a counter at
//! the function's entry:
//!
//! 1. **before**: the counting segment alone (`[adapt:count-calls]`, then
//!    the original through its trampoline): samples in the original
//!    function and in the counter, calls counted;
//! 2. **after**: the candidate with a counter in front
//!    (`[adapt:SEGMENT-VARIANT.counted]`, see `adapt_count::compose`):
//!    samples in it and in the original (a segment may fall back to it),
//!    calls counted.
//!
//! Both sides pay the same counter, so it cancels out of the ratio. After
//! each pair `adapt_auto::judge_per_call` decides, or asks for another
//! pair (at most [`MAX_PAIRS`]). A kept candidate is then injected for
//! good without the counter.

use super::{profile_window, Context};
use crate::calls::{self, Counting};
use crate::plan::Plan;
use crate::timings::Timings;
use adapt_auto::{
    judge_per_call, CallWindow, Candidate, DecisionKind, DecisionLog, PerCallCriterion,
    PerCallVerdict, Subject,
};
use adapt_profile::Profile;
use serde_json::json;
use std::io::Write;
use std::sync::atomic::Ordering;

/// Before/after pairs measured at most for one candidate.
pub(super) const MAX_PAIRS: usize = 4;

/// How a trial ended.
pub(super) enum Trial {
    /// Judged faster and injected for good (its injection id).
    Kept(u64),
    /// Judged not worth it (or it could not be finished): nothing left in
    /// the process.
    Rejected,
    /// Time per call cannot be measured for this function (the reason);
    /// nothing was changed.
    Unavailable(String),
}

/// Samples of `profile` in `function` of `object`, plus those in the
/// segment mapping `mapping` (`[adapt:…]`).
fn samples_in(profile: &Profile, function: &str, object: &str, mapping: &str) -> u64 {
    profile
        .functions
        .iter()
        .filter(|f| (f.function == function && f.object == object) || f.function.ends_with(mapping))
        .map(|f| f.samples)
        .sum()
}

/// One window with `plan`'s counting injection in place.
fn window(
    ctx: &Context<'_>,
    plan: &Plan,
    c: &Candidate,
    timings: &mut Timings,
) -> crate::Result<(CallWindow, u64)> {
    let counting = Counting::start(ctx.device, plan, true, timings)?;
    let id = counting.done.injected.id;
    let profile = profile_window(
        ctx.device,
        c.pid,
        ctx.freq,
        ctx.args.window,
        ctx.library,
        ctx.stop,
    );
    timings.mark("window");
    let counted = counting.counted();
    let reverted = counting.stop(ctx.device);
    timings.mark("revert");
    let profile = profile?;
    let counted = counted?;
    reverted?;
    let mapping = format!("[adapt:{}-{}]", plan.segment, plan.variant);
    Ok((
        CallWindow {
            samples: samples_in(&profile, &c.function, &c.object, &mapping),
            calls: counted.calls,
        },
        id,
    ))
}

/// Measures `candidate` (planned as `plan`) against the original by time
/// per call and keeps it or not, logging the decision.
#[allow(clippy::too_many_arguments)]
pub(super) fn trial<W: Write>(
    ctx: &Context<'_>,
    plan: &Plan,
    candidate: &Candidate,
    subject: &Subject,
    expected_gain: f64,
    original: Option<&serde_json::Value>,
    log: &mut DecisionLog<W>,
    timings: &mut Timings,
) -> crate::Result<Trial> {
    let counter = match calls::plan_for(plan.target.clone(), None) {
        Ok(p) => p,
        Err(err) => return Ok(Trial::Unavailable(err.to_string())),
    };
    let counted = match calls::counted_plan(plan) {
        Ok(p) => p,
        Err(err) => return Ok(Trial::Unavailable(err.to_string())),
    };
    let period_ns = 1e9 / f64::from(ctx.freq);
    let criterion = PerCallCriterion {
        margin: ctx.margin,
        ..PerCallCriterion::default()
    };
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let mut verdict = None;
    for pair in 1..=MAX_PAIRS {
        let (b, _) = match window(ctx, &counter, candidate, timings) {
            Ok(w) => w,
            // The counter itself cannot go in (an entry that cannot be
            // relocated, say): judge the old way.
            Err(err) if pair == 1 => return Ok(Trial::Unavailable(err.to_string())),
            Err(err) => return Err(err),
        };
        before.push(b);
        let (a, id) = window(ctx, &counted, candidate, timings)?;
        after.push(a);
        if pair == 1 {
            log.record(
                DecisionKind::Injected,
                subject,
                format!(
                    "#{id}: expected to save {:.1}%; measuring its time per call against the \
                     original's in interleaved windows",
                    expected_gain * 100.0
                ),
                json!({
                    "id": id,
                    "counted": true,
                    "expected_gain": expected_gain,
                    "original": original,
                }),
            );
        }
        timings.mark("judge");
        let last = pair == MAX_PAIRS || ctx.stop.load(Ordering::Relaxed);
        let v = judge_per_call(
            &before,
            &after,
            period_ns,
            candidate.speedup,
            last,
            criterion,
        );
        let decided = v.keep().is_some();
        verdict = Some(v);
        if decided || last {
            break;
        }
    }
    let verdict = verdict.expect("at least one pair was measured");
    let details = json!({
        "verdict": verdict,
        "before": before,
        "after": after,
        "period_ns": period_ns,
        "measured_speedup": candidate.speedup,
        "original": original,
    });
    if verdict.keep() != Some(true) {
        let reason = match &verdict {
            PerCallVerdict::Undecided { .. } => format!(
                "{} (gave up after {} windows each side)",
                verdict.reason(),
                before.len()
            ),
            v => v.reason(),
        };
        log.record(DecisionKind::Reverted, subject, reason, details);
        return Ok(Trial::Rejected);
    }
    match crate::inject::execute(ctx.device, plan, true, timings) {
        Ok(done) => {
            let mut details = details;
            details["id"] = json!(done.injected.id);
            log.record(
                DecisionKind::Kept,
                subject,
                format!("#{}: {}", done.injected.id, verdict.reason()),
                details,
            );
            Ok(Trial::Kept(done.injected.id))
        }
        Err(err) => {
            log.record(
                DecisionKind::Reverted,
                subject,
                format!(
                    "{}; but injecting it for good failed: {err}",
                    verdict.reason()
                ),
                details,
            );
            Ok(Trial::Rejected)
        }
    }
}

/// The sizes the target calls `plan`'s function with, in bytes, and how
/// often: the log2 histogram of its length argument
/// (`adapt_select::Shape::length_register`) counted for `window`, each
/// bucket at its middle. Zero-length calls take no time and are left out.
/// Empty when the function's shape has no length or counting failed (the
/// measurement then uses its default sizes); the reason is returned too.
pub(super) fn observed_sizes(
    device: &adapt_client::Device,
    plan: &Plan,
    window: std::time::Duration,
    stop: &std::sync::atomic::AtomicBool,
    timings: &mut Timings,
) -> (Vec<(usize, u64)>, Option<String>) {
    let Some((_, function)) = plan.verified.function(&plan.function) else {
        return (Vec::new(), Some("no such function".into()));
    };
    let shape = match adapt_select::Shape::of(&function.contract) {
        Ok(shape) => shape,
        Err(err) => return (Vec::new(), Some(err.to_string())),
    };
    if shape.is_blas() {
        // Every Fortran argument is a pointer: no register holds a length.
        return (
            Vec::new(),
            Some(format!(
                "{} takes its dimensions by reference: no length register to count",
                function.symbol
            )),
        );
    }
    let counted = calls::plan_for(plan.target.clone(), Some(shape.length_register()))
        .and_then(|p| Counting::start(device, &p, true, timings))
        .and_then(|counting| {
            super::sleep_or_stop(window, stop);
            let counted = counting.counted();
            counting.stop(device)?;
            counted
        });
    match counted {
        Ok(c) => {
            let sizes = c
                .buckets()
                .into_iter()
                .filter(|b| b.from > 0)
                .map(|b| {
                    let middle = b.from.saturating_add((b.to - b.from) / 2);
                    let bytes = usize::try_from(middle)
                        .unwrap_or(usize::MAX)
                        .saturating_mul(shape.granule());
                    (bytes, b.calls)
                })
                .collect();
            (sizes, None)
        }
        Err(err) => (Vec::new(), Some(err.to_string())),
    }
}
