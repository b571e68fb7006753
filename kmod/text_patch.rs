// SPDX-License-Identifier: GPL-2.0

//! Reading and writing a target's text the way ptrace and uprobes do:
//! through `access_process_vm` with `FOLL_FORCE`, which writes by
//! copy-on-write into a private copy of the page. Text is never made
//! writable in the target.
//!
//! Before bytes change, the site must be what adapt expects
//! ([`SiteIdentity`]): one private, executable, never-writable mapping of a
//! file, whose live bytes equal the file's (so no uprobe, debugger or other
//! patcher has changed them) - and, for a revert, the same file at the same
//! offset as when it was patched, still holding exactly the `jmp` adapt
//! wrote.

use crate::abi;
use crate::bindings;
use crate::task::{MmRef, TaskRef};
use core::ptr::{self, NonNull};
use kernel::ffi::{c_int, c_uint, c_ulong, c_void};
use kernel::prelude::*;

const JMP_REL32: u8 = 0xe9;
const INT3: u8 = 0xcc;

/// Which file, and where in it, a patch site is.
///
/// # Invariants
///
/// `inode` holds one reference (`ihold`), put in `Drop`; so comparing the
/// pointer with a live mapping's inode is an identity check.
pub(crate) struct SiteIdentity {
    inode: NonNull<bindings::inode>,
    pos: u64,
}

// SAFETY: Inode references may be put from any process context.
unsafe impl Send for SiteIdentity {}
// SAFETY: Only the pointer value is shared.
unsafe impl Sync for SiteIdentity {}

impl SiteIdentity {
    /// Identifies `[addr, addr + len)` of `mm`, which must lie in one
    /// private, executable, never-writable file mapping. With `file_bytes`,
    /// also reads what the file holds there.
    ///
    /// Errors: `EFAULT` (no such mapping, or writable or shared),
    /// `ENOEXEC` (anonymous executable memory), `EIO`, `ESRCH`.
    pub(crate) fn of(mm: &MmRef, addr: u64, len: usize, file_bytes: Option<&mut [u8]>) -> Result<Self> {
        let len_c = u32::try_from(len).map_err(|_| EINVAL)?;
        let buf = match file_bytes {
            Some(b) if b.len() == len => b.as_mut_ptr(),
            Some(_) => return Err(EINVAL),
            None => ptr::null_mut(),
        };
        let mut inode = ptr::null_mut();
        let mut pos = 0u64;
        // SAFETY: `mm` is counted (the shim pins its users while it looks);
        // `buf` is null or valid for `len` bytes; the out-pointers are locals.
        let ret = unsafe { bindings::adapt_site_identity(mm.as_raw(), addr, len_c, &mut inode, &mut pos, buf) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(Self {
            inode: NonNull::new(inode).ok_or(EFAULT)?,
            pos,
        })
    }

    /// Same file, same offset.
    pub(crate) fn same_as(&self, other: &SiteIdentity) -> bool {
        self.inode == other.inode && self.pos == other.pos
    }
}

impl Drop for SiteIdentity {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference.
        unsafe { bindings::adapt_inode_put(self.inode.as_ptr()) };
    }
}

/// Copies `len` bytes between `buf` and the target's memory at `addr`.
/// Returns how many bytes were done.
fn access(task: &TaskRef, addr: u64, buf: *mut u8, len: usize, write: bool) -> Result<usize> {
    let mut flags = bindings::FOLL_FORCE;
    if write {
        flags |= bindings::FOLL_WRITE;
    }
    let len_c = c_int::try_from(len).map_err(|_| EINVAL)?;
    // SAFETY: `buf` is valid for `len` bytes (callers pass a slice); the
    // task is counted; access_process_vm takes its own mm reference.
    let done = unsafe {
        bindings::access_process_vm(task.as_ptr(), addr as c_ulong, buf.cast::<c_void>(), len_c, flags as c_uint)
    };
    Ok(usize::try_from(done).unwrap_or(0).min(len))
}

/// Reads `buf.len()` bytes of the target's memory at `addr`.
pub(crate) fn read(task: &TaskRef, addr: u64, buf: &mut [u8]) -> Result {
    if access(task, addr, buf.as_mut_ptr(), buf.len(), false)? == buf.len() {
        Ok(())
    } else {
        Err(EFAULT)
    }
}

/// Writes `bytes` over `previous` (what the caller just verified is there)
/// in the target's text at `addr`, and reads them back. A write that stops
/// part way (the range crosses a page the kernel could not write) puts the
/// written part back to `previous`.
pub(crate) fn write(task: &TaskRef, addr: u64, bytes: &[u8], previous: &[u8]) -> Result {
    if bytes.len() != previous.len() || bytes.len() > abi::ADAPT_PATCH_MAX {
        return Err(EINVAL);
    }
    let mut copy = [0u8; abi::ADAPT_PATCH_MAX];
    let copy = copy.get_mut(..bytes.len()).ok_or(EINVAL)?;
    copy.copy_from_slice(bytes);
    let done = access(task, addr, copy.as_mut_ptr(), copy.len(), true)?;
    if done != bytes.len() {
        if done > 0 {
            let mut undo = [0u8; abi::ADAPT_PATCH_MAX];
            let undo = undo.get_mut(..done).ok_or(EINVAL)?;
            undo.copy_from_slice(previous.get(..done).ok_or(EINVAL)?);
            if access(task, addr, undo.as_mut_ptr(), done, true)? != done {
                pr_err!("could not undo a partial write at {:#x}\n", addr);
            }
        }
        return Err(EFAULT);
    }
    let mut back = [0u8; abi::ADAPT_PATCH_MAX];
    let back = back.get_mut(..bytes.len()).ok_or(EINVAL)?;
    read(task, addr, back)?;
    if back != bytes {
        return Err(EIO);
    }
    Ok(())
}

/// The patch for `site`: `jmp rel32` to `dest`, the rest of the `len`
/// replaced bytes filled with `int3`.
pub(crate) fn jump_patch(site: u64, dest: u64, len: usize) -> Result<[u8; abi::ADAPT_PATCH_MAX]> {
    let next = site.checked_add(u64::from(abi::ADAPT_JMP_LEN)).ok_or(EINVAL)?;
    let rel = (dest as i64).wrapping_sub(next as i64);
    let rel = i32::try_from(rel).map_err(|_| ENOSPC)?;
    let mut patch = [INT3; abi::ADAPT_PATCH_MAX];
    patch[0] = JMP_REL32;
    for (dst, src) in patch.iter_mut().skip(1).zip(rel.to_le_bytes()) {
        *dst = src;
    }
    for byte in patch.iter_mut().skip(len) {
        *byte = 0;
    }
    Ok(patch)
}
