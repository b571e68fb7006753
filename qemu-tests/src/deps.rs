//! Checking and installing what the runner needs: Debian packages, rustup
//! components and bindgen. The check is quick (three local queries); the
//! network is used only when something is missing. When it cannot install
//! (not root, no network), it stops with the exact command to run.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

use crate::progress::say;

/// Debian packages the kernel build, the module build and the guests need.
pub const APT_PACKAGES: &[&str] = &[
    "linux-source-6.12",
    "qemu-system-x86",
    "clang",
    "lld",
    "llvm",
    "flex",
    "bison",
    "libelf-dev",
    "bc",
    "busybox-static",
    "cpio",
    "kmod",
    "xz-utils",
    "make",
    "libclang-dev",
    // The package's module source is built by DKMS; its test runs `dkms
    // build` against the guest kernel's tree.
    "dkms",
    // The BLAS segments (issue 13): the netlib reference BLAS they replace
    // and are tested against, single-threaded OpenBLAS as the benchmark's
    // competitor, and numpy as the real program calling them.
    "libblas3",
    "libopenblas0-pthread",
    "python3-numpy",
];

/// rustup components (Rust-for-Linux builds `core` from rust-src; the module
/// is linted with `CLIPPY=1`; `cargo vm test` checks the userspace with
/// rustfmt and clippy before it tests).
pub const RUSTUP_COMPONENTS: &[&str] = &["rust-src", "clippy", "rustfmt"];

/// The bindgen the kernel build is known to work with.
pub const BINDGEN_VERSION: &str = "0.73.2";

