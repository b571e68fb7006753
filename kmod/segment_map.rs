// SPDX-License-Identifier: GPL-2.0

//! Segment memory inside a target process: a loaded variant's pages mapped
//! read+execute (code) and read-only (data), never writable, never both.
//!
//! Each mapping comes from a file of its own on a pseudo filesystem the
//! module mounts internally (not anon_inodefs, which later kernels mark
//! no-exec), shown in `/proc/PID/maps` as `/[adapt:SEGMENT-VARIANT]
//! (deleted)`. Its `mmap`
//! handler only serves the mappings adapt itself makes (it is "armed" by the
//! mapping thread for the duration of the call), clears `VM_MAYWRITE` (and
//! `VM_MAYEXEC` on the data), forbids growing, and inserts the module-owned
//! pages. `mprotect(PROT_WRITE)` on such a mapping then fails, and so does a
//! write through `/proc/PID/mem`.
//!
//! A segment stays mapped, inert, after its injection is reverted, until the
//! process exits or execs (a signal frame or a restarted system call may
//! still hold an address in it, as uprobes keeps its XOL area); a new
//! injection of the same variant within reach reuses it.
//!
//! Mappings (retired ones, and those forked children inherit) can outlive
//! the module. The file and VMA operation tables and the filesystem type
//! therefore live in their own allocations, hold no callback other than
//! `mmap` (cleared at unload), and are deliberately kept at unload if a
//! file may still be in use.

use crate::bindings;
use crate::abi;
use crate::library::Variant;
use kernel::ffi::{c_int, c_ulong};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::{
    page::{Page, PAGE_SIZE},
    prelude::*,
    str::CString,
    sync::Arc,
};

/// The operation tables of every segment file.
struct OpsTables {
    fops: bindings::file_operations,
    vm_ops: bindings::vm_operations_struct,
}

static OPS: AtomicPtr<OpsTables> = AtomicPtr::new(ptr::null_mut());

/// Mounts the segment filesystem and sets up the operation tables; call
/// once at module load.
pub(crate) fn init() -> Result {
    // SAFETY: Called once, at module load, before any segment file exists.
    let ret = unsafe { bindings::adapt_segfs_mount() };
    if ret != 0 {
        return Err(Error::from_errno(ret));
    }
    let tables = KBox::new(
        OpsTables {
            fops: bindings::file_operations {
                mmap: Some(segment_mmap),
                ..Default::default()
            },
            // No fault handler: a page the program zapped (madvise) is not
            // silently replaced by anonymous memory; touching it is SIGBUS.
            vm_ops: bindings::vm_operations_struct::default(),
        },
        GFP_KERNEL,
    );
    let tables = match tables {
        Ok(tables) => tables,
        Err(err) => {
            // SAFETY: Mounted above; no file exists yet.
            unsafe { bindings::adapt_segfs_unmount() };
            return Err(err.into());
        }
    };
    OPS.store(KBox::into_raw(tables), Ordering::Release);
    Ok(())
}

/// Tears down the operation tables at module unload.
pub(crate) fn exit() {
    // SAFETY: Module exit: no new segment file is made any more. The type
    // is kept (see below).
    unsafe { bindings::adapt_segfs_unmount() };
    let tables = OPS.swap(ptr::null_mut(), Ordering::AcqRel);
    if tables.is_null() {
        return;
    }
    // Kept, always: retired segments stay mapped in their processes after
    // the module is gone (their VMAs point at `vm_ops`), forked children
    // inherit mappings, and the last `fput` of a segment file is deferred
    // to task work that runs after `rmmod` returns (`__fput` reads the file
    // operations). One small allocation per module load; new mmaps of the
    // files (through /proc/PID/map_files) must not call into the module
    // once it is gone.
    // SAFETY: `tables` came from `KBox::into_raw` in `init`; clearing the
    // callback is a plain store, nothing calls it concurrently (module
    // exit, no open /dev/adapt file, no rendezvous queued).
    unsafe {
        (*tables).fops.mmap = None;
        bindings::adapt_keep_allocation(tables.cast());
    }
}

/// Which part of a variant a mapping holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Code (and trampoline): read+execute.
    Code,
    /// Import table or read-only data: read-only, never executable.
    Data,
}

/// A mapping request armed for one call of `vm_mmap`: only the arming
/// thread, mapping this very file, is served. Slots hold the file and task
/// pointers themselves, so the handler compares them without dereferencing
/// anything that might be gone.
struct ArmSlot {
    file: AtomicPtr<bindings::file>,
    task: AtomicPtr<bindings::task_struct>,
    request: AtomicPtr<Armed>,
}

