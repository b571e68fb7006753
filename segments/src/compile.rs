// SPDX-License-Identifier: GPL-2.0
//! Compiling one variant's source with rustc into an ELF object.

use std::path::{Path, PathBuf};
use std::process::Command;

use adapt_segment::CpuFeatures;
use anyhow::{bail, Context, Result};

/// Where paths under the sources directory appear in the output.
pub const REMAPPED_SOURCES: &str = "/adapt/segments/sources";

/// The flags every variant is compiled with (besides `--crate-name`,
/// `-C target-feature`, `--remap-path-prefix`, `-o` and the source).
pub const FLAGS: &[&str] = &[
    "--edition=2021",
    "--crate-type=lib",
    "--emit=obj",
    "--target=x86_64-unknown-linux-gnu",
    "-Copt-level=3",
    "-Cpanic=abort",
    "-Crelocation-model=pic",
    "-Ccode-model=small",
    "-Cdebuginfo=0",
    "-Ccodegen-units=1",
    "-Ctarget-cpu=x86-64",
    "-Cforce-unwind-tables=no",
    "-Coverflow-checks=off",
    "-Cdebug-assertions=off",
    "-Dwarnings",
];

/// A rustc to compile with.
#[derive(Clone, Debug)]
pub struct Compiler {
    rustc: PathBuf,
    version: String,
}

impl Compiler {
    /// `$ADAPT_SEGMENTS_RUSTC`, else `rustc` from `PATH`.
    pub fn detect() -> Result<Compiler> {
        let rustc = std::env::var_os("ADAPT_SEGMENTS_RUSTC")
            .map(PathBuf::from)
            .unwrap_or_else(|| "rustc".into());
        let out = Command::new(&rustc)
            .arg("--version")
            .output()
            .with_context(|| format!("running {}", rustc.display()))?;
        if !out.status.success() {
            bail!(
                "{} --version failed: {}",
                rustc.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(Compiler { rustc, version })
    }

    /// `rustc --version` of this compiler.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Compiles the crate root `source` (under `sources_root`) as
    /// `crate_name` with `features` enabled into the object `out`.
    pub fn compile(
        &self,
        source: &Path,
        sources_root: &Path,
        crate_name: &str,
        features: &CpuFeatures,
        out: &Path,
    ) -> Result<()> {
        let mut cmd = Command::new(&self.rustc);
        cmd.args(FLAGS).arg(format!("--crate-name={crate_name}"));
        if !features.is_empty() {
            let list: Vec<String> = features.iter().map(|f| format!("+{}", f.name())).collect();
            cmd.arg(format!("-Ctarget-feature={}", list.join(",")));
        }
        cmd.arg(format!(
            "--remap-path-prefix={}={REMAPPED_SOURCES}",
            sources_root.display()
        ));
        cmd.arg("-o").arg(out).arg(source);
        // Only the sources and flags may influence the output.
        cmd.env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("SOURCE_DATE_EPOCH", "0");
        let res = cmd
            .output()
            .with_context(|| format!("running {}", self.rustc.display()))?;
        if !res.status.success() {
            bail!(
                "compiling {} failed:\n{}",
                source.display(),
                String::from_utf8_lossy(&res.stderr)
            );
        }
        Ok(())
    }
}