/// Makes sure everything is installed, installing what is missing.
pub fn ensure() -> Result<()> {
    // In this order: the packages bring clang and libclang, which bindgen
    // needs; each step stops with the command to run when it cannot act.
    let mut installed_something = false;
    let missing_apt = missing_apt_packages()?;
    if !missing_apt.is_empty() {
        install_apt(&missing_apt)?;
        installed_something = true;
    }
    let missing_components = missing_rustup_components()?;
    if !missing_components.is_empty() {
        install_components(&missing_components)?;
        installed_something = true;
    }
    if bindgen_version().as_deref() != Some(BINDGEN_VERSION) {
        install_bindgen()?;
        installed_something = true;
    }
    if installed_something {
        say("dependencies: all present now");
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The packages of [`APT_PACKAGES`] that dpkg does not list as installed.
pub fn missing_apt_packages() -> Result<Vec<String>> {
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${db:Status-Abbrev}\n")
        .args(APT_PACKAGES)
        .stderr(Stdio::null())
        .output()
        .context("cannot run dpkg-query: this runner needs a Debian-based host (Debian 12 is what CI uses)")?;
    // dpkg-query exits 1 when some package is unknown; the listed ones are
    // still on stdout.
    let installed = parse_dpkg_installed(&String::from_utf8_lossy(&out.stdout));
    Ok(APT_PACKAGES
        .iter()
        .filter(|p| !installed.contains(**p))
        .map(|p| p.to_string())
        .collect())
}

/// Package names whose status abbreviation says installed (`ii`).
fn parse_dpkg_installed(dpkg_output: &str) -> BTreeSet<String> {
    dpkg_output
        .lines()
        .filter_map(|line| {
            let (name, status) = line.split_once(' ')?;
            // Multi-arch packages print as `name:arch`.
            let name = name.split(':').next().unwrap_or(name);
            status.starts_with("ii").then(|| name.to_string())
        })
        .collect()
}

fn apt_command(missing: &[String]) -> String {
    let sudo = if is_root() { "" } else { "sudo " };
    format!(
        "{sudo}apt-get update && {sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    )
}

fn install_apt(missing: &[String]) -> Result<()> {
    let manual = apt_command(missing);
    if !is_root() {
        bail!(
            "missing Debian packages: {}\nInstalling them needs root. Run this, then retry:\n  {manual}",
            missing.join(" ")
        );
    }
    say(format_args!(
        "installing Debian packages: {}",
        missing.join(" ")
    ));
    say("  apt-get update");
    run_to_stderr(Command::new("apt-get").arg("update")).map_err(|e| retry_with(e, &manual))?;
    say("  apt-get install");
    run_to_stderr(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(missing),
    )
    .map_err(|e| retry_with(e, &manual))?;
    let still = missing_apt_packages()?;
    if !still.is_empty() {
        bail!(
            "apt-get reported success but these packages are still missing: {}\nRun this, then retry:\n  {}",
            still.join(" "),
            apt_command(&still)
        );
    }
    Ok(())
}

/// The components of [`RUSTUP_COMPONENTS`] that rustup does not list.
pub fn missing_rustup_components() -> Result<Vec<String>> {
    let out = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
        .context(
            "cannot run rustup: the kernel's Rust support needs a rustup toolchain with rust-src \
             (install rustup from your distribution or rustup.rs, then retry)",
        )?;
    if !out.status.success() {
        bail!("`rustup component list --installed` failed; check your rustup installation");
    }
    let listed = String::from_utf8_lossy(&out.stdout);
    Ok(missing_components_in(&listed))
}

fn missing_components_in(listed: &str) -> Vec<String> {
    // `rust-src` is listed bare; target-specific ones carry the target triple
    // (`clippy-x86_64-unknown-linux-gnu`).
    let installed = |component: &str| {
        listed.lines().map(str::trim).any(|line| {
            line == component
                || line
                    .strip_prefix(component)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|triple| triple.contains("-linux"))
        })
    };
    RUSTUP_COMPONENTS
        .iter()
        .filter(|c| !installed(c))
        .map(|c| c.to_string())
        .collect()
}

fn install_components(missing: &[String]) -> Result<()> {
    let manual = format!("rustup component add {}", missing.join(" "));
    say(format_args!(
        "installing rustup components: {}",
        missing.join(" ")
    ));
    run_to_stderr(
        Command::new("rustup")
            .args(["component", "add"])
            .args(missing),
    )
    .map_err(|e| retry_with(e, &manual))
}

/// `bindgen --version`'s version number, if bindgen runs at all.
pub fn bindgen_version() -> Option<String> {
    let out = Command::new("bindgen")
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_bindgen_version(&String::from_utf8_lossy(&out.stdout))
}

fn parse_bindgen_version(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    (words.next()? == "bindgen").then_some(())?;
    words.next().map(str::to_string)
}

fn install_bindgen() -> Result<()> {
    let manual = format!("cargo install bindgen-cli --locked --version {BINDGEN_VERSION}");
    match bindgen_version() {
        Some(v) => say(format_args!(
            "bindgen {v} found, the kernel build wants {BINDGEN_VERSION}: installing it"
        )),
        None => say(format_args!(
            "installing bindgen {BINDGEN_VERSION} (cargo install, takes a minute)"
        )),
    }
    run_to_stderr(crate::workspace::cargo_command().args([
        "install",
        "bindgen-cli",
        "--locked",
        "--version",
        BINDGEN_VERSION,
    ]))
    .map_err(|e| retry_with(e, &manual))?;
    match bindgen_version() {
        Some(v) if v == BINDGEN_VERSION => Ok(()),
        other => bail!(
            "bindgen {BINDGEN_VERSION} was installed but the bindgen on PATH is {}: \
             put cargo's bin directory (usually ~/.cargo/bin) first on PATH, then retry",
            other.map_or_else(|| "not runnable".to_string(), |v| format!("version {v}"))
        ),
    }
}

/// `cargo deb --version`'s version number, if cargo-deb is installed.
pub fn cargo_deb_version() -> Option<String> {
    let out = crate::workspace::cargo_command()
        .args(["deb", "--version"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    (words.next()? == "cargo-deb").then_some(())?;
    words.next().map(str::to_string)
}

/// Makes sure `cargo deb` works (`cargo vm package`), installing cargo-deb
/// with `cargo install --locked cargo-deb` when it is missing.
pub fn ensure_cargo_deb() -> Result<()> {
    if cargo_deb_version().is_some() {
        return Ok(());
    }
    let manual = "cargo install --locked cargo-deb";
    say("installing cargo-deb (cargo install --locked cargo-deb, takes a few minutes)");
    run_to_stderr(crate::workspace::cargo_command().args(["install", "--locked", "cargo-deb"]))
        .map_err(|e| retry_with(e, manual))?;
    match cargo_deb_version() {
        Some(v) => {
            say(format_args!("cargo-deb {v} installed"));
            Ok(())
        }
        None => bail!(
            "cargo-deb was installed but `cargo deb` does not run: put cargo's bin directory \
             (usually ~/.cargo/bin) on PATH, then retry"
        ),
    }
}

/// Runs a command with its output sent to our stderr (stdout stays clean).
fn run_to_stderr(cmd: &mut Command) -> Result<()> {
    let stderr = std::io::stderr();
    let out = std::os::fd::AsFd::as_fd(&stderr)
        .try_clone_to_owned()
        .context("cannot duplicate stderr")?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

/// An install step failed: say why, then the command the user can run.
fn retry_with(err: anyhow::Error, manual: &str) -> anyhow::Error {
    anyhow!("{err:#}\nRun this yourself, then retry:\n  {manual}")
}

/// `prog arg arg` for messages.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_parsing() {
        let out = "clang ii \nlld rc \nlibelf-dev:amd64 ii \nbc un \n";
        let installed = parse_dpkg_installed(out);
        assert!(installed.contains("clang"));
        assert!(installed.contains("libelf-dev"));
        assert!(!installed.contains("lld"));
        assert!(!installed.contains("bc"));
    }

    #[test]
    fn rustup_component_parsing() {
        let listed = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                      rust-src\nrustfmt-x86_64-unknown-linux-gnu\n";
        assert!(missing_components_in(listed).is_empty());
        assert_eq!(
            missing_components_in("rust-src\nrustfmt-x86_64-unknown-linux-gnu\n"),
            vec!["clippy".to_string()]
        );
        assert_eq!(missing_components_in("clippy-preview-x86_64\n").len(), 3);
    }

    #[test]
    fn bindgen_version_parsing() {
        assert_eq!(
            parse_bindgen_version("bindgen 0.73.2\n").as_deref(),
            Some("0.73.2")
        );
        assert_eq!(parse_bindgen_version("something 1.0"), None);
    }
}
