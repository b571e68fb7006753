//! Did an injection help?
//!
//! The criterion compares two sampling windows of the same process at the
//! same frequency: before the injection, the samples in the original
//! function; after, the samples in the segment's mapping (`[adapt:…]`).
//! If the program keeps doing the same mix of work, the time it spends
//! outside the replaced code per unit of work does not change, so the
//! ratio of the two odds
//!
//! ```text
//! speedup ≈ (in_before / rest_before) / (in_after / rest_after)
//! ```
//!
//! estimates how much faster the replaced code got (2.0: twice as fast),
//! whatever share of the process it takes. The injection is kept when the
//! estimate is at least `1 + margin`, reverted as a regression when it is
//! at most `1 / (1 + margin)`, and reverted as "no measurable gain" in
//! between. Each window needs `min_samples` samples in all, the function
//! `min_function_samples` before, and the rest of the process `min_rest`
//! in both windows; otherwise the verdict is "undecided" and auto keeps
//! measuring (up to three windows, then reverts as "undecided").
//!
//! A process that spends practically all its time in the function leaves
//! too few samples elsewhere to compare; then the in-situ measured speedup
//! (`adaptctl bench`) decides, if there is one.

use serde::Serialize;

/// Samples of one window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Window {
    /// Samples of the whole process.
    pub total: u64,
    /// Samples in the code being judged (original function, or segment).
    pub in_code: u64,
}

impl Window {
    pub fn share(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.in_code as f64 / self.total as f64
        }
    }
}

/// Thresholds of the criterion.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Criterion {
    /// Relative change required, e.g. 0.05.
    pub margin: f64,
    pub min_samples: u64,
    pub min_function_samples: u64,
    /// Samples outside the judged code needed in each window.
    pub min_rest: u64,
}

impl Default for Criterion {
    fn default() -> Self {
        Self {
            margin: 0.05,
            min_samples: 200,
            min_function_samples: 40,
            min_rest: 30,
        }
    }
}

/// The outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Helped {
        speedup: f64,
        share_before: f64,
        share_after: f64,
    },
    Regression {
        speedup: f64,
        share_before: f64,
        share_after: f64,
    },
    NoGain {
        speedup: f64,
        share_before: f64,
        share_after: f64,
    },
    /// Saturated target: decided by the measured speedup.
    MeasuredHelped {
        speedup: f64,
    },
    MeasuredNoGain {
        speedup: f64,
    },
    Undecided {
        reason: String,
    },
}

impl Verdict {
    /// Whether the injection stays.
    pub fn keep(&self) -> Option<bool> {
        match self {
            Verdict::Helped { .. } | Verdict::MeasuredHelped { .. } => Some(true),
            Verdict::Regression { .. }
            | Verdict::NoGain { .. }
            | Verdict::MeasuredNoGain { .. } => Some(false),
            Verdict::Undecided { .. } => None,
        }
    }

    /// One line for people.
    pub fn reason(&self) -> String {
        let shares =
            |b: &f64, a: &f64| format!("share of CPU time {:.1}% → {:.1}%", b * 100.0, a * 100.0);
        match self {
            Verdict::Helped {
                speedup,
                share_before,
                share_after,
            } => {
                format!(
                    "helped: about {speedup:.2}× faster ({})",
                    shares(share_before, share_after)
                )
            }
            Verdict::Regression {
                speedup,
                share_before,
                share_after,
            } => {
                format!(
                    "regression: about {:.2}× slower ({})",
                    1.0 / speedup,
                    shares(share_before, share_after)
                )
            }
            Verdict::NoGain {
                speedup,
                share_before,
                share_after,
            } => {
                format!(
                    "no measurable gain: {speedup:.2}× ({})",
                    shares(share_before, share_after)
                )
            }
            Verdict::MeasuredHelped { speedup } => {
                format!("saturated target; measured speedup {speedup:.2}×")
            }
            Verdict::MeasuredNoGain { speedup } => {
                format!("saturated target; measured speedup only {speedup:.2}×")
            }
            Verdict::Undecided { reason } => format!("undecided: {reason}"),
        }
    }
}

