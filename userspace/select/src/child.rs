// SPDX-License-Identifier: GPL-2.0
//! What the unprivileged measuring child does, and how its answer is read
//! back: the one mechanism that measures the original *and* the variants.
//!
//! The parent prepares a [`Job`] (the variants mapped, the inputs filled,
//! the original's file opened and checked) and calls [`run`]. In the child
//! ([`crate::sandbox`]) the original is loaded, the timing filter goes on,
//! the results are compared and, for the size classes not in the cache,
//! every candidate is timed, interleaved. The answer is a CBOR
//! [`ChildReport`], which the parent treats as hostile: [`validate`]
//! checks its size, shape, names, counts and that every figure is a finite
//! positive throughput before anything of it is used.
//!
//! What validation cannot do: once a hostile library's constructor has
//! run in the child, it could write a well-formed report of its own. That
//! report can only steer the decision for the target that mapped the
//! library (inject a verified variant into it, or nothing), and the cache
//! entry it produces is keyed on that file's sha256; what the original
//! *is* is judged from the parent's own reading ([`crate::evidence`]).

use serde::{Deserialize, Serialize};

use crate::driver::{CallResult, Workload};
use crate::original::{LoadMethod, Original, PreparedOriginal};
use crate::sandbox::{Identity, Limits, Lockdown, Sandbox, SandboxError};
use crate::timing::{measure, Budget, Runner, Series};

/// A variant mapped in the parent (verified code of the library).
pub struct JobVariant {
    /// Its name.
    pub name: String,
    /// Entry address of the measured function.
    pub entry: usize,
    /// Its import table, when its code calls the original through
    /// `fallback`: the slots are filled in the child, with the address of
    /// the original loaded there, before any of its code runs.
    pub imports: Option<ImportFill>,
    /// Its segment is `float-reassociate`: checked within the stated bound
    /// of the reference ([`crate::driver::Workload::relaxed_tolerance`]),
    /// not bit for bit.
    pub relaxed: bool,
}

/// Where a variant's import table is and which of its slots name the
/// original (`fallback`, the only import the child can provide).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportFill {
    /// Page-aligned start of the table's pages in the variant's mapping
    /// (read-only, never executable).
    pub table: usize,
    /// Bytes of the table's pages.
    pub len: usize,
    /// Addresses of the slots to hold the original's entry.
    pub fallback_slots: Vec<usize>,
}

