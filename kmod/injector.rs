// SPDX-License-Identifier: GPL-2.0

//! The code injector: live injections, and how they are made and undone.
//!
//! Inject: check who and what (policy, target, variant, CPU features,
//! contract, the site: a private executable file mapping whose live bytes
//! are the file's and the ones userspace saw), map the variant near the
//! site from a target thread (or reuse a retired mapping of it within
//! reach), park every thread, check it all again while they are parked, and
//! only if no thread resumes inside the bytes to replace write one
//! `jmp rel32` (plus `int3` filler) by copy-on-write.
//!
//! Revert: park every thread, verify that the site is still the same file at
//! the same offset and holds exactly the `jmp` adapt wrote, and put the
//! original bytes back. If anything else is there now (the library was
//! unloaded and something else mapped, a debugger or uprobe changed the
//! bytes), nothing is written: the injection is kept as *stale* and
//! reported. The segment is never unmapped while the process lives: it is
//! *retired* (inert, still mapped), because a signal frame or a restarted
//! system call may still return into it; a later injection of the same
//! variant reuses it.
//!
//! Every record names its process by `struct pid` and address space by
//! `mm`; the process counts as alive while any thread of it uses that `mm`
//! (its leader may have called `pthread_exit`), and memory is accessed
//! through such a thread. An injection whose process exited or exec'd is
//! forgotten the next time the table is looked at.
//!
//! Lock order: `Injector::operation` (held across a whole inject or revert,
//! including the rendezvous), then `Injector::live`, `Injector::retired` and
//! `Injector::policy` (short, never two at once). The rendezvous and the
//! segment `mmap` handler take none of them.

use crate::abi;
use crate::bindings;
use crate::fault_watch;
use crate::kvec_ext::swap_remove;
use crate::library::{Library, Variant, VariantUse};
use crate::rendezvous::{self, Duty, Gathered};
use crate::segment_map::{self, Instance, Placement, SegmentFile};
use crate::task::{self, MmRef, PidRef, TaskRef};
use crate::text_patch::{self, SiteIdentity};
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
/// Pause between attempts, so that threads parked inside get CPU time to
/// move on (on a busy machine a runnable thread may wait several
/// milliseconds for a CPU).
const RETRY_PAUSE_MS: u32 = 10;
/// Most retired mappings kept per process; beyond it an inject that would
/// need a new mapping is refused with `ENOSPC`.
const MAX_RETIRED_PER_PROCESS: usize = 64;

fn pause_before_retry() {
    // SAFETY: Sleeping in process context (an ioctl), no lock held by the
    // callers here except the injector's operation mutex.
    unsafe { bindings::msleep(RETRY_PAUSE_MS) };
}

/// What an injection of a variant with imports wrote into its own pages
/// (its trampoline and its import slots): a retired mapping is reused only
/// by a request that would write exactly the same.
struct Imports {
    /// Where userspace asked the segment to be mapped (and relocated the
    /// trampoline for).
    at: u64,
    trampoline: [u8; abi::ADAPT_TRAMPOLINE_MAX],
    trampoline_len: usize,
    /// The original bytes the trampoline was relocated from (the first
    /// `patch_len`; empty without a trampoline).
    relocated: [u8; abi::ADAPT_PATCH_MAX],
    slots: KVec<u64>,
}

impl Imports {
    /// Highest address a slot may hold: below the top of the x86-64 user
    /// address space (`TASK_SIZE_MAX` with 4-level paging).
    const USER_MAX: u64 = 0x0000_7fff_ffff_f000;

