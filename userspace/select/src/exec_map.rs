// SPDX-License-Identifier: GPL-2.0
//! Running a leaf function of an executable in this process: map the
//! file's read-only `PT_LOAD` segments, at their linked distances from each
//! other, and call the function there.
//!
//! How:
//! 1. [`crate::leaf_check`] proves the function reads nothing but its
//!    arguments, its stack and the file's read-only segments.
//! 2. One `PROT_NONE` reservation spans every `PT_LOAD` (page-rounded):
//!    anywhere for a PIE; exactly at the linked addresses for a
//!    fixed-address executable (`MAP_FIXED_NOREPLACE`; if something of
//!    this process is already there, the original cannot be run here and
//!    the error says so).
//! 3. Each non-writable `PT_LOAD` is mapped from the file over its part of
//!    the reservation, `MAP_PRIVATE|MAP_FIXED`, read-only, plus execute
//!    for code: the bytes are the file's, exactly those the target mapped.
//!    Writable segments stay `PROT_NONE`, so a stray access would fault
//!    rather than read made-up data (the check makes it unreachable).
//! 4. The entry is the reservation's bias plus the symbol's address.
//!
//! Nothing is ever writable and executable; everything is unmapped on drop.

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use adapt_elf::{ElfFacts, FunctionSymbol, ObjectKind};

use crate::error::OriginalError;

const PAGE: u64 = 4096;

fn page_down(x: u64) -> u64 {
    x & !(PAGE - 1)
}

fn page_up(x: u64) -> Option<u64> {
    Some(x.checked_add(PAGE - 1)? & !(PAGE - 1))
}

/// The read-only segments of an executable mapped into this process.
///
/// # Invariants
///
/// `base..base + len` is a mapping owned by this value, holding the file's
/// non-writable segments read-only (code read+execute) and `PROT_NONE`
/// elsewhere; nothing writes it.
#[derive(Debug)]
pub struct MappedImage {
    base: usize,
    len: usize,
    entry: usize,
}

struct Reservation {
    base: *mut c_void,
    len: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: the range was returned by mmap and is owned by this guard
        // (forgotten once ownership passes to MappedImage).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

impl MappedImage {
    /// Maps `info`'s file (`path`, opened as `file`) and locates `f`. The
    /// caller must have run [`crate::leaf_check::check_self_contained`] on
    /// `f`.
    pub fn map(
        path: &Path,
        info: &ElfFacts,
        file: &File,
        f: &FunctionSymbol,
    ) -> Result<MappedImage, OriginalError> {
        let not = |why: String| OriginalError::NotLoadable {
            path: path.to_path_buf(),
            why,
        };
        let lo = info
            .loads
            .iter()
            .map(|l| page_down(l.vaddr))
            .min()
            .ok_or_else(|| not("it has no PT_LOAD segment".to_owned()))?;
        let hi = info
            .loads
            .iter()
            .filter_map(|l| page_up(l.vaddr.checked_add(l.memsz)?))
            .max()
            .ok_or_else(|| not("its segments overflow the address space".to_owned()))?;
        let len =
            usize::try_from(hi - lo).map_err(|_| not("its segments are too large".to_owned()))?;
        if len > 1 << 36 {
            return Err(not(format!("its segments span {len} bytes")));
        }
        let fixed = info.kind == ObjectKind::FixedExecutable;
        let (hint, flags) = if fixed {
            (lo as *mut c_void, libc::MAP_FIXED_NOREPLACE)
        } else {
            (std::ptr::null_mut(), 0)
        };
        // SAFETY: an anonymous PROT_NONE mapping; with MAP_FIXED_NOREPLACE
        // the kernel refuses rather than replace an existing mapping, so no
        // memory of this process is touched.
        let base = unsafe {
            libc::mmap(
                hint,
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | flags,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            let source = io::Error::last_os_error();
            if fixed && source.raw_os_error() == Some(libc::EEXIST) {
                return Err(not(format!(
                    "it is a fixed-address executable and this process already uses its addresses \
                     {lo:#x}..{hi:#x}"
                )));
            }
            return Err(map_err(path, "reserving address space", source));
        }
        let guard = Reservation { base, len };
        if fixed && base as u64 != lo {
            return Err(not(format!(
                "it is a fixed-address executable and the kernel would not map it at {lo:#x}"
            )));
        }
        let bias = (base as u64).wrapping_sub(lo);
        for l in info.loads.iter().filter(|l| !l.writable() && l.filesz > 0) {
            let start = page_down(l.vaddr);
            let delta = l.vaddr - start;
            if l.offset % PAGE != delta {
                return Err(not(
                    "a segment's file offset and address disagree modulo the page size".to_owned(),
                ));
            }
            let end = page_up(l.vaddr + l.filesz).unwrap_or(hi).min(hi);
            let prot = libc::PROT_READ | if l.executable() { libc::PROT_EXEC } else { 0 };
            let at = start.wrapping_add(bias) as *mut c_void;
            let offset = libc::off_t::try_from(l.offset - delta)
                .map_err(|_| not("file offset too large".to_owned()))?;
            // SAFETY: `at..at + (end - start)` lies inside our own
            // reservation (start >= lo, end <= hi), so MAP_FIXED replaces
            // only pages this function owns; the mapping is private and
            // never writable.
            let p = unsafe {
                libc::mmap(
                    at,
                    (end - start) as usize,
                    prot,
                    libc::MAP_PRIVATE | libc::MAP_FIXED,
                    file.as_raw_fd(),
                    offset,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(map_err(
                    path,
                    "mapping a segment of the file",
                    io::Error::last_os_error(),
                ));
            }
        }
        let entry = f.vaddr.wrapping_add(bias) as usize;
        std::mem::forget(guard);
        Ok(MappedImage {
            base: base as usize,
            len,
            entry,
        })
    }

    /// Address of the function in this process.
    pub fn entry(&self) -> usize {
        self.entry
    }
}

fn map_err(path: &Path, what: &'static str, source: io::Error) -> OriginalError {
    OriginalError::Map {
        path: path.to_path_buf(),
        what,
        source,
    }
}

impl Drop for MappedImage {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the range is ours; the entry is not
        // called after drop (the owner, crate::original::Original, hands it
        // out only borrowed).
        unsafe { libc::munmap(self.base as *mut c_void, self.len) };
    }
}
