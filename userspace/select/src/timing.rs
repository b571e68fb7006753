// SPDX-License-Identifier: GPL-2.0
//! The interleaved timing harness.
//!
//! Every candidate (the original and each variant) first calibrates how many
//! calls fill one batch of [`Budget::batch`] (which also warms caches and
//! branch predictors), then the candidates run one batch each, in turn, for
//! [`Budget::rounds`] rounds: A B C A B C … so that frequency changes,
//! other processes and host noise hit all of them alike. A candidate's
//! figure is the median batch throughput, with the quartiles and extremes
//! as its spread.
//!
//! Ratios between two candidates are *paired* ([`paired_ratio`]): the
//! median, over the rounds, of the ratio of their two batches of the same
//! round. Those batches ran a few milliseconds apart, so a slow moment of
//! the machine (another process, a descheduled vCPU) hits both, and the
//! ratio stays stable where the two medians alone would not.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Target duration of one batch.
    pub batch: Duration,
    /// Batches per candidate (the median is taken over them).
    pub rounds: usize,
}

impl Default for Budget {
    /// 2 ms batches, 21 rounds: about 45 ms per candidate and size, enough
    /// for a median stable to a few percent on a quiet machine.
    fn default() -> Self {
        Budget {
            batch: Duration::from_millis(2),
            rounds: 21,
        }
    }
}

impl Budget {
    /// A short budget for tests and smoke runs: 1 ms batches, 7 rounds.
    pub fn quick() -> Budget {
        Budget {
            batch: Duration::from_millis(1),
            rounds: 7,
        }
    }
}

/// One candidate's throughput at one size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Median batch throughput, bytes per second.
    #[serde(with = "crate::exact_f64")]
    pub bytes_per_sec: f64,
    /// First quartile of the batch throughputs.
    #[serde(with = "crate::exact_f64")]
    pub p25: f64,
    /// Third quartile.
    #[serde(with = "crate::exact_f64")]
    pub p75: f64,
    /// Slowest batch.
    #[serde(with = "crate::exact_f64")]
    pub min: f64,
    /// Fastest batch.
    #[serde(with = "crate::exact_f64")]
    pub max: f64,
    /// Batches measured.
    pub rounds: usize,
    /// Calls per batch.
    pub calls_per_batch: u64,
}

impl Figure {
    /// Relative spread: the interquartile range over the median (0.02 is
    /// ±1 % around the median).
    pub fn spread(&self) -> f64 {
        if self.bytes_per_sec > 0.0 {
            (self.p75 - self.p25) / self.bytes_per_sec
        } else {
            f64::INFINITY
        }
    }

    /// Median throughput in MB/s (10^6 bytes).
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes_per_sec / 1e6
    }

    /// A figure from batch throughputs (any order, at least one).
    pub fn from_samples(mut samples: Vec<f64>, calls_per_batch: u64) -> Figure {
        samples.sort_by(f64::total_cmp);
        let q = |p: f64| {
            if samples.is_empty() {
                return 0.0;
            }
            let i = ((samples.len() - 1) as f64 * p).round() as usize;
            samples[i.min(samples.len() - 1)]
        };
        Figure {
            bytes_per_sec: q(0.5),
            p25: q(0.25),
            p75: q(0.75),
            min: samples.first().copied().unwrap_or(0.0),
            max: samples.last().copied().unwrap_or(0.0),
            rounds: samples.len(),
            calls_per_batch,
        }
    }
}

/// Something to time: `run(calls)` makes `calls` calls of the measured
/// function.
pub type Runner<'a> = Box<dyn FnMut(u64) + 'a>;

/// Calls per batch for `run`, doubling until a batch lasts a quarter of the
/// target, then scaling.
fn calibrate(run: &mut Runner<'_>, batch: Duration) -> u64 {
    let mut n = 1u64;
    loop {
        let t = Instant::now();
        run(n);
        let e = t.elapsed();
        if e >= batch / 4 || n >= 1 << 32 {
            let per_call = e.as_secs_f64() / n as f64;
            return ((batch.as_secs_f64() / per_call.max(1e-12)) as u64).max(1);
        }
        n *= 2;
    }
}

