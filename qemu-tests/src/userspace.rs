//! The workspace's userspace binaries: every binary in the dev profile (the
//! host-side tools, e.g. `build-library`, and what tests keep for
//! themselves), and adaptctl with the guest probes in the release profile —
//! the build the guests run and benchmark, as users would run it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::cache::CacheKey;
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
/// Skipped (about 10 s) when nothing it is built from changed since the
/// last build: the key of [`library_inputs`] is kept beside the segments.
pub fn build_library(ws: &Workspace) -> Result<PathBuf> {
    let out = ws.target_dir.join("adapt-library");
    let testing = ws.target_dir.join("adapt-library-testing");
    let stamp = ws.target_dir.join("adapt-library.key");
    let key = library_inputs(ws)?.hex();
    if std::fs::read_to_string(&stamp).is_ok_and(|k| k == key) && out.is_dir() && testing.is_dir() {
        say("library: up to date");
        return Ok(out);
    }
    // Gone while the build runs: a build that fails leaves no stale key.
    let _ = std::fs::remove_file(&stamp);
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
    std::fs::write(&stamp, &key).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(out)
}

/// What the library is built from: the `build-library` binary (by size and
/// modification time: cargo relinks it whenever its code changes), every
/// file under `segments/` (the segment sources and their manifests), and
/// the compiler that builds them.
fn library_inputs(ws: &Workspace) -> Result<CacheKey> {
    let tool = ws.debug_bin_dir().join("build-library");
    let meta = std::fs::metadata(&tool).with_context(|| {
        format!(
            "cannot stat {} (built by `cargo build --bins`)",
            tool.display()
        )
    })?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .context("cannot run rustc --version")?;
    let mut key = CacheKey::new()
        .part(
            "build-library",
            format!("{} bytes, modified {modified:?}", meta.len()),
        )
        .part("rustc --version", &rustc.stdout);
    let mut files = Vec::new();
    collect_files(&ws.root.join("segments"), &mut files)?;
    files.sort();
    for path in files {
        let data =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        key = key.part(&path.display().to_string(), data);
    }
    Ok(key)
}

/// Every regular file under `dir`, recursively.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}
