// SPDX-License-Identifier: GPL-2.0
//! The decision rule.
//!
//! For each variant and size class, the *ratio* is the variant's throughput
//! over the original's, paired round by round in the same interleaved run
//! (the median of the per-round ratios, [`crate::timing::paired_ratio`]). A
//! variant's *speedup* is the geometric mean of its ratios over the size
//! classes measured (each class weighs the same), its *worst* ratio the
//! smallest.
//!
//! A variant is **eligible** when
//! 1. its result equalled the original's on the measurement inputs,
//! 2. its speedup is at least `1 + margin`, and
//! 3. no size class is more than `margin` slower than the original
//!    (worst ratio ≥ `1 − margin`): a target calling with that size would
//!    lose.
//!
//! The eligible variant with the highest speedup is chosen; without one,
//! **nothing is injected** and the figures say why. The default margin is
//! [`DEFAULT_MARGIN`] (5 %): below it, a gain is within what a busy machine's
//! noise and the cost of an injection can take back.
//!
//! An **override** (`--variant V`) injects V whatever it measured, and the
//! decision records that it was forced, its own speedup, whether it
//! measured slower, and what the rule alone would have chosen. A variant
//! whose result differed from the original's is never injected, override
//! or not.

use serde::{Deserialize, Serialize};

use crate::sizes::SizeClass;

/// The default margin: a variant must be at least 5 % faster.
pub const DEFAULT_MARGIN: f64 = 0.05;

/// Share of the target's time below which an observed size class does not
/// count for a variant's worst ratio.
pub const MIN_TIME_SHARE: f64 = 0.01;

/// One variant's measured ratios.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Variant name.
    pub variant: String,
    /// Whether its result equalled the original's at every size.
    pub correct: bool,
    /// Variant throughput over the original's, per size class.
    pub ratios: Vec<(SizeClass, f64)>,
    /// The time the target spends at each size class (calls × bytes of
    /// its observed calls); empty: every class weighs the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<(SizeClass, f64)>,
    /// Why it may not be chosen whatever it measures (a relaxed,
    /// `float-reassociate` variant the caller did not allow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}

impl Comparison {
    /// Geometric mean of the ratios (NaN without any); with
    /// [`Comparison::weights`], the speedup of the target's own mix
    /// instead: its time at the original's speed over its time at the
    /// variant's, `Σ w / Σ (w / ratio)` over the measured classes.
    pub fn speedup(&self) -> f64 {
        if self.ratios.is_empty() {
            return f64::NAN;
        }
        if !self.weights.is_empty() {
            let (mut time, mut time_variant) = (0.0, 0.0);
            for (class, r) in &self.ratios {
                let w = self
                    .weights
                    .iter()
                    .find(|(c, _)| c == class)
                    .map_or(0.0, |(_, w)| *w);
                time += w;
                time_variant += w / r.max(1e-12);
            }
            if time > 0.0 {
                return time / time_variant;
            }
        }
        let logs: f64 = self.ratios.iter().map(|(_, r)| r.max(1e-12).ln()).sum();
        (logs / self.ratios.len() as f64).exp()
    }

    /// The smallest ratio; with [`Comparison::weights`], among the size
    /// classes that take at least [`MIN_TIME_SHARE`] of the target's time
    /// (a size it calls rarely and briefly cannot make it lose).
    pub fn worst(&self) -> f64 {
        let total: f64 = self.weights.iter().map(|(_, w)| w).sum();
        self.ratios
            .iter()
            .filter(|(class, _)| {
                total <= 0.0
                    || self
                        .weights
                        .iter()
                        .any(|(c, w)| c == class && *w >= MIN_TIME_SHARE * total)
            })
            .map(|(_, r)| *r)
            .fold(f64::INFINITY, f64::min)
    }

    /// Why the variant is not eligible under `margin`, or `None` if it is.
    pub fn ineligible(&self, margin: f64) -> Option<String> {
        if !self.correct {
            return Some("its result differs from the original's".to_owned());
        }
        if let Some(why) = &self.blocked {
            return Some(why.clone());
        }
        let s = self.speedup();
        // NaN (no ratio) is not a speedup either.
        if s.is_nan() || s < 1.0 + margin {
            return Some(format!(
                "{s:.2}× the original, below the required {:.2}×",
                1.0 + margin
            ));
        }
        let w = self.worst();
        if w < 1.0 - margin {
            let (size, _) = self
                .ratios
                .iter()
                .find(|(_, r)| *r == w)
                .copied()
                .unwrap_or((SizeClass::of(0), w));
            return Some(format!(
                "{w:.2}× the original at {size}, more than {:.0} % slower",
                margin * 100.0
            ));
        }
        None
    }
}