    /// The trampoline and import slots of `req` for `variant`: `None` for a
    /// leaf variant (whose request must leave every import field zero).
    fn of_request(req: &abi::AdaptInject, variant: &Variant, patch_len: usize) -> Result<Option<Imports>> {
        let len = req.trampoline_len as usize;
        if variant.nimports == 0 {
            if req.segment_addr != 0
                || req.imports != 0
                || req.nimports != 0
                || len != 0
                || req.relocated != [0; abi::ADAPT_PATCH_MAX]
                || req.trampoline != [0; abi::ADAPT_TRAMPOLINE_MAX]
            {
                return Err(EINVAL);
            }
            return Ok(None);
        }
        if req.nimports != variant.nimports
            || req.segment_addr == 0
            || req.segment_addr % PAGE_SIZE as u64 != 0
            || req.segment_addr >= Self::USER_MAX
            || len > abi::ADAPT_TRAMPOLINE_MAX
            || req.trampoline.iter().skip(len).any(|&b| b != 0)
        {
            return Err(EINVAL);
        }
        // The trampoline holds the displaced instructions relocated: it
        // must have been built from exactly the bytes the patch replaces.
        let relocated_ok = if len == 0 {
            req.relocated == [0; abi::ADAPT_PATCH_MAX]
        } else {
            req.relocated == req.expected
        };
        if !relocated_ok || patch_len > abi::ADAPT_PATCH_MAX {
            return Err(EINVAL);
        }
        let slots: KVVec<u64> = crate::library::read_user_array(req.imports, req.nimports)?;
        let mut kept = KVec::with_capacity(slots.len(), GFP_KERNEL)?;
        for &slot in slots.iter() {
            if slot == 0 || slot >= Self::USER_MAX {
                return Err(EINVAL);
            }
            kept.push(slot, GFP_KERNEL)?;
        }
        Ok(Some(Imports {
            at: req.segment_addr,
            trampoline: req.trampoline,
            trampoline_len: len,
            relocated: req.relocated,
            slots: kept,
        }))
    }

    fn trampoline(&self) -> &[u8] {
        self.trampoline.get(..self.trampoline_len).unwrap_or(&[])
    }

    fn same_as(&self, other: &Imports) -> bool {
        self.at == other.at
            && self.trampoline() == other.trampoline()
            && self.slots.as_slice() == other.slots.as_slice()
    }
}

/// A variant's segment mapped into a target by adapt, watched for faults.
/// Never unmapped while the process lives.
struct Mapping {
    /// Declared first: the watched range is withdrawn before anything
    /// else (the `mm` it names included) goes.
    _watched: fault_watch::Published,
    _file: Arc<SegmentFile>,
    placement: Placement,
    variant: Arc<Variant>,
    /// The trampoline and slots written into it (variants with imports).
    imports: Option<Imports>,
}

impl Mapping {
    fn new(
        mm: &MmRef,
        file: Arc<SegmentFile>,
        placement: Placement,
        variant: Arc<Variant>,
        imports: Option<Imports>,
    ) -> Self {
        let end = placement.start + placement.len;
        Mapping {
            _watched: fault_watch::publish(mm.as_ptr(), placement.start, end, variant.id),
            _file: file,
            placement,
            variant,
            imports,
        }
    }

    /// The trampoline's range `[start, end)`, if the mapping has one: part
    /// of the segment for the rendezvous (no thread may resume inside it
    /// when it is retired).
    fn trampoline_range(&self) -> Option<(u64, u64)> {
        let imports = self.imports.as_ref()?;
        if imports.trampoline_len == 0 {
            return None;
        }
        let start = self.placement.start + self.variant.trampoline_offset() as u64;
        Some((start, start + imports.trampoline_len as u64))
    }

    /// (trampoline address, import table address, trampoline bytes,
    /// slots) for the listing.
    fn import_info(&self) -> (u64, u64, u32, u32) {
        let Some(imports) = self.imports.as_ref() else {
            return (0, 0, 0, 0);
        };
        let layout = abi::adapt_import_layout(self.variant.code_len as usize, self.variant.nimports as usize);
        let tramp = self.trampoline_range().map_or(0, |(s, _)| s);
        // At most ADAPT_TRAMPOLINE_MAX and ADAPT_SEGMENT_MAX_IMPORTS.
        (
            tramp,
            self.placement.start + layout.import_table_offset as u64,
            imports.trampoline_len as u32,
            imports.slots.len() as u32,
        )
    }
}

impl Mapping {
    /// (data area address, bytes) for the listing: (0, 0) without one.
    fn data_info(&self) -> (u64, u32) {
        let v = &self.variant;
        if v.data_pages == 0 {
            return (0, 0);
        }
        let offset = abi::adapt_data_offset(v.code_len as usize, v.rodata_len as usize, v.nimports as usize);
        // At most ADAPT_SEGMENT_MAX_DATA rounded up to a page.
        (self.placement.start + offset as u64, (v.data_pages * PAGE_SIZE) as u32)
    }
}

/// A mapping that no jump leads to any more (reverted, or never patched
/// in). Kept until the process exits or execs.
struct Retired {
    pid: PidRef,
    /// Before `mm`: withdraws its fault watch first.
    mapping: Mapping,
    mm: MmRef,
}

