//! Where the workspace and its cargo target directory are.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use crate::kernel::Flavor;

/// The adapt workspace this runner belongs to.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The workspace root (holds the root `Cargo.toml`, `kmod/`, `kconfig/`).
    pub root: PathBuf,
    /// Cargo's target directory (respects `CARGO_TARGET_DIR` and config).
    pub target_dir: PathBuf,
}

impl Workspace {
    /// Locates the workspace this crate was built from and asks cargo for its
    /// target directory. The answer is computed once per process.
    pub fn locate() -> Result<Workspace> {
        static CACHED: OnceLock<Workspace> = OnceLock::new();
        if let Some(ws) = CACHED.get() {
            return Ok(ws.clone());
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context(
                "qemu-tests has no parent directory: the crate must live in the adapt workspace",
            )?
            .to_path_buf();
        if !root.join("Cargo.toml").is_file() {
            bail!(
                "the adapt workspace moved: {} has no Cargo.toml; rebuild the runner from the workspace",
                root.display()
            );
        }
        let target_dir = query_target_dir(&root)?;
        Ok(CACHED
            .get_or_init(|| Workspace { root, target_dir })
            .clone())
    }

    /// The kernel config fragments of a flavor, in merge order.
    pub fn kconfig_fragments(&self, flavor: Flavor) -> Vec<PathBuf> {
        flavor
            .fragments()
            .iter()
            .map(|name| self.root.join("kconfig").join(name))
            .collect()
    }

    /// The module's source directory (`make -C` there builds `adapt.ko`).
    pub fn kmod_dir(&self) -> PathBuf {
        self.root.join("kmod")
    }

    /// Sources of the deliberately-warning fixture module.
    pub fn warn_fixture_src(&self) -> PathBuf {
        self.root.join("qemu-tests/fixtures/warn-module")
    }

    /// Where the release-profile binaries land: the `adaptctl` and probes
    /// the guests run (first on their PATH), as users would run them.
    pub fn release_bin_dir(&self) -> PathBuf {
        self.target_dir.join("release")
    }

    /// Where the dev-profile binaries land: the host-side tools the runner
    /// uses (`build-library`) and the builds tests keep for themselves.
    pub fn debug_bin_dir(&self) -> PathBuf {
        self.target_dir.join("debug")
    }

    /// The runner's own scratch space inside the target directory.
    pub fn vm_dir(&self) -> PathBuf {
        self.target_dir.join("vm")
    }

    /// Per-guest run directories (console logs, stage2 scripts).
    pub fn runs_dir(&self) -> PathBuf {
        self.target_dir.join("vm-runs")
    }
}

/// The `cargo` to run: the one that started us when there is one.
pub fn cargo_command() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn query_target_dir(root: &Path) -> Result<PathBuf> {
    let out = cargo_command()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .output()
        .context("cannot run `cargo metadata` to find the target directory (is cargo on PATH?)")?;
    if !out.status.success() {
        bail!(
            "`cargo metadata` failed in {}: {}",
            root.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_target_dir(&out.stdout)
}

fn parse_target_dir(metadata_json: &[u8]) -> Result<PathBuf> {
    let value: serde_json::Value =
        serde_json::from_slice(metadata_json).context("`cargo metadata` printed invalid JSON")?;
    let dir = value
        .get("target_directory")
        .and_then(|v| v.as_str())
        .context("`cargo metadata` output has no target_directory")?;
    Ok(PathBuf::from(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_comes_from_metadata() {
        let json = br#"{"packages":[],"target_directory":"/x/target","version":1}"#;
        assert_eq!(parse_target_dir(json).unwrap(), PathBuf::from("/x/target"));
        assert!(parse_target_dir(b"{}").is_err());
    }
}
