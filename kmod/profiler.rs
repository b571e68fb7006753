// SPDX-License-Identifier: GPL-2.0

//! The runtime profiler: sampling sessions on target processes.
//!
//! A session samples one process: every thread it has and every thread it
//! creates later. It owns one sampling event per online CPU (hardware cycles
//! when a sampling PMU is there, software `cpu-clock` otherwise); the
//! overflow handler keeps a sample only when the interrupted task belongs to
//! the target (same `struct pid`, so a recycled pid number never matches) and
//! records it in that CPU's ring. CPUs that come online later are not
//! sampled.
//!
//! Lock order: `Profiler::sessions`, then `Session::reader`. The overflow
//! handler takes no lock.

use crate::abi::{self, AdaptSample};
use crate::cpus;
use crate::kvec_ext::swap_remove;
use crate::perf::{interrupted, Attr, EventKind, InterruptedRegs, KernelCounter, OverflowHandler};
use crate::sample_ring::SampleRing;
use crate::task::PidRef;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{new_mutex, prelude::*, sync::Arc, sync::Mutex};

/// What the overflow handler touches: the target's identity and the rings.
/// Heap-allocated, so its address is stable while events point at it.
struct Buffers {
    target: PidRef,
    /// Indexed by CPU id.
    rings: KVec<SampleRing>,
}

impl OverflowHandler for Buffers {
    fn on_overflow(&self, regs: &InterruptedRegs) {
        if interrupted::process() != self.target.as_ptr() {
            return;
        }
        let cpu = interrupted::cpu();
        let Some(ring) = self.rings.get(cpu as usize) else {
            return;
        };
        let (ip, in_kernel) = regs.user_ip();
        ring.push(AdaptSample {
            ip,
            time_ns: interrupted::now_ns(),
            tid: interrupted::tid(),
            // CPU ids fit in 16 bits on every configuration adapt supports
            // (NR_CPUS <= 8192); a larger one is recorded truncated.
            cpu: cpu as u16,
            flags: if in_kernel {
                abi::ADAPT_SAMPLE_F_KERNEL as u16
            } else {
                0
            },
        });
    }
}

/// One profiling session.
///
/// # Invariants
///
/// `counters` is declared before `buffers`, so the events (whose handler
/// context is `buffers`) are released before the buffers are freed.
#[pin_data]
pub(crate) struct Session {
    id: u64,
    /// The open file that started the session; it ends with that file.
    owner: u64,
    event: EventKind,
    freq_hz: u32,
    counters: KVec<KernelCounter>,
    buffers: KBox<Buffers>,
    #[pin]
    reader: Mutex<()>,
}

/// Result of one read.
pub(crate) struct ReadOutcome {
    pub(crate) recorded: u64,
    pub(crate) dropped: u64,
    pub(crate) target_exited: bool,
    pub(crate) event: EventKind,
    pub(crate) freq_hz: u32,
}

impl Session {
    fn start(id: u64, owner: u64, target: PidRef, freq_hz: u32, flags: u32) -> Result<Arc<Self>> {
        let mut rings = KVec::with_capacity(cpus::nr_cpu_ids() as usize, GFP_KERNEL)?;
        for _ in 0..cpus::nr_cpu_ids() {
            rings.push(SampleRing::new()?, GFP_KERNEL)?;
        }
        let buffers = KBox::new(Buffers { target, rings }, GFP_KERNEL)?;

        let software_only = flags & abi::ADAPT_PROFILE_F_SOFTWARE != 0;
        let (event, counters) = if software_only {
            (EventKind::SoftwareCpuClock, open_counters(EventKind::SoftwareCpuClock, freq_hz, &buffers)?)
        } else {
            // Probe: the hardware event where the PMU takes it, otherwise
            // fall back to the software clock.
            match open_counters(EventKind::HardwareCycles, freq_hz, &buffers) {
                Ok(counters) => (EventKind::HardwareCycles, counters),
                Err(_) => (
                    EventKind::SoftwareCpuClock,
                    open_counters(EventKind::SoftwareCpuClock, freq_hz, &buffers)?,
                ),
            }
        };

        Arc::pin_init(
            pin_init!(Self {
                id,
                owner,
                event,
                freq_hz,
                counters,
                buffers,
                reader <- new_mutex!(()),
            }),
            GFP_KERNEL,
        )
    }