/// Whether an injection's patch is in place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    /// A revert found something else at the site and wrote nothing.
    Stale,
}

/// One injection.
struct Injection {
    id: u64,
    pid: PidRef,
    /// Before `mm`: withdraws its fault watch first.
    mapping: Mapping,
    mm: MmRef,
    /// Counted in the variant's users while the patch is live.
    use_: Option<VariantUse>,
    site: u64,
    site_id: SiteIdentity,
    patch_len: usize,
    original: [u8; abi::ADAPT_PATCH_MAX],
    patch: [u8; abi::ADAPT_PATCH_MAX],
    entry: u32,
    injected_ns: u64,
    pause_ns: u64,
    state: State,
}

impl Injection {
    fn info(&self, pid_vnr: u32) -> abi::AdaptInjectionInfo {
        let variant = &self.mapping.variant;
        let (trampoline_addr, import_table_addr, trampoline_len, nimports) = self.mapping.import_info();
        let (data_addr, data_len) = self.mapping.data_info();
        abi::AdaptInjectionInfo {
            id: self.id,
            pid: pid_vnr,
            state: match self.state {
                State::Live => abi::ADAPT_INJECTION_LIVE,
                State::Stale => abi::ADAPT_INJECTION_STALE,
            },
            target: self.site,
            variant_id: variant.id,
            segment_addr: self.mapping.placement.start,
            segment_len: self.mapping.placement.len,
            entry: self.entry,
            // At most ADAPT_PATCH_MAX.
            patch_len: self.patch_len as u32,
            original: self.original,
            injected_ns: self.injected_ns,
            pause_ns: self.pause_ns,
            segment: variant.segment,
            variant: variant.variant,
            trampoline_addr,
            import_table_addr,
            trampoline_len,
            nimports,
            data_addr,
            data_len,
            pad: 0,
        }
    }

    fn site_end(&self) -> u64 {
        self.site + self.patch_len as u64
    }