/// Judges an injection from the windows before and after, and the measured
/// speedup if any.
pub fn judge(
    before: Window,
    after: Window,
    measured_speedup: Option<f64>,
    c: Criterion,
) -> Verdict {
    if before.total < c.min_samples || after.total < c.min_samples {
        return Verdict::Undecided {
            reason: format!(
                "{} and {} samples, need {} in each window",
                before.total, after.total, c.min_samples
            ),
        };
    }
    if before.in_code < c.min_function_samples {
        return Verdict::Undecided {
            reason: format!(
                "{} samples in the function, need {}",
                before.in_code, c.min_function_samples
            ),
        };
    }
    let rest = |w: Window| w.total.saturating_sub(w.in_code);
    if rest(before) < c.min_rest || rest(after) < c.min_rest {
        return match measured_speedup {
            Some(s) if s >= 1.0 + c.margin => Verdict::MeasuredHelped { speedup: s },
            Some(s) => Verdict::MeasuredNoGain { speedup: s },
            None => Verdict::Undecided {
                reason: "the process spends nearly all its time there; no measured speedup".into(),
            },
        };
    }
    let (share_before, share_after) = (before.share(), after.share());
    let odds_before = before.in_code as f64 / rest(before) as f64;
    let odds_after = after.in_code as f64 / rest(after) as f64;
    let speedup = if odds_after == 0.0 {
        f64::INFINITY
    } else {
        odds_before / odds_after
    };
    if speedup >= 1.0 + c.margin {
        Verdict::Helped {
            speedup,
            share_before,
            share_after,
        }
    } else if speedup <= 1.0 / (1.0 + c.margin) {
        Verdict::Regression {
            speedup,
            share_before,
            share_after,
        }
    } else {
        Verdict::NoGain {
            speedup,
            share_before,
            share_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(total: u64, in_code: u64) -> Window {
        Window { total, in_code }
    }

    #[test]
    fn the_odds_ratio_estimates_the_speedup() {
        let c = Criterion::default();
        // 90 % in the function, then twice as fast: 450 of 550 units.
        match judge(w(1000, 900), w(1100, 900), None, c) {
            Verdict::Helped { speedup, .. } => assert!((speedup - 2.0).abs() < 1e-9, "{speedup}"),
            v => panic!("{v:?}"),
        }
        // Half the time, 3× slower afterwards.
        match judge(w(1000, 500), w(1000, 750), None, c) {
            Verdict::Regression { speedup, .. } => assert!((speedup - 1.0 / 3.0).abs() < 1e-9),
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            judge(w(1000, 500), w(1000, 505), None, c),
            Verdict::NoGain { .. }
        ));
        assert_eq!(
            judge(w(1000, 500), w(1000, 750), None, c).keep(),
            Some(false)
        );
        assert_eq!(
            judge(w(1000, 900), w(1100, 900), None, c).keep(),
            Some(true)
        );
    }

    #[test]
    fn too_few_samples_is_undecided() {
        let c = Criterion::default();
        assert_eq!(judge(w(100, 90), w(1000, 10), None, c).keep(), None);
        assert_eq!(judge(w(1000, 10), w(1000, 5), None, c).keep(), None);
    }

    #[test]
    fn a_saturated_target_is_judged_by_the_measured_speedup() {
        let c = Criterion::default();
        assert_eq!(
            judge(w(1000, 995), w(1000, 990), Some(3.0), c).keep(),
            Some(true)
        );
        assert_eq!(
            judge(w(1000, 995), w(1000, 990), Some(1.01), c).keep(),
            Some(false)
        );
        assert_eq!(judge(w(1000, 995), w(1000, 990), None, c).keep(), None);
    }

    #[test]
    fn reasons_name_the_figures() {
        let v = judge(w(1000, 500), w(1000, 750), None, Criterion::default());
        assert!(v.reason().contains("3.00× slower"), "{}", v.reason());
        assert!(v.reason().contains("50.0% → 75.0%"), "{}", v.reason());
    }
}
