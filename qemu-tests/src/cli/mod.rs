//! `cargo vm`: the command line. One file per subcommand.

mod bench;
mod build;
mod demo;
mod exec;
mod guest_args;
mod package;
mod report;
mod shell;
mod test;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Build adapt's guest kernel and module, and run commands in throw-away
/// QEMU guests.
///
/// Every subcommand first checks its dependencies (Debian packages, rustup
/// components, bindgen 0.73.2) and installs what is missing, then builds what
/// changed: the guest kernel (cached outside the repository, in
/// $ADAPT_CACHE_DIR or ~/.cache/adapt, keyed by the kernel source version,
/// kconfig/*.config and the compiler versions), adapt.ko, the test fixtures
/// and the userspace binaries.
///
/// A guest boots the cached kernel under QEMU (TCG by default) with the
/// host's root mounted read-only, a fresh tmpfs on /tmp, the workspace at its
/// own path, adapt.ko loaded and target/release (the release adaptctl) first
/// on PATH. Any kernel WARN, BUG, oops, lockdep report, Rust panic or leak
/// report in its console log fails the run.
#[derive(Debug, Parser)]
#[command(
    name = "cargo vm",
    bin_name = "cargo vm",
    version,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Build(build::Args),
    Exec(exec::Args),
    Shell(shell::Args),
    Test(test::Args),
    Demo(demo::Args),
    Bench(bench::Args),
    Package(package::Args),
}

/// Parses the command line and runs the subcommand; returns the process
/// exit status.
pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Build(args) => build::run(args),
        Command::Exec(args) => exec::run(args),
        Command::Shell(args) => shell::run(args),
        Command::Test(args) => test::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Package(args) => package::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_takes_the_command_after_its_options() {
        let cli =
            Cli::try_parse_from(["vm", "exec", "--smp", "4", "--", "sh", "-c", "exit 3"]).unwrap();
        let Command::Exec(args) = cli.command else {
            panic!("not exec")
        };
        assert_eq!(args.command, ["sh", "-c", "exit 3"]);
        assert_eq!(args.guest.smp, 4);
        let cli = Cli::try_parse_from(["vm", "exec", "ls", "-l"]).unwrap();
        let Command::Exec(args) = cli.command else {
            panic!("not exec")
        };
        assert_eq!(args.command, ["ls", "-l"]);
        assert!(!args.guest.writable_root);
        let cli =
            Cli::try_parse_from(["vm", "exec", "--writable-root", "--", "dpkg", "-l"]).unwrap();
        let Command::Exec(args) = cli.command else {
            panic!("not exec")
        };
        assert!(args.guest.writable_root);
        assert_eq!(args.command, ["dpkg", "-l"]);
    }

    #[test]
    fn test_passes_its_arguments_through() {
        let cli = Cli::try_parse_from(["vm", "test", "--", "--nocapture", "runner"]).unwrap();
        let Command::Test(args) = cli.command else {
            panic!("not test")
        };
        assert_eq!(args.cargo_test_args, ["--nocapture", "runner"]);
        let cli = Cli::try_parse_from(["vm", "test", "-p", "adapt-qemu-tests"]).unwrap();
        let Command::Test(args) = cli.command else {
            panic!("not test")
        };
        assert_eq!(args.cargo_test_args, ["-p", "adapt-qemu-tests"]);
    }
}
