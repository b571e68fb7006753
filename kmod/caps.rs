// SPDX-License-Identifier: GPL-2.0

//! What this machine offers adapt, probed once at module load.

use crate::abi;
use crate::perf::{Attr, EventKind, KernelCounter};

/// Frequency used only to ask whether an event can sample at all.
const PROBE_HZ: u64 = 1000;

/// Returns the `ADAPT_CAP_*` bits of this machine.
///
/// An event kind counts as available when the perf core accepts a disabled,
/// frequency-based sampling event of that kind. Without a PMU the hardware
/// cycles event fails with `ENOENT`; a PMU that counts but cannot interrupt
/// fails with `EOPNOTSUPP`. Either way the profiler falls back to the software
/// `cpu-clock` event.
pub(crate) fn probe() -> u64 {
    let mut caps = 0;
    if can_sample(EventKind::HardwareCycles) {
        caps |= abi::ADAPT_CAP_SAMPLING_HW_CYCLES;
    }
    if can_sample(EventKind::SoftwareCpuClock) {
        caps |= abi::ADAPT_CAP_SAMPLING_SW_CLOCK;
    }
    caps
}

/// A short human description of the sampling capability, for the kernel log.
pub(crate) fn describe(caps: u64) -> &'static str {
    if caps & abi::ADAPT_CAP_SAMPLING_HW_CYCLES != 0 {
        "hardware cycles (sampling PMU present)"
    } else if caps & abi::ADAPT_CAP_SAMPLING_SW_CLOCK != 0 {
        "software cpu-clock (no sampling PMU)"
    } else {
        "nothing (no usable perf event)"
    }
}

fn can_sample(kind: EventKind) -> bool {
    let mut attr = Attr::sampling_frequency(kind, PROBE_HZ);
    // CPU 0 is always online on x86; the event is created disabled and
    // released at once.
    KernelCounter::on_cpu(&mut attr, 0).is_ok()
}
