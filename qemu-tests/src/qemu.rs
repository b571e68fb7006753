//! The QEMU command line of a guest run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};

/// Kernel parameters every guest boots with: console on ttyS0; any WARN or
/// oops panics the guest, which then "reboots", ending QEMU (-no-reboot);
/// timestamps and kmemleak's leak details go to the console log.
/// `acpi=noirq`: routing PCI interrupts through ACPI link devices costs about
/// 7 s per virtio device under TCG with lockdep; the legacy PIRQ routing is
/// instant, and ACPI still enumerates (and brings up) every vCPU.
pub const KERNEL_CMDLINE: &str =
    "console=ttyS0 panic_on_warn=1 oops=panic panic=-1 printk.time=1 kmemleak.verbose=1 acpi=noirq rdinit=/init";

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// How QEMU executes guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Accel {
    /// Emulation (TCG, multi-threaded, `-cpu max`): works everywhere.
    #[default]
    Tcg,
    /// Hardware virtualisation; only when /dev/kvm is usable.
    Kvm,
}

/// A host directory exported to the guest over virtio-9p.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The virtfs mount tag.
    pub tag: String,
    /// The host directory.
    pub path: PathBuf,
    pub readonly: bool,
}

/// Everything the command line is made from.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub smp: u32,
    pub mem_mib: u32,
    pub accel: Accel,
    pub console_log: PathBuf,
    pub shares: Vec<Share>,
    /// Appended to [`KERNEL_CMDLINE`] (e.g. `initcall_debug`).
    pub extra_kernel_args: String,
}

/// Doubles commas, QEMU's escape inside `key=value,…` option strings.
pub fn escape_option(value: &str) -> String {
    value.replace(',', ",,")
}

fn path_option(path: &Path) -> String {
    escape_option(&path.to_string_lossy())
}

/// Fails unless /dev/kvm can be opened for reading and writing.
pub fn check_kvm() -> Result<()> {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => Ok(()),
        Err(e) => bail!("--accel kvm was asked for but /dev/kvm is not usable ({e}); use the default --accel tcg"),
    }
}

impl QemuConfig {
    /// The argument list (without the program).
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        push(&["-no-reboot", "-nodefaults", "-display", "none"]);
        match self.accel {
            Accel::Tcg => push(&["-accel", "tcg,thread=multi"]),
            Accel::Kvm => push(&["-accel", "kvm"]),
        }
        let smp = self.smp.to_string();
        let mem = format!("{}M", self.mem_mib);
        push(&["-cpu", "max", "-smp", &smp, "-m", &mem]);
        let kernel = self.kernel.to_string_lossy();
        let initrd = self.initramfs.to_string_lossy();
        let cmdline = format!("{KERNEL_CMDLINE} {}", self.extra_kernel_args)
            .trim_end()
            .to_string();
        push(&["-kernel", &kernel, "-initrd", &initrd, "-append", &cmdline]);
        // ttyS0: the kernel console, to a file.
        let console = format!("file,id=console,path={}", path_option(&self.console_log));
        push(&["-chardev", &console, "-serial", "chardev:console"]);
        // ttyS1: the command's stdin/stdout/stderr.
        push(&[
            "-chardev",
            "stdio,id=cmd,signal=off",
            "-serial",
            "chardev:cmd",
        ]);
        for share in &self.shares {
            let mut opt = format!(
                "local,path={},mount_tag={},security_model=none,multidevs=remap",
                path_option(&share.path),
                escape_option(&share.tag)
            );
            if share.readonly {
                opt.push_str(",readonly=on");
            }
            push(&["-virtfs", &opt]);
        }
        a
    }

    /// The command, ready to spawn (stdio is set by the caller).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(QEMU);
        cmd.args(self.args());
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_has_the_required_pieces() {
        let cfg = QemuConfig {
            kernel: "/k/bzImage".into(),
            initramfs: "/c/i.cpio".into(),
            smp: 2,
            mem_mib: 1024,
            accel: Accel::Tcg,
            console_log: "/r/a,b/console.log".into(),
            shares: vec![Share {
                tag: "hostroot".into(),
                path: "/".into(),
                readonly: true,
            }],
            extra_kernel_args: String::new(),
        };
        let args = cfg.args().join(" ");
        for piece in [
            "-no-reboot -nodefaults -display none",
            "-accel tcg,thread=multi",
            "-cpu max -smp 2 -m 1024M",
            "-kernel /k/bzImage -initrd /c/i.cpio",
            "path=/r/a,,b/console.log",
            "-virtfs local,path=/,mount_tag=hostroot,security_model=none,multidevs=remap,readonly=on",
            "-chardev stdio,id=cmd,signal=off -serial chardev:cmd",
        ] {
            assert!(args.contains(piece), "missing {piece:?} in {args}");
        }
        for param in ["console=ttyS0", "panic_on_warn=1", "oops=panic", "panic=-1"] {
            assert!(KERNEL_CMDLINE.split(' ').any(|p| p == param));
        }
    }
}
