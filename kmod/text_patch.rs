// SPDX-License-Identifier: GPL-2.0

//! Reading and writing a target's text the way ptrace and uprobes do:
//! through `access_process_vm` with `FOLL_FORCE`, which writes by
//! copy-on-write into a private copy of the page. Text is never made
//! writable in the target.

use crate::abi;
use crate::bindings;
use crate::task::TaskRef;
use kernel::ffi::{c_int, c_uint, c_ulong, c_void};
use kernel::prelude::*;

const JMP_REL32: u8 = 0xe9;
const INT3: u8 = 0xcc;

/// Fails with `EFAULT` unless `[addr, addr + len)` lies in one executable,
/// non-writable mapping of `task`.
pub(crate) fn check_text(task: &TaskRef, addr: u64, len: u32) -> Result {
    // SAFETY: `task` is a valid, counted task; the shim takes its own mm
    // reference.
    let ret = unsafe { bindings::adapt_check_text(task.as_ptr(), addr, len) };
    if ret == 0 {
        Ok(())
    } else {
        Err(Error::from_errno(ret))
    }
}

fn access(task: &TaskRef, addr: u64, buf: *mut u8, len: usize, write: bool) -> Result {
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
    if done == len_c {
        Ok(())
    } else {
        Err(EFAULT)
    }
}

/// Reads `buf.len()` bytes of the target's memory at `addr`.
pub(crate) fn read(task: &TaskRef, addr: u64, buf: &mut [u8]) -> Result {
    access(task, addr, buf.as_mut_ptr(), buf.len(), false)
}

/// Writes `bytes` into the target's text at `addr` and reads them back.
pub(crate) fn write(task: &TaskRef, addr: u64, bytes: &[u8]) -> Result {
    let mut copy = [0u8; abi::ADAPT_PATCH_MAX];
    let copy = copy.get_mut(..bytes.len()).ok_or(EINVAL)?;
    copy.copy_from_slice(bytes);
    access(task, addr, copy.as_mut_ptr(), copy.len(), true)?;
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
