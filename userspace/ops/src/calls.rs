//! Counting a function's calls in a running process (issue 12 §2): a
//! generated counting segment ([`adapt_count`]) injected at the function's
//! entry like any segment with a `fallback` import (same rendezvous, same
//! re-checks under the park, reverted the same way), its counters read
//! from the injection's data area through `/proc/PID/mem`
//! (`adapt_target::read_memory`: the kernel's `access_remote_vm` behind
//! the same ptrace access check a debugger passes; no new ioctl, and the
//! module never interprets the target's data).
//!
//! [`Counting`] is one live counting injection: `adaptctl calls` starts
//! one, reads it twice a window apart and reverts it; the adaptive loop
//! uses it for time per call.

use crate::contract::{ContractSource, TargetContract};
use crate::inject::Done;
use crate::plan::{Plan, PlannedImport};
use crate::timings::Timings;
use adapt_client::inject::Reverted;
use adapt_client::Device;
use adapt_count::{counting_segment, Counters};
use adapt_target::CheckOptions;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Why counting failed.
#[derive(Debug, thiserror::Error)]
pub enum CallsError {
    #[error(transparent)]
    Generate(#[from] adapt_count::GenerateError),
    #[error(
        "the generated counting segment was refused by the verifier (a bug in adapt-count): {0}"
    )]
    Refused(String),
    #[error(
        "cannot read the counters of injection #{id} at {addr:#x} in pid {pid}: {source} \
         (the process may have exited, or unmapped its data area)"
    )]
    Unreadable {
        id: u64,
        pid: u32,
        addr: u64,
        source: adapt_target::MemoryError,
    },
    #[error("the module did not report a data area for counting injection #{id} (module and adaptctl disagree on the ABI?)")]
    NoDataArea { id: u64 },
    #[error("reading the counters of injection #{id} returned {got} bytes, fewer than they take")]
    ShortRead { id: u64, got: usize },
}

/// The plan of a counting injection at `symbol` (in `object`, when given)
/// of process `pid`, with the histogram of integer argument `arg`
/// (0-based) when given. Marks `generate` and `target` in `timings`.
pub fn plan(
    pid: u32,
    symbol: &str,
    object: Option<&str>,
    arg: Option<u8>,
    options: CheckOptions,
    timings: &mut Timings,
) -> crate::Result<Plan> {
    let target = adapt_target::inspect(pid, symbol, object, options)?;
    timings.mark("target");
    let plan = plan_for(target, arg)?;
    timings.mark("generate");
    Ok(plan)
}

/// The plan of a counting injection at `target` (already inspected).
pub fn plan_for(target: adapt_target::Target, arg: Option<u8>) -> crate::Result<Plan> {
    let counting = counting_segment(arg).map_err(CallsError::from)?;
    plan_counting(target, counting)
}

/// The plan of `candidate` (a plan of a library variant) with a call
/// counter in front: what the adaptive loop injects to measure the
/// candidate's time per call (see `adapt_count::compose`).
pub fn counted_plan(candidate: &Plan) -> crate::Result<Plan> {
    let file =
        adapt_segment::SegmentFile::new(candidate.verified.clone(), candidate.import_decls.clone());
    let (variant, _) = candidate
        .verified
        .variant(&candidate.variant)
        .ok_or_else(|| crate::plan::PlanError::NoSuchVariant {
            segment: candidate.segment.clone(),
            variant: candidate.variant.clone(),
            available: candidate.verified.variant_names(),
        })?;
    let counting = adapt_count::counted_variant(&file, variant, candidate.entry as usize)
        .map_err(CallsError::from)?;
    let mut plan = plan_counting(candidate.target.clone(), counting)?;
    // The candidate's own contract and imports (resolved already), with
    // `fallback` for a leaf variant, which counting gives one.
    plan.contract = candidate.contract.clone();
    if !candidate.imports.is_empty() {
        plan.imports = candidate.imports.clone();
    }
    plan.segment_file = candidate.segment_file.clone();
    plan.variant_features = candidate.variant_features.clone();
    Ok(plan)
}

fn plan_counting(
    target: adapt_target::Target,
    counting: adapt_count::CountingSegment,
) -> crate::Result<Plan> {
    let pid = target.pid;
    let adapt_count::CountingSegment {
        file,
        variant,
        data_len,
    } = counting;
    adapt_segment::verify_with_data(&file.segment, &file.imports, data_len)
        .map_err(|e| CallsError::Refused(e.to_string()))?;
    let function = file.segment.functions[0].clone();
    let signature = crate::contract::signature(&function.contract);
    let hash = adapt_client::upload::contract_hash(&function.contract);
    let adapt_segment::SegmentFile {
        segment, imports, ..
    } = file;
    Ok(Plan {
        pid,
        target,
        segment: segment.name.clone(),
        segment_file: PathBuf::from("(generated)"),
        function: function.symbol,
        entry: 0,
        variant,
        // A generated counter passes every argument through (exact); a
        // counter composed in front of a library variant keeps that
        // segment's numerics (checked when the variant was planned).
        numerics: segment.numerics,
        variant_features: Vec::new(),
        contract: TargetContract {
            signature,
            hash,
            source: ContractSource::PassThrough,
        },
        imports: vec![PlannedImport {
            name: adapt_segment::FALLBACK.to_owned(),
            object: None,
            address: None,
        }],
        verified: segment,
        import_decls: imports,
        data_len,
    })
}