    /// Retires the segment: nothing jumps to it any more.
    fn retire(self) -> Retired {
        Retired {
            pid: self.pid,
            mapping: self.mapping,
            mm: self.mm,
        }
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

/// Whether `policy` allows the process of `thread` as a target.
fn target_allowed(policy: &Policy, thread: &TaskRef) -> Result<bool> {
    if policy.flags & abi::ADAPT_POLICY_F_ENABLED == 0 {
        return Ok(false);
    }
    if policy.nuids > 0 && !policy.uids.iter().take(policy.nuids as usize).any(|&u| u == thread.uid()) {
        return Ok(false);
    }
    if policy.ncomms > 0 {
        let comm = thread.comm();
        if !policy.comms.iter().take(policy.ncomms as usize).any(|c| *c == comm) {
            return Ok(false);
        }
    }
    if policy.nexes > 0 {
        let mut any = false;
        for exe in policy.exes.iter().take(policy.nexes as usize) {
            if thread.exe_is(exe)? {
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

/// Every injection and retired mapping.
#[pin_data]
pub(crate) struct Injector {
    #[pin]
    operation: Mutex<()>,
    #[pin]
    live: Mutex<KVec<KBox<Injection>>>,
    #[pin]
    retired: Mutex<KVec<KBox<Retired>>>,
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

/// What a listing reports back.
pub(crate) struct Listed {
    pub(crate) entries: KVec<abi::AdaptInjectionInfo>,
    /// Injections (live or stale) matching the filter.
    pub(crate) total: usize,
    /// Retired mappings matching the filter.
    pub(crate) retired: usize,
}

/// Maps a variant near the site, in a target thread, into the expected
/// address space only.
struct MapDuty {
    file: Arc<SegmentFile>,
    variant: Arc<Variant>,
    site: u64,
    mm: MmRef,
    /// For a variant with imports: where userspace chose to map it, and
    /// the pages of this injection (code with its trampoline, import
    /// table), already written.
    fixed: Option<(u64, Instance)>,
}

impl Duty for MapDuty {
    fn run(&mut self) -> Result<u64> {
        if !self.mm.is_current() {
            // The process exec'd since the request was checked.
            return Err(ESRCH);
        }
        match &self.fixed {
            None => segment_map::map_near(&self.file, &self.variant, self.site).map(|p| p.start),
            Some((at, instance)) => segment_map::map_at(&self.file, &self.variant, Some(instance), *at)
                .map(|p| p.start)
                .map_err(|err| if err == EEXIST { crate::errno::eaddrinuse() } else { err }),
        }
    }

    fn abandon(&mut self, start: u64) {
        // Never patched in: nothing can jump there.
        let len = self.variant.mapped_len();
        segment_map::unmap_file(&self.file, Placement { start, len });
    }
}

fn now_ns() -> u64 {
    u64::try_from(Ktime::ktime_get().to_ns()).unwrap_or(0)
}

/// What an inject checked before the park, to compare with during it.
struct Expected<'a> {
    pid: &'a PidRef,
    mm: &'a MmRef,
    site: u64,
    /// What the file holds at the site (and so the live bytes must too).
    bytes: &'a [u8],
    site_id: &'a SiteIdentity,
    /// The bytes the trampoline was relocated from, if there is one: the
    /// live bytes must be these too.
    relocated: Option<&'a [u8]>,
}

impl Injector {
    pub(crate) fn new(policy: KBox<Policy>) -> impl PinInit<Self> {
        pin_init!(Self {
            operation <- new_mutex!(()),
            live <- new_mutex!(KVec::new()),
            retired <- new_mutex!(KVec::new()),
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

    /// Forgets injections and retired mappings whose process exited or
    /// exec'd (their mappings went with the old address space).
    fn collect_dead(&self) {
        let mut dead_live = KVec::new();
        {
            let mut live = self.live.lock();
            let mut i = 0;
            while i < live.len() {
                let gone = live.get(i).is_some_and(|inj| inj.pid.live_thread(Some(&inj.mm)).is_none());
                if gone {
                    if let Some(inj) = swap_remove(&mut live, i) {
                        // On allocation failure the record is dropped here,
                        // under the lock, which is correct.
                        let _ = dead_live.push(inj, GFP_KERNEL);
                    }
                } else {
                    i += 1;
                }
            }
        }
        drop(dead_live);
        let mut dead_retired = KVec::new();
        {
            let mut retired = self.retired.lock();
            let mut i = 0;
            while i < retired.len() {
                let gone = retired.get(i).is_some_and(|r| r.pid.live_thread(Some(&r.mm)).is_none());
                if gone {
                    if let Some(r) = swap_remove(&mut retired, i) {
                        let _ = dead_retired.push(r, GFP_KERNEL);
                    }
                } else {
                    i += 1;
                }
            }
        }
        drop(dead_retired);
    }

    /// Keeps `mapping` of `pid`/`mm` as retired. If the list cannot grow,
    /// the record is dropped: the mapping itself stays in the process (it
    /// holds its own references) and is only no longer reusable.
    fn keep_retired(&self, retired: KBox<Retired>) {
        let _ = self.retired.lock().push(retired, GFP_KERNEL);
    }

    /// Keeps the segment of a reverted (or stale) injection as retired.
    fn keep_retired_injection(&self, inj: KBox<Injection>) {
        if let Ok(retired) = KBox::new(KBox::into_inner(inj).retire(), GFP_KERNEL) {
            self.keep_retired(retired);
        }
    }

    /// Takes a retired mapping of `variant` in `mm` that a jump at `site`
    /// reaches; for a variant with imports, only one at the address asked
    /// for holding exactly the trampoline and slots asked for.
    fn take_retired(
        &self,
        mm: &MmRef,
        variant: &Arc<Variant>,
        site: u64,
        imports: Option<&Imports>,
    ) -> Option<KBox<Retired>> {
        let mut retired = self.retired.lock();
        let index = retired.iter().position(|r| {
            r.mm.as_ptr() == mm.as_ptr()
                && Arc::ptr_eq(&r.mapping.variant, variant)
                && r.mapping.placement.reachable_from(site)
                && match (imports, r.mapping.imports.as_ref()) {
                    (None, None) => true,
                    (Some(want), Some(have)) => want.same_as(have) && r.mapping.placement.start == want.at,
                    _ => false,
                }
        })?;
        swap_remove(&mut retired, index)
    }

    fn retired_in(&self, mm: &MmRef) -> usize {
        self.retired.lock().iter().filter(|r| r.mm.as_ptr() == mm.as_ptr()).count()
    }

    /// The checks of an inject, made again with every thread parked: the
    /// process still runs the same address space, is still dumpable and
    /// allowed, and the site is the same file at the same offset, holding
    /// the same bytes as the file and as userspace saw. Returns the thread
    /// to write through.
    fn recheck_inject(&self, want: &Expected<'_>) -> Result<TaskRef> {
        let thread = want.pid.live_thread(Some(want.mm)).ok_or(ESRCH)?;
        if !thread.is_dumpable() {
            return Err(EPERM);
        }
        if !target_allowed(&self.policy.lock(), &thread)? {
            return Err(EACCES);
        }
        let len = want.bytes.len();
        let mut file_now = [0u8; abi::ADAPT_PATCH_MAX];
        let file_now = file_now.get_mut(..len).ok_or(EINVAL)?;
        let id_now = SiteIdentity::of(want.mm, want.site, len, Some(file_now))?;
        if !id_now.same_as(want.site_id) || &*file_now != want.bytes {
            return Err(crate::errno::estale());
        }
        let mut live = [0u8; abi::ADAPT_PATCH_MAX];
        let live = live.get_mut(..len).ok_or(EINVAL)?;
        text_patch::read(&thread, want.site, live)?;
        if &*live != want.bytes {
            return Err(crate::errno::estale());
        }
        // The trampoline re-executes the displaced instructions: they must
        // be exactly the ones the jmp is about to replace.
        if want.relocated.is_some_and(|r| r != &*live) {
            return Err(crate::errno::estale());
        }
        Ok(thread)
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

        let (pid, thread) = task::traceable_thread(req.pid)?;
        if thread.is_compat() {
            return Err(crate::errno::eopnotsupp());
        }
        {
            let policy = self.policy.lock();
            if !target_allowed(&policy, &thread)? {
                return Err(EACCES);
            }
            let live = self.live.lock();
            if live.len() >= policy.max_total as usize
                || live.iter().filter(|i| i.pid.as_ptr() == pid.as_ptr()).count() >= policy.max_per_process as usize
            {
                return Err(crate::errno::edquot());
            }
        }
        let mm = MmRef::of(&thread).ok_or(ESRCH)?;

        // Counted as used from here on, so that an unload cannot slip
        // between this check and the patch.
        let use_ = library.acquire(req.variant_id).ok_or(ENOENT)?;
        let variant = use_.variant().clone();
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
        let imports = Imports::of_request(req, &variant, patch_len)?;
        if let Some(imports) = &imports {
            let wanted = Placement {
                start: imports.at,
                len: variant.mapped_len(),
            };
            if !wanted.reachable_from(req.target) {
                return Err(ENOSPC);
            }
        }

        let site = req.target;
        let site_end = site.checked_add(patch_len as u64).ok_or(EINVAL)?;
        {
            let live = self.live.lock();
            if live
                .iter()
                .any(|i| i.mm.as_ptr() == mm.as_ptr() && i.site < site_end && site < i.site_end())
            {
                return Err(EEXIST);
            }
        }
        rendezvous::check_parkable(&thread, &mm)?;

        // The site: a private executable file mapping, its live bytes the
        // file's (no uprobe or other patcher there) and what userspace saw.
        let mut file_bytes = [0u8; abi::ADAPT_PATCH_MAX];
        let site_id = SiteIdentity::of(&mm, site, patch_len, Some(file_bytes.get_mut(..patch_len).ok_or(EINVAL)?))?;
        let mut original = [0u8; abi::ADAPT_PATCH_MAX];
        text_patch::read(&thread, site, original.get_mut(..patch_len).ok_or(EINVAL)?)?;
        if original != req.expected {
            return Err(crate::errno::estale());
        }
        if original != file_bytes {
            // A uprobe, a debugger or another patcher changed these bytes.
            return Err(ETXTBSY);
        }
        let relocated = imports
            .as_ref()
            .and_then(|i| (i.trampoline_len > 0).then_some(i.relocated));
        let mut imports = imports;
        let want = Expected {
            pid: &pid,
            mm: &mm,
            site,
            bytes: original.get(..patch_len).ok_or(EINVAL)?,
            site_id: &site_id,
            relocated: match &relocated {
                Some(r) => Some(r.get(..patch_len).ok_or(EINVAL)?),
                None => None,
            },
        };

        // The segment: a retired mapping of this variant within reach, or
        // a new one made by the first thread to arrive.
        let (mapping, mut gathered): (Mapping, Gathered<MapDuty>) =
            match self.take_retired(&mm, &variant, site, imports.as_ref()) {
                Some(retired) => match rendezvous::gather(&thread, &mm, None) {
                    Ok(g) => {
                        let Retired { mapping, .. } = KBox::into_inner(retired);
                        (mapping, g)
                    }
                    Err(err) => {
                        self.keep_retired(retired);
                        return Err(err);
                    }
                },
                None => {
                    if self.retired_in(&mm) >= MAX_RETIRED_PER_PROCESS {
                        return Err(ENOSPC);
                    }
                    let file = Arc::new(SegmentFile::new(&variant)?, GFP_KERNEL)?;
                    // The injection's own pages, written before anything
                    // is mapped: never writable in the target.
                    let fixed = match &imports {
                        Some(i) => Some((i.at, Instance::new(&variant, i.trampoline(), &i.slots)?)),
                        None => None,
                    };
                    let duty = MapDuty {
                        file: file.clone(),
                        variant: variant.clone(),
                        site,
                        mm: mm.grab(),
                        fixed,
                    };
                    let mut g = rendezvous::gather(&thread, &mm, Some(duty))?;
                    let start = match g.pre_result.take() {
                        Some(Ok(start)) => start,
                        Some(Err(err)) => return Err(err),
                        None => return Err(ESRCH),
                    };
                    let placement = Placement {
                        start,
                        len: variant.mapped_len(),
                    };
                    (Mapping::new(&mm, file, placement, variant.clone(), imports.take()), g)
                }
            };
        // From here on the mapping is ours: on any failure it is retired
        // (it was never patched in, so it is inert).
        let retire_on_failure = |mapping: Mapping, pid: PidRef, mm: MmRef| {
            if let Ok(r) = KBox::new(Retired { pid, mapping, mm }, GFP_KERNEL) {
                self.keep_retired(r);
            }
        };
        let patch = match text_patch::jump_patch(site, mapping.placement.start + entry_offset, patch_len) {
            Ok(p) => p,
            Err(err) => {
                drop(gathered);
                retire_on_failure(mapping, pid.clone_ref(), mm.grab());
                return Err(err);
            }
        };

        let mut attempts = 1;
        let writer = loop {
            let checked = self.recheck_inject(&want).and_then(|t| {
                if gathered.killed() {
                    Err(EINTR)
                } else {
                    Ok(t)
                }
            });
            let writer = match checked {
                Ok(t) => t,
                Err(err) => {
                    drop(gathered);
                    retire_on_failure(mapping, pid.clone_ref(), mm.grab());
                    return Err(err);
                }
            };
            if !gathered.points.iter().any(|p| p.resumes_inside(site, site_end)) {
                break writer;
            }
            drop(gathered);
            if attempts >= ATTEMPTS {
                retire_on_failure(mapping, pid.clone_ref(), mm.grab());
                return Err(EBUSY);
            }
            attempts += 1;
            pause_before_retry();
            gathered = match rendezvous::gather(&thread, &mm, None) {
                Ok(g) => g,
                Err(err) => {
                    retire_on_failure(mapping, pid.clone_ref(), mm.grab());
                    return Err(err);
                }
            };
        };

        // Everything that can fail without undoing the patch happens first.
        let slot = match KBox::<Injection>::new_uninit(GFP_KERNEL)
            .map_err(Error::from)
            .and_then(|slot| self.live.lock().reserve(1, GFP_KERNEL).map(|()| slot).map_err(Error::from))
        {
            Ok(slot) => slot,
            Err(err) => {
                drop(gathered);
                retire_on_failure(mapping, pid.clone_ref(), mm.grab());
                return Err(err);
            }
        };
        let patch_bytes = patch.get(..patch_len).ok_or(EINVAL)?;
        if let Err(err) = text_patch::write(&writer, site, patch_bytes, want.bytes) {
            drop(gathered);
            retire_on_failure(mapping, pid.clone_ref(), mm.grab());
            return Err(err);
        }
        let threads = gathered.threads;
        let pause_ns = gathered.release();

        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let segment_addr = mapping.placement.start;
        let record = KBox::write(
            slot,
            Injection {
                id,
                pid,
                mapping,
                mm,
                use_: Some(use_),
                site,
                site_id,
                patch_len,
                original,
                patch,
                entry: req.entry,
                injected_ns: now_ns(),
                pause_ns,
                state: State::Live,
            },
        );
        // Capacity was reserved above and only this (serialized) path adds.
        if let Err(err) = self.live.lock().push(record, GFP_KERNEL) {
            pr_err!("injection {} could not be tracked\n", id);
            return Err(err.into());
        }
        Ok(Injected {
            id,
            segment_addr,
            pause_ns,
            threads,
            attempts,
        })
    }

    /// Reverts injection `id`. Returns (pause ns, attempts). A stale
    /// injection is forgotten (there is nothing adapt may write back).
    pub(crate) fn revert(&self, id: u64) -> Result<(u64, u32)> {
        let _operation = self.operation.lock();
        self.collect_dead();
        let injection = {
            let mut live = self.live.lock();
            let index = live.iter().position(|i| i.id == id).ok_or(ENOENT)?;
            swap_remove(&mut live, index).ok_or(ENOENT)?
        };
        self.undo(injection)
    }

    /// Reverts every live injection of library variant `variant_id`
    /// (a forced library unload). The first error is returned; the others
    /// are still tried.
    pub(crate) fn revert_variant(&self, variant_id: u64) -> Result {
        let _operation = self.operation.lock();
        self.collect_dead();
        let mut mine = KVec::new();
        {
            let mut live = self.live.lock();
            // Room for all of them first: a failed push would drop a record.
            mine.reserve(live.len(), GFP_KERNEL)?;
            let mut i = 0;
            while i < live.len() {
                let matches = live
                    .get(i)
                    .is_some_and(|inj| inj.state == State::Live && inj.mapping.variant.id == variant_id);
                if matches {
                    if let Some(inj) = swap_remove(&mut live, i) {
                        // Capacity reserved above: cannot fail.
                        let _ = mine.push(inj, GFP_KERNEL);
                    }
                } else {
                    i += 1;
                }
            }
        }
        let mut first = Ok(());
        for inj in mine {
            if let Err(err) = self.undo(inj) {
                if first.is_ok() {
                    first = Err(err);
                }
            }
        }
        first
    }

    /// Puts back the bytes of `inj` and retires its segment; on failure
    /// the record goes back to the table (live, or stale when the site
    /// changed).
    fn undo(&self, mut inj: KBox<Injection>) -> Result<(u64, u32)> {
        if inj.state == State::Stale {
            self.keep_retired_injection(inj);
            return Ok((0, 0));
        }
        let Some(thread) = inj.pid.live_thread(Some(&inj.mm)) else {
            // Exited or exec'd: nothing left to undo.
            return Ok((0, 0));
        };
        if let Err(err) = rendezvous::check_parkable(&thread, &inj.mm) {
            self.put_back(inj);
            return Err(err);
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let gathered = match rendezvous::gather::<MapDuty>(&thread, &inj.mm, None) {
                Ok(g) => g,
                Err(err) => {
                    self.put_back(inj);
                    return Err(err);
                }
            };
            // Under the park: the same file at the same offset, holding
            // exactly the jmp adapt wrote - else write nothing.
            let Some(writer) = inj.pid.live_thread(Some(&inj.mm)) else {
                return Ok((0, attempts));
            };
            match self.site_still_ours(&inj, &writer) {
                Ok(true) => {}
                Ok(false) => {
                    drop(gathered);
                    pr_warn!(
                        "injection {}: the site changed since it was patched; not restored\n",
                        inj.id
                    );
                    inj.state = State::Stale;
                    inj.use_ = None;
                    self.put_back(inj);
                    return Err(crate::errno::estale());
                }
                Err(err) => {
                    drop(gathered);
                    self.put_back(inj);
                    return Err(err);
                }
            }
            if gathered.killed() {
                drop(gathered);
                self.put_back(inj);
                return Err(EINTR);
            }
            // The trampoline is part of the segment: nobody may resume in
            // it (or restart a system call there) when it is retired.
            let in_trampoline = inj
                .mapping
                .trampoline_range()
                .is_some_and(|(start, end)| gathered.points.iter().any(|p| p.resumes_within(start, end)));
            if in_trampoline || gathered.points.iter().any(|p| p.resumes_inside(inj.site, inj.site_end())) {
                drop(gathered);
                if attempts >= ATTEMPTS {
                    self.put_back(inj);
                    return Err(EBUSY);
                }
                pause_before_retry();
                continue;
            }
            let (patch, original) = match (inj.patch.get(..inj.patch_len), inj.original.get(..inj.patch_len)) {
                (Some(p), Some(o)) => (p, o),
                _ => return Err(EINVAL),
            };
            if let Err(err) = text_patch::write(&writer, inj.site, original, patch) {
                drop(gathered);
                self.put_back(inj);
                return Err(err);
            }
            let pause = gathered.release();
            // The entry jumps to the segment no more; it stays mapped,
            // inert, for any frame that still returns into it.
            self.keep_retired_injection(inj);
            return Ok((pause, attempts));
        }
    }

    /// Whether the site of `inj` is still the file and offset it patched
    /// and holds exactly the bytes it wrote.
    fn site_still_ours(&self, inj: &Injection, writer: &TaskRef) -> Result<bool> {
        let id_now = match SiteIdentity::of(&inj.mm, inj.site, inj.patch_len, None) {
            Ok(id) => id,
            // No private executable file mapping there any more.
            Err(e) if e == EFAULT || e == ENOEXEC => return Ok(false),
            Err(e) => return Err(e),
        };
        if !id_now.same_as(&inj.site_id) {
            return Ok(false);
        }
        let mut live = [0u8; abi::ADAPT_PATCH_MAX];
        let live = live.get_mut(..inj.patch_len).ok_or(EINVAL)?;
        text_patch::read(writer, inj.site, live)?;
        Ok(Some(&*live) == inj.patch.get(..inj.patch_len))
    }

    /// Returns a record taken out of `live` by `revert` (or `revert_all`,
    /// `revert_variant`). Removing never shrinks the vector, so the slot it
    /// left is still there and this push does not allocate; should it fail
    /// anyway the loss is logged (the patch itself stays correct: its
    /// segment stays mapped).
    fn put_back(&self, inj: KBox<Injection>) {
        if self.live.lock().push(inj, GFP_KERNEL).is_err() {
            pr_err!("an injection record was lost (out of memory)\n");
        }
    }

    /// Reverts every injection (module unload). A target that cannot be
    /// parked (stopped, traced, frozen, sharing its address space) or whose
    /// site changed keeps its patch: the segment stays mapped with its own
    /// page references, so the program goes on running correct code.
    pub(crate) fn revert_all(&self) {
        let _operation = self.operation.lock();
        let all = core::mem::take(&mut *self.live.lock());
        for inj in all {
            let (id, pid) = (inj.id, inj.pid.vnr());
            if let Err(err) = self.undo(inj) {
                pr_warn!(
                    "could not revert injection {} in pid {}: error {}; left in place\n",
                    id,
                    pid,
                    err.to_errno()
                );
            }
        }
        drop(core::mem::take(&mut *self.live.lock()));
        drop(core::mem::take(&mut *self.retired.lock()));
    }

    /// Descriptions of up to `max` injections (of process `pid` in the
    /// caller's pid namespace, or all when 0), with retired mappings too
    /// when `with_retired`.
    pub(crate) fn list(&self, pid: u32, max: usize, with_retired: bool) -> Result<Listed> {
        self.collect_dead();
        let mut out = Listed {
            entries: KVec::new(),
            total: 0,
            retired: 0,
        };
        {
            let live = self.live.lock();
            for inj in live.iter() {
                let vnr = inj.pid.vnr();
                if vnr == 0 || (pid != 0 && vnr != pid) {
                    continue;
                }
                out.total += 1;
                if out.entries.len() < max {
                    out.entries.push(inj.info(vnr), GFP_KERNEL)?;
                }
            }
        }
        let retired = self.retired.lock();
        for r in retired.iter() {
            let vnr = r.pid.vnr();
            if vnr == 0 || (pid != 0 && vnr != pid) {
                continue;
            }
            out.retired += 1;
            if with_retired && out.entries.len() < max {
                let variant = &r.mapping.variant;
                let (trampoline_addr, import_table_addr, trampoline_len, nimports) = r.mapping.import_info();
                let (data_addr, data_len) = r.mapping.data_info();
                out.entries.push(
                    abi::AdaptInjectionInfo {
                        pid: vnr,
                        state: abi::ADAPT_INJECTION_RETIRED,
                        variant_id: variant.id,
                        segment_addr: r.mapping.placement.start,
                        segment_len: r.mapping.placement.len,
                        segment: variant.segment,
                        variant: variant.variant,
                        trampoline_addr,
                        import_table_addr,
                        trampoline_len,
                        nimports,
                        data_addr,
                        data_len,
                        ..Default::default()
                    },
                    GFP_KERNEL,
                )?;
            }
        }
        Ok(out)
    }
}
