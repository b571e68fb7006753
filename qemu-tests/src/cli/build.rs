//! `cargo vm build`.

use std::process::ExitCode;

use anyhow::Result;

use crate::kernel::Flavor;
use crate::pipeline;
use crate::progress::say;

/// Install missing dependencies, then build (or find cached) the guest
/// kernel, adapt.ko, the test fixtures, the userspace binaries and the
/// initramfs.
///
/// The kernel is built once per key (kernel source version, kconfig
/// fragments, rustc/bindgen/clang versions) into the cache directory:
/// $ADAPT_CACHE_DIR, else $XDG_CACHE_HOME/adapt, else ~/.cache/adapt. A first
/// build takes 10–15 minutes on two cores; later ones print "cached".
///
/// `--kernel release` builds the release kernel (no debugging options) and
/// a module for it instead; the guest tests always use the test kernel.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which guest kernel to build for: test or release.
    #[arg(long, value_enum, value_name = "FLAVOR", default_value_t = Flavor::Test)]
    pub kernel: Flavor,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let artifacts = pipeline::build_all(args.kernel)?;
    say(format_args!(
        "kernel:    {}",
        artifacts.kernel_image.display()
    ));
    say(format_args!("adapt.ko:  {}", artifacts.adapt_ko.display()));
    say(format_args!("fixture:   {}", artifacts.warn_ko.display()));
    say(format_args!("initramfs: {}", artifacts.initramfs.display()));
    Ok(ExitCode::SUCCESS)
}