/// One live counting injection.
#[derive(Debug)]
pub struct Counting {
    pub pid: u32,
    /// The injection (its id reverts it).
    pub done: Done,
    /// Where its counters are in the target.
    pub data_addr: u64,
    /// The counters right after the injection.
    pub first: Counters,
    /// When `first` was read.
    pub started: Instant,
}

impl Counting {
    /// Injects the counting segment of `plan` (from [`plan`] or
    /// [`counted_plan`]); `automatic` marks requests of the adaptive loop.
    pub fn start(
        device: &Device,
        plan: &Plan,
        automatic: bool,
        timings: &mut Timings,
    ) -> crate::Result<Counting> {
        let done = crate::inject::execute(device, plan, automatic, timings)?;
        let id = done.injected.id;
        let listed = match adapt_client::inject::list(device, Some(plan.pid)) {
            Ok(list) => list,
            Err(err) => {
                // Never leave a counter behind that nobody reads.
                let _ = adapt_client::inject::revert(device, id);
                return Err(err.into());
            }
        };
        let data_addr = listed
            .into_iter()
            .find(|i| i.id == id)
            .map(|i| i.data_addr)
            .filter(|&a| a != 0);
        let Some(data_addr) = data_addr else {
            // Not counting: take it out again.
            let _ = adapt_client::inject::revert(device, id);
            return Err(CallsError::NoDataArea { id }.into());
        };
        let mut counting = Counting {
            pid: plan.pid,
            done,
            data_addr,
            first: Counters {
                calls: 0,
                histogram: vec![0; adapt_count::BUCKETS],
            },
            started: Instant::now(),
        };
        match counting.read() {
            Ok(first) => {
                // The window starts at the first read: calls/s divides the
                // calls since then by the time since then.
                counting.first = first;
                counting.started = Instant::now();
            }
            Err(err) => {
                let _ = counting.stop(device);
                return Err(err);
            }
        }
        Ok(counting)
    }

    /// The counters now (since the data area was made).
    pub fn read(&self) -> crate::Result<Counters> {
        let len = adapt_count::data::COUNTERS_LEN;
        let unreadable = |source| CallsError::Unreadable {
            id: self.done.injected.id,
            pid: self.pid,
            addr: self.data_addr,
            source,
        };
        let bytes = adapt_target::read_memory(self.pid, self.data_addr, len).map_err(unreadable)?;
        Counters::parse(&bytes).ok_or_else(|| {
            CallsError::ShortRead {
                id: self.done.injected.id,
                got: bytes.len(),
            }
            .into()
        })
    }

    /// What was counted since the injection.
    pub fn counted(&self) -> crate::Result<Counters> {
        Ok(self.read()?.since(&self.first))
    }

    /// Reverts the counting injection.
    pub fn stop(self, device: &Device) -> crate::Result<Reverted> {
        Ok(adapt_client::inject::revert(device, self.done.injected.id)?)
    }
}

/// What `adaptctl calls` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    pub pid: u32,
    pub symbol: String,
    pub object: String,
    pub address: u64,
    /// The counting injection (reverted at the end).
    pub injection: u64,
    /// Seconds between the first and the last read.
    pub seconds: f64,
    pub calls: u64,
    pub calls_per_second: f64,
    /// The argument histogrammed (0-based), if any.
    pub arg: Option<u8>,
    /// Its non-empty log2 buckets.
    pub histogram: Vec<adapt_count::Bucket>,
    /// How long the target's threads were held for the injection and the
    /// revert, ns.
    pub inject_pause_ns: u64,
    pub revert_pause_ns: u64,
}

