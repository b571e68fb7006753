//! The Debian package `adapt` (`cargo vm package`): the release adaptctl,
//! the built and verified segment library, the module's source for DKMS,
//! the adapt-auto service, the policy file, man pages and completions.
//!
//! Everything but the binary is staged first in its installed layout under
//! `target/release/adapt-package/root/` (cargo-deb resolves `target/release`
//! to the real target directory); `[package.metadata.deb]` in
//! `userspace/adaptctl/Cargo.toml` packs that tree and the binary, with the
//! maintainer scripts of `userspace/adaptctl/debian/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::deps;
use crate::progress::{human, say};
use crate::workspace::{cargo_command, Workspace};

/// The Debian package's name.
pub const PACKAGE: &str = "adapt";
/// Its version: the workspace's (adaptctl's and this crate's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where the package puts the segment library (adaptctl's default,
/// `adapt_segment::SYSTEM_LIBRARY_DIR`).
pub const LIBRARY_DIR: &str = "/usr/lib/adapt/library";
/// The systemd unit, as installed.
pub const UNIT_PATH: &str = "/usr/lib/systemd/system/adapt-auto.service";
/// The policy file (a conffile).
pub const POLICY_PATH: &str = "/etc/adapt/policy.toml";
/// Where each shell finds adaptctl's completion.
pub const COMPLETIONS: [(&str, &str); 3] = [
    ("bash", "/usr/share/bash-completion/completions/adaptctl"),
    ("zsh", "/usr/share/zsh/vendor-completions/_adaptctl"),
    ("fish", "/usr/share/fish/vendor_completions.d/adaptctl.fish"),
];
/// The man pages' directory.
pub const MAN_DIR: &str = "/usr/share/man/man8";

/// The module source's directory, as installed (DKMS's layout:
/// `/usr/src/NAME-VERSION`).
pub fn module_source_dir() -> String {
    format!("/usr/src/{PACKAGE}-{VERSION}")
}

/// A built package.
#[derive(Debug, Clone)]
pub struct Package {
    /// The `.deb`.
    pub deb: PathBuf,
    /// The staged tree (everything but /usr/bin/adaptctl, as installed).
    pub root: PathBuf,
}

