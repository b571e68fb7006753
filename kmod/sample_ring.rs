// SPDX-License-Identifier: GPL-2.0

//! A single-producer, single-consumer ring of samples, safe to fill from an
//! NMI: no locks, no allocation, no panics. When full, new samples are
//! dropped and counted; the producer never waits.

use crate::abi::AdaptSample;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;

/// Slots per ring. A power of two, so indices wrap with a mask.
pub(crate) const RING_SLOTS: u32 = 8192;
const MASK: u32 = RING_SLOTS - 1;

/// The ring.
///
/// # Invariants
///
/// - `slots.len() == RING_SLOTS`.
/// - `head - tail <= RING_SLOTS` (wrapping arithmetic); slots in
///   `tail..head` hold published samples and belong to the consumer, the
///   others belong to the producer.
/// - At most one producer and one consumer run at a time (the producer is
///   the overflow handler of one event on one CPU; consumers are serialized
///   by the session's reader lock).
pub(crate) struct SampleRing {
    head: AtomicU32,
    tail: AtomicU32,
    recorded: AtomicU64,
    dropped: AtomicU64,
    slots: KVVec<UnsafeCell<AdaptSample>>,
}

// SAFETY: Slot access is partitioned between one producer and one consumer
// by `head`/`tail` with release/acquire ordering (type invariant).
unsafe impl Sync for SampleRing {}
// SAFETY: The ring owns its slots; moving it between tasks is fine.
unsafe impl Send for SampleRing {}

impl SampleRing {
    /// An empty ring (allocates `RING_SLOTS` samples, possibly with vmalloc).
    pub(crate) fn new() -> Result<Self> {
        let len = RING_SLOTS as usize;
        let mut slots = KVVec::with_capacity(len, GFP_KERNEL)?;
        // SAFETY: The capacity is at least `len`; all-zero bytes are a valid
        // `UnsafeCell<AdaptSample>` (plain integers), so after zeroing the
        // first `len` elements are initialized.
        unsafe {
            core::ptr::write_bytes(slots.as_mut_ptr(), 0, len);
            slots.set_len(len);
        }
        Ok(Self {
            head: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            slots,
        })
    }

    /// Producer side: appends `sample`, or counts it as dropped when full.
    ///
    /// Lock-free and allocation-free; callable from NMI context, by the one
    /// producer of this ring only.
    pub(crate) fn push(&self, sample: AdaptSample) {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head.wrapping_sub(tail) >= RING_SLOTS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some(slot) = self.slots.get((head & MASK) as usize) {
            // SAFETY: The slot at `head` is outside `tail..head`, so it
            // belongs to the producer (type invariant), and we are the only
            // producer.
            unsafe { *slot.get() = sample };
            self.head.store(head.wrapping_add(1), Ordering::Release);
            self.recorded.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Consumer side: moves up to `room` samples into `out`, which must have
    /// spare capacity for them (nothing is allocated here).
    pub(crate) fn drain_into(&self, out: &mut KVec<AdaptSample>, room: usize) -> usize {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        let available = head.wrapping_sub(tail) as usize;
        let take = available.min(room);
        let mut moved = 0;
        while moved < take {
            let index = tail.wrapping_add(moved as u32) & MASK;
            let Some(slot) = self.slots.get(index as usize) else {
                break;
            };
            // SAFETY: The slot is inside `tail..head`: the producer published
            // it (acquire on `head` above) and will not touch it before we
            // advance `tail`.
            let sample = unsafe { *slot.get() };
            if out.push(sample, GFP_NOWAIT).is_err() {
                break;
            }
            moved += 1;
        }
        self.tail
            .store(tail.wrapping_add(moved as u32), Ordering::Release);
        moved
    }

    /// Whether no published sample is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Acquire) == self.tail.load(Ordering::Relaxed)
    }

    /// Samples recorded since creation.
    pub(crate) fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Samples dropped since creation because the ring was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
