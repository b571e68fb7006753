//! `cargo vm test`.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::kernel::Flavor;
use crate::pipeline;
use crate::progress::say;
use crate::workspace::{cargo_command, Workspace};

/// Build everything, check the userspace with `cargo fmt --all --check` and
/// `cargo clippy --workspace --all-targets -- -D warnings` (the module is
/// linted by its own build, `CLIPPY=1`), then run `cargo test --workspace`
/// (the host unit tests and the guest integration tests in qemu-tests/tests/,
/// which boot guests from what was just built). Extra arguments go to cargo test, e.g.
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
    pipeline::build_all(Flavor::Test)?;
    let ws = Workspace::locate()?;
    lint(&ws)?;
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

/// The userspace is formatted and lint-free, or the run fails before the
/// (long) tests, naming the command that reproduces the complaint.
fn lint(ws: &Workspace) -> Result<()> {
    let steps: [(&str, &[&str]); 2] = [
        ("cargo fmt --all --check", &["fmt", "--all", "--check"]),
        (
            "cargo clippy --workspace --all-targets -- -D warnings",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
    ];
    for (shown, args) in steps {
        say(format_args!("{shown}"));
        let status = cargo_command()
            .current_dir(&ws.root)
            .args(args)
            .status()
            .with_context(|| format!("cannot run `{shown}`"))?;
        if !status.success() {
            anyhow::bail!(
                "`{shown}` failed ({status}): fix what it printed above \
                 (`cargo fmt --all` rewrites the formatting), then run `cargo vm test` again"
            );
        }
    }
    Ok(())
}
