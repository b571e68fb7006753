// SPDX-License-Identifier: GPL-2.0

//! Noticing a target that faults inside a segment.
//!
//! A probe on the `signal_deliver` tracepoint sees every fault signal
//! (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP raised by the kernel) as the
//! faulting thread is about to act on it. If its instruction pointer lies in
//! a segment adapt mapped into that address space, the segment's variant is
//! queued for quarantine: it is never injected automatically again.
//!
//! The probe runs with a spinlock held and interrupts off, so everything it
//! touches is a fixed array of atomics: the published segment ranges, and
//! the queue of variant ids to quarantine, which the injector drains (in
//! process context) whenever it is used. A range published or withdrawn
//! concurrently with a fault may be missed: this is a safety net, not an
//! accounting mechanism.

use crate::bindings;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use kernel::ffi::c_void;
use kernel::prelude::*;

struct Range {
    mm: AtomicPtr<c_void>,
    start: AtomicU64,
    end: AtomicU64,
    variant: AtomicU64,
}

const RANGES: usize = 512;
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_RANGE: Range = Range {
    mm: AtomicPtr::new(ptr::null_mut()),
    start: AtomicU64::new(0),
    end: AtomicU64::new(0),
    variant: AtomicU64::new(0),
};
static PUBLISHED: [Range; RANGES] = [EMPTY_RANGE; RANGES];

const QUEUE: usize = 64;
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_ID: AtomicU64 = AtomicU64::new(0);
static TO_QUARANTINE: [AtomicU64; QUEUE] = [EMPTY_ID; QUEUE];

static WATCHING: AtomicBool = AtomicBool::new(false);

/// Starts watching for faults. Without the tracepoint (a kernel without
/// `CONFIG_TRACEPOINTS`) adapt works, minus automatic quarantine.
pub(crate) fn start() {
    // SAFETY: Registers a probe whose code and data stay valid until
    // `stop`, which the module calls before it goes away.
    let ret = unsafe { bindings::adapt_fault_watch_start() };
    if ret == 0 {
        WATCHING.store(true, Ordering::Release);
    } else {
        pr_info!("fault watch unavailable (error {}): no automatic quarantine\n", ret);
    }
}

/// Stops watching and waits until no probe call is running.
pub(crate) fn stop() {
    if WATCHING.swap(false, Ordering::AcqRel) {
        // SAFETY: Unregisters the probe registered by `start` and waits for
        // running calls to finish.
        unsafe { bindings::adapt_fault_watch_stop() };
    }
}

/// A published range; withdrawn when dropped.
pub(crate) struct Published {
    slot: Option<usize>,
}

/// Publishes `[start, end)` of address space `mm` as segment code of
/// `variant`. If every slot is taken the range is simply not watched.
pub(crate) fn publish(mm: *const c_void, start: u64, end: u64, variant: u64) -> Published {
    for (i, range) in PUBLISHED.iter().enumerate() {
        // A slot is free while `variant` is 0; claim it there first.
        if range
            .variant
            .compare_exchange(0, variant, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            range.start.store(start, Ordering::Relaxed);
            range.end.store(end, Ordering::Relaxed);
            range.mm.store(mm.cast_mut(), Ordering::Release);
            return Published { slot: Some(i) };
        }
    }
    Published { slot: None }
}

impl Drop for Published {
    fn drop(&mut self) {
        if let Some(range) = self.slot.and_then(|i| PUBLISHED.get(i)) {
            range.mm.store(ptr::null_mut(), Ordering::Release);
            range.variant.store(0, Ordering::Release);
        }
    }
}

/// Called by the C probe for a fault at `ip` in address space `mm`.
///
/// # Safety
///
/// Only compares the pointers it is given; callable in any context.
#[no_mangle]
pub(crate) unsafe extern "C" fn adapt_rust_on_fault(ip: u64, mm: *const c_void) {
    for range in PUBLISHED.iter() {
        if range.mm.load(Ordering::Acquire).cast_const() != mm || mm.is_null() {
            continue;
        }
        let (start, end) = (range.start.load(Ordering::Relaxed), range.end.load(Ordering::Relaxed));
        // A trap reports the address after `int3`: accept `end` itself.
        if ip >= start && ip <= end {
            let variant = range.variant.load(Ordering::Relaxed);
            if variant != 0 {
                enqueue(variant);
            }
            return;
        }
    }
}

fn enqueue(variant: u64) {
    for slot in TO_QUARANTINE.iter() {
        match slot.compare_exchange(0, variant, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return,
            Err(existing) if existing == variant => return,
            Err(_) => {}
        }
    }
}

/// Takes every queued variant id.
pub(crate) fn drain(mut each: impl FnMut(u64)) {
    for slot in TO_QUARANTINE.iter() {
        let id = slot.swap(0, Ordering::AcqRel);
        if id != 0 {
            each(id);
        }
    }
}
