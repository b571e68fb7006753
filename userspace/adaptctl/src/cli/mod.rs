//! Argument parsing and dispatch; one file per subcommand, each an adapter
//! from its options to the operations of `adapt_ops` (or the client and
//! library crates) and from their outcome to a report. `exit.rs` decides
//! every exit code; `render.rs` holds the rendering several share.

mod auto;
mod bench;
mod calls;
mod completions;
mod exit;
mod inject;
mod library;
mod list;
mod man;
mod policy;
mod profile;
mod render;
mod revert;
mod signals;
mod status;

use adapt_client::DEFAULT_DEVICE_PATH;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  other error (the message says which)
  2  usage error
  3  the adapt module is not loaded
  4  the module is loaded but the device node is missing
  5  permission denied (run as root)
  6  ABI mismatch between adaptctl and the loaded module
  7  the device node is not an adapt device
  8  no such process
  9  the process may not be targeted (kernel thread, not dumpable, no
     CAP_SYS_PTRACE)
 10  the verifier refused a segment (library verify, library load)
 11  a library variant is used by live injections (library unload without
     --force)
 12  no such segment, library variant, library directory or injection
 13  the module's library is full (library load)
 14  the injection policy refused it (injection disabled, injection limit
     reached, variant quarantined, a float-reassociate segment without
     allow_float_reassociate or --allow-float-reassociate)
 15  the function cannot be injected safely: its contract is unknown or is
     not the segment's, its entry cannot be patched (too short, a branch
     into the replaced bytes, a jump table, an IFUNC, not code), its bytes
     changed or are already patched, or this CPU lacks the variant's
     features
 16  no function of that name in the process (inject, revert --symbol)
 17  a thread of the target stayed in the way, or there is no room near
     the function: nothing was changed, retrying may work
 18  inject: measured here, no variant is faster than the original by the
     margin: nothing was injected (--variant overrides, --no-measure skips)

Every command that prints a report accepts --json for scripts; with --json,
errors are also printed to stdout as {\"error\": {\"kind\": …, \"message\": …}}.";

/// Control adapt: live specialization of running programs.
///
/// adapt samples where a running process spends its time, and swaps hot
/// functions for faster, verified implementations while it keeps running.
/// The kernel module does the mechanism; adaptctl makes the decisions and
/// talks to it through its device node.
#[derive(Debug, Parser)]
#[command(name = "adaptctl", version, after_help = AFTER_HELP)]
struct Cli {
    /// Device node of the adapt module.
    #[arg(long, global = true, env = "ADAPT_DEVICE", default_value = DEFAULT_DEVICE_PATH)]
    device: PathBuf,

    /// Scheduling niceness of inject, revert and calls (-20 to 19). They
    /// run beside the busy threads of their target; at the default niceness
    /// beside 8 busy threads on 2 CPUs a command gets a fifth of a CPU, so
    /// they raise their priority for their short run (and so does the
    /// measuring child they start). 0 or more keeps the caller's niceness.
    #[arg(
        long,
        global = true,
        env = "ADAPT_NICE",
        value_name = "N",
        default_value_t = adapt_ops::priority::CONTROL_NICENESS,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i32).range(-20..=19)
    )]
    nice: i32,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the loaded module, whether its ABI matches, and how this machine
    /// can sample.
    Status(status::Args),

    /// Sample a running process and rank its hottest functions, marking the
    /// ones the optimization library can replace.
    ///
    /// Every thread of the process is sampled (also threads it starts
    /// later) with hardware cycles where the CPU offers a sampling PMU,
    /// otherwise with the software cpu-clock. Samples are symbolized from
    /// /proc/PID/maps and the mapped ELF files (.symtab, else .dynsym).
    Profile(profile::Args),

    /// Manage the optimization library: list, show, verify and build the
    /// segments on disk; load them into the module and unload them.
    Library(library::Args),

    /// Redirect a function of a running process to a verified variant of
    /// the optimization library.
    ///
    /// Resolves the symbol in the process (the executable first, then the
    /// libraries in map order, or --object), picks the segment replacing
    /// it and the best variant this CPU supports, runs the verifier, checks
    /// that the function's entry can be patched (at least 5 bytes, a patch
    /// ending on an instruction boundary, no branch into the replaced
    /// bytes) and that its C contract is the segment's, loads the variant
    /// into the module if needed, and asks the module to inject. Prints the
    /// injection id, the address, the variant, where the segment was
    /// mapped, how many threads were held and for how long. Needs root.
    Inject(inject::Args),

    /// Undo injections: restore the original bytes and unmap the segment.
    Revert(revert::Args),

    /// Count a function's calls in a running process, and optionally the
    /// distribution of one integer argument.
    ///
    /// Injects a generated counting segment at the function's entry (a
    /// counter in its own read+write, never executable data page, then a
    /// jump to the original through the relocated prologue: the program
    /// computes exactly what it did), waits --duration, reads the counters
    /// from the process's memory and reverts. The same rendezvous and
    /// checks as `adaptctl inject`; the function's entry must be
    /// relocatable. Prints calls, calls per second and, with --arg N, the
    /// log2 histogram of argument N. Needs root.
    Calls(calls::Args),

    /// List the live injections (id, process, function, address,
    /// segment/variant, age, pause) and the quarantined variants.
    List(list::Args),

    /// Show or change the injection policy held in the module: the enable
    /// switch and the per-process and global injection limits.
    Policy(policy::Args),

    /// Measure, on this machine, each variant of a segment against the
    /// original function (loaded from the file the target uses), and show
    /// which one adapt would inject, if any.
    Bench(bench::Args),

    /// The adaptive loop: sample processes, inject faster implementations
    /// of their hot functions, keep the ones that measurably help, revert
    /// the others, and log every decision.
    ///
    /// Each round profiles a process for one window, ranks the hot
    /// functions the library covers by expected gain (share of CPU time ×
    /// measured speedup), and judges the best ones by their time per call:
    /// windows with a call counter in front of the original, then in front
    /// of the candidate, interleaved (samples × sampling period ÷ counted
    /// calls on each side). A candidate is kept (injected for good) when
    /// the 95% interval of the speedup is above 1 + the policy's margin,
    /// reverted as a regression when it is below 1, and measured for more
    /// windows when it cannot tell (then "no measurable gain"). Functions
    /// whose entry cannot take a counter are judged by their share of CPU
    /// time instead. Runs until --duration or
    /// SIGINT/SIGTERM, then reverts what it kept; --once does one round and
    /// leaves the kept injections in place.
    Auto(auto::Args),

    /// Print the completion script for a shell (bash, zsh, fish, …).
    Completions(completions::Args),

    /// Print the manual page adaptctl(8), or write it and one page per
    /// subcommand (adaptctl-inject(8), …) into a directory.
    Man(man::Args),
}

