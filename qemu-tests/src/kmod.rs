//! Out-of-tree module builds against the cached guest kernel: adapt.ko (the
//! lead's `kmod/Makefile`) and the test-only fixture modules.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::kernel::{Flavor, Kernel};
use crate::package;
use crate::progress::run_logged;
use crate::workspace::Workspace;

/// Builds `kmod/adapt.ko` with `make -C kmod KDIR=… LLVM=1 CLIPPY=1` for the
/// test kernel. A module is built for one kernel configuration (lockdep
/// changes the layout of every lock), so for the release kernel the sources
/// are staged as the package stages them (`<target>/vm/kmod-release/kmod/`
/// beside the ABI file it includes) and built there, leaving
/// `kmod/adapt.ko` the test kernel's.
pub fn build_adapt(ws: &Workspace, kernel: &Kernel, flavor: Flavor) -> Result<PathBuf> {
    let dir = match flavor {
        Flavor::Test => ws.kmod_dir(),
        Flavor::Release => {
            let tree = ws.vm_dir().join("kmod-release");
            package::stage_module_source(ws, &tree)?;
            tree.join("kmod")
        }
    };
    let log = fresh_log(ws, &format!("kmod-{}.log", flavor.name()))?;
    run_logged(
        &format!("module: make -C {} (adapt.ko, CLIPPY=1)", dir.display()),
        Command::new("make")
            .arg("-C")
            .arg(&dir)
            .arg(format!("KDIR={}", kernel.dir.display()))
            .args(["LLVM=1", "CLIPPY=1"])
            // `cargo vm` runs under cargo, which exports the workspace's
            // rust-version; clippy would then disagree with the kernel's
            // own clippy.toml about the MSRV.
            .env_remove("CARGO_PKG_RUST_VERSION"),
        &log,
    )?;
    expect_file(dir.join("adapt.ko"), &log)
}

/// Builds the fixture module whose init deliberately WARNs. The sources are
/// copied into the target directory first so Kbuild's output stays out of
/// the repository.
pub fn build_warn_fixture(ws: &Workspace, kernel: &Kernel, flavor: Flavor) -> Result<PathBuf> {
    let build = match flavor {
        Flavor::Test => ws.vm_dir().join("fixtures/warn-module"),
        Flavor::Release => ws.vm_dir().join("fixtures/warn-module-release"),
    };
    sync_sources(&ws.warn_fixture_src(), &build)?;
    let log = fresh_log(ws, &format!("warn-module-{}.log", flavor.name()))?;
    run_logged(
        "fixture: warn-module",
        Command::new("make")
            .arg("-C")
            .arg(&kernel.dir)
            .arg(format!("M={}", build.display()))
            .args(["LLVM=1", "modules"]),
        &log,
    )?;
    expect_file(build.join("warn_test.ko"), &log)
}

fn fresh_log(ws: &Workspace, name: &str) -> Result<PathBuf> {
    let dir = ws.vm_dir().join("logs");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log = dir.join(name);
    std::fs::write(&log, "").with_context(|| format!("cannot create {}", log.display()))?;
    Ok(log)
}

fn expect_file(path: PathBuf, log: &Path) -> Result<PathBuf> {
    if !path.is_file() {
        bail!(
            "the build succeeded but {} is missing; see {}",
            path.display(),
            log.display()
        );
    }
    Ok(path)
}

/// Copies the regular files of `src` into `dst`, rewriting only those whose
/// contents changed (so make's timestamps stay meaningful).
fn sync_sources(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).with_context(|| format!("cannot create {}", dst.display()))?;
    for entry in std::fs::read_dir(src).with_context(|| format!("cannot read {}", src.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", src.display()))?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let data = std::fs::read(entry.path())
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        let target = dst.join(entry.file_name());
        if std::fs::read(&target).ok().as_deref() != Some(&data[..]) {
            std::fs::write(&target, &data)
                .with_context(|| format!("cannot write {}", target.display()))?;
        }
    }
    Ok(())
}
