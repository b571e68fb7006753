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
use crate::library::Variant;
use kernel::ffi::{c_int, c_ulong};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::{page::PAGE_SIZE, prelude::*, str::CString, sync::Arc};

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
    Code,
    Rodata,
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

struct Armed {
    variant: Arc<Variant>,
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

/// Maps `part` of `variant` from `file` at exactly `addr` in the current
/// process, serving our own `mmap` handler for the duration.
fn map_armed(file: &SegmentFile, variant: &Arc<Variant>, part: Part, addr: u64, len: usize, pgoff: usize) -> Result {
    let armed = Armed {
        variant: variant.clone(),
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
    // process, which is the target (this runs in one of its threads).
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
    let variant = &armed.variant;
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
    let (first, count) = match armed.part {
        Part::Code => (0, variant.code_pages),
        Part::Rodata => (variant.code_pages, variant.pages.len() - variant.code_pages),
    };
    if pgoff != first || npages != count || count == 0 {
        return EINVAL.to_errno();
    }
    let mut raw: KVec<*mut bindings::page> = match KVec::with_capacity(count, GFP_KERNEL) {
        Ok(v) => v,
        Err(_) => return ENOMEM.to_errno(),
    };
    for page in variant.pages.iter().skip(first).take(count) {
        if raw.push(page.as_ptr().cast(), GFP_KERNEL).is_err() {
            return ENOMEM.to_errno();
        }
    }
    // SAFETY: `vma` covers exactly `count` pages; the pages are module-owned
    // and stay allocated while mapped (each mapping holds a page reference).
    unsafe { bindings::adapt_vma_insert_pages(vma, raw.as_mut_ptr(), count as c_ulong) }
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

/// Candidate start addresses tried around the patch site, nearest first.
const CANDIDATES: u64 = 64;
const STEP: u64 = 2 << 20;
const REL32_REACH: u64 = (1 << 31) - (1 << 21);

/// Maps `variant` (code, then read-only data right after it) into the
/// current process within reach of a `jmp rel32` at `site`. Must run in a
/// thread of the target. `ENOSPC` when no free place within reach was
/// found; any other error is the one the last attempt met.
pub(crate) fn map_near(file: &SegmentFile, variant: &Arc<Variant>, site: u64) -> Result<Placement> {
    let mut last_err = ENOSPC;
    let code_len = (variant.code_pages * PAGE_SIZE) as u64;
    let total = (variant.pages.len() * PAGE_SIZE) as u64;
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
            if let Err(err) = map_armed(file, variant, Part::Code, start, code_len as usize, 0) {
                // Occupied: try the next place. Anything else is kept.
                if err != EEXIST && err != ENOMEM {
                    last_err = err;
                }
                continue;
            }
            let rodata_len = total - code_len;
            if rodata_len > 0 {
                if let Err(err) =
                    map_armed(file, variant, Part::Rodata, start + code_len, rodata_len as usize, variant.code_pages)
                {
                    unmap_file(file, Placement { start, len: code_len });
                    if err != EEXIST && err != ENOMEM {
                        last_err = err;
                    }
                    continue;
                }
            }
            return Ok(Placement { start, len: total });
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