    /// Moves up to `room` samples into `out` (which has that much spare
    /// capacity) and reports the session's counters.
    fn read(&self, out: &mut KVec<AdaptSample>, room: usize) -> ReadOutcome {
        let _reader = self.reader.lock();
        // Check for exit before draining: samples recorded before the exit
        // are then all drained by this read or a later one.
        let target_exited = !self.buffers.target.has_process();
        let mut left = room;
        let (mut recorded, mut dropped) = (0, 0);
        for ring in self.buffers.rings.iter() {
            left -= ring.drain_into(out, left);
            recorded += ring.recorded();
            dropped += ring.dropped();
        }
        let drained = self.buffers.rings.iter().all(SampleRing::is_empty);
        ReadOutcome {
            recorded,
            dropped,
            target_exited: target_exited && drained,
            event: self.event,
            freq_hz: self.freq_hz,
        }
    }
}

/// Opens one enabled sampling event of `kind` per online CPU, all delivering
/// to `buffers`.
fn open_counters(kind: EventKind, freq_hz: u32, buffers: &KBox<Buffers>) -> Result<KVec<KernelCounter>> {
    let mut counters = KVec::with_capacity(cpus::nr_cpu_ids() as usize, GFP_KERNEL)?;
    for cpu in cpus::online() {
        let mut attr = Attr::sampling_frequency(kind, u64::from(freq_hz)).enabled();
        let cpu = i32::try_from(cpu).map_err(|_| EINVAL)?;
        // SAFETY: `buffers` is heap-allocated and, by `Session`'s invariant,
        // outlives every counter opened here (on error, `counters` is dropped
        // before the caller can drop `buffers`).
        let counter = unsafe { KernelCounter::on_cpu_with_handler(&mut attr, cpu, &**buffers)? };
        counters.push(counter, GFP_KERNEL)?;
    }
    Ok(counters)
}

/// Every session, across all open files.
#[pin_data]
pub(crate) struct Profiler {
    #[pin]
    sessions: Mutex<KVec<Arc<Session>>>,
    next_id: AtomicU64,
}

impl Profiler {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            sessions <- new_mutex!(KVec::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Starts sampling `target` for the open file `owner`. Returns the
    /// session id and the event chosen.
    pub(crate) fn start(&self, owner: u64, target: PidRef, freq_hz: u32, flags: u32) -> Result<(u64, EventKind)> {
        // Reserve the slot first, so a refused start costs nothing.
        if self.sessions.lock().len() >= abi::ADAPT_PROFILE_MAX_SESSIONS as usize {
            return Err(EBUSY);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let session = Session::start(id, owner, target, freq_hz, flags)?;
        let event = session.event;
        let mut sessions = self.sessions.lock();
        if sessions.len() >= abi::ADAPT_PROFILE_MAX_SESSIONS as usize {
            // Lost a race for the last slot; dropping the session stops it.
            return Err(EBUSY);
        }
        sessions.push(session, GFP_KERNEL)?;
        Ok((id, event))
    }

    /// Stops and frees session `id`. Its events stop once no reader holds it.
    pub(crate) fn stop(&self, id: u64) -> Result {
        let removed = {
            let mut sessions = self.sessions.lock();
            let index = sessions.iter().position(|s| s.id == id).ok_or(ENOENT)?;
            swap_remove(&mut sessions, index)
        };
        // Dropped outside the lock: releasing events waits for other CPUs.
        drop(removed);
        Ok(())
    }

    /// Reads from session `id`; a session whose target exited and which has
    /// been read empty is freed.
    pub(crate) fn read(&self, id: u64, out: &mut KVec<AdaptSample>, room: usize) -> Result<ReadOutcome> {
        let session = {
            let sessions = self.sessions.lock();
            sessions.iter().find(|s| s.id == id).cloned().ok_or(ENOENT)?
        };
        let outcome = session.read(out, room);
        if outcome.target_exited {
            // Ignore ENOENT: a concurrent reader or stop may have freed it.
            let _ = self.stop(id);
        }
        Ok(outcome)
    }

    /// Stops every session started through the open file `owner`.
    pub(crate) fn stop_owned_by(&self, owner: u64) {
        let mut stopped = KVec::new();
        {
            let mut sessions = self.sessions.lock();
            let mut index = 0;
            while index < sessions.len() {
                if sessions.get(index).is_some_and(|s| s.owner == owner) {
                    // Pushing may fail to allocate; then the session is simply
                    // dropped here, under the lock, which is correct but slower.
                    if let Some(session) = swap_remove(&mut sessions, index) {
                        let _ = stopped.push(session, GFP_KERNEL);
                    }
                } else {
                    index += 1;
                }
            }
        }
        drop(stopped);
    }
}
