//! `adaptctl inject --pid P --symbol NAME [...]`: redirect a function of a
//! running process to a verified library variant.
//!
//! The steps are `adapt_ops`': plan (segment, function, variant, verifier,
//! prologue, contract), measure (unless `--no-measure`), upload and inject.
//! This file turns the options into a request and the outcome into a report.

use super::exit::Exit;
use super::render;
use adapt_client::inject::Injected;
use adapt_client::library::hex;
use adapt_client::Device;
use adapt_ops::contract::ContractSource;
use adapt_ops::plan::{self, Plan};
use adapt_ops::timings::Timings;
use adapt_ops::{inject, measure};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The process to inject into.
    #[arg(long)]
    pid: u32,

    /// The function to replace, by name (as stored or demangled).
    #[arg(long, value_name = "NAME")]
    symbol: String,

    /// Look for the symbol only in this object: a path as in
    /// /proc/PID/maps, a file name, or a soname such as libz.so.1. Without
    /// it the executable is searched first, then the libraries in the order
    /// they were mapped; the first definition wins.
    #[arg(long, value_name = "PATH|SONAME")]
    object: Option<String>,

    /// The segment to use (default: the first segment that replaces a
    /// function of this name).
    #[arg(long, value_name = "NAME")]
    segment: Option<String>,

    /// The segment function (entry) to jump to, when the target's name is
    /// not the one the segment replaces (default: the function named like
    /// the symbol, or the segment's only function).
    #[arg(long, value_name = "SYMBOL")]
    function: Option<String>,

    /// The variant to inject (default: the one the measurement chooses;
    /// with --no-measure, the best one this CPU supports). Forced: it is
    /// injected even if it measures slower than the original, and the
    /// report says so.
    #[arg(long, value_name = "VARIANT")]
    variant: Option<String>,

    /// Do not measure before injecting. By default every variant this CPU
    /// runs is measured here against the target's function, loaded from
    /// the file the target mapped (as `adaptctl bench`; figures cached),
    /// and nothing is injected (exit status 18) unless a variant is at
    /// least 5 % faster.
    #[arg(long, env = "ADAPT_NO_MEASURE", value_parser = clap::builder::FalseyValueParser::new())]
    no_measure: bool,

    /// State the target's C signature, e.g. 'u64(u64,const u8*,u32)'.
    ///
    /// adaptctl takes the segment's declared contract only for the declared
    /// symbol in the declared library (e.g. crc32 in libz.so.1). For any
    /// other target (a function inside an executable, another library or
    /// name) you must state its signature; it must equal the segment
    /// function's. Types: void u8 u16 u32 u64 i32 i64 f32 f64, `const T*`,
    /// `T*`.
    #[arg(long, value_name = "SIGNATURE")]
    assume_contract: Option<String>,

    /// Accept a target containing indirect jumps (jump tables), whose
    /// targets cannot be checked against the replaced bytes.
    #[arg(long)]
    allow_indirect_jumps: bool,

    /// Accept a segment whose numerics are float-reassociate (fused
    /// multiply-adds, reordered sums: results within its stated bound of
    /// the original's, NOT bit-identical), for this injection only.
    ///
    /// Such a segment (e.g. dgemm-relaxed) is refused unless the policy
    /// sets allow_float_reassociate = true (`adaptctl policy show`) or this
    /// flag overrides it; exit status 14 otherwise. Exact segments are not
    /// affected, and without --segment an exact segment replacing the
    /// symbol is always chosen first.
    #[arg(long)]
    allow_float_reassociate: bool,

    /// Library directory (default: $ADAPT_LIBRARY, else the adapt-library
    /// directory of the cargo target directory adaptctl was built in).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Decide and check everything, print the plan, and stop before
    /// loading or injecting anything (no module needed).
    #[arg(long)]
    dry_run: bool,

    /// Print a JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    /// Print on stderr where the wall time went: startup, open, library,
    /// verify, target, contract, measure, upload, inject (and how long the
    /// module held the target's threads), report.
    #[arg(long)]
    timings: bool,
}

/// The `--json` document (fields are only ever added).
#[derive(Debug, Serialize)]
struct Report<'p> {
    dry_run: bool,
    #[serde(flatten)]
    plan: &'p Plan,
    /// The loaded variant's library id (absent in a dry run).
    variant_id: Option<u64>,
    /// What the module did (absent in a dry run).
    injection: Option<Injected>,
    /// What was measured before injecting (absent with --no-measure).
    measurement: Option<&'p adapt_select::Selection>,
    /// The exact `ADAPT_IOC_INJECT` request (absent in a dry run), for
    /// tools that repeat it.
    request: Option<RequestDoc>,
}

/// The request, flat, with the expected bytes in hex.
#[derive(Debug, Serialize)]
struct RequestDoc {
    pid: u32,
    target: u64,
    variant_id: u64,
    entry: u32,
    contract_hash: u64,
    patch_len: u32,
    expected: String,
    /// For a segment with imports: where it was placed, the trampoline and
    /// the slots, so that a tool can repeat the exact request.
    #[serde(skip_serializing_if = "Option::is_none")]
    imports: Option<ImportsDoc>,
}

#[derive(Debug, Serialize)]
struct ImportsDoc {
    segment_addr: u64,
    trampoline: String,
    relocated: String,
    slots: Vec<u64>,
}

