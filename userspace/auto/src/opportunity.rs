//! Hot functions the library can replace, ranked by expected gain.
//!
//! Expected gain is the fraction of the target's CPU time the replacement
//! should save: `share × (1 − 1/speedup)`, where `share` is the function's
//! share of the target's samples and `speedup` the segment's measured
//! speedup over the original on this machine. It orders opportunities by
//! "share of time × speedup" as the issue asks, but saturates correctly: a
//! 10× faster function at 50 % saves 45 %, a 2× faster one at 90 % saves
//! 45 % too.

use serde::Serialize;

/// A hot function with a segment that could replace it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    pub pid: u32,
    pub function: String,
    pub object: String,
    pub segment: String,
    pub variant: String,
    /// Share of the target's samples in the function, 0–1.
    pub share: f64,
    /// Samples the share is based on.
    pub samples: u64,
    /// Measured speedup of the variant over the original (>1 is faster);
    /// `None` when it could not be measured.
    pub speedup: Option<f64>,
}

/// A candidate worth injecting, with its expected gain.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Opportunity {
    #[serde(flatten)]
    pub candidate: Candidate,
    /// Expected fraction of CPU time saved, 0–1.
    pub expected_gain: f64,
}

/// Thresholds for calling a function an opportunity.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// Smallest share of samples worth acting on.
    pub min_share: f64,
    /// Fewest samples in the function to trust its share.
    pub min_samples: u64,
    /// Smallest measured speedup worth injecting (1 + regression margin).
    pub min_speedup: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            min_share: 0.05,
            min_samples: 20,
            min_speedup: 1.05,
        }
    }
}

/// Keeps the candidates that clear the thresholds and ranks them by
/// expected gain, highest first. A candidate whose speedup is unknown is
/// ranked as if it were exactly `min_speedup` (it must prove itself after
/// injection).
pub fn rank(candidates: Vec<Candidate>, t: Thresholds) -> Vec<Opportunity> {
    let mut out: Vec<Opportunity> = candidates
        .into_iter()
        .filter(|c| c.share >= t.min_share && c.samples >= t.min_samples)
        .filter(|c| c.speedup.is_none_or(|s| s >= t.min_speedup))
        .map(|c| {
            let speedup = c.speedup.unwrap_or(t.min_speedup);
            let expected_gain = c.share * (1.0 - 1.0 / speedup);
            Opportunity {
                candidate: c,
                expected_gain,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.expected_gain
            .total_cmp(&a.expected_gain)
            .then_with(|| a.candidate.function.cmp(&b.candidate.function))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(function: &str, share: f64, speedup: Option<f64>) -> Candidate {
        Candidate {
            pid: 1,
            function: function.into(),
            object: "/lib/libz.so.1".into(),
            segment: "seg".into(),
            variant: "v".into(),
            share,
            samples: (share * 1000.0) as u64,
            speedup,
        }
    }

    #[test]
    fn ranks_by_time_saved() {
        let ranked = rank(
            vec![
                cand("a", 0.2, Some(10.0)),
                cand("b", 0.6, Some(2.0)),
                cand("c", 0.5, Some(1.2)),
            ],
            Thresholds::default(),
        );
        let names: Vec<_> = ranked
            .iter()
            .map(|o| o.candidate.function.as_str())
            .collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert!((ranked[0].expected_gain - 0.3).abs() < 1e-9);
        assert!((ranked[1].expected_gain - 0.18).abs() < 1e-9);
    }

    #[test]
    fn cold_rare_and_slower_functions_are_not_opportunities() {
        let t = Thresholds::default();
        let ranked = rank(
            vec![
                cand("cold", 0.01, Some(10.0)),
                cand("slower", 0.5, Some(0.8)),
                Candidate {
                    samples: 3,
                    ..cand("rare", 0.5, Some(3.0))
                },
                cand("unknown", 0.5, None),
            ],
            t,
        );
        let names: Vec<_> = ranked
            .iter()
            .map(|o| o.candidate.function.as_str())
            .collect();
        assert_eq!(names, ["unknown"]);
        assert!(ranked[0].expected_gain > 0.0);
    }
}