/// Counts `plan`'s function for `duration` (or until `stop` is set), then
/// reverts the counting injection, also on failure.
pub fn run(
    device: &Device,
    plan: &Plan,
    arg: Option<u8>,
    duration: Duration,
    stop: &std::sync::atomic::AtomicBool,
    timings: &mut Timings,
) -> crate::Result<Report> {
    let counting = Counting::start(device, plan, false, timings)?;
    let deadline = counting.started + duration;
    while Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep((deadline - Instant::now()).min(Duration::from_millis(50)));
    }
    let counted = counting.counted();
    let seconds = counting.started.elapsed().as_secs_f64();
    let injection = counting.done.injected.id;
    let inject_pause_ns = counting.done.injected.pause_ns;
    let reverted = counting.stop(device);
    timings.mark("count");
    let counted = counted?;
    let reverted = reverted?;
    Ok(Report {
        pid: plan.pid,
        symbol: plan.target.symbol.name.clone(),
        object: plan.target.symbol.object.path.clone(),
        address: plan.target.symbol.address,
        injection,
        seconds,
        calls: counted.calls,
        calls_per_second: counted.calls as f64 / seconds.max(1e-9),
        arg,
        histogram: if arg.is_some() {
            counted.buckets()
        } else {
            Vec::new()
        },
        inject_pause_ns,
        revert_pause_ns: reverted.pause_ns,
    })
}

/// Calls per second and time per call of one function, from a profile
/// window with its calls counted (`adaptctl profile --calls`).
#[derive(Debug, Serialize)]
pub struct CallRate {
    pub function: String,
    pub object: String,
    pub calls: u64,
    pub calls_per_second: f64,
    /// Samples attributed to the function in the counted window (its own,
    /// plus its share of the counters' by calls).
    pub samples: f64,
    /// Samples × sampling period ÷ calls, ns, with a 95 % interval from
    /// the samples' Poisson error (absent without samples or calls).
    pub ns_per_call: Option<f64>,
    pub ns_per_call_low: Option<f64>,
    pub ns_per_call_high: Option<f64>,
    /// Why it was not counted, if it was not.
    pub error: Option<String>,
}

/// Counts the calls of `functions` (name, object) of process `pid` while
/// one more profile window of `sampling` runs, then reverts the counters.
/// Counters all show up as `[adapt:count-calls]` in the profile; those
/// samples are shared out in proportion to the calls (each call runs the
/// same few counter instructions).
pub fn rates(
    device: &Device,
    sampling: &crate::collect::Sampling<'_>,
    functions: &[(String, String)],
    timings: &mut Timings,
) -> crate::Result<Vec<CallRate>> {
    let options = CheckOptions::default();
    let mut live: Vec<(usize, Counting)> = Vec::new();
    let mut errors: Vec<Option<String>> = vec![None; functions.len()];
    for (i, (function, object)) in functions.iter().enumerate() {
        let started = plan(sampling.pid, function, Some(object), None, options, timings)
            .and_then(|p| Counting::start(device, &p, false, timings));
        match started {
            Ok(c) => live.push((i, c)),
            Err(err) => errors[i] = Some(err.to_string()),
        }
    }
    let collected = crate::collect::collect(device, sampling);
    let counted: Vec<(usize, crate::Result<Counters>)> =
        live.iter().map(|(i, c)| (*i, c.counted())).collect();
    for (_, c) in live {
        let _ = c.stop(device);
    }
    let collected = collected?;
    let seconds = collected.elapsed.as_secs_f64().max(1e-9);
    let period_ns = 1e9 / f64::from(collected.freq_hz.max(1));
    let profile = &collected.profile;
    let counter_samples: u64 = profile
        .functions
        .iter()
        .filter(|f| f.function.ends_with("[adapt:count-calls]"))
        .map(|f| f.samples)
        .sum();
    let mut calls = vec![0u64; functions.len()];
    for (i, c) in &counted {
        match c {
            Ok(c) => calls[*i] = c.calls,
            Err(err) => errors[*i] = Some(err.to_string()),
        }
    }
    // Counters are in the target's memory, which it can overwrite.
    let all_calls = calls.iter().fold(0u64, |a, &c| a.saturating_add(c));
    Ok(functions
        .iter()
        .enumerate()
        .map(|(i, (function, object))| {
            let own: u64 = profile
                .functions
                .iter()
                .filter(|f| &f.function == function && &f.object == object)
                .map(|f| f.samples)
                .sum();
            let share = if all_calls == 0 {
                0.0
            } else {
                counter_samples as f64 * calls[i] as f64 / all_calls as f64
            };
            let samples = own as f64 + share;
            let ns = (samples > 0.0 && calls[i] > 0).then(|| samples * period_ns / calls[i] as f64);
            let spread = 1.96 / samples.max(1.0).sqrt();
            CallRate {
                function: function.clone(),
                object: object.clone(),
                calls: calls[i],
                calls_per_second: calls[i] as f64 / seconds,
                samples,
                ns_per_call: ns,
                ns_per_call_low: ns.map(|n| n * (-spread).exp()),
                ns_per_call_high: ns.map(|n| n * spread.exp()),
                error: errors[i].take(),
            }
        })
        .collect())
}
