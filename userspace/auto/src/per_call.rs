//! Did an injection make each call faster? (issue 12 §3)
//!
//! The share-of-CPU-time verdict ([`crate::verdict::judge`]) cannot see a
//! speedup when the function is nearly all of the process: a program that
//! spends 98 % of its time in `crc32_z` still spends about 98 % there when
//! `crc32_z` is twice as fast, it just does twice the work. Time per call
//! can: during a window the counting segment counts the calls `C` while the
//! profiler counts the samples `S` that land in the function (the original
//! and its counter before; the segment, its counter and any fallback to the
//! original after), and
//!
//! ```text
//! time per call = S × sampling period / C
//! speedup       = time per call before / time per call after
//! ```
//!
//! Calls are counted exactly; samples are Poisson, so the standard error of
//! `ln speedup` is at least `√(1/S_before + 1/S_after)`. The loop
//! interleaves before/after windows in pairs; with two pairs or more, the
//! spread of the per-pair `ln` ratios (which holds the Poisson noise *and*
//! any drift of the program between windows) is measured too, and the
//! larger of the two errors is used. The interval is `exp(ln speedup ±
//! z·se)` (z = 1.96: 95 %).
//!
//! Decision: kept when the interval's lower end is at least `1 + margin`;
//! reverted as a regression when its upper end is below 1; otherwise the
//! loop measures another pair, up to its limit. At the limit the in-situ
//! measurement before the injection (the prior, run in the sandbox at the
//! library's size classes) is combined with the per-call estimate by
//! inverse-variance weighting, the prior counted as known to ±25 % at
//! 95 % ([`PRIOR_SE`]); kept when that combined interval's lower end is at
//! least `1 + margin`, reverted as "no measurable gain" otherwise — never
//! as a regression, which needs the per-call interval below 1.

use serde::Serialize;

/// Standard error of `ln` of the prior (the in-situ measurement): its
/// sizes and machine state are not the target's, so it is taken as known
/// to ±25 % at 95 %.
pub const PRIOR_SE: f64 = 0.113_842; // ln(1.25) / 1.96

/// Less CPU time than any counted call takes, in ns: the counter alone is
/// a locked increment (about 1 ns natively, `count-overhead`), then the
/// call itself. With Poisson noise on the samples (at the 30-sample floor
/// the CPU time can be underestimated by 40 % at 95 %), real counts stay
/// several times below the bound this sets.
pub const MIN_NS_PER_CALL: f64 = 0.25;

/// One window on one side.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CallWindow {
    /// Samples in the judged code.
    pub samples: u64,
    /// Calls counted in the same window.
    pub calls: u64,
}

/// What the per-call comparison found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PerCall {
    /// Time per call before / after (> 1: faster).
    pub speedup: f64,
    /// The interval's ends.
    pub low: f64,
    pub high: f64,
    /// Time per call on each side, ns (samples × period / calls).
    pub ns_before: f64,
    pub ns_after: f64,
    /// Samples and calls pooled over each side's windows.
    pub samples_before: u64,
    pub samples_after: u64,
    pub calls_before: u64,
    pub calls_after: u64,
    /// The measured speedup before the injection, if any.
    pub prior: Option<f64>,
}

/// Thresholds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PerCallCriterion {
    /// Relative gain required, e.g. 0.05.
    pub margin: f64,
    /// Samples needed on each side before anything is decided.
    pub min_samples: u64,
    /// Calls needed on each side.
    pub min_calls: u64,
    /// Normal quantile of the interval.
    pub z: f64,
}

impl Default for PerCallCriterion {
    fn default() -> Self {
        PerCallCriterion {
            margin: 0.05,
            min_samples: 30,
            min_calls: 100,
            z: 1.96,
        }
    }
}

/// The per-call outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum PerCallVerdict {
    /// The interval's lower end beats the margin.
    #[serde(rename = "helped")]
    Faster(PerCall),
    /// The interval's upper end is below 1.
    #[serde(rename = "regression")]
    Slower(PerCall),
    /// At the limit: the per-call estimate combined with the prior beats
    /// the margin (`low`/`high` are then the combined interval).
    #[serde(rename = "helped-by-prior")]
    FasterByPrior(PerCall),
    /// At the limit: no gain the interval supports.
    NoGain(PerCall),
    /// More calls on a side than the CPU time its samples show could
    /// hold, even at [`MIN_NS_PER_CALL`] each: the counters live in the
    /// target's memory and something other than the counting code wrote
    /// them. Reverted; nothing about speed is concluded.
    #[serde(rename = "implausible-counts")]
    Implausible { reason: String },
    /// Measure more.
    Undecided {
        reason: String,
        found: Option<PerCall>,
    },
}