/// The pages one `vm_mmap` must insert, at file page offset `pgoff`.
struct Armed {
    pages: KVec<*mut bindings::page>,
    pgoff: usize,
    part: Part,
}

const ARM_SLOTS: usize = 64;
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: ArmSlot = ArmSlot {
    file: AtomicPtr::new(ptr::null_mut()),
    task: AtomicPtr::new(ptr::null_mut()),
    request: AtomicPtr::new(ptr::null_mut()),
};
static ARMED: [ArmSlot; ARM_SLOTS] = [EMPTY_SLOT; ARM_SLOTS];

fn current_task() -> *mut bindings::task_struct {
    let current: &kernel::task::Task = kernel::current!();
    // `Task` is a transparent wrapper of `struct task_struct`.
    (current as *const kernel::task::Task).cast_mut().cast()
}

/// Maps `pages` from `file` (at file page offset `pgoff`) at exactly `addr`
/// in the current process, serving our own `mmap` handler for the
/// duration. The pages are module-owned and fully written: the mapping
/// takes its own reference to each.
fn map_armed(file: &SegmentFile, pages: &[Page], part: Part, addr: u64, pgoff: usize) -> Result {
    let mut raw = KVec::with_capacity(pages.len(), GFP_KERNEL)?;
    for page in pages {
        raw.push(page.as_ptr().cast::<bindings::page>(), GFP_KERNEL)?;
    }
    let len = pages.len() * PAGE_SIZE;
    let armed = Armed {
        pages: raw,
        pgoff,
        part,
    };
    let task = current_task();
    let slot = ARMED
        .iter()
        .find(|s| {
            s.task
                .compare_exchange(ptr::null_mut(), task, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
        .ok_or(EBUSY)?;
    slot.request
        .store((&armed as *const Armed).cast_mut(), Ordering::Release);
    slot.file.store(file.file.as_ptr(), Ordering::Release);

    // SAFETY: `file` is a live segment file; the call maps into the current
    // process, which is the target (this runs in one of its threads). The
    // pages behind `armed` live as long as `pages`, borrowed for the call.
    let ret = unsafe {
        bindings::adapt_vm_mmap_fixed(
            file.file.as_ptr(),
            addr as c_ulong,
            len as c_ulong,
            part == Part::Code,
            pgoff as c_ulong,
        )
    };

    slot.file.store(ptr::null_mut(), Ordering::Release);
    slot.request.store(ptr::null_mut(), Ordering::Release);
    slot.task.store(ptr::null_mut(), Ordering::Release);
    drop(armed);
    if ret < 0 {
        // Errno values fit in an i32.
        return Err(Error::from_errno(ret as i32));
    }
    Ok(())
}

/// # Safety
///
/// Called by the mm core from `mmap(2)`/`vm_mmap` with a valid file and a
/// VMA being set up, `mmap_lock` held for writing.
unsafe extern "C" fn segment_mmap(file: *mut bindings::file, vma: *mut bindings::vm_area_struct) -> c_int {
    let task = current_task();
    let Some(slot) = ARMED.iter().find(|s| {
        s.task.load(Ordering::Acquire) == task && s.file.load(Ordering::Acquire) == file
    }) else {
        // Not a mapping adapt is making (e.g. /proc/PID/map_files).
        return EPERM.to_errno();
    };
    let request = slot.request.load(Ordering::Acquire);
    if request.is_null() {
        return EPERM.to_errno();
    }
    // SAFETY: The slot matches this task and file, so the arming thread is
    // us, inside `map_armed`, which keeps `*request` alive until `vm_mmap`
    // returns.
    let armed = unsafe { &*request };
    let exec = armed.part == Part::Code;
    let tables = OPS.load(Ordering::Acquire);
    if tables.is_null() {
        return ENODEV.to_errno();
    }
    let (mut pgoff, mut npages) = (0, 0);
    // SAFETY: `vma` is the VMA being set up; `tables` is live (the module
    // is loaded: we are running its code).
    let ret = unsafe { bindings::adapt_vma_prepare(vma, exec, &(*tables).vm_ops, &mut pgoff, &mut npages) };
    if ret != 0 {
        return ret;
    }
    let count = armed.pages.len();
    if pgoff != armed.pgoff || npages != count || count == 0 {
        return EINVAL.to_errno();
    }
    // SAFETY: `vma` covers exactly `count` pages; the pages are module-owned
    // and kept alive by the arming thread for this call; the mapping takes
    // its own reference to each. The array is only read.
    unsafe { bindings::adapt_vma_insert_pages(vma, armed.pages.as_ptr().cast_mut(), count as c_ulong) }
}

/// Our reference to one injection's segment file.
///
/// # Invariants
///
/// `file` holds one reference, dropped in `Drop`.
pub(crate) struct SegmentFile {
    file: NonNull<bindings::file>,
}

// SAFETY: File references may be dropped from any task context.
unsafe impl Send for SegmentFile {}
// SAFETY: Only the pointer value is shared.
unsafe impl Sync for SegmentFile {}

impl SegmentFile {
    /// A new file named `[adapt:SEGMENT-VARIANT]`.
    pub(crate) fn new(variant: &Variant) -> Result<Self> {
        let tables = OPS.load(Ordering::Acquire);
        if tables.is_null() {
            return Err(ENODEV);
        }
        let segment = crate::abi::name_str(&variant.segment).unwrap_or("?");
        let name = crate::abi::name_str(&variant.variant).unwrap_or("?");
        let title = CString::try_from_fmt(kernel::fmt!("[adapt:{}-{}]", segment, name))?;
        // SAFETY: `title` is a valid C string (copied by the callee); the
        // tables outlive every file (see the module docs).
        let file = unsafe { bindings::adapt_segment_file(title.as_char_ptr(), &(*tables).fops) };
        let value = file as usize;
        if value >= (bindings::MAX_ERRNO as usize).wrapping_neg() {
            return Err(Error::from_errno(value as isize as i32));
        }
        Ok(Self {
            file: NonNull::new(file).ok_or(ENOMEM)?,
        })
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        // SAFETY: We own one reference. `fput` defers the final release to
        // the calling task's return to user mode (or to a kernel worker);
        // the file has no release callback into the module.
        unsafe { bindings::adapt_file_put(self.file.as_ptr()) };
    }
}

/// Where a variant was mapped in a target.
#[derive(Clone, Copy)]
pub(crate) struct Placement {
    pub(crate) start: u64,
    pub(crate) len: u64,
}

impl Placement {
    /// Whether a `jmp rel32` at `site` reaches all of it.
    pub(crate) fn reachable_from(&self, site: u64) -> bool {
        self.start.abs_diff(site) <= REL32_REACH && (self.start + self.len).abs_diff(site) <= REL32_REACH
    }
}

/// What one injection of a variant with imports adds to the variant's
/// pages, made (written) before anything is mapped: a copy of the code
/// pages with its trampoline in the trampoline space, and the import
/// table's pages holding the slot values.
pub(crate) struct Instance {
    pub(crate) code: KVec<Page>,
    pub(crate) table: KVec<Page>,
}

impl Instance {
    /// The pages of `variant` (which has imports) with `trampoline` at its
    /// trampoline offset (the rest of the space stays `int3`) and `slots`
    /// in its import table.
    pub(crate) fn new(variant: &Variant, trampoline: &[u8], slots: &[u64]) -> Result<Self> {
        if variant.nimports == 0 || slots.len() != variant.nimports as usize || trampoline.len() > abi::ADAPT_TRAMPOLINE_MAX {
            return Err(EINVAL);
        }
        let offset = variant.trampoline_offset();
        let mut code = KVec::with_capacity(variant.code_pages, GFP_KERNEL)?;
        let mut buf = KVVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL)?;
        for (i, src) in variant.pages.iter().take(variant.code_pages).enumerate() {
            // SAFETY: `buf` is one page long and valid for writes; variant
            // pages are written once, at load, and only read afterwards.
            unsafe { src.read_raw(buf.as_mut_ptr(), 0, PAGE_SIZE)? };
            let page_start = i * PAGE_SIZE;
            for (j, &b) in trampoline.iter().enumerate() {
                let at = offset + j;
                if (page_start..page_start + PAGE_SIZE).contains(&at) {
                    *buf.get_mut(at - page_start).ok_or(EINVAL)? = b;
                }
            }
            code.push(page_from(&buf)?, GFP_KERNEL)?;
        }
        // The trampoline space must lie inside the code pages (the layout
        // guarantees it; checked so a bad layout cannot drop bytes).
        if offset + trampoline.len() > variant.code_pages * PAGE_SIZE {
            return Err(EINVAL);
        }
        let mut table = KVec::with_capacity(variant.table_pages, GFP_KERNEL)?;
        for i in 0..variant.table_pages {
            for b in buf.iter_mut() {
                *b = 0;
            }
            for (k, slot) in slots.iter().enumerate() {
                let at = k * abi::ADAPT_IMPORT_SLOT_SIZE;
                if (i * PAGE_SIZE..(i + 1) * PAGE_SIZE).contains(&at) {
                    let dst = buf.get_mut(at - i * PAGE_SIZE..at - i * PAGE_SIZE + 8).ok_or(EINVAL)?;
                    dst.copy_from_slice(&slot.to_le_bytes());
                }
            }
            table.push(page_from(&buf)?, GFP_KERNEL)?;
        }
        Ok(Instance { code, table })
    }
}

/// A new module page holding `bytes` (one page).
fn page_from(bytes: &[u8]) -> Result<Page> {
    let page = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
    // SAFETY: `bytes` is at most one page long and valid for reads; the
    // page is freshly allocated and not yet shared with anyone.
    unsafe { page.write_raw(bytes.as_ptr(), 0, bytes.len().min(PAGE_SIZE))? };
    Ok(page)
}

/// Maps `variant` at exactly `start` in the current process: the code
/// (from `instance` when given: with its trampoline) read+execute, then the
/// import table (from `instance`) read-only, then the read-only data, then
/// the data area (fresh zeroed anonymous memory, read+write, never
/// executable) when the variant has one.
/// Everything mapped so far is unmapped again on failure. Must run in a
/// thread of the target.
pub(crate) fn map_at(file: &SegmentFile, variant: &Variant, instance: Option<&Instance>, start: u64) -> Result<Placement> {
    let code_pages = variant.pages.get(..variant.code_pages).ok_or(EINVAL)?;
    let rodata_pages = variant.pages.get(variant.code_pages..).ok_or(EINVAL)?;
    let (code, table): (&[Page], &[Page]) = match instance {
        Some(i) => (&i.code, &i.table),
        None => (code_pages, &[]),
    };
    if code.len() != variant.code_pages || table.len() != variant.table_pages {
        return Err(EINVAL);
    }
    map_armed(file, code, Part::Code, start, 0)?;
    let mut mapped = code.len();
    for part in [table, rodata_pages] {
        if part.is_empty() {
            continue;
        }
        let at = start + (mapped * PAGE_SIZE) as u64;
        if let Err(err) = map_armed(file, part, Part::Data, at, mapped) {
            unmap_file(file, Placement { start, len: (mapped * PAGE_SIZE) as u64 });
            return Err(err);
        }
        mapped += part.len();
    }
    if variant.data_pages > 0 {
        let at = start + (mapped * PAGE_SIZE) as u64;
        // SAFETY: Maps fresh anonymous memory into the current process
        // (the target: this runs in one of its threads), only where
        // nothing is mapped (MAP_FIXED_NOREPLACE).
        let ret = unsafe { bindings::adapt_vm_mmap_data_fixed(at as c_ulong, (variant.data_pages * PAGE_SIZE) as c_ulong) };
        if ret < 0 {
            unmap_file(file, Placement { start, len: (mapped * PAGE_SIZE) as u64 });
            // Errno values fit in an i32.
            return Err(Error::from_errno(ret as i32));
        }
        mapped += variant.data_pages;
    }
    Ok(Placement {
        start,
        len: (mapped * PAGE_SIZE) as u64,
    })
}

/// Candidate start addresses tried around the patch site, nearest first.
const CANDIDATES: u64 = 64;
const STEP: u64 = 2 << 20;
const REL32_REACH: u64 = (1 << 31) - (1 << 21);

/// Maps `variant` (a leaf: code, then read-only data right after it) into
/// the current process within reach of a `jmp rel32` at `site`. Must run
/// in a thread of the target. `ENOSPC` when no free place within reach was
/// found; any other error is the one the last attempt met.
pub(crate) fn map_near(file: &SegmentFile, variant: &Arc<Variant>, site: u64) -> Result<Placement> {
    let mut last_err = ENOSPC;
    let total = variant.mapped_len();
    let base = site & !(STEP - 1);
    for i in 1..=CANDIDATES {
        for below in [true, false] {
            let start = if below {
                match base.checked_sub(i * STEP + total) {
                    Some(s) => s & !(STEP - 1),
                    None => continue,
                }
            } else {
                match base.checked_add(i * STEP) {
                    Some(s) => s,
                    None => continue,
                }
            };
            if !(Placement { start, len: total }).reachable_from(site) {
                continue;
            }
            match map_at(file, variant, None, start) {
                Ok(placement) => return Ok(placement),
                // Occupied: try the next place. Anything else is kept.
                Err(err) => {
                    if err != EEXIST && err != ENOMEM {
                        last_err = err;
                    }
                }
            }
        }
    }
    Err(last_err)
}

/// Unmaps a placement of `file` from the current process, if the range
/// still holds that file's mapping. Must run in a thread of the target.
pub(crate) fn unmap_file(file: &SegmentFile, placement: Placement) {
    // SAFETY: Acts on the current process's address space; the shim checks
    // under mmap_lock that the range is still this file's mapping before
    // unmapping it.
    let _ = unsafe {
        bindings::adapt_unmap_if_file(file.file.as_ptr(), placement.start as c_ulong, placement.len as c_ulong)
    };
}