pub(crate) fn run(device_path: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let mut timings = Timings::start(args.timings);
    // Open the module first: without root, that is the error to show.
    let device = if args.dry_run {
        None
    } else {
        Some(Device::open_checked(device_path)?)
    };
    timings.mark("open");
    let request = plan::Request {
        pid: args.pid,
        symbol: &args.symbol,
        object: args.object.as_deref(),
        segment: args.segment.as_deref(),
        function: args.function.as_deref(),
        variant: args.variant.as_deref(),
        assume_contract: args.assume_contract.as_deref(),
        allow_indirect_jumps: args.allow_indirect_jumps,
        allow_float_reassociate: args.allow_float_reassociate
            || policy_allows_float_reassociate(device.as_ref(), device_path),
        dir: args.dir.as_deref(),
    };
    let mut plan = plan::plan(&request, &mut timings)
        .map_err(|err| inject::explain_modified(device.as_ref(), args.pid, err))?;
    // The in-situ measurement picks the variant, or none.
    // A segment with imports calls into the target: it is not run in the
    // measuring child.
    let measurement = match args.no_measure || !plan.imports.is_empty() {
        true => None,
        false => Some(measure::before_inject(
            &mut plan,
            args.variant.as_deref(),
            &[],
        )?),
    };
    if measurement.is_some() {
        timings.mark("measure");
    }
    let no_gain = measurement
        .as_ref()
        .is_some_and(|m| m.decision.variant_to_inject().is_none());
    let (Some(device), false) = (device, no_gain) else {
        let report = Report {
            dry_run: args.dry_run,
            plan: &plan,
            variant_id: None,
            injection: None,
            measurement: measurement.as_ref(),
            request: None,
        };
        let code = print(&report, args.json)?;
        timings.mark("report");
        timings.print();
        return Ok(if no_gain { Exit::NoGain.into() } else { code });
    };

    let done = inject::execute(&device, &plan, false, &mut timings)?;
    let code = print(
        &Report {
            dry_run: false,
            plan: &plan,
            variant_id: Some(done.variant_id),
            measurement: measurement.as_ref(),
            request: Some(RequestDoc {
                pid: done.request.pid,
                target: done.request.target,
                variant_id: done.variant_id,
                entry: done.request.entry,
                contract_hash: done.request.contract_hash,
                patch_len: plan.target.patch.patch_len,
                expected: hex(&done.request.expected),
                imports: done.request.imports.as_ref().map(|i| ImportsDoc {
                    segment_addr: i.segment_addr,
                    trampoline: hex(&i.trampoline),
                    relocated: hex(&i.relocated),
                    slots: i.slots.clone(),
                }),
            }),
            injection: Some(done.injected),
        },
        args.json,
    )?;
    timings.mark("report");
    timings.print();
    Ok(code)
}

/// The policy's `allow_float_reassociate`, as the module holds it. A dry
/// run (which needs no module) opens the device if it can; a policy that
/// cannot be read counts as off.
fn policy_allows_float_reassociate(device: Option<&Device>, path: &Path) -> bool {
    let opened;
    let device = match device {
        Some(d) => d,
        None => match Device::open_checked(path) {
            Ok(d) => {
                opened = d;
                &opened
            }
            Err(_) => return false,
        },
    };
    adapt_client::policy::get_policy_raw(device)
        .is_ok_and(|p| adapt_auto::policy_file::allows_float_reassociate(&p))
}

fn print(report: &Report<'_>, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let plan = report.plan;
    if let Some(m) = report.measurement {
        render::measurement(m);
        if m.decision.variant_to_inject().is_none() {
            println!("nothing injected: {}", m.verdict());
            return Ok(ExitCode::SUCCESS);
        }
    }
    let symbol = &plan.target.symbol;
    let where_ = format!(
        "{} at {:#x} in {} (pid {})",
        symbol.name, symbol.address, symbol.object.path, plan.pid
    );
    match (&report.injection, report.variant_id) {
        (Some(i), Some(id)) => {
            println!(
                "injection #{}: {where_} → {}/{} (library id {id}), segment at {:#x}",
                i.id, plan.segment, plan.variant, i.segment_addr
            );
            println!(
                "  threads held: {}, pause: {}, rendezvous attempts: {}",
                i.threads,
                render::duration_ns(i.pause_ns),
                i.attempts
            );
        }
        _ => println!(
            "dry run: would redirect {where_} → {}/{} ({})",
            plan.segment, plan.variant, plan.function
        ),
    }
    println!(
        "  replaces {} bytes: {}",
        plan.target.patch.patch_len,
        plan.target.patch.replaced.join("; ")
    );
    let source = match plan.contract.source {
        ContractSource::Declared => "declared by the segment for this library",
        ContractSource::Assumed => "stated with --assume-contract",
        ContractSource::PassThrough => "none needed: the code passes every argument through",
    };
    println!(
        "  contract: {} ({source}, hash {:016x})",
        plan.contract
            .signature
            .trim_start_matches(adapt_ops::contract::SIGNATURE_PREFIX),
        plan.contract.hash
    );
    if !plan.numerics.is_exact() {
        println!(
            "  numerics: {} (NOT bit-identical to the original; allowed by the policy or \
             --allow-float-reassociate)",
            plan.numerics
        );
    }
    if !symbol.also_defined_in.is_empty() {
        println!(
            "  note: {} is also defined in {} (pick one with --object)",
            symbol.name,
            symbol.also_defined_in.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
