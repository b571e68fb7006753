//! The guest kernel: Debian's linux-source-6.12, configured from
//! `make tinyconfig` plus the fragments in `kconfig/`, built once per key into
//! the cache (`<cache>/kernel/<key>/`, a `make O=` build directory that the
//! module builds use as `KDIR`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cache::{cache_dir, CacheKey};
use crate::kconfig;
use crate::lock::FileLock;
use crate::progress::{run_logged, say};
use crate::workspace::Workspace;

/// The Debian package holding the kernel source tarball.
pub const SOURCE_PACKAGE: &str = "linux-source-6.12";
/// The tarball it installs; it holds `linux-source-6.12/`.
pub const SOURCE_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
const SOURCE_TOP: &str = "linux-source-6.12";
/// Written last: its presence means the build directory is complete.
const STAMP: &str = "stamp";

/// A built guest kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The `make O=` directory: `KDIR` for out-of-tree modules.
    pub dir: PathBuf,
    /// `arch/x86/boot/bzImage` inside it.
    pub image: PathBuf,
}

/// Which guest kernel: the one the tests run (with lock, list and memory
/// debugging, to catch the module's mistakes) or one configured like a
/// user's kernel (the same options without the debugging, which under TCG
/// makes every fork, exec and page fault several times slower), for
/// figures a user would see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    /// `kconfig/base.config` + `kconfig/debug.config`: lockdep, DEBUG_VM,
    /// kmemleak, SLUB debugging, Rust debug assertions. Every test runs on it.
    Test,
    /// `kconfig/base.config` alone: no debugging options.
    Release,
}

impl Flavor {
    /// The fragment files (under `kconfig/`) merged onto tinyconfig, in order.
    pub fn fragments(self) -> &'static [&'static str] {
        match self {
            Flavor::Test => &["base.config", "debug.config"],
            Flavor::Release => &["base.config"],
        }
    }

    /// A lower-case name for paths and messages.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Test => "test",
            Flavor::Release => "release",
        }
    }
}

impl Kernel {
    fn at(dir: PathBuf) -> Kernel {
        let image = dir.join("arch/x86/boot/bzImage");
        Kernel { dir, image }
    }
}

/// Everything the kernel build depends on; the cache key hashes all of it.
#[derive(Debug, Clone)]
pub struct KernelInputs {
    pub source_version: String,
    /// (file name, contents) of each fragment, in merge order.
    pub fragments: Vec<(String, String)>,
    pub rustc_version: String,
    pub bindgen_version: String,
    pub clang_version: String,
}

impl KernelInputs {
    /// Reads the fragments and asks the installed tools for their versions.
    pub fn gather(ws: &Workspace, flavor: Flavor) -> Result<KernelInputs> {
        let mut fragments = Vec::new();
        for path in ws.kconfig_fragments(flavor) {
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("cannot read kernel config fragment {}", path.display())
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            fragments.push((name, text));
        }
        Ok(KernelInputs {
            source_version: tool_output(
                Command::new("dpkg-query").args(["-W", "-f=${Version}", SOURCE_PACKAGE]),
                &format!("{SOURCE_PACKAGE} is not installed (`cargo vm build` installs it)"),
            )?,
            fragments,
            rustc_version: tool_output(
                Command::new("rustc").arg("--version"),
                "rustc not found on PATH",
            )?,
            bindgen_version: tool_output(
                Command::new("bindgen").arg("--version"),
                "bindgen not found on PATH (`cargo vm build` installs it)",
            )?,
            clang_version: tool_output(
                Command::new("clang").arg("--version"),
                "clang not found on PATH",
            )?,
        })
    }

    /// The cache key of a kernel built from these inputs.
    pub fn key(&self) -> CacheKey {
        let mut key = CacheKey::new()
            .part("linux-source version", &self.source_version)
            .part("rustc --version", &self.rustc_version)
            .part("bindgen --version", &self.bindgen_version)
            .part("clang --version", &self.clang_version);
        for (name, text) in &self.fragments {
            key = key.part(&format!("fragment {name}"), text);
        }
        key
    }
}