/// One candidate's batch throughputs, in round order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Bytes per second of each batch, round by round.
    pub samples: Vec<f64>,
    /// Calls per batch.
    pub calls_per_batch: u64,
}

impl Series {
    /// The figure (median, quartiles, extremes) of the series.
    pub fn figure(&self) -> Figure {
        Figure::from_samples(self.samples.clone(), self.calls_per_batch)
    }
}

/// The median over the rounds of `a`'s throughput over `b`'s in the same
/// round (NaN when there is no round).
pub fn paired_ratio(a: &Series, b: &Series) -> f64 {
    let ratios: Vec<f64> = a
        .samples
        .iter()
        .zip(&b.samples)
        .map(|(x, y)| x / y)
        .collect();
    if ratios.is_empty() {
        return f64::NAN;
    }
    Figure::from_samples(ratios, 0).bytes_per_sec
}

/// Times every runner, interleaved (see the module documentation);
/// `bytes_per_call` converts calls to throughput.
pub fn measure(runners: &mut [Runner<'_>], bytes_per_call: u64, budget: Budget) -> Vec<Series> {
    let calls: Vec<u64> = runners
        .iter_mut()
        .map(|r| calibrate(r, budget.batch))
        .collect();
    let rounds = budget.rounds.max(1);
    let mut samples = vec![Vec::with_capacity(rounds); runners.len()];
    for _ in 0..rounds {
        for (i, run) in runners.iter_mut().enumerate() {
            let t = Instant::now();
            run(calls[i]);
            let e = t.elapsed().as_secs_f64().max(1e-9);
            samples[i].push(bytes_per_call as f64 * calls[i] as f64 / e);
        }
    }
    samples
        .into_iter()
        .zip(calls)
        .map(|(samples, calls_per_batch)| Series {
            samples,
            calls_per_batch,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_takes_median_and_quartiles() {
        let f = Figure::from_samples(vec![5.0, 1.0, 3.0, 2.0, 4.0], 10);
        assert_eq!(f.bytes_per_sec, 3.0);
        assert_eq!(f.p25, 2.0);
        assert_eq!(f.p75, 4.0);
        assert_eq!((f.min, f.max, f.rounds), (1.0, 5.0, 5));
        assert!((f.spread() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn paired_ratios_cancel_what_hits_both_candidates() {
        // The machine slows down 4x in the middle rounds: both slow down.
        let a = Series {
            samples: vec![200.0, 50.0, 50.0, 200.0, 200.0],
            calls_per_batch: 1,
        };
        let b = Series {
            samples: vec![100.0, 25.0, 25.0, 100.0, 100.0],
            calls_per_batch: 1,
        };
        assert_eq!(paired_ratio(&a, &b), 2.0);
        assert!(paired_ratio(
            &a,
            &Series {
                samples: vec![],
                calls_per_batch: 1
            }
        )
        .is_nan());
    }

    #[test]
    fn measure_runs_every_candidate_the_same_number_of_rounds() {
        let mut a = 0u64;
        let mut b = 0u64;
        {
            let mut runners: Vec<Runner<'_>> = vec![
                Box::new(|n| a += std::hint::black_box(n)),
                Box::new(|n| b += std::hint::black_box(n)),
            ];
            let series = measure(
                &mut runners,
                1,
                Budget {
                    batch: Duration::from_micros(100),
                    rounds: 3,
                },
            );
            assert_eq!(series.len(), 2);
            assert!(series
                .iter()
                .map(Series::figure)
                .all(|f| f.rounds == 3 && f.bytes_per_sec > 0.0));
        }
        assert!(a > 0 && b > 0);
    }
}