/// What the rule alone decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Choice {
    /// Inject this variant.
    Variant {
        /// Its name.
        variant: String,
        /// Its speedup (geometric mean of the ratios).
        speedup: f64,
        /// Its worst ratio.
        worst: f64,
    },
    /// Inject nothing: no variant is eligible.
    Nothing {
        /// Why, with the best candidate's figures.
        reason: String,
    },
    /// The original could not be run in this process: the variants were
    /// measured against each other only; the caller must compare in the
    /// target (inject, profile before and after, revert if it did not
    /// help).
    OriginalUnavailable {
        /// Why.
        reason: String,
        /// The fastest variant measured here (geometric mean over the
        /// sizes), if any ran correctly.
        fastest: Option<String>,
    },
}

/// An override by the caller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forced {
    /// The variant named.
    pub variant: String,
    /// Its measured speedup (absent when the original was not measured).
    pub speedup: Option<f64>,
    /// It measured slower than the original (speedup below 1).
    pub measured_slower: bool,
    /// Why the rule alone would not pick it (absent when it would).
    pub rule_says: Option<String>,
    /// Its result differed from the original's: refused even forced.
    pub wrong_result: bool,
}

/// The decision: the rule's choice, and an override if one was asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The margin used.
    pub margin: f64,
    /// What the rule chose (what `adaptctl auto` does).
    pub choice: Choice,
    /// The override, if any.
    pub forced: Option<Forced>,
}

impl Decision {
    /// The variant to inject: the override (unless its result was wrong),
    /// else the rule's variant, else the fastest variant when the original
    /// could not be measured here; `None` means inject nothing.
    pub fn variant_to_inject(&self) -> Option<&str> {
        if let Some(f) = &self.forced {
            return (!f.wrong_result).then_some(f.variant.as_str());
        }
        match &self.choice {
            Choice::Variant { variant, .. } => Some(variant),
            Choice::OriginalUnavailable { fastest, .. } => fastest.as_deref(),
            Choice::Nothing { .. } => None,
        }
    }

    /// Whether the rule alone (no override) would inject something after a
    /// measurement against the original.
    pub fn rule_injects(&self) -> bool {
        matches!(self.choice, Choice::Variant { .. })
    }
}

