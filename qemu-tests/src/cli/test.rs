//! `cargo vm test`.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::pipeline;
use crate::progress::say;
use crate::workspace::{cargo_command, Workspace};

/// Build everything, then run `cargo test --workspace` (the host unit tests
/// and the guest integration tests in qemu-tests/tests/, which boot guests
/// from what was just built). Extra arguments go to cargo test, e.g.
/// `cargo vm test -- --nocapture` or `cargo vm test -p adapt-qemu-tests`.
/// Exits with cargo test's status.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Arguments passed to `cargo test --workspace`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CARGO_TEST_ARGS"
    )]
    pub cargo_test_args: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    pipeline::build_all()?;
    let ws = Workspace::locate()?;
    say(format_args!(
        "cargo test --workspace {}",
        args.cargo_test_args.join(" ")
    ));
    let status = cargo_command()
        .current_dir(&ws.root)
        .args(["test", "--workspace"])
        .args(&args.cargo_test_args)
        .status()
        .context("cannot run cargo test")?;
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => {
            say(format_args!("cargo test was killed ({status})"));
            ExitCode::FAILURE
        }
    })
}
