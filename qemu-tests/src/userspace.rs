//! The workspace's userspace binaries: every binary in the dev profile (the
//! host-side tools, e.g. `build-library`, and what tests keep for
//! themselves), and adaptctl with the guest probes in the release profile —
//! the build the guests run and benchmark, as users would run it.

use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::progress::say;
use crate::workspace::{cargo_command, Workspace};

/// The packages whose binaries the guests run from the release build
/// (adapt-count: its `count-overhead` benchmark).
const GUEST_PACKAGES: [&str; 3] = ["adaptctl", "adapt-guest-probes", "adapt-count"];

/// `cargo build --workspace --bins`, then `cargo build --release` of
/// [`GUEST_PACKAGES`]; cargo's own progress goes to stderr.
pub fn build(ws: &Workspace) -> Result<()> {
    cargo_build(ws, &["build", "--workspace", "--bins"])?;
    let mut release = vec!["build", "--release", "--bins"];
    for package in GUEST_PACKAGES {
        release.extend(["-p", package]);
    }
    cargo_build(ws, &release)
}

fn cargo_build(ws: &Workspace, args: &[&str]) -> Result<()> {
    let shown = format!("cargo {}", args.join(" "));
    say(format_args!("userspace: {shown}"));
    let stderr = std::io::stderr();
    let out = std::os::fd::AsFd::as_fd(&stderr)
        .try_clone_to_owned()
        .context("cannot duplicate stderr")?;
    let status = cargo_command()
        .current_dir(&ws.root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("`{shown}` failed ({status}); its errors are above");
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
    let status = std::process::Command::new(ws.debug_bin_dir().join("build-library"))
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
    let status = std::process::Command::new(ws.debug_bin_dir().join("build-library"))
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
