//! `cargo vm build`: dependencies, guest kernel, module, fixtures, userspace,
//! initramfs — each cached or incremental — then the artifact record.

use std::time::Instant;

use anyhow::Result;

use crate::artifacts::Artifacts;
use crate::kernel::Flavor;
use crate::progress::{human, say};
use crate::workspace::Workspace;
use crate::{deps, initramfs, kernel, kmod, userspace};

/// Builds (or finds cached) everything a guest run on this kernel flavor
/// needs.
pub fn build_all(flavor: Flavor) -> Result<Artifacts> {
    let start = Instant::now();
    say("checking dependencies (Debian packages, rustup components, bindgen)");
    deps::ensure()?;
    let ws = Workspace::locate()?;
    let kernel = kernel::ensure(&ws, flavor)?;
    let initramfs = initramfs::ensure()?;
    let warn_ko = kmod::build_warn_fixture(&ws, &kernel, flavor)?;
    let adapt_ko = kmod::build_adapt(&ws, &kernel, flavor)?;
    userspace::build(&ws)?;
    userspace::build_library(&ws)?;
    let artifacts = Artifacts {
        kernel_image: kernel.image.clone(),
        kernel_dir: kernel.dir.clone(),
        initramfs,
        adapt_ko,
        warn_ko,
        bin_dir: ws.release_bin_dir(),
        debug_bin_dir: ws.debug_bin_dir(),
        workspace_root: ws.root.clone(),
        target_dir: ws.target_dir.clone(),
    };
    artifacts.save(&ws, flavor)?;
    say(format_args!(
        "build: everything ready in {}",
        human(start.elapsed())
    ));
    Ok(artifacts)
}