/// Builds the package: the release adaptctl, the library (built, then
/// verified by that adaptctl), the staged tree, then `cargo deb`. Installs
/// cargo-deb first if it is missing. A second run rebuilds only what
/// changed (cargo is incremental; staging and packing take seconds).
pub fn build(ws: &Workspace) -> Result<Package> {
    let start = Instant::now();
    deps::ensure_cargo_deb()?;
    cargo(ws, &["build", "--release", "-p", "adaptctl"])?;
    let adaptctl = ws.release_bin_dir().join("adaptctl");
    let root = ws.release_bin_dir().join("adapt-package").join("root");
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot clear {}", root.display()))?;
    }
    let at = |installed: &str| root.join(installed.trim_start_matches('/'));

    // build-library leaves its intermediate objects beside the segments:
    // build elsewhere, package the segments.
    let built = ws.release_bin_dir().join("adapt-package").join("library");
    let library = at(LIBRARY_DIR);
    say(format_args!("package: segment library ({LIBRARY_DIR})"));
    cargo(
        ws,
        &[
            "run",
            "-q",
            "-p",
            "adapt-library-build",
            "--bin",
            "build-library",
            "--",
            "--out",
            path_str(&built)?,
        ],
    )?;
    for entry in
        std::fs::read_dir(&built).with_context(|| format!("cannot read {}", built.display()))?
    {
        let path = entry
            .with_context(|| format!("cannot read {}", built.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "seg") && path.is_file() {
            copy(&path, &library.join(path.file_name().unwrap_or_default()))?;
        }
    }
    run(
        "adaptctl library verify",
        Command::new(&adaptctl)
            .args(["library", "verify", "--dir"])
            .arg(&library),
    )?;

    say(format_args!(
        "package: man pages, completions, unit, policy, module source"
    ));
    run_with(
        "adaptctl man --out",
        Command::new(&adaptctl)
            .arg("man")
            .arg("--out")
            .arg(at(MAN_DIR))
            .stdout(Stdio::null()),
    )?;
    // Debian's man pages are gzipped (-n: no name or time, reproducible).
    let pages: Vec<PathBuf> = std::fs::read_dir(at(MAN_DIR))
        .with_context(|| format!("cannot read {}", at(MAN_DIR).display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    run("gzip -9n", Command::new("gzip").arg("-9n").args(&pages))?;
    for (shell, path) in COMPLETIONS {
        let out = Command::new(&adaptctl)
            .args(["completions", shell])
            .stderr(Stdio::inherit())
            .output()
            .context("cannot run adaptctl completions")?;
        if !out.status.success() {
            bail!("`adaptctl completions {shell}` failed ({})", out.status);
        }
        write(&at(path), &out.stdout)?;
    }
    let adaptctl_src = ws.root.join("userspace/adaptctl");
    copy(
        &adaptctl_src.join("systemd/adapt-auto.service"),
        &at(UNIT_PATH),
    )?;
    copy(&adaptctl_src.join("debian/policy.toml"), &at(POLICY_PATH))?;
    stage_module_source(ws, &at(&module_source_dir()))?;

    say("package: cargo deb");
    let out_dir = ws.target_dir.join("debian");
    let deb = out_dir.join(format!("{PACKAGE}_{VERSION}-1_amd64.deb"));
    run(
        "cargo deb",
        cargo_command()
            .current_dir(&ws.root)
            .args([
                "deb",
                "-p",
                "adaptctl",
                "--no-build",
                "--strip",
                "--fast",
                "-o",
            ])
            .arg(&deb),
    )?;
    if !deb.is_file() {
        bail!("cargo deb succeeded but {} is missing", deb.display());
    }
    say(format_args!(
        "package: {} ({})",
        deb.display(),
        human(start.elapsed())
    ));
    Ok(Package { deb, root })
}

/// Copies the module's sources (not its build products) into `dest` in the
/// layout its `#[path]` include needs: `kmod/…` beside
/// `userspace/abi/src/abi.rs`, and `dkms.conf` at the top with the version
/// in place of `#MODULE_VERSION#`.
pub fn stage_module_source(ws: &Workspace, dest: &Path) -> Result<()> {
    let kmod = ws.kmod_dir();
    for dir in ["", "bindings"] {
        let from = kmod.join(dir);
        for entry in
            std::fs::read_dir(&from).with_context(|| format!("cannot read {}", from.display()))?
        {
            let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_file() && (dir == "bindings" || is_module_source(&name)) {
                copy(&entry.path(), &dest.join("kmod").join(dir).join(&name))?;
            }
        }
    }
    copy(
        &ws.root.join("userspace/abi/src/abi.rs"),
        &dest.join("userspace/abi/src/abi.rs"),
    )?;
    let conf = std::fs::read_to_string(kmod.join("dkms.conf"))
        .with_context(|| format!("cannot read {}", kmod.join("dkms.conf").display()))?;
    write(
        &dest.join("dkms.conf"),
        conf.replace("#MODULE_VERSION#", VERSION).as_bytes(),
    )
}

/// Whether a file of `kmod/` is source (not a build product or the
/// bindings bindgen generates).
fn is_module_source(name: &str) -> bool {
    match name {
        "Kbuild" | "Makefile" => true,
        "adapt_bindings_generated.rs" | "dkms.conf" => false,
        _ => {
            (name.ends_with(".rs") || name.ends_with(".c") || name.ends_with(".h"))
                && !name.ends_with(".mod.c")
        }
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    let data = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    write(to, &data)
}

/// Writes `data` to `path` unless it already holds exactly that, so a
/// restaged tree keeps the timestamps make goes by.
fn write(path: &Path, data: &[u8]) -> Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(data) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, data).with_context(|| format!("cannot write {}", path.display()))
}

fn cargo(ws: &Workspace, args: &[&str]) -> Result<()> {
    run(
        &format!("cargo {}", args.join(" ")),
        cargo_command().current_dir(&ws.root).args(args),
    )
}

/// Runs `cmd` with its output on our stderr (stdout stays for results).
fn run(label: &str, cmd: &mut Command) -> Result<()> {
    let stderr = std::io::stderr();
    let out = std::os::fd::AsFd::as_fd(&stderr)
        .try_clone_to_owned()
        .context("cannot duplicate stderr")?;
    run_with(label, cmd.stdout(Stdio::from(out)))
}

/// Runs `cmd` as set up by the caller, stdin closed.
fn run_with(label: &str, cmd: &mut Command) -> Result<()> {
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot start {label}"))?;
    if !status.success() {
        bail!("`{label}` failed ({status}); its output is above");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_module_sources_are_packaged() {
        for name in ["Kbuild", "Makefile", "adapt_main.rs", "shim.c", "shim.h"] {
            assert!(is_module_source(name), "{name}");
        }
        for name in [
            "adapt_bindings_generated.rs",
            "adapt.mod.c",
            "adapt.ko",
            "adapt.o",
            "Module.symvers",
            "modules.order",
            "dkms.conf",
        ] {
            assert!(!is_module_source(name), "{name}");
        }
    }

    #[test]
    fn staged_source_has_the_layout_the_module_includes() {
        let ws = Workspace::locate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        stage_module_source(&ws, dir.path()).unwrap();
        let main = std::fs::read_to_string(dir.path().join("kmod/adapt_main.rs")).unwrap();
        // The ABI is included by a path relative to kmod/.
        for line in main.lines().filter(|l| l.contains("#[path")) {
            let rel = line.split('"').nth(1).unwrap();
            assert!(dir.path().join("kmod").join(rel).is_file(), "{rel}");
        }
        assert!(dir.path().join("kmod/bindings/adapt_bindings.h").is_file());
        let conf = std::fs::read_to_string(dir.path().join("dkms.conf")).unwrap();
        assert!(
            conf.contains(&format!("PACKAGE_VERSION=\"{VERSION}\"")),
            "{conf}"
        );
        assert!(conf.contains("MAKE[0]=\"make -C kmod KDIR=${kernel_source_dir} LLVM=1\""));
        assert!(!dir.path().join("kmod/adapt.ko").exists());
    }
}
