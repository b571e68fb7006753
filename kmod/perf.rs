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

    /// Makes the event count (and sample) as soon as it is created.
    pub(crate) fn enabled(mut self) -> Self {
        self.0.set_disabled(0);
        self
    }
}

/// Receives the overflows (samples) of kernel counters.
///
/// `on_overflow` may run in NMI context (hardware events) or hard-IRQ
/// context (software events): it must not take locks, allocate, sleep or
/// panic.
pub(crate) trait OverflowHandler: Sync {
    fn on_overflow(&self, regs: &InterruptedRegs);
}

/// The registers of the context a sampling interrupt hit.
pub(crate) struct InterruptedRegs(*mut bindings::pt_regs);

impl InterruptedRegs {
    /// The user-mode instruction pointer of the interrupted task, and
    /// whether the interrupt hit it in kernel mode (then the pointer is the
    /// one saved when it entered the kernel). Only meaningful for user
    /// tasks.
    pub(crate) fn user_ip(&self) -> (u64, bool) {
        let mut ip = 0;
        // SAFETY: `self.0` is null or the interrupt's registers, valid for
        // the duration of the overflow callback; `ip` is a valid out pointer.
        let in_kernel = unsafe { bindings::adapt_sample_user_ip(self.0, &mut ip) };
        (ip, in_kernel)
    }
}

/// The interrupted task, read from within an overflow handler.
pub(crate) mod interrupted {
    use crate::bindings;

    /// Identity of the interrupted task's process (its `struct pid`).
    pub(crate) fn process() -> *const bindings::pid {
        // SAFETY: Reads `current`'s thread-group pid; always valid for the
        // running task.
        unsafe { bindings::adapt_current_tgid() }
    }

    /// Thread id of the interrupted task.
    pub(crate) fn tid() -> u32 {
        // SAFETY: Reads `current->pid`.
        unsafe { bindings::adapt_current_tid() }
    }

    /// CPU the handler runs on.
    pub(crate) fn cpu() -> u32 {
        // SAFETY: Reads this CPU's id; the handler cannot migrate.
        unsafe { bindings::adapt_this_cpu() }
    }

    /// `CLOCK_MONOTONIC` in nanoseconds, NMI-safe.
    pub(crate) fn now_ns() -> u64 {
        // SAFETY: `ktime_get_mono_fast_ns` is documented NMI-safe.
        unsafe { bindings::ktime_get_mono_fast_ns() }
    }
}

/// # Safety
///
/// Installed only by [`KernelCounter::on_cpu_with_handler`], whose caller
/// guarantees that the context is a live `H` for as long as the event exists.
unsafe extern "C" fn overflow_trampoline<H: OverflowHandler>(
    event: *mut bindings::perf_event,
    _data: *mut bindings::perf_sample_data,
    regs: *mut bindings::pt_regs,
) {
    // SAFETY: `event` is the event whose overflow is being handled.
    let context = unsafe { bindings::adapt_perf_event_context(event) };
    // SAFETY: The context was set to a `&H` that outlives the event
    // (function safety requirement).
    let handler = unsafe { &*context.cast::<H>() };
    handler.on_overflow(&InterruptedRegs(regs));
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

    /// Creates a sampling counter for every task running on `cpu` whose
    /// overflows are delivered to `handler`.
    ///
    /// # Safety
    ///
    /// `handler` must stay valid (not moved, not freed) until the returned
    /// counter has been dropped: dropping it waits for running callbacks.
    pub(crate) unsafe fn on_cpu_with_handler<H: OverflowHandler>(
        attr: &mut Attr,
        cpu: i32,
        handler: &H,
    ) -> Result<Self> {
        let context = (handler as *const H).cast_mut().cast();
        // SAFETY: `attr.0` is valid; a null task means every task on `cpu`;
        // the trampoline matches `perf_overflow_handler_t` and its context
        // outlives the event (function safety requirement).
        let event = unsafe {
            bindings::perf_event_create_kernel_counter(
                &mut attr.0,
                cpu,
                ptr::null_mut(),
                Some(overflow_trampoline::<H>),
                context,
            )
        };
        Ok(Self {
            event: from_err_ptr(event)?,
        })
    }
}

impl Drop for KernelCounter {
    fn drop(&mut self) {
        // Releasing removes the event from its CPU synchronously (an IPI, and
        // for hrtimer-based events a cancel that waits for a running
        // callback), so no overflow callback runs after this returns.
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