impl PerCallVerdict {
    /// Whether the injection stays (`None`: measure more).
    pub fn keep(&self) -> Option<bool> {
        match self {
            PerCallVerdict::Faster(_) | PerCallVerdict::FasterByPrior(_) => Some(true),
            PerCallVerdict::Slower(_)
            | PerCallVerdict::NoGain(_)
            | PerCallVerdict::Implausible { .. } => Some(false),
            PerCallVerdict::Undecided { .. } => None,
        }
    }

    /// One line for people.
    pub fn reason(&self) -> String {
        let figures = |p: &PerCall| {
            format!(
                "time per call {:.0} → {:.0} ns, {:.2}× (95% CI {:.2}–{:.2}; {} → {} samples, {} → {} calls{})",
                p.ns_before,
                p.ns_after,
                p.speedup,
                p.low,
                p.high,
                p.samples_before,
                p.samples_after,
                p.calls_before,
                p.calls_after,
                p.prior
                    .map_or(String::new(), |s| format!("; measured before: {s:.2}×"))
            )
        };
        match self {
            PerCallVerdict::Faster(p) => format!("helped: {}", figures(p)),
            PerCallVerdict::Slower(p) => format!("regression: {}", figures(p)),
            PerCallVerdict::FasterByPrior(p) => format!(
                "helped, with the measurement before injecting: {}",
                figures(p)
            ),
            PerCallVerdict::NoGain(p) => format!("no measurable gain: {}", figures(p)),
            PerCallVerdict::Implausible { reason } => format!("implausible counts: {reason}"),
            PerCallVerdict::Undecided { reason, found } => match found {
                Some(p) => format!("undecided: {reason}: {}", figures(p)),
                None => format!("undecided: {reason}"),
            },
        }
    }
}

fn sample_variance(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64
}

