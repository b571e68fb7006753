// SPDX-License-Identifier: GPL-2.0

//! The code injector: live injections, and how they are made and undone.
//!
//! Inject: check who and what (policy, target, variant, CPU features,
//! contract, the bytes at the site), map the variant near the site from a
//! target thread, then with every thread parked and none inside the bytes to
//! replace, write one `jmp rel32` (plus `int3` filler) by copy-on-write.
//! Revert: with every thread parked and none inside the replaced bytes,
//! restore them; then, with every thread parked again and none inside the
//! segment, let one target thread unmap it.
//!
//! An injection whose process exited or exec'd is forgotten the next time
//! the table is looked at (its mappings went with the old address space).
//!
//! Lock order: `Injector::operation` (held across a whole inject or revert,
//! including the rendezvous), then `Injector::live` and `Injector::policy`
//! (short). The rendezvous and the segment `mmap` handler take none of them.

use crate::abi;
use crate::bindings;
use crate::fault_watch;
use crate::library::{Library, Variant};
use crate::rendezvous::{self, Duty, ThreadPoint};
use crate::segment_map::{self, Placement, SegmentFile};
use crate::task::{self, MmRef, PidRef, TaskRef};
use crate::text_patch;
use crate::kvec_ext::swap_remove;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{Arc, Mutex},
    time::Ktime,
};

/// Rendezvous attempts before giving up on a thread that stays inside the
/// bytes being replaced.
const ATTEMPTS: u32 = 8;
/// Rendezvous attempts before leaving a reverted segment mapped (harmless:
/// nothing jumps to it any more; it goes away with the address space).
const UNMAP_ATTEMPTS: u32 = 64;
/// Pause between attempts, so that threads parked inside get CPU time to
/// move on (on a busy machine a runnable thread may wait several
/// milliseconds for a CPU).
const RETRY_PAUSE_MS: u32 = 10;

fn pause_before_retry() {
    // SAFETY: Sleeping in process context (an ioctl), no lock held by the
    // callers here except the injector's operation mutex.
    unsafe { bindings::msleep(RETRY_PAUSE_MS) };
}

/// One live injection.
struct Injection {
    id: u64,
    pid_nr: u32,
    pid: PidRef,
    mm: MmRef,
    site: u64,
    patch_len: usize,
    original: [u8; abi::ADAPT_PATCH_MAX],
    variant: Arc<Variant>,
    entry: u32,
    file: Arc<SegmentFile>,
    placement: Placement,
    injected_ns: u64,
    pause_ns: u64,
    /// The segment's range, watched for faults.
    _watched: fault_watch::Published,
}

