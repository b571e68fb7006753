// SPDX-License-Identifier: GPL-2.0

//! In-kernel perf events (`perf_event_create_kernel_counter`), wrapped once.
//!
//! 6.12 has no Rust abstraction for perf; this file is the only place that
//! touches `struct perf_event_attr` and `struct perf_event` pointers.

use crate::bindings;
use core::{mem::size_of, ptr, ptr::NonNull};
use kernel::error::{Error, Result};

/// The sampling events adapt knows how to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// `PERF_TYPE_HARDWARE` / `PERF_COUNT_HW_CPU_CYCLES`: needs a PMU that
    /// raises overflow interrupts (bare metal, or a hypervisor that exposes
    /// one).
    HardwareCycles,
    /// `PERF_TYPE_SOFTWARE` / `PERF_COUNT_SW_CPU_CLOCK`: an hrtimer, always
    /// present.
    SoftwareCpuClock,
}

/// Attributes of a sampling event.
pub(crate) struct Attr(bindings::perf_event_attr);

impl Attr {
    /// A disabled event of `kind` that samples `hz` times per second of
    /// whatever it counts.
    pub(crate) fn sampling_frequency(kind: EventKind, hz: u64) -> Self {
        let (type_, config) = match kind {
            EventKind::HardwareCycles => (
                bindings::perf_type_id_PERF_TYPE_HARDWARE,
                u64::from(bindings::perf_hw_id_PERF_COUNT_HW_CPU_CYCLES),
            ),
            EventKind::SoftwareCpuClock => (
                bindings::perf_type_id_PERF_TYPE_SOFTWARE,
                u64::from(bindings::perf_sw_ids_PERF_COUNT_SW_CPU_CLOCK),
            ),
        };
        let mut attr = bindings::perf_event_attr {
            type_,
            // The struct is a few hundred bytes: the cast cannot truncate.
            size: size_of::<bindings::perf_event_attr>() as u32,
            config,
            ..Default::default()
        };
        attr.__bindgen_anon_1.sample_freq = hz;
        attr.set_freq(1);
        attr.set_disabled(1);
        Self(attr)
    }
}

/// A perf event owned by the kernel (not by a file descriptor).
///
/// # Invariants
///
/// `event` was returned by a successful `perf_event_create_kernel_counter`
/// and is released exactly once, in `Drop`.
pub(crate) struct KernelCounter {
    event: NonNull<bindings::perf_event>,
}

// SAFETY: A kernel counter may be released from any task context; the perf
// core synchronizes all access to the event itself.
unsafe impl Send for KernelCounter {}
// SAFETY: `KernelCounter` exposes no shared-reference operations on `event`.
unsafe impl Sync for KernelCounter {}

impl KernelCounter {
    /// Creates a counter for every task running on `cpu`, with no overflow
    /// handler. The event starts disabled if `attr` says so.
    pub(crate) fn on_cpu(attr: &mut Attr, cpu: i32) -> Result<Self> {
        // SAFETY: `attr.0` is a valid, fully initialized attribute struct of
        // the size it declares; a null task means "every task on `cpu`"; a
        // null handler and context are allowed.
        let event = unsafe {
            bindings::perf_event_create_kernel_counter(
                &mut attr.0,
                cpu,
                ptr::null_mut(),
                None,
                ptr::null_mut(),
            )
        };
        Ok(Self {
            event: from_err_ptr(event)?,
        })
    }
}

impl Drop for KernelCounter {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `event` is a live kernel counter that
        // nothing else releases.
        unsafe { bindings::perf_event_release_kernel(self.event.as_ptr()) };
    }
}

/// Decodes a pointer that is either valid or `ERR_PTR(-errno)`.
fn from_err_ptr<T>(ptr: *mut T) -> Result<NonNull<T>> {
    let value = ptr as usize;
    // ERR_PTR values occupy the top MAX_ERRNO addresses.
    if value >= (bindings::MAX_ERRNO as usize).wrapping_neg() {
        // The errno is at most MAX_ERRNO, so it fits in an i32.
        return Err(Error::from_errno(value as isize as i32));
    }
    NonNull::new(ptr).ok_or(kernel::error::code::ENOMEM)
}
