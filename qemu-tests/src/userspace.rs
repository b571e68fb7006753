//! The workspace's userspace binaries (adaptctl), dev profile.

use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::progress::say;
use crate::workspace::{cargo_command, Workspace};

/// `cargo build --workspace --bins`; cargo's own progress goes to stderr.
pub fn build(ws: &Workspace) -> Result<()> {
    say("userspace: cargo build --workspace --bins");
    let stderr = std::io::stderr();
    let out = std::os::fd::AsFd::as_fd(&stderr)
        .try_clone_to_owned()
        .context("cannot duplicate stderr")?;
    let status = cargo_command()
        .current_dir(&ws.root)
        .args(["build", "--workspace", "--bins"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("`cargo build --workspace --bins` failed ({status}); its errors are above");
    }
    Ok(())
}

/// Builds the optimization library (`target/adapt-library/*.seg`) with the
/// `build-library` binary just built: guests load segments from there.
pub fn build_library(ws: &Workspace) -> Result<std::path::PathBuf> {
    let out = ws.target_dir.join("adapt-library");
    say(format_args!(
        "library: build-library --out {}",
        out.display()
    ));
    let status = std::process::Command::new(ws.bin_dir().join("build-library"))
        .current_dir(&ws.root)
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("cannot run build-library (built by `cargo build --workspace --bins`)")?;
    if !status.success() {
        bail!("build-library failed ({status}); its errors are above");
    }
    // Test-only segments (e.g. a deliberately slow one) in their own
    // directory, never mixed into the real library.
    let testing = ws.target_dir.join("adapt-library-testing");
    let status = std::process::Command::new(ws.bin_dir().join("build-library"))
        .current_dir(&ws.root)
        .arg("--testing")
        .arg("--out")
        .arg(&testing)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("cannot run build-library --testing")?;
    if !status.success() {
        bail!("build-library --testing failed ({status}); its errors are above");
    }
    Ok(out)
}
