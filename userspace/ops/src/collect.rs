//! Collecting a profile: one sampling session on a process for a window,
//! its samples symbolized as they are drained, ranked at the end. The one
//! collector behind `adaptctl profile` and every window of the adaptive
//! loop.

use crate::library_index::LibraryIndex;
use adapt_abi as abi;
use adapt_client::{Device, ProfileSession, SamplingEvent};
use adapt_profile::{Profile, ProfileBuilder, Symbolizer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the sample buffers are emptied.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What to sample.
#[derive(Debug, Clone, Copy)]
pub struct Sampling<'a> {
    pub pid: u32,
    /// Samples per second on each CPU the process runs on.
    pub freq: u32,
    /// The software cpu-clock even where a sampling PMU exists.
    pub software: bool,
    /// How long to sample; sampling also ends when the process exits.
    pub duration: Duration,
    /// Marks the functions the library covers.
    pub library: &'a LibraryIndex,
    /// Ends the window early when set (a signal).
    pub stop: Option<&'a AtomicBool>,
}

/// One window's profile and how it was taken.
#[derive(Debug)]
pub struct Collected {
    pub profile: Profile,
    pub event: SamplingEvent,
    pub freq_hz: u32,
    pub elapsed: Duration,
    /// Samples the module recorded and dropped (its buffer was full).
    pub recorded: u64,
    pub dropped: u64,
    pub target_exited: bool,
}

/// Samples `request.pid` for one window.
pub fn collect(device: &Device, request: &Sampling<'_>) -> crate::Result<Collected> {
    let pid = request.pid;
    // Start first: the module's checks give the precise error for a bad pid.
    let session = ProfileSession::start(device, pid, request.freq, request.software)?;
    let mut symbolizer = Symbolizer::new(pid).map_err(|source| crate::Error::Maps {
        pid,
        path: format!("/proc/{pid}/maps").into(),
        source,
    })?;
    let started = Instant::now();
    let mut builder = ProfileBuilder::default();
    let (mut recorded, mut dropped, mut exited): (u64, u64, bool);
    exited = false;
    let stopped = || request.stop.is_some_and(|s| s.load(Ordering::Relaxed));
    loop {
        let deadline_passed = started.elapsed() >= request.duration;
        // Drain what is waiting, but never past the window: samples that
        // arrive as fast as they are read must not keep the window open.
        loop {
            let batch = session.read(abi::ADAPT_PROFILE_READ_MAX)?;
            recorded = batch.recorded;
            dropped = batch.dropped;
            exited |= batch.target_exited;
            // At most one re-read of the maps per batch: an address no
            // mapping covers must not cost a re-read per sample.
            let mut refreshed = false;
            for sample in &batch.samples {
                let in_kernel = u32::from(sample.flags) & abi::ADAPT_SAMPLE_F_KERNEL != 0;
                if !in_kernel && !refreshed && !symbolizer.covers(sample.ip) {
                    // A library loaded or a segment mapped since the last look.
                    symbolizer.refresh();
                    refreshed = true;
                }
                builder.add(
                    symbolizer.locate(sample.ip, in_kernel),
                    sample.tid,
                    in_kernel,
                );
            }
            if batch.samples.is_empty() || exited || started.elapsed() >= request.duration {
                break;
            }
        }
        if exited || deadline_passed || stopped() {
            break;
        }
        std::thread::sleep(POLL_INTERVAL.min(request.duration.saturating_sub(started.elapsed())));
    }
    let elapsed = started.elapsed();
    let event = session.event();
    let freq_hz = session.freq_hz();
    session.stop()?;
    let library = request.library;
    Ok(Collected {
        profile: builder.finish(|function, _| library.segment_for(function).map(str::to_owned)),
        event,
        freq_hz,
        elapsed,
        recorded,
        dropped,
        target_exited: exited,
    })
}