/// Applies the rule to `comparisons` (see the module documentation).
pub fn decide(comparisons: &[Comparison], margin: f64, forced: Option<&str>) -> Decision {
    let mut best: Option<&Comparison> = None;
    for c in comparisons
        .iter()
        .filter(|c| c.ineligible(margin).is_none())
    {
        if best.is_none_or(|b| c.speedup() > b.speedup()) {
            best = Some(c);
        }
    }
    let choice = match best {
        Some(c) => Choice::Variant {
            variant: c.variant.clone(),
            speedup: c.speedup(),
            worst: c.worst(),
        },
        None => {
            let top = comparisons
                .iter()
                .filter(|c| c.correct)
                .max_by(|a, b| a.speedup().total_cmp(&b.speedup()));
            let reason = match top {
                Some(c) => format!(
                    "no variant beats the original by {:.0} %: the best, {}, is {}",
                    margin * 100.0,
                    c.variant,
                    c.ineligible(margin).unwrap_or_default()
                ),
                None if comparisons.is_empty() => "no variant was measured".to_owned(),
                None => {
                    "every variant's result differs from the original's: is the original really \
                         the function the segment replaces?"
                        .to_owned()
                }
            };
            Choice::Nothing { reason }
        }
    };
    let forced = forced.map(|name| {
        let c = comparisons.iter().find(|c| c.variant == name);
        Forced {
            variant: name.to_owned(),
            speedup: c.map(Comparison::speedup),
            measured_slower: c.is_some_and(|c| c.speedup() < 1.0),
            rule_says: c.and_then(|c| c.ineligible(margin)),
            wrong_result: c.is_some_and(|c| !c.correct),
        }
    });
    Decision {
        margin,
        choice,
        forced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_variant_is_never_chosen_however_fast() {
        let mut relaxed = cmp("rlx", true, &[3.0, 3.0]);
        relaxed.blocked = Some("float-reassociate, not allowed".into());
        let exact = cmp("exact", true, &[1.5, 1.5]);
        let d = decide(&[relaxed.clone(), exact], 0.05, None);
        assert!(matches!(&d.choice, Choice::Variant { variant, .. } if variant == "exact"));
        let d = decide(&[relaxed], 0.05, None);
        match &d.choice {
            Choice::Nothing { reason } => assert!(reason.contains("not allowed"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    fn cmp(name: &str, correct: bool, ratios: &[f64]) -> Comparison {
        Comparison {
            weights: Vec::new(),
            blocked: None,
            variant: name.to_owned(),
            correct,
            ratios: ratios
                .iter()
                .enumerate()
                .map(|(i, r)| (SizeClass::of(64 << (4 * i)), *r))
                .collect(),
        }
    }

    #[test]
    fn the_fastest_variant_beyond_the_margin_wins() {
        let d = decide(
            &[
                cmp("a", true, &[1.2, 1.3]),
                cmp("b", true, &[2.0, 2.2]),
                cmp("c", true, &[1.0, 1.0]),
            ],
            DEFAULT_MARGIN,
            None,
        );
        match &d.choice {
            Choice::Variant {
                variant, speedup, ..
            } => {
                assert_eq!(variant, "b");
                assert!((speedup - (2.0f64 * 2.2).sqrt()).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.variant_to_inject(), Some("b"));
        assert!(d.rule_injects());
    }

    #[test]
    fn a_gain_below_the_margin_injects_nothing() {
        let d = decide(
            &[cmp("a", true, &[1.03, 1.04]), cmp("b", true, &[0.5, 0.6])],
            DEFAULT_MARGIN,
            None,
        );
        let Choice::Nothing { reason } = &d.choice else {
            panic!("{d:?}")
        };
        assert!(reason.contains("the best, a, is 1.03×"), "{reason}");
        assert_eq!(d.variant_to_inject(), None);
        // A larger margin refuses what a smaller one accepts.
        let accepted = decide(&[cmp("a", true, &[1.03, 1.04])], 0.02, None);
        assert_eq!(accepted.variant_to_inject(), Some("a"));
    }

    #[test]
    fn a_variant_much_slower_at_one_size_is_not_chosen() {
        // Geometric mean 1.5, but 10 % slower at one size.
        let d = decide(&[cmp("a", true, &[2.5, 0.9])], DEFAULT_MARGIN, None);
        let Choice::Nothing { reason } = &d.choice else {
            panic!("{d:?}")
        };
        assert!(
            reason.contains("0.90×") && reason.contains("slower"),
            "{reason}"
        );
    }

    #[test]
    fn a_wrong_result_is_never_injected() {
        let d = decide(
            &[cmp("fast-but-wrong", false, &[5.0])],
            DEFAULT_MARGIN,
            None,
        );
        assert!(matches!(&d.choice, Choice::Nothing { reason } if reason.contains("differs")));
        let forced = decide(
            &[cmp("fast-but-wrong", false, &[5.0])],
            DEFAULT_MARGIN,
            Some("fast-but-wrong"),
        );
        assert!(forced.forced.as_ref().unwrap().wrong_result);
        assert_eq!(forced.variant_to_inject(), None);
    }

    #[test]
    fn an_override_injects_a_slower_variant_and_says_the_rule_would_not() {
        let cs = [
            cmp("slow", true, &[0.5, 0.6]),
            cmp("fast", true, &[1.5, 1.6]),
        ];
        let d = decide(&cs, DEFAULT_MARGIN, Some("slow"));
        assert_eq!(d.variant_to_inject(), Some("slow"));
        let f = d.forced.as_ref().unwrap();
        assert!(f.measured_slower);
        assert!(f
            .rule_says
            .as_deref()
            .unwrap()
            .contains("below the required"));
        // What auto would have done is still recorded: the fast one.
        assert!(matches!(&d.choice, Choice::Variant { variant, .. } if variant == "fast"));
        // Without the override, the slow variant is not what gets injected.
        assert_eq!(
            decide(&cs, DEFAULT_MARGIN, None).variant_to_inject(),
            Some("fast")
        );
        // Overriding with the rule's own choice is not "slower".
        let same = decide(&cs, DEFAULT_MARGIN, Some("fast"));
        let f = same.forced.unwrap();
        assert!(!f.measured_slower && f.rule_says.is_none());
    }

    #[test]
    fn observed_calls_weight_the_speedup_by_the_time_each_size_takes() {
        // 2× faster on short calls, 0.9× on long ones.
        let mut c = cmp("v", true, &[2.0, 0.9]);
        let (short, long) = (c.ratios[0].0, c.ratios[1].0);
        let unweighted = c.speedup();
        assert!((unweighted - (2.0f64 * 0.9).sqrt()).abs() < 1e-12);
        // A program whose time goes to the long calls gains nothing.
        c.weights = vec![(short, 1.0), (long, 99.0)];
        let mostly_long = c.speedup();
        assert!(mostly_long < 1.0, "{mostly_long}");
        // One whose time goes to the short calls gains nearly 2×.
        c.weights = vec![(short, 99.0), (long, 1.0)];
        let mostly_short = c.speedup();
        assert!(mostly_short > 1.9 && mostly_short < 2.0, "{mostly_short}");
        // Time at the original's speed over time at the variant's.
        c.weights = vec![(short, 1.0), (long, 1.0)];
        assert!((c.speedup() - 2.0 / (0.5 + 1.0 / 0.9)).abs() < 1e-12);
        // A size that takes under 1 % of the time cannot make it lose.
        let mut d = cmp("w", true, &[0.5, 1.5]);
        let (tiny, big) = (d.ratios[0].0, d.ratios[1].0);
        assert!(d.ineligible(DEFAULT_MARGIN).is_some());
        d.weights = vec![(tiny, 0.5), (big, 99.5)];
        assert_eq!(d.worst(), 1.5);
        assert!(
            d.ineligible(DEFAULT_MARGIN).is_none(),
            "{:?}",
            d.ineligible(DEFAULT_MARGIN)
        );
    }
}