fn tool_output(cmd: &mut Command, missing: &str) -> Result<String> {
    let out = cmd.output().with_context(|| missing.to_string())?;
    if !out.status.success() {
        bail!(
            "{missing} ({cmd:?} failed: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The cache entry for these inputs, built or not.
pub fn build_dir(inputs: &KernelInputs) -> Result<PathBuf> {
    Ok(cache_dir()?.join("kernel").join(inputs.key().short()))
}

/// The already-built kernel for the current inputs, if there is one.
pub fn cached(ws: &Workspace, flavor: Flavor) -> Result<Option<Kernel>> {
    let dir = build_dir(&KernelInputs::gather(ws, flavor)?)?;
    Ok(dir.join(STAMP).is_file().then(|| Kernel::at(dir)))
}

/// Returns the cached kernel, building it first when needed.
pub fn ensure(ws: &Workspace, flavor: Flavor) -> Result<Kernel> {
    let inputs = KernelInputs::gather(ws, flavor)?;
    let key = inputs.key();
    let cache = cache_dir()?;
    let dir = cache.join("kernel").join(key.short());
    if dir.join(STAMP).is_file() {
        say(format_args!(
            "guest kernel ({}): cached ({})",
            flavor.name(),
            dir.display()
        ));
        return Ok(Kernel::at(dir));
    }
    if dir
        .to_string_lossy()
        .chars()
        .any(|c| c.is_whitespace() || c == ':')
    {
        bail!(
            "the kernel build directory {} contains whitespace or ':', which Kbuild cannot handle: \
             set ADAPT_CACHE_DIR to a plain path",
            dir.display()
        );
    }
    let _lock = FileLock::acquire(
        &cache.join("kernel").join(format!("{}.lock", key.short())),
        || say("guest kernel: another runner is building it, waiting…"),
    )?;
    if dir.join(STAMP).is_file() {
        say(format_args!(
            "guest kernel: built by another runner ({})",
            dir.display()
        ));
        return Ok(Kernel::at(dir));
    }

    say(format_args!(
        "guest kernel ({}): building into {} (about 15 minutes on 2 idle cores)",
        flavor.name(),
        dir.display()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join("key.txt"),
        key.describe() + &format!("key: {}\n", key.hex()),
    )
    .with_context(|| format!("cannot write {}", dir.join("key.txt").display()))?;
    let log = dir.join("build.log");
    std::fs::write(&log, "").with_context(|| format!("cannot create {}", log.display()))?;

    let src = ensure_source(&cache, &inputs.source_version)?;
    configure(&src, &dir, &inputs, &log)?;
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        + 1;
    run_logged(
        "guest kernel: make bzImage modules",
        make(&src, &dir)
            .arg(format!("-j{jobs}"))
            .args(["bzImage", "modules"]),
        &log,
    )?;
    let kernel = Kernel::at(dir.clone());
    if !kernel.image.is_file() {
        bail!(
            "the kernel build succeeded but {} is missing; see {}",
            kernel.image.display(),
            log.display()
        );
    }
    std::fs::write(dir.join(STAMP), key.hex())
        .with_context(|| format!("cannot write {}", dir.join(STAMP).display()))?;
    say(format_args!(
        "guest kernel: ready ({})",
        kernel.image.display()
    ));
    Ok(kernel)
}

fn make(src: &Path, build: &Path) -> Command {
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(src)
        .arg(format!("O={}", build.display()))
        .arg("LLVM=1");
    cmd
}

/// Extracts the source tarball once per package version.
fn ensure_source(cache: &Path, version: &str) -> Result<PathBuf> {
    let safe: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let root = cache.join("src");
    let done = root.join(&safe);
    let src = done.join(SOURCE_TOP);
    if src.join("Makefile").is_file() {
        return Ok(src);
    }
    let _lock = FileLock::acquire(&root.join(format!("{safe}.lock")), || {
        say("kernel source: another runner is extracting it, waiting…")
    })?;
    if src.join("Makefile").is_file() {
        return Ok(src);
    }
    let tmp = root.join(format!("{safe}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("cannot remove stale {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    if !Path::new(SOURCE_TARBALL).is_file() {
        bail!("{SOURCE_TARBALL} is missing: reinstall {SOURCE_PACKAGE} (apt-get install --reinstall {SOURCE_PACKAGE})");
    }
    run_logged(
        &format!("kernel source: extracting {SOURCE_TARBALL}"),
        Command::new("tar")
            .arg("-xf")
            .arg(SOURCE_TARBALL)
            .arg("-C")
            .arg(&tmp),
        &root.join(format!("{safe}.extract.log")),
    )?;
    if !tmp.join(SOURCE_TOP).join("Makefile").is_file() {
        bail!("{SOURCE_TARBALL} did not contain {SOURCE_TOP}/Makefile");
    }
    if done.exists() {
        std::fs::remove_dir_all(&done)
            .with_context(|| format!("cannot remove stale {}", done.display()))?;
    }
    std::fs::rename(&tmp, &done)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), done.display()))?;
    Ok(src)
}

/// tinyconfig, merge the fragments, olddefconfig, then check every request.
fn configure(src: &Path, dir: &Path, inputs: &KernelInputs, log: &Path) -> Result<()> {
    run_logged(
        "guest kernel: make tinyconfig",
        make(src, dir).arg("tinyconfig"),
        log,
    )?;
    let fragment_dir = dir.join("fragments");
    std::fs::create_dir_all(&fragment_dir)
        .with_context(|| format!("cannot create {}", fragment_dir.display()))?;
    let mut merge = Command::new(src.join("scripts/kconfig/merge_config.sh"));
    merge
        .current_dir(src)
        .arg("-m")
        .arg("-O")
        .arg(dir)
        .arg(dir.join(".config"));
    // Merge the exact bytes that went into the key.
    for (name, text) in &inputs.fragments {
        let copy = fragment_dir.join(name);
        std::fs::write(&copy, text).with_context(|| format!("cannot write {}", copy.display()))?;
        merge.arg(copy);
    }
    run_logged("guest kernel: merge kconfig fragments", &mut merge, log)?;
    run_logged(
        "guest kernel: make olddefconfig",
        make(src, dir).arg("olddefconfig"),
        log,
    )?;

    let config_path = dir.join(".config");
    let config_text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let config = kconfig::parse_config(&config_text);
    let requests: Vec<kconfig::Request> = inputs
        .fragments
        .iter()
        .flat_map(|(name, text)| kconfig::parse_fragment(text, &format!("kconfig/{name}")))
        .collect();
    let mismatches = kconfig::verify(&requests, &config);
    if mismatches.is_empty() {
        say(format_args!(
            "guest kernel: all {} fragment options hold in .config",
            requests.len()
        ));
        return Ok(());
    }
    let mut msg = format!(
        "the kernel configuration does not honour {} fragment option(s) (kconfig dropped them, usually \
         because a dependency is missing: add it to the fragment):",
        mismatches.len()
    );
    for m in &mismatches {
        msg.push_str(&format!("\n  {m}"));
    }
    if mismatches.iter().any(|m| m.request.name == "CONFIG_RUST") {
        let out = make(src, dir).arg("rustavailable").output();
        let why = match out {
            Ok(o) => format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("cannot run make rustavailable: {e}"),
        };
        msg.push_str(&format!(
            "\n`make LLVM=1 rustavailable` says:\n{}",
            why.trim()
        ));
    }
    msg.push_str(&format!("\n(final config: {})", config_path.display()));
    bail!(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> KernelInputs {
        KernelInputs {
            source_version: "6.12.117-1~deb12u1".into(),
            fragments: vec![
                ("base.config".into(), "CONFIG_RUST=y\n".into()),
                ("debug.config".into(), "CONFIG_DEBUG_KERNEL=y\n".into()),
            ],
            rustc_version: "rustc 1.95.0".into(),
            bindgen_version: "bindgen 0.73.2".into(),
            clang_version: "Debian clang version 14.0.6".into(),
        }
    }

    #[test]
    fn key_changes_when_a_fragment_changes() {
        let a = inputs();
        let mut b = inputs();
        b.fragments[1].1.push_str("CONFIG_PROVE_LOCKING=y\n");
        assert_ne!(a.key().hex(), b.key().hex());
        assert_eq!(a.key().hex(), inputs().key().hex());
    }

    #[test]
    fn key_changes_with_each_tool_and_the_source() {
        let base = inputs().key().hex();
        let mut v = inputs();
        v.source_version.push('1');
        assert_ne!(v.key().hex(), base);
        let mut v = inputs();
        v.rustc_version = "rustc 1.96.0".into();
        assert_ne!(v.key().hex(), base);
        let mut v = inputs();
        v.bindgen_version = "bindgen 0.72.0".into();
        assert_ne!(v.key().hex(), base);
        let mut v = inputs();
        v.clang_version = "clang 15".into();
        assert_ne!(v.key().hex(), base);
    }
}
