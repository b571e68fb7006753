//! Options shared by the subcommands that boot a guest.

use std::time::Duration;

use crate::artifacts::Artifacts;
use crate::guest::{Accel, Guest, DEFAULT_SMP};
use crate::kernel::Flavor;

#[derive(Debug, Clone, clap::Args)]
pub struct GuestArgs {
    /// Number of guest vCPUs.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SMP, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub smp: u32,

    /// Guest memory: MiB, or with a suffix M or G (512M, 2G).
    #[arg(long, value_name = "M", default_value = "1G", value_parser = parse_mem)]
    pub mem: u32,

    /// Kill the guest after this many seconds (exit status 124).
    /// [default: 900 for exec, test and demo; none for shell]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,

    /// How QEMU runs guest code: tcg (emulation, `-cpu max`, works
    /// everywhere) or kvm (needs a usable /dev/kvm).
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,

    /// Make the guest's root writable: the host's root through an overlay
    /// whose upper layer is a tmpfs that lives as long as the guest (so a
    /// command can `dpkg -i`, `depmod`, edit /etc). The host's files are
    /// never changed. Needs root on the host (a private mount namespace).
    #[arg(long)]
    pub writable_root: bool,

    /// Which guest kernel: test (lockdep, DEBUG_VM, kmemleak and SLUB
    /// debugging: what every guest test runs on) or release (the same
    /// configuration without the debugging, as a user's kernel; built once
    /// into the cache on first use, about 15 minutes). Under TCG the
    /// debugging makes every fork, exec and page fault several times slower.
    /// [default: release for bench, test for the others]
    #[arg(long, value_enum, value_name = "FLAVOR")]
    pub kernel: Option<Flavor>,
}

impl GuestArgs {
    /// The kernel flavor asked for, else the command's default.
    pub fn kernel_or(&self, default: Flavor) -> Flavor {
        self.kernel.unwrap_or(default)
    }

    /// A guest configured from these options.
    pub fn guest(&self, artifacts: Artifacts, default_timeout: Option<Duration>) -> Guest {
        let guest = Guest::with_artifacts(artifacts)
            .smp(self.smp)
            .mem_mib(self.mem)
            .accel(self.accel)
            .echo_to_stdout();
        let guest = if self.writable_root {
            guest.writable_root()
        } else {
            guest
        };
        match self.timeout.map(Duration::from_secs).or(default_timeout) {
            Some(t) => guest.timeout(t),
            None => guest.no_timeout(),
        }
    }
}

/// `1024`, `512M`, `1G` → MiB.
pub fn parse_mem(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let (digits, factor) = match t.chars().last() {
        Some('G' | 'g') => (&t[..t.len() - 1], 1024),
        Some('M' | 'm') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: u32 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 1024, 512M or 2G"))?;
    let mib = n
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if mib < 128 {
        return Err(format!(
            "{text:?} is too little memory for the debug kernel (at least 128M)"
        ));
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mem("1G"), Ok(1024));
        assert_eq!(parse_mem("512M"), Ok(512));
        assert_eq!(parse_mem("2048"), Ok(2048));
        assert!(parse_mem("64M").is_err());
        assert!(parse_mem("lots").is_err());
    }
}
