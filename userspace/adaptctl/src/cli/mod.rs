//! Argument parsing and dispatch; one file per subcommand.

mod library;
mod library_index;
mod profile;
mod report;
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
 12  no such segment, library variant or library directory
 13  the module's library is full (library load)

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
}

impl Command {
    fn json(&self) -> bool {
        match self {
            Command::Status(args) => args.json,
            Command::Profile(args) => args.json,
            Command::Library(args) => args.json(),
        }
    }
}

/// Parses the command line, runs the command, and turns errors into a
/// one-line message and the documented exit code.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.command.json();
    match run(cli) {
        Ok(code) => code,
        Err(err) => report::error(&err, json),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Status(args) => status::run(&cli.device, &args),
        Command::Profile(args) => profile::run(&cli.device, &args),
        Command::Library(args) => library::run(&cli.device, &args),
    }
}
