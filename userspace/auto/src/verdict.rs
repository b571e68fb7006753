//! Did an injection help?
//!
//! The criterion compares two sampling windows of the same process at the
//! same frequency: before the injection, the share of its samples in the
//! original function; after, the share in the segment's mapping
//! (`[adapt:…]`). Speeding up a function shrinks its share of the
//! process's CPU time; slowing it down grows it. The injection is kept when
//!
//! ```text
//! share_after <= share_before × (1 − margin)
//! ```
//!
//! and reverted otherwise: as a regression when
//! `share_after >= share_before × (1 + margin)`, as "no measurable gain" in
//! between. Each window needs at least `min_samples` samples and the
//! function at least `min_function_samples` before the verdict is given;
//! otherwise the answer is "undecided" and auto keeps measuring (up to its
//! deadline, then reverts as "not enough samples").
//!
//! A process that spends nearly all its time in the function (share ≥
//! `saturated`) cannot show a gain this way: the share stays near 1. Then
//! the in-situ measured speedup (`adaptctl bench`) decides, if there is one.

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
    /// Share above which the window comparison cannot see a gain.
    pub saturated: f64,
}

impl Default for Criterion {
    fn default() -> Self {
        Self {
            margin: 0.05,
            min_samples: 200,
            min_function_samples: 40,
            saturated: 0.95,
        }
    }
}

/// The outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Helped { share_before: f64, share_after: f64 },
    Regression { share_before: f64, share_after: f64 },
    NoGain { share_before: f64, share_after: f64 },
    /// Saturated target: decided by the measured speedup.
    MeasuredHelped { speedup: f64 },
    MeasuredNoGain { speedup: f64 },
    Undecided { reason: String },
}

impl Verdict {
    /// Whether the injection stays.
    pub fn keep(&self) -> Option<bool> {
        match self {
            Verdict::Helped { .. } | Verdict::MeasuredHelped { .. } => Some(true),
            Verdict::Regression { .. } | Verdict::NoGain { .. } | Verdict::MeasuredNoGain { .. } => Some(false),
            Verdict::Undecided { .. } => None,
        }
    }

    /// One line for people.
    pub fn reason(&self) -> String {
        match self {
            Verdict::Helped { share_before, share_after } => format!(
                "helped: share of CPU time {:.1}% → {:.1}%",
                share_before * 100.0,
                share_after * 100.0
            ),
            Verdict::Regression { share_before, share_after } => format!(
                "regression: share of CPU time grew {:.1}% → {:.1}%",
                share_before * 100.0,
                share_after * 100.0
            ),
            Verdict::NoGain { share_before, share_after } => format!(
                "no measurable gain: share of CPU time {:.1}% → {:.1}%",
                share_before * 100.0,
                share_after * 100.0
            ),
            Verdict::MeasuredHelped { speedup } => format!("saturated target; measured speedup {speedup:.2}×"),
            Verdict::MeasuredNoGain { speedup } => {
                format!("saturated target; measured speedup only {speedup:.2}×")
            }
            Verdict::Undecided { reason } => format!("undecided: {reason}"),
        }
    }
}

/// Judges an injection from the windows before and after, and the measured
/// speedup if any.
pub fn judge(before: Window, after: Window, measured_speedup: Option<f64>, c: Criterion) -> Verdict {
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
    let (share_before, share_after) = (before.share(), after.share());
    if share_before >= c.saturated && share_after >= c.saturated * (1.0 - c.margin) {
        return match measured_speedup {
            Some(s) if s >= 1.0 + c.margin => Verdict::MeasuredHelped { speedup: s },
            Some(s) => Verdict::MeasuredNoGain { speedup: s },
            None => Verdict::Undecided {
                reason: "the process spends nearly all its time there; no measured speedup".into(),
            },
        };
    }
    if share_after <= share_before * (1.0 - c.margin) {
        Verdict::Helped { share_before, share_after }
    } else if share_after >= share_before * (1.0 + c.margin) {
        Verdict::Regression { share_before, share_after }
    } else {
        Verdict::NoGain { share_before, share_after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(total: u64, in_code: u64) -> Window {
        Window { total, in_code }
    }

    #[test]
    fn a_shrinking_share_helped_a_growing_one_regressed() {
        let c = Criterion::default();
        assert!(matches!(judge(w(1000, 700), w(1000, 300), None, c), Verdict::Helped { .. }));
        assert!(matches!(judge(w(1000, 500), w(1000, 800), None, c), Verdict::Regression { .. }));
        assert!(matches!(judge(w(1000, 500), w(1000, 510), None, c), Verdict::NoGain { .. }));
        assert_eq!(judge(w(1000, 500), w(1000, 800), None, c).keep(), Some(false));
        assert_eq!(judge(w(1000, 700), w(1000, 300), None, c).keep(), Some(true));
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
        assert_eq!(judge(w(1000, 990), w(1000, 985), Some(3.0), c).keep(), Some(true));
        assert_eq!(judge(w(1000, 990), w(1000, 985), Some(1.01), c).keep(), Some(false));
        assert_eq!(judge(w(1000, 990), w(1000, 985), None, c).keep(), None);
        // A saturated target whose share did drop was helped regardless.
        assert!(matches!(judge(w(1000, 990), w(1000, 400), None, c), Verdict::Helped { .. }));
    }

    #[test]
    fn reasons_name_the_figures() {
        let v = judge(w(1000, 500), w(1000, 800), None, Criterion::default());
        assert!(v.reason().contains("50.0% → 80.0%"), "{}", v.reason());
    }
}
