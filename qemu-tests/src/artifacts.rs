//! What `cargo vm build` produced, recorded in `<target>/vm/artifacts.json`
//! so guests (and integration tests) can boot without rebuilding anything.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::kernel::Flavor;
use crate::workspace::Workspace;

/// Paths of everything a guest run needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Artifacts {
    /// The guest kernel image (bzImage).
    pub kernel_image: PathBuf,
    /// Its `make O=` build directory (KDIR for modules).
    pub kernel_dir: PathBuf,
    /// The initramfs (newc cpio).
    pub initramfs: PathBuf,
    /// adapt.ko, loaded before every command.
    pub adapt_ko: PathBuf,
    /// The fixture module that WARNs on load (exported as `ADAPT_WARN_KO`).
    pub warn_ko: PathBuf,
    /// The directory holding the release-profile adaptctl and guest probes
    /// (first on the guest's PATH): guests run what users run.
    pub bin_dir: PathBuf,
    /// The dev-profile binaries (second on the guest's PATH, after
    /// `bin_dir`): the rest of the workspace's programs.
    pub debug_bin_dir: PathBuf,
    /// The workspace root (mounted at its own path in the guest).
    pub workspace_root: PathBuf,
    /// The cargo target directory (mounted too, when outside the workspace).
    pub target_dir: PathBuf,
}

impl Artifacts {
    /// Where the record of a kernel flavor's build lives for a workspace:
    /// `artifacts.json` for the test kernel (what the guest tests load),
    /// `artifacts-release.json` for the release kernel.
    pub fn manifest_path(ws: &Workspace, flavor: Flavor) -> PathBuf {
        match flavor {
            Flavor::Test => ws.vm_dir().join("artifacts.json"),
            Flavor::Release => ws.vm_dir().join("artifacts-release.json"),
        }
    }

    /// Reads the record left by `cargo vm build` (the test kernel's) and
    /// checks that every file still exists.
    pub fn load(ws: &Workspace) -> Result<Artifacts> {
        let path = Artifacts::manifest_path(ws, Flavor::Test);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("the guest kernel and module are not built ({} is missing): run `cargo vm build` first", path.display())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let artifacts: Artifacts = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is unreadable: run `cargo vm build` again",
                path.display()
            )
        })?;
        artifacts.check()?;
        Ok(artifacts)
    }

    /// Writes the record of a build for this kernel flavor.
    pub fn save(&self, ws: &Workspace, flavor: Flavor) -> Result<()> {
        let path = Artifacts::manifest_path(ws, flavor);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text =
            serde_json::to_string_pretty(self).context("cannot serialize the artifact record")?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Fails, naming the file, when something recorded is gone.
    pub fn check(&self) -> Result<()> {
        let adaptctl = self.bin_dir.join("adaptctl");
        let files: [(&str, &Path); 5] = [
            ("guest kernel", &self.kernel_image),
            ("initramfs", &self.initramfs),
            ("adapt.ko", &self.adapt_ko),
            ("warn fixture module", &self.warn_ko),
            ("release adaptctl", &adaptctl),
        ];
        for (what, path) in files {
            if !path.is_file() {
                bail!(
                    "the {what} {} is missing: run `cargo vm build` first",
                    path.display()
                );
            }
        }
        Ok(())
    }
}
