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
    /// Export a writable overlay of the host root instead of the root
    /// itself (see [`RootOverlay`]).
    pub root_overlay: Option<RootOverlay>,
}

/// A writable view of the host's root for one guest, made on the host
/// because the guest kernel has no overlayfs (`CONFIG_OVERLAY_FS` is off
/// and the kconfig is fixed): QEMU starts in a private mount namespace
/// (`unshare --mount`) where a fresh tmpfs holds the upper layer of an
/// overlay whose lower layer is `/`. The guest's writes land in that tmpfs
/// and vanish with QEMU's namespace; the host's root is never written.
/// Needs root (CAP_SYS_ADMIN) on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootOverlay {
    /// An empty directory; the tmpfs (upper and work directories) is
    /// mounted on it.
    pub upper_mount: PathBuf,
    /// An empty directory; the overlay is mounted on it, and the share
    /// exporting the root points there.
    pub merged: PathBuf,
}

/// Mounts the overlay of [`RootOverlay`], then runs QEMU (`$1` the tmpfs
/// mount point, `$2` the overlay's, the rest QEMU's command line).
const OVERLAY_SCRIPT: &str = "\
set -e
mount -t tmpfs -o mode=755 adapt-root-upper \"$1\"
mkdir \"$1/upper\" \"$1/work\"
mount -t overlay -o \"lowerdir=/,upperdir=$1/upper,workdir=$1/work\" adapt-root \"$2\"
shift 2
exec \"$@\"";

impl RootOverlay {
    /// Fails unless the paths can be passed in overlay's mount options.
    pub fn check(&self) -> Result<()> {
        for p in [&self.upper_mount, &self.merged] {
            let t = p.to_string_lossy();
            if t.contains([',', ':', '\\', '\n']) || !p.is_absolute() {
                bail!("{t:?} cannot hold a root overlay: it must be absolute, without commas, colons or backslashes");
            }
        }
        Ok(())
    }
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

    /// The command, ready to spawn (stdio is set by the caller): QEMU, or
    /// with a root overlay `unshare` running the script that mounts it and
    /// then execs QEMU (one process all along: killing it kills QEMU).
    pub fn command(&self) -> Command {
        match &self.root_overlay {
            None => {
                let mut cmd = Command::new(QEMU);
                cmd.args(self.args());
                cmd
            }
            Some(overlay) => {
                let mut cmd = Command::new("unshare");
                cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(OVERLAY_SCRIPT)
                    .arg("sh")
                    .arg(&overlay.upper_mount)
                    .arg(&overlay.merged)
                    .arg(QEMU)
                    .args(self.args());
                cmd
            }
        }
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
            root_overlay: None,
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
        assert_eq!(cfg.command().get_program(), QEMU);
    }

    #[test]
    fn a_root_overlay_runs_qemu_through_unshare() {
        let overlay = RootOverlay {
            upper_mount: "/r/upper".into(),
            merged: "/r/root".into(),
        };
        overlay.check().unwrap();
        let cfg = QemuConfig {
            kernel: "/k/bzImage".into(),
            initramfs: "/c/i.cpio".into(),
            smp: 1,
            mem_mib: 512,
            accel: Accel::Tcg,
            console_log: "/r/console.log".into(),
            shares: Vec::new(),
            extra_kernel_args: String::new(),
            root_overlay: Some(overlay),
        };
        let cmd = cfg.command();
        assert_eq!(cmd.get_program(), "unshare");
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[..5],
            ["--mount", "--propagation", "private", "sh", "-c"]
        );
        assert!(args[5].contains("lowerdir=/,upperdir=$1/upper,workdir=$1/work"));
        assert_eq!(args[6..10], ["sh", "/r/upper", "/r/root", QEMU]);
        assert_eq!(args[10..], cfg.args()[..]);
        for bad in ["/a,b", "/a:b", "relative"] {
            let o = RootOverlay {
                upper_mount: bad.into(),
                merged: "/r/root".into(),
            };
            assert!(o.check().is_err(), "{bad}");
        }
    }
}