/// Judges from the windows so far; `period_ns` is the sampling period,
/// `prior` the measured speedup before injecting, `last` whether the loop
/// may not measure any more windows.
pub fn judge_per_call(
    before: &[CallWindow],
    after: &[CallWindow],
    period_ns: f64,
    prior: Option<f64>,
    last: bool,
    c: PerCallCriterion,
) -> PerCallVerdict {
    let pooled = |ws: &[CallWindow]| {
        ws.iter()
            // Calls come from counters in the target's own memory, which
            // it can overwrite: saturate instead of overflowing.
            .fold((0u64, 0u64), |(s, n), w| {
                (s.saturating_add(w.samples), n.saturating_add(w.calls))
            })
    };
    let (sb, cb) = pooled(before);
    let (sa, ca) = pooled(after);
    if sb < c.min_samples || sa < c.min_samples || cb < c.min_calls || ca < c.min_calls {
        let reason = format!(
            "{sb} and {sa} samples, {cb} and {ca} calls; need {} samples and {} calls on each side",
            c.min_samples, c.min_calls
        );
        return if last {
            PerCallVerdict::Undecided {
                reason: format!("{reason} (measured as long as allowed)"),
                found: None,
            }
        } else {
            PerCallVerdict::Undecided {
                reason,
                found: None,
            }
        };
    }
    // The counters are in the target's memory: counts its CPU time cannot
    // hold were not made by the counting code.
    for (side, samples, calls) in [("before", sb, cb), ("after", sa, ca)] {
        let cpu_ns = samples as f64 * period_ns;
        if calls as f64 * MIN_NS_PER_CALL > cpu_ns {
            return PerCallVerdict::Implausible {
                reason: format!(
                    "{calls} calls counted {side} in {:.0} ms of CPU time ({samples} samples), \
                     under {MIN_NS_PER_CALL} ns per call; the target's own memory holds the \
                     counters, and something else wrote them",
                    cpu_ns / 1e6
                ),
            };
        }
    }
    let tpc = |s: u64, n: u64| s as f64 * period_ns / n as f64;
    let (ns_before, ns_after) = (tpc(sb, cb), tpc(sa, ca));
    let ln = (ns_before / ns_after).ln();
    // The per-pair spread of ln(before / after), pairs with samples only.
    let pairs: Vec<f64> = before
        .iter()
        .zip(after)
        .filter(|(b, a)| b.samples > 0 && b.calls > 0 && a.samples > 0 && a.calls > 0)
        .map(|(b, a)| {
            (b.samples as f64 / b.calls as f64).ln() - (a.samples as f64 / a.calls as f64).ln()
        })
        .collect();
    let poisson = (1.0 / sb as f64 + 1.0 / sa as f64).sqrt();
    let spread = if pairs.len() >= 2 {
        (sample_variance(&pairs) / pairs.len() as f64).sqrt()
    } else {
        0.0
    };
    let se = poisson.max(spread);
    let found = PerCall {
        speedup: ln.exp(),
        low: (ln - c.z * se).exp(),
        high: (ln + c.z * se).exp(),
        ns_before,
        ns_after,
        samples_before: sb,
        samples_after: sa,
        calls_before: cb,
        calls_after: ca,
        prior,
    };
    if found.low >= 1.0 + c.margin {
        return PerCallVerdict::Faster(found);
    }
    if found.high < 1.0 {
        return PerCallVerdict::Slower(found);
    }
    if !last {
        return PerCallVerdict::Undecided {
            reason: "the interval straddles the margin; measuring more".into(),
            found: Some(found),
        };
    }
    match prior.filter(|p| *p > 0.0) {
        Some(p) => {
            let (wm, wp) = (1.0 / (se * se), 1.0 / (PRIOR_SE * PRIOR_SE));
            let ln_post = (ln * wm + p.ln() * wp) / (wm + wp);
            let se_post = (1.0 / (wm + wp)).sqrt();
            let low = (ln_post - c.z * se_post).exp();
            if low >= 1.0 + c.margin {
                PerCallVerdict::FasterByPrior(PerCall {
                    speedup: ln_post.exp(),
                    low,
                    high: (ln_post + c.z * se_post).exp(),
                    ..found
                })
            } else {
                PerCallVerdict::NoGain(found)
            }
        }
        None => PerCallVerdict::NoGain(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(samples: u64, calls: u64) -> CallWindow {
        CallWindow { samples, calls }
    }

    const PERIOD: f64 = 1e6; // 1 kHz sampling

    #[test]
    fn a_saturated_function_twice_as_fast_is_seen() {
        // 98 % of 1000 samples in the function both times; twice the calls
        // after: the share cannot see it, time per call does.
        let v = judge_per_call(
            &[w(980, 10_000)],
            &[w(980, 20_000)],
            PERIOD,
            None,
            false,
            PerCallCriterion::default(),
        );
        match &v {
            PerCallVerdict::Faster(p) => {
                assert!((p.speedup - 2.0).abs() < 1e-9);
                assert!(p.low > 1.7 && p.high < 2.3, "{p:?}");
                assert!((p.ns_before - 98_000.0).abs() < 1e-6);
            }
            v => panic!("{v:?}"),
        }
        assert_eq!(v.keep(), Some(true));
        assert!(v.reason().contains("2.00×"), "{}", v.reason());
    }

    #[test]
    fn an_unchanged_function_is_never_a_regression() {
        // Same time per call, Poisson noise of a few percent: more windows,
        // then "no measurable gain" — not "regression".
        let before = [w(980, 10_000), w(1010, 10_300)];
        let after = [w(995, 10_100), w(975, 10_050)];
        let c = PerCallCriterion::default();
        let v = judge_per_call(&before[..1], &after[..1], PERIOD, None, false, c);
        assert_eq!(v.keep(), None, "{v:?}");
        let v = judge_per_call(&before, &after, PERIOD, None, true, c);
        assert!(matches!(v, PerCallVerdict::NoGain(_)), "{v:?}");
        assert!(
            v.reason().starts_with("no measurable gain"),
            "{}",
            v.reason()
        );
    }

    #[test]
    fn counts_a_target_wrote_itself_are_refused_not_judged() {
        // The counters live in the target's own memory: a hostile target
        // can set them to anything. Two windows near 2^63 calls pool
        // without overflowing (saturated, not wrapped to a small count),
        // and counts no CPU time could hold are refused on either side,
        // whatever the prior says.
        let huge = u64::MAX / 2 + 1;
        let c = PerCallCriterion::default();
        let real = [w(980, 10_000), w(990, 10_100)];
        for (before, after, side) in [
            ([w(980, huge), w(980, huge)], real, "before"),
            (real, [w(980, huge), w(980, huge)], "after"),
            // 4 G calls in 1 s of CPU: 0.24 ns each.
            (
                real,
                [w(500, 2_100_000_000), w(500, 2_100_000_000)],
                "after",
            ),
        ] {
            for (prior, last) in [(None, false), (Some(1.5), true)] {
                let v = judge_per_call(&before, &after, PERIOD, prior, last, c);
                assert!(matches!(v, PerCallVerdict::Implausible { .. }), "{v:?}");
                assert_eq!(v.keep(), Some(false));
                assert!(v.reason().contains(&format!("counted {side}")), "{v:?}");
            }
        }
        // The fastest real calls stay well inside the bound: 2 ns each
        // (counter and an empty function natively) is judged.
        let fast = [w(1000, 500_000_000)];
        let v = judge_per_call(&fast, &fast, PERIOD, None, true, c);
        assert!(matches!(v, PerCallVerdict::NoGain(_)), "{v:?}");
    }

    #[test]
    fn slower_is_reverted_as_a_regression() {
        let v = judge_per_call(
            &[w(500, 10_000)],
            &[w(900, 10_000)],
            PERIOD,
            None,
            false,
            PerCallCriterion::default(),
        );
        assert!(matches!(v, PerCallVerdict::Slower(_)), "{v:?}");
        assert_eq!(v.keep(), Some(false));
    }

    #[test]
    fn the_prior_is_combined_with_the_estimate_at_the_limit() {
        let c = PerCallCriterion::default();
        // 1.14× per call, interval about 1.00–1.30 (the crc32 case seen in
        // the guest, where the sandbox had measured 1.39×).
        let before = [w(1140, 1000)];
        let after = [w(1000, 1000)];
        let undecided = judge_per_call(&before, &after, PERIOD, Some(1.39), false, c);
        assert_eq!(undecided.keep(), None, "{undecided:?}");
        let v = judge_per_call(&before, &after, PERIOD, Some(1.39), true, c);
        match &v {
            PerCallVerdict::FasterByPrior(p) => {
                assert!(p.speedup > 1.14 && p.speedup < 1.39, "{p:?}");
                assert!(p.low >= 1.05, "{p:?}");
            }
            v => panic!("{v:?}"),
        }
        // A prior of no gain, or none, leaves it at "no measurable gain".
        let v = judge_per_call(&before, &after, PERIOD, Some(1.0), true, c);
        assert!(matches!(v, PerCallVerdict::NoGain(_)), "{v:?}");
        let v = judge_per_call(&before, &after, PERIOD, None, true, c);
        assert!(matches!(v, PerCallVerdict::NoGain(_)), "{v:?}");
        // A prior cannot turn a measured slowdown into a keep.
        let slower = judge_per_call(&[w(800, 1000)], &after, PERIOD, Some(3.0), true, c);
        assert!(matches!(slower, PerCallVerdict::Slower(_)), "{slower:?}");
    }

    #[test]
    fn window_to_window_drift_widens_the_interval() {
        let c = PerCallCriterion::default();
        let steady = judge_per_call(
            &[w(1000, 10_000), w(1000, 10_000)],
            &[w(800, 10_000), w(800, 10_000)],
            PERIOD,
            None,
            false,
            c,
        );
        let drifting = judge_per_call(
            &[w(1300, 10_000), w(700, 10_000)],
            &[w(800, 10_000), w(800, 10_000)],
            PERIOD,
            None,
            false,
            c,
        );
        let width = |v: &PerCallVerdict| match v {
            PerCallVerdict::Faster(p) | PerCallVerdict::Slower(p) | PerCallVerdict::NoGain(p) => {
                p.high / p.low
            }
            PerCallVerdict::Undecided { found: Some(p), .. } => p.high / p.low,
            v => panic!("{v:?}"),
        };
        assert!(width(&drifting) > width(&steady) * 1.5);
        assert_eq!(steady.keep(), Some(true), "{steady:?}");
        assert_eq!(drifting.keep(), None, "{drifting:?}");
    }

    #[test]
    fn too_few_samples_or_calls_is_undecided() {
        let c = PerCallCriterion::default();
        assert_eq!(
            judge_per_call(&[w(10, 1000)], &[w(500, 1000)], PERIOD, None, false, c).keep(),
            None
        );
        assert_eq!(
            judge_per_call(&[w(500, 10)], &[w(500, 1000)], PERIOD, None, true, c).keep(),
            None
        );
    }
}
