// SPDX-License-Identifier: GPL-2.0
//! A small interleaved benchmark harness: every candidate of a row is timed
//! in turn, round after round, so that frequency changes and noise hit all
//! of them alike; the median batch is reported.

use std::time::{Duration, Instant};

/// Something to time: `run(iters)` performs `iters` calls.
pub struct Candidate<'a> {
    /// Column name.
    pub name: String,
    /// Runs the measured operation the given number of times.
    pub run: Box<dyn FnMut(u64) + 'a>,
}

impl<'a> Candidate<'a> {
    /// A named candidate.
    pub fn new(name: impl Into<String>, run: impl FnMut(u64) + 'a) -> Candidate<'a> {
        Candidate {
            name: name.into(),
            run: Box::new(run),
        }
    }
}

/// How long one batch should take.
pub const BATCH: Duration = Duration::from_millis(4);
/// Rounds over all candidates.
pub const ROUNDS: usize = 11;

/// Throughput of each candidate in bytes per second, `bytes` being the work
/// of one call: the median over [`ROUNDS`] interleaved batches of about
/// [`BATCH`] each.
pub fn measure(cands: &mut [Candidate<'_>], bytes: u64) -> Vec<f64> {
    // Calibrate: iterations per batch, per candidate (and warm up).
    let mut iters = Vec::new();
    for c in cands.iter_mut() {
        let mut n = 1u64;
        loop {
            let t = Instant::now();
            (c.run)(n);
            let e = t.elapsed();
            if e >= BATCH / 4 || n >= 1 << 30 {
                let per = e.as_secs_f64() / n as f64;
                iters.push(((BATCH.as_secs_f64() / per.max(1e-12)) as u64).max(1));
                break;
            }
            n *= 2;
        }
    }
    let mut samples = vec![Vec::with_capacity(ROUNDS); cands.len()];
    for _ in 0..ROUNDS {
        for (i, c) in cands.iter_mut().enumerate() {
            let t = Instant::now();
            (c.run)(iters[i]);
            let e = t.elapsed().as_secs_f64();
            samples[i].push(bytes as f64 * iters[i] as f64 / e);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect()
}

/// Formats bytes per second as MB/s (10^6).
pub fn mbps(v: f64) -> String {
    format!("{:.0}", v / 1e6)
}