impl Drop for Injection {
    fn drop(&mut self) {
        self.variant.users.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Injection {
    fn info(&self) -> abi::AdaptInjectionInfo {
        abi::AdaptInjectionInfo {
            id: self.id,
            pid: self.pid_nr,
            state: abi::ADAPT_INJECTION_LIVE,
            target: self.site,
            variant_id: self.variant.id,
            segment_addr: self.placement.start,
            segment_len: self.placement.len,
            entry: self.entry,
            // At most ADAPT_PATCH_MAX.
            patch_len: self.patch_len as u32,
            original: self.original,
            injected_ns: self.injected_ns,
            pause_ns: self.pause_ns,
            segment: self.variant.segment,
            variant: self.variant.variant,
        }
    }

    /// The process still runs the address space this injection patched.
    fn is_current(&self) -> Option<TaskRef> {
        let task = self.pid.process()?;
        task.uses_mm(&self.mm).then_some(task)
    }
}

/// The policy, as set through `ADAPT_IOC_POLICY_SET` (validated).
pub(crate) type Policy = abi::AdaptPolicy;

/// The policy the module starts with: enabled, default limits, any target.
pub(crate) fn default_policy() -> Policy {
    abi::AdaptPolicy {
        flags: abi::ADAPT_POLICY_F_ENABLED,
        max_per_process: abi::ADAPT_POLICY_DEFAULT_PER_PROCESS,
        max_total: abi::ADAPT_POLICY_DEFAULT_TOTAL,
        freq_min_hz: abi::ADAPT_PROFILE_FREQ_MIN,
        freq_max_hz: abi::ADAPT_PROFILE_FREQ_MAX,
        regression_margin_permille: abi::ADAPT_POLICY_DEFAULT_MARGIN_PERMILLE,
        ..Default::default()
    }
}

/// Checks a policy from userspace; `EINVAL` names nothing, so every rule is
/// documented on `AdaptPolicy`.
pub(crate) fn validate_policy(p: &Policy) -> Result {
    fn nul_terminated(field: &[u8]) -> bool {
        match field.iter().position(|&b| b == 0) {
            Some(len) => len > 0 && field.iter().skip(len).all(|&b| b == 0),
            None => false,
        }
    }
    fn unused_zero<T: PartialEq + Default>(entries: &[T], used: u32) -> bool {
        entries.iter().skip(used as usize).all(|e| *e == T::default())
    }
    let ok = p.flags & !abi::ADAPT_POLICY_F_ALL == 0
        && p.reserved == [0; 4]
        && (1..=abi::ADAPT_POLICY_MAX_TOTAL).contains(&p.max_total)
        && (1..=p.max_total).contains(&p.max_per_process)
        && p.nuids as usize <= abi::ADAPT_POLICY_MAX_UIDS
        && p.ncomms as usize <= abi::ADAPT_POLICY_MAX_COMMS
        && p.nexes as usize <= abi::ADAPT_POLICY_MAX_EXES
        && p.nsegments as usize <= abi::ADAPT_POLICY_MAX_SEGMENTS
        && unused_zero(&p.uids, p.nuids)
        && unused_zero(&p.comms, p.ncomms)
        && p.exes.iter().skip(p.nexes as usize).all(|e| e.iter().all(|&b| b == 0))
        && unused_zero(&p.segments, p.nsegments)
        && p.comms.iter().take(p.ncomms as usize).all(|c| nul_terminated(c))
        && p.exes.iter().take(p.nexes as usize).all(|e| nul_terminated(e) && e.first() == Some(&b'/'))
        && p.segments.iter().take(p.nsegments as usize).all(|s| crate::library::valid_name(s))
        && abi::ADAPT_PROFILE_FREQ_MIN <= p.freq_min_hz
        && p.freq_min_hz <= p.freq_max_hz
        && p.freq_max_hz <= abi::ADAPT_PROFILE_FREQ_MAX
        && p.regression_margin_permille <= 1000;
    if ok {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

/// Whether `policy` allows `process` as a target.
fn target_allowed(policy: &Policy, process: &TaskRef) -> Result<bool> {
    if policy.nuids > 0 && !policy.uids.iter().take(policy.nuids as usize).any(|&u| u == process.uid()) {
        return Ok(false);
    }
    if policy.ncomms > 0 {
        let comm = process.comm();
        if !policy.comms.iter().take(policy.ncomms as usize).any(|c| *c == comm) {
            return Ok(false);
        }
    }
    if policy.nexes > 0 {
        let mut any = false;
        for exe in policy.exes.iter().take(policy.nexes as usize) {
            if process.exe_is(exe)? {
                any = true;
                break;
            }
        }
        if !any {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every live injection.
#[pin_data]
pub(crate) struct Injector {
    #[pin]
    operation: Mutex<()>,
    #[pin]
    live: Mutex<KVec<KBox<Injection>>>,
    #[pin]
    policy: Mutex<KBox<Policy>>,
    next_id: AtomicU64,
}

/// What an inject reports back.
pub(crate) struct Injected {
    pub(crate) id: u64,
    pub(crate) segment_addr: u64,
    pub(crate) pause_ns: u64,
    pub(crate) threads: u32,
    pub(crate) attempts: u32,
}

/// Work a target thread does for the injector (see `rendezvous`).
enum TargetDuty {
    /// Map the variant near `site` (before the rendezvous completes).
    Map {
        file: Arc<SegmentFile>,
        variant: Arc<Variant>,
        site: u64,
    },
    /// Nothing: only designates the thread for a later duty.
    Designate,
    /// Unmap a segment (after release).
    Unmap {
        file: Arc<SegmentFile>,
        placement: Placement,
    },
}

impl Duty for TargetDuty {
    fn run(&mut self) -> Result<u64> {
        match self {
            TargetDuty::Map { file, variant, site } => {
                segment_map::map_near(file, variant, *site).map(|p| p.start)
            }
            TargetDuty::Designate => Ok(0),
            TargetDuty::Unmap { file, placement } => {
                segment_map::unmap_file(file, *placement);
                Ok(0)
            }
        }
    }
}

fn inside(point: &ThreadPoint, start: u64, end: u64) -> bool {
    !point.exiting && point.user_ip > start && point.user_ip < end
}

fn within(point: &ThreadPoint, start: u64, end: u64) -> bool {
    !point.exiting && point.user_ip >= start && point.user_ip < end
}

fn now_ns() -> u64 {
    u64::try_from(Ktime::ktime_get().to_ns()).unwrap_or(0)
}

impl Injector {
    pub(crate) fn new(policy: KBox<Policy>) -> impl PinInit<Self> {
        pin_init!(Self {
            operation <- new_mutex!(()),
            live <- new_mutex!(KVec::new()),
            policy <- new_mutex!(policy),
            next_id: AtomicU64::new(1),
        })
    }

    /// Copies the policy into `out`.
    pub(crate) fn policy_into(&self, out: &mut Policy) {
        *out = **self.policy.lock();
    }

    /// Replaces the policy with `policy` (already validated).
    pub(crate) fn set_policy(&self, policy: KBox<Policy>) {
        let old = core::mem::replace(&mut *self.policy.lock(), policy);
        drop(old);
    }

    /// Forgets injections whose process exited or exec'd.
    fn collect_dead(&self) {
        let mut dead = KVec::new();
        {
            let mut live = self.live.lock();
            let mut i = 0;
            while i < live.len() {
                let gone = live.get(i).is_some_and(|inj| inj.is_current().is_none());
                if gone {
                    if let Some(inj) = swap_remove(&mut live, i) {
                        // On allocation failure the record is dropped here,
                        // under the lock, which is correct.
                        let _ = dead.push(inj, GFP_KERNEL);
                    }
                } else {
                    i += 1;
                }
            }
        }
        drop(dead);
    }

    pub(crate) fn inject(&self, library: &Library, req: &abi::AdaptInject) -> Result<Injected> {
        if req.flags & !abi::ADAPT_INJECT_F_ALL != 0 || req.reserved != [0; 4] {
            return Err(EINVAL);
        }
        let patch_len = req.patch_len as usize;
        if !(abi::ADAPT_JMP_LEN as usize..=abi::ADAPT_PATCH_MAX).contains(&patch_len)
            || req.expected.iter().skip(patch_len).any(|&b| b != 0)
        {
            return Err(EINVAL);
        }
        let _operation = self.operation.lock();
        library.apply_quarantines();
        self.collect_dead();

        let pid = task::traceable_process(req.pid)?;
        let process = pid.process().ok_or(ESRCH)?;
        {
            let policy = self.policy.lock();
            if policy.flags & abi::ADAPT_POLICY_F_ENABLED == 0 || !target_allowed(&policy, &process)? {
                return Err(EACCES);
            }
            let live = self.live.lock();
            if live.len() >= policy.max_total as usize
                || live.iter().filter(|i| i.pid_nr == req.pid).count() >= policy.max_per_process as usize
            {
                return Err(crate::errno::edquot());
            }
        }
        let mm = MmRef::of(&process).ok_or(ESRCH)?;

        let variant = library.get(req.variant_id).ok_or(ENOENT)?;
        if req.flags & abi::ADAPT_INJECT_F_AUTO != 0 && variant.quarantined.load(Ordering::Acquire) {
            return Err(EACCES);
        }
        // SAFETY: Reads boot CPU feature bits, fixed after boot.
        let cpu = unsafe { bindings::adapt_cpu_features() };
        if variant.cpu_features & !cpu != 0 {
            return Err(ENODEV);
        }
        let entry = variant.entries.get(req.entry as usize).ok_or(EINVAL)?;
        if entry.contract_hash != req.contract_hash {
            return Err(crate::errno::eproto());
        }
        let entry_offset = u64::from(entry.offset);

        let site = req.target;
        let site_end = site.checked_add(patch_len as u64).ok_or(EINVAL)?;
        {
            let live = self.live.lock();
            if live
                .iter()
                .any(|i| i.pid_nr == req.pid && i.site < site_end && site < i.site + i.patch_len as u64)
            {
                return Err(EEXIST);
            }
        }
        text_patch::check_text(&process, site, req.patch_len)?;
        let mut original = [0u8; abi::ADAPT_PATCH_MAX];
        text_patch::read(&process, site, original.get_mut(..patch_len).ok_or(EINVAL)?)?;
        if original != req.expected {
            return Err(crate::errno::estale());
        }

        let file = Arc::new(SegmentFile::new(&variant)?, GFP_KERNEL)?;
        let map = TargetDuty::Map {
            file: file.clone(),
            variant: variant.clone(),
            site,
        };
        let mut gathered = rendezvous::gather(&process, Some(map))?;
        let start = match gathered.pre_result.take() {
            Some(Ok(start)) => start,
            Some(Err(err)) => return Err(err),
            None => return Err(ESRCH),
        };
        let placement = Placement {
            start,
            len: (variant.pages.len() * PAGE_SIZE) as u64,
        };
        let patch = text_patch::jump_patch(site, start + entry_offset, patch_len)?;

        let mut attempts = 1;
        loop {
            if !gathered.points.iter().any(|p| inside(p, site, site_end)) {
                break;
            }
            if attempts >= ATTEMPTS {
                let _ = gathered.release(None);
                self.unmap_unpatched(&process, &file, placement);
                return Err(EBUSY);
            }
            let _ = gathered.release(None);
            attempts += 1;
            pause_before_retry();
            gathered = rendezvous::gather::<TargetDuty>(&process, None)?;
        }

        // Everything that can fail without undoing the patch happens first.
        let slot = KBox::<Injection>::new_uninit(GFP_KERNEL)?;
        self.live.lock().reserve(1, GFP_KERNEL)?;

        if let Err(err) = text_patch::write(&process, site, patch.get(..patch_len).ok_or(EINVAL)?) {
            // Nothing jumps to the segment: unmap it after release.
            let _ = gathered.release(Some(TargetDuty::Unmap {
                file: file.clone(),
                placement,
            }));
            return Err(err);
        }
        let threads = gathered.threads;
        let (pause_ns, _) = gathered.release(None);

        variant.users.fetch_add(1, Ordering::AcqRel);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mm_ptr = mm.as_ptr();
        let variant_id = variant.id;
        let record = KBox::write(
            slot,
            Injection {
                id,
                pid_nr: req.pid,
                pid,
                mm,
                site,
                patch_len,
                original,
                variant,
                entry: req.entry,
                file,
                placement,
                injected_ns: now_ns(),
                pause_ns,
                _watched: fault_watch::publish(mm_ptr, start, start + placement.len, variant_id),
            },
        );
        // Capacity was reserved above and only this (serialized) path adds.
        if let Err(err) = self.live.lock().push(record, GFP_KERNEL) {
            pr_err!("adapt: injection {} could not be tracked\n", id);
            return Err(err.into());
        }
        Ok(Injected {
            id,
            segment_addr: start,
            pause_ns,
            threads,
            attempts,
        })
    }

    /// Unmaps a segment that was never patched in (the first arriving
    /// thread does it while the others are parked).
    fn unmap_unpatched(&self, process: &TaskRef, file: &Arc<SegmentFile>, placement: Placement) {
        if let Ok(gathered) = rendezvous::gather(process, Some(TargetDuty::Designate)) {
            let _ = gathered.release(Some(TargetDuty::Unmap {
                file: file.clone(),
                placement,
            }));
        }
    }

    /// Reverts injection `id`. Returns (pause ns, attempts).
    pub(crate) fn revert(&self, id: u64) -> Result<(u64, u32)> {
        let _operation = self.operation.lock();
        self.collect_dead();
        let injection = {
            let mut live = self.live.lock();
            let index = live.iter().position(|i| i.id == id).ok_or(ENOENT)?;
            swap_remove(&mut live, index).ok_or(ENOENT)?
        };
        match self.undo(&injection) {
            Ok(result) => Ok(result),
            Err(err) => {
                // Still live: keep tracking it.
                let _ = self.live.lock().push(injection, GFP_KERNEL);
                Err(err)
            }
        }
    }

    /// Restores the bytes and unmaps the segment of `inj`.
    fn undo(&self, inj: &Injection) -> Result<(u64, u32)> {
        let Some(process) = inj.is_current() else {
            // Exited or exec'd: nothing left to undo.
            return Ok((0, 0));
        };
        let site_end = inj.site + inj.patch_len as u64;
        let original = inj.original.get(..inj.patch_len).ok_or(EINVAL)?;

        let mut attempts = 0;
        let mut pause = 0;
        loop {
            attempts += 1;
            let gathered = rendezvous::gather::<TargetDuty>(&process, None)?;
            if gathered.points.iter().any(|p| inside(p, inj.site, site_end)) {
                let _ = gathered.release(None);
                if attempts >= ATTEMPTS {
                    return Err(EBUSY);
                }
                pause_before_retry();
                continue;
            }
            let written = text_patch::write(&process, inj.site, original);
            let (held, _) = gathered.release(None);
            pause = pause.max(held);
            written?;
            break;
        }

        // The entry jumps to the segment no more; unmap it once no thread
        // is inside it. Segments are leaf code, so no frame below points
        // into it.
        let seg_end = inj.placement.start + inj.placement.len;
        let mut unmap_attempts = 0;
        loop {
            attempts += 1;
            unmap_attempts += 1;
            let gathered = rendezvous::gather(&process, Some(TargetDuty::Designate))?;
            if gathered.points.iter().any(|p| within(p, inj.placement.start, seg_end)) {
                let _ = gathered.release(None);
                if unmap_attempts >= UNMAP_ATTEMPTS {
                    // Restored but still mapped: harmless, freed at exit.
                    pr_info!(
                        "adapt: injection {} reverted; a thread stayed inside its segment, left mapped\n",
                        inj.id
                    );
                    return Ok((pause, attempts));
                }
                pause_before_retry();
                continue;
            }
            let (held, _) = gathered.release(Some(TargetDuty::Unmap {
                file: inj.file.clone(),
                placement: inj.placement,
            }));
            pause = pause.max(held);
            return Ok((pause, attempts));
        }
    }

    /// Reverts every injection (module unload). Failures are logged; the
    /// targets keep their patched text, which still points at mapped pages
    /// (mappings hold their own page references).
    pub(crate) fn revert_all(&self) {
        let _operation = self.operation.lock();
        let all = core::mem::take(&mut *self.live.lock());
        for inj in all.iter() {
            if let Err(err) = self.undo(inj) {
                pr_warn!(
                    "adapt: could not revert injection {} in pid {}: error {}\n",
                    inj.id,
                    inj.pid_nr,
                    err.to_errno()
                );
            }
        }
    }

    /// Descriptions of up to `max` injections (of process `pid`, or all
    /// when 0), and how many match.
    pub(crate) fn list(&self, pid: u32, max: usize) -> Result<(KVec<abi::AdaptInjectionInfo>, usize)> {
        self.collect_dead();
        let live = self.live.lock();
        let mut out = KVec::new();
        let mut total = 0;
        for inj in live.iter().filter(|i| pid == 0 || i.pid_nr == pid) {
            total += 1;
            if out.len() < max {
                out.push(inj.info(), GFP_KERNEL)?;
            }
        }
        Ok((out, total))
    }
}