impl Command {
    fn json(&self) -> bool {
        match self {
            Command::Status(args) => args.json,
            Command::Profile(args) => args.json,
            Command::Library(args) => args.json(),
            Command::Inject(args) => args.json,
            Command::Revert(args) => args.json,
            Command::Calls(args) => args.json,
            Command::List(args) => args.json,
            Command::Policy(args) => args.json(),
            Command::Bench(args) => args.json,
            Command::Auto(args) => args.json,
            Command::Completions(_) | Command::Man(_) => false,
        }
    }
}

/// Parses the command line, runs the command, and turns errors into a
/// one-line message and the documented exit code.
pub(crate) fn main() -> ExitCode {
    // Beside a busy target the parse itself is part of an inject's latency
    // (beside 8 busy threads on 2 CPUs, a fifth of a CPU): parse at the
    // control path's priority, then keep it only for the commands that
    // want it (`run`); the others go back to the caller's niceness.
    let caller = adapt_ops::priority::current().ok();
    let early = adapt_ops::priority::requested(
        &std::env::args_os().skip(1).collect::<Vec<_>>(),
        std::env::var_os("ADAPT_NICE").as_deref(),
    );
    if early < 0 {
        // Best effort, like the raise in `run`.
        let _ = adapt_ops::priority::raise(early);
    }
    let cli = Cli::parse();
    if let Some(caller) = caller {
        let control = matches!(
            cli.command,
            Command::Inject(_) | Command::Revert(_) | Command::Calls(_)
        );
        if !control || cli.nice >= 0 {
            let _ = adapt_ops::priority::restore(caller);
        }
    }
    let json = cli.command.json();
    match run(cli) {
        Ok(code) => code,
        Err(err) => exit::report(&err, json),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if matches!(
        cli.command,
        Command::Inject(_) | Command::Revert(_) | Command::Calls(_)
    ) && cli.nice < 0
    {
        // Best effort: without CAP_SYS_NICE the command runs as it is, and
        // the device's own permission check says what is missing.
        let _ = adapt_ops::priority::raise(cli.nice);
    }
    match cli.command {
        Command::Status(args) => status::run(&cli.device, &args),
        Command::Profile(args) => profile::run(&cli.device, &args),
        Command::Library(args) => library::run(&cli.device, &args),
        Command::Inject(args) => inject::run(&cli.device, &args),
        Command::Revert(args) => revert::run(&cli.device, &args),
        Command::Calls(args) => calls::run(&cli.device, &args),
        Command::List(args) => list::run(&cli.device, &args),
        Command::Policy(args) => policy::run(&cli.device, &args),
        Command::Bench(args) => bench::run(&args),
        Command::Auto(args) => auto::run(&cli.device, &args),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args),
    }
}