impl ImportFill {
    /// Points every `fallback` slot at `original`: the table is made
    /// read+write (never executable), written, and read-only again.
    ///
    /// # Safety
    ///
    /// `self` must describe the table pages of a variant mapping this
    /// process owns, which nothing else writes or reads meanwhile.
    unsafe fn fill(&self, original: usize) -> Result<(), String> {
        let table = self.table as *mut libc::c_void;
        // SAFETY: the caller's contract: the pages are the variant's own
        // table, non-executable before and after.
        if unsafe { libc::mprotect(table, self.len, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
            return Err(format!(
                "making the import table writable: {}",
                std::io::Error::last_os_error()
            ));
        }
        for &slot in &self.fallback_slots {
            if slot < self.table || slot + 8 > self.table + self.len {
                return Err(format!("import slot {slot:#x} outside its table"));
            }
            // SAFETY: inside the table pages, just made writable; slots are
            // 8-byte aligned (the table is page-aligned, slots 8 bytes).
            unsafe { (slot as *mut u64).write(original as u64) };
        }
        // SAFETY: as above; read-only from now on.
        if unsafe { libc::mprotect(table, self.len, libc::PROT_READ) } != 0 {
            return Err(format!(
                "making the import table read-only: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}

/// Everything the child needs, prepared before `fork`.
pub struct Job<'a> {
    /// The variants, in order.
    pub variants: &'a [JobVariant],
    /// One workload per size class, in order.
    pub workloads: &'a [Workload],
    /// Per class: time it (else only check results).
    pub time: &'a [bool],
    /// The original, if any.
    pub original: Option<&'a PreparedOriginal>,
    /// How long to measure.
    pub budget: Budget,
}

/// Timed batches of one candidate at one size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timed {
    /// Bytes per second of each batch, round by round.
    pub samples: Vec<f64>,
    /// Calls per batch.
    pub calls_per_batch: u64,
}

/// One variant at one size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildVariant {
    /// Its name.
    pub name: String,
    /// Its result equalled the reference's (bit for bit, or within the
    /// stated bound for a `relaxed` variant).
    pub correct: bool,
    /// The largest difference of its output elements from the
    /// reference's, in ulps (BLAS shapes only; absent: not comparable or
    /// not finite).
    #[serde(default)]
    pub max_ulp: Option<u64>,
    /// Timed batches (absent when the class was not timed).
    pub timed: Option<Timed>,
}

/// One size class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildRow {
    /// Bytes per call.
    pub size: usize,
    /// The original's batches (absent without an original, or untimed).
    pub original: Option<Timed>,
    /// The variants, in the job's order.
    pub variants: Vec<ChildVariant>,
}

/// The child's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildReport {
    /// How the original was loaded, or why it could not be.
    pub original: Option<Result<LoadMethod, String>>,
    /// One row per size class.
    pub rows: Vec<ChildRow>,
}

/// The child's body.
fn body(job: &Job<'_>, lockdown: &Lockdown<'_>) -> ChildReport {
    let original = job.original.map(|p| {
        lockdown
            .file
            .ok_or_else(|| "the original's file was not passed to the child".to_owned())
            .and_then(|fd| Original::load_in_child(p, fd).map_err(|e| e.to_string()))
    });
    // Variants calling the original through `fallback` get its address
    // here, before any of their code runs; without it they cannot run.
    let importing: Vec<&ImportFill> = job
        .variants
        .iter()
        .filter_map(|v| v.imports.as_ref())
        .collect();
    if !importing.is_empty() {
        let filled = match &original {
            Some(Ok(o)) => importing
                .iter()
                // SAFETY: the tables are those of the variants the parent
                // mapped (inherited by this child, private), not yet run.
                .try_for_each(|t| unsafe { t.fill(o.entry()) }),
            Some(Err(e)) => Err(format!(
                "{e}; and the variants' code calls the original (import fallback), which must \
                 be loaded to run them"
            )),
            None => Err(
                "the variants' code calls the original (import fallback), and no \
                         original was given"
                    .to_owned(),
            ),
        };
        if let Err(e) = filled {
            return ChildReport {
                original: Some(Err(e)),
                rows: Vec::new(),
            };
        }
    }
    if let Err(e) = lockdown.enter_timing() {
        // Without the narrower filter, time nothing: report why.
        return ChildReport {
            original: Some(Err(e)),
            rows: Vec::new(),
        };
    }
    let loaded = original.as_ref().and_then(|r| r.as_ref().ok());
    let mut rows = Vec::new();
    for (work, &time) in job.workloads.iter().zip(job.time) {
        // Without a usable original every class is timed: cached figures
        // were ratios to it.
        let time = time || loaded.is_none();
        // SAFETY: every entry is a function of this workload's shape: the
        // variants' by the segment's contract (verified, mapped by the
        // parent), the original's by the caller's choice (checked against
        // the contract by adaptctl; its behaviour is confined to this
        // child). All stay mapped until the child exits.
        let reference: Option<CallResult> = match loaded {
            // SAFETY: as above.
            Some(o) => Some(unsafe { work.outcome(o.entry()) }),
            // SAFETY: as above.
            None => job
                .variants
                .last()
                .map(|v| unsafe { work.outcome(v.entry) }),
        };
        let tolerance = if job.variants.iter().any(|v| v.relaxed) {
            work.relaxed_tolerance()
        } else {
            None
        };
        let checked: Vec<(bool, Option<u64>)> = job
            .variants
            .iter()
            .map(|v| {
                // SAFETY: as above.
                let o = unsafe { work.outcome(v.entry) };
                let Some(r) = reference.as_ref() else {
                    return (false, None);
                };
                let correct = match (&tolerance, v.relaxed) {
                    (Some(t), true) => r.within(&o, t),
                    _ => r.agrees(&o),
                };
                (correct, r.max_ulp(&o))
            })
            .collect();
        let mut timed: Vec<Option<Timed>> = vec![None; job.variants.len() + 1];
        if time {
            let mut runners: Vec<Runner<'_>> = Vec::new();
            if let Some(o) = loaded {
                // SAFETY: as above.
                runners.push(unsafe { work.runner(o.entry()) });
            }
            for v in job.variants {
                // SAFETY: as above.
                runners.push(unsafe { work.runner(v.entry) });
            }
            let series = measure(&mut runners, work.bytes_per_call(), job.budget);
            let offset = usize::from(loaded.is_none());
            for (i, s) in series.into_iter().enumerate() {
                timed[i + offset] = Some(Timed {
                    samples: s.samples,
                    calls_per_batch: s.calls_per_batch,
                });
            }
        }
        let mut timed = timed.into_iter();
        let orig = timed.next().flatten();
        rows.push(ChildRow {
            size: work.size(),
            original: orig,
            variants: job
                .variants
                .iter()
                .zip(checked)
                .zip(timed)
                .map(|((v, (correct, max_ulp)), timed)| ChildVariant {
                    name: v.name.clone(),
                    correct,
                    max_ulp,
                    timed,
                })
                .collect(),
        });
    }
    ChildReport {
        original: original.map(|r| r.map(|o| o.method).map_err(|e| e.to_string())),
        rows,
    }
}

/// Runs `job` in an unprivileged child as `identity` (see
/// [`crate::sandbox`]) and returns its validated report, and whether the
/// child ran under the seccomp filters.
pub fn run(
    job: &Job<'_>,
    identity: Identity,
    limits: Limits,
) -> Result<(ChildReport, bool), String> {
    let sandbox = Sandbox::new(identity, limits, job.original.map(PreparedOriginal::raw_fd))
        .map_err(|e| e.to_string())?;
    let bytes = sandbox
        .run(|lockdown| {
            let report = body(job, lockdown);
            let mut out = Vec::new();
            // A Vec writer cannot fail; an empty answer is refused anyway.
            let _ = ciborium::into_writer(&report, &mut out);
            out
        })
        .map_err(|e: SandboxError| e.to_string())?;
    let mut cursor = std::io::Cursor::new(bytes.as_slice());
    let report: ChildReport = ciborium::from_reader(&mut cursor)
        .map_err(|e| format!("the measuring child's answer is not a report: {e}"))?;
    if cursor.position() != bytes.len() as u64 {
        return Err("the measuring child's answer has bytes after the report: refused".to_owned());
    }
    validate(&report, job)?;
    Ok((report, sandbox.filtered()))
}

/// Largest throughput believed: 1 PB/s.
const MAX_RATE: f64 = 1e15;

fn check_timed(t: &Timed, budget: Budget, who: &str, size: usize) -> Result<(), String> {
    if t.samples.len() != budget.rounds.max(1) {
        return Err(format!(
            "{who} at {size} bytes has {} batches, not {}",
            t.samples.len(),
            budget.rounds.max(1)
        ));
    }
    if t.calls_per_batch == 0 {
        return Err(format!("{who} at {size} bytes made no call per batch"));
    }
    if let Some(bad) = t
        .samples
        .iter()
        .find(|x| !x.is_finite() || **x <= 0.0 || **x > MAX_RATE)
    {
        return Err(format!(
            "{who} at {size} bytes has an impossible throughput {bad}"
        ));
    }
    Ok(())
}

/// Checks a report against the job it answers (see the module
/// documentation); the error says what was wrong.
pub fn validate(report: &ChildReport, job: &Job<'_>) -> Result<(), String> {
    let bad = |why: String| Err(format!("the measuring child's answer is refused: {why}"));
    if report.original.is_some() != job.original.is_some() {
        return bad("it reports on an original it was not given (or not on the one given)".into());
    }
    if let Some(Err(why)) = &report.original {
        if why.len() > 4096 {
            return bad("its error message is too long".into());
        }
        if report.rows.is_empty() && !job.workloads.is_empty() {
            // The timing filter failed: a report of nothing but the reason.
            return Ok(());
        }
    }
    let loaded = matches!(report.original, Some(Ok(_)));
    if report.rows.len() != job.workloads.len() {
        return bad(format!(
            "{} size rows for {} sizes",
            report.rows.len(),
            job.workloads.len()
        ));
    }
    for ((row, work), &time) in report.rows.iter().zip(job.workloads).zip(job.time) {
        let time = time || !loaded;
        if row.size != work.size() {
            return bad(format!("a row for {} bytes, not {}", row.size, work.size()));
        }
        if row.variants.len() != job.variants.len() {
            return bad(format!(
                "{} variants at {} bytes, not {}",
                row.variants.len(),
                row.size,
                job.variants.len()
            ));
        }
        match (&row.original, loaded && time) {
            (Some(t), true) => check_timed(t, job.budget, "the original", row.size)?,
            (None, false) => {}
            _ => return bad(format!("the original's figures at {} bytes", row.size)),
        }
        for (v, want) in row.variants.iter().zip(job.variants) {
            if v.name != want.name {
                return bad(format!(
                    "variant {:?} where {} was expected",
                    v.name, want.name
                ));
            }
            match (&v.timed, time) {
                (Some(t), true) => check_timed(t, job.budget, &v.name, row.size)?,
                (None, false) => {}
                _ => return bad(format!("{}'s figures at {} bytes", v.name, row.size)),
            }
        }
    }
    Ok(())
}

impl Timed {
    /// As a [`Series`] for the statistics.
    pub fn series(&self) -> Series {
        Series {
            samples: self.samples.clone(),
            calls_per_batch: self.calls_per_batch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Shape;
    use std::time::Duration;

    unsafe extern "C" fn sum_bytes(init: u64, buf: *const u8, len: u32) -> u64 {
        // SAFETY: the driver passes len readable bytes.
        let s = unsafe { std::slice::from_raw_parts(buf, len as usize) };
        s.iter().fold(init, |a, &b| a.wrapping_add(u64::from(b)))
    }

    unsafe extern "C" fn sum_wrong(init: u64, buf: *const u8, len: u32) -> u64 {
        // SAFETY: as above.
        unsafe { sum_bytes(init, buf, len) ^ 1 }
    }

    fn job_parts() -> (Vec<JobVariant>, Vec<Workload>) {
        (
            vec![
                JobVariant {
                    name: "wrong".into(),
                    entry: sum_wrong as *const () as usize,
                    imports: None,
                    relaxed: false,
                },
                JobVariant {
                    name: "right".into(),
                    entry: sum_bytes as *const () as usize,
                    imports: None,
                    relaxed: false,
                },
            ],
            vec![
                Workload::new(Shape::Checksum32Len, 64),
                Workload::new(Shape::Checksum32Len, 4096),
            ],
        )
    }

    fn budget() -> Budget {
        Budget {
            batch: Duration::from_micros(200),
            rounds: 3,
        }
    }

    #[test]
    fn variants_are_measured_and_checked_in_the_child() {
        let _g = crate::sandbox::tests_serial();
        let (variants, workloads) = job_parts();
        let job = Job {
            variants: &variants,
            workloads: &workloads,
            time: &[true, false],
            original: None,
            budget: budget(),
        };
        let (r, _) = run(&job, Identity::nobody(), Limits::default()).unwrap();
        assert_eq!(r.rows.len(), 2);
        for row in &r.rows {
            assert!(!row.variants[0].correct && row.variants[1].correct);
            // Without an original, every class is timed.
            assert!(row.variants.iter().all(|v| v.timed.is_some()));
        }
    }

    #[test]
    fn forged_or_malformed_answers_are_refused() {
        let (variants, workloads) = job_parts();
        let job = Job {
            variants: &variants,
            workloads: &workloads,
            time: &[true, true],
            original: None,
            budget: budget(),
        };
        let timed = Timed {
            samples: vec![1e9; 3],
            calls_per_batch: 10,
        };
        let good = ChildReport {
            original: None,
            rows: workloads
                .iter()
                .map(|w| ChildRow {
                    size: w.size(),
                    original: None,
                    variants: variants
                        .iter()
                        .map(|v| ChildVariant {
                            name: v.name.clone(),
                            correct: true,
                            max_ulp: None,
                            timed: Some(timed.clone()),
                        })
                        .collect(),
                })
                .collect(),
        };
        assert_eq!(validate(&good, &job), Ok(()));
        let mutate = |f: &dyn Fn(&mut ChildReport)| {
            let mut r = good.clone();
            f(&mut r);
            validate(&r, &job).unwrap_err()
        };
        assert!(mutate(&|r| r.rows[0].variants[0].name = "evil".into()).contains("evil"));
        assert!(mutate(&|r| r.rows.pop().map(drop).unwrap_or(())).contains("size rows"));
        assert!(mutate(&|r| r.rows[1].size = 5).contains("5 bytes"));
        for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1e300] {
            let e = mutate(&|r| {
                if let Some(t) = r.rows[0].variants[1].timed.as_mut() {
                    t.samples[1] = bad;
                }
            });
            assert!(e.contains("impossible"), "{e}");
        }
        assert!(mutate(&|r| r.rows[0].variants[1].timed = None).contains("figures"));
        assert!(mutate(&|r| r.original = Some(Ok(LoadMethod::Dlopen))).contains("not given"));
        assert!(mutate(&|r| {
            if let Some(t) = r.rows[0].variants[0].timed.as_mut() {
                t.samples.push(1.0);
            }
        })
        .contains("batches"));
        // Garbage bytes do not decode.
        assert!(ciborium::from_reader::<ChildReport, _>(&b"\xff\x00garbage"[..]).is_err());
    }
}
