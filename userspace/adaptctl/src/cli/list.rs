//! `adaptctl list [--pid P] [--retired]`: the module's injections (live,
//! and stale ones a revert could not restore), how many reverted segments
//! are still mapped (retired), and its quarantined variants.

use super::render::duration_ns;
use adapt_client::inject::{self, Injection};
use adapt_client::library::{self, LoadedVariant};
use adapt_client::Device;
use adapt_profile::Symbolizer;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only injections into this process.
    #[arg(long)]
    pid: Option<u32>,

    /// Also list each retired segment: a reverted injection's code, still
    /// mapped (never writable, nothing jumps to it) until its process exits
    /// or execs, because a signal frame may still return into it.
    #[arg(long)]
    retired: bool,

    /// Print a JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// One injection with what adaptctl can add to the module's record.
#[derive(Debug, Serialize)]
struct Entry {
    #[serde(flatten)]
    injection: Injection,
    /// The function at the target address, when the process can still be
    /// symbolized.
    symbol: Option<String>,
    /// The object it is in.
    object: Option<String>,
    /// Seconds since the injection.
    age_s: Option<f64>,
    /// What each import slot holds, read from the target's import table
    /// and located (the objects the imports resolved to).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    imports: Vec<ImportSlot>,
}

/// One import slot of an injection.
#[derive(Debug, Serialize)]
struct ImportSlot {
    slot: usize,
    address: u64,
    /// `fallback` when the slot holds the trampoline.
    symbol: Option<String>,
    object: Option<String>,
}

/// The `--json` document (fields are only ever added).
#[derive(Debug, Serialize)]
struct Report {
    injections: Vec<Entry>,
    /// Retired segments (reverted, still mapped, inert) matching the filter.
    retired: u32,
    /// Variants quarantined after a fault inside them: never injected
    /// automatically again.
    quarantined: Vec<LoadedVariant>,
}

pub(crate) fn run(device_path: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let device = Device::open_checked(device_path)?;
    let (injections, retired) = if args.retired {
        inject::list_with_retired(&device, args.pid)?
    } else {
        (inject::list(&device, args.pid)?, 0)
    };
    // Without --retired only their number is asked for.
    let retired = if args.retired {
        retired
    } else {
        inject::list_with_retired(&device, args.pid).map_or(0, |(_, n)| n)
    };
    let quarantined: Vec<LoadedVariant> = library::list(&device)?
        .into_iter()
        .filter(|v| v.quarantined)
        .collect();
    let now = monotonic_ns();
    let mut symbolizers: HashMap<u32, Option<Symbolizer>> = HashMap::new();
    let entries = injections
        .into_iter()
        .map(|injection| {
            let symbolizer = symbolizers
                .entry(injection.pid)
                .or_insert_with(|| Symbolizer::new(injection.pid).ok());
            let location = symbolizer
                .as_mut()
                .map(|s| s.locate(injection.target, false));
            // A name in brackets is the symbolizer's "no symbol here".
            let (symbol, object) = match location {
                Some(l) if !l.function.starts_with('[') => (Some(l.function), Some(l.object)),
                Some(l) => (None, Some(l.object)),
                None => (None, None),
            };
            let imports = match symbolizer.as_mut() {
                Some(s) if injection.nimports > 0 => adapt_ops::inject::import_slots(
                    injection.pid,
                    injection.import_table_addr,
                    injection.nimports,
                )
                .into_iter()
                .enumerate()
                .map(|(slot, address)| {
                    if address == injection.trampoline_addr && address != 0 {
                        return ImportSlot {
                            slot,
                            address,
                            symbol: Some("fallback".into()),
                            object: None,
                        };
                    }
                    let l = s.locate(address, false);
                    ImportSlot {
                        slot,
                        address,
                        symbol: (!l.function.starts_with('[')).then_some(l.function),
                        object: Some(l.object),
                    }
                })
                .collect(),
                _ => Vec::new(),
            };
            Entry {
                imports,
                age_s: (injection.state != "retired")
                    .then_some(now)
                    .flatten()
                    .map(|now| now.saturating_sub(injection.injected_ns) as f64 / 1e9),
                injection,
                symbol,
                object,
            }
        })
        .collect();
    let report = Report {
        injections: entries,
        retired,
        quarantined,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report, args.pid);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(report: &Report, pid: Option<u32>) {
    if report.injections.is_empty() {
        match pid {
            Some(pid) => println!("no live injections in pid {pid}"),
            None => println!("no live injections"),
        }
    } else {
        println!(
            "{:>5} {:>7}  {:<28} {:>14}  {:<24} {:>14} {:>10} {:>10}  STATE",
            "ID", "PID", "SYMBOL", "ADDRESS", "SEGMENT/VARIANT", "SEGMENT AT", "AGE", "PAUSE"
        );
        for e in &report.injections {
            let i = &e.injection;
            let state = match i.state.as_str() {
                "stale" => "stale: not restored, site changed",
                "retired" => "retired: reverted, segment still mapped (inert)",
                other => other,
            };
            let id = if i.state == "retired" {
                "-".to_owned()
            } else {
                i.id.to_string()
            };
            println!(
                "{:>5} {:>7}  {:<28} {:>#14x}  {:<24} {:>#14x} {:>10} {:>10}  {}",
                id,
                i.pid,
                e.symbol
                    .as_deref()
                    .unwrap_or(if i.state == "retired" { "-" } else { "?" }),
                i.target,
                format!("{}/{} #{}", i.segment, i.variant, i.variant_id),
                i.segment_addr,
                e.age_s.map_or("-".to_owned(), |s| format!("{s:.1}s")),
                duration_ns(i.pause_ns),
                state,
            );
        }
    }
    if report.retired > 0
        && !report
            .injections
            .iter()
            .any(|e| e.injection.state == "retired")
    {
        println!(
            "retired: {} reverted segment(s) still mapped, inert, until their process exits or execs \
             (`adaptctl list --retired` shows them)",
            report.retired
        );
    }
    for v in &report.quarantined {
        println!(
            "quarantined: {}/{} (library id {}) faulted in a target; it is not injected automatically",
            v.segment, v.variant, v.id
        );
    }
}

/// `CLOCK_MONOTONIC` now, in ns (the clock the module stamps injections with).
fn monotonic_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ret == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_advances() {
        let a = monotonic_ns().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(monotonic_ns().unwrap() >= a + 2_000_000);
    }
}
