// SPDX-License-Identifier: GPL-2.0
//! TEST-ONLY: the `crc32-fallback` segment declaring one more import,
//! `adapt_no_such_function`, which no process defines: injecting it must be
//! refused with the unresolved import named. Otherwise: zlib's `crc32_z` that computes buffers of 64 bytes
//! and more itself (one bit at a time: correct and slow) and hands shorter
//! ones to the original through its `fallback` import (a tail jump through
//! the import table: `jmp qword ptr [rip+slot]`, which the builder points
//! at slot 0). Both paths are taken by any workload with mixed sizes, so a
//! guest test sees at once whether the segment and the trampoline to the
//! original give zlib's results. Built only into the testing library.
#![no_std]

#[path = "../common/zlib_crc32.rs"]
mod zlib_crc32;

/// Reflected CRC-32/ISO-HDLC polynomial.
const POLY_REFLECTED: u32 = 0xedb8_8320;

/// # Safety
///
/// `buf..buf+len` must be readable.
#[inline(always)]
unsafe fn update(mut crc: u32, buf: *const u8, len: usize) -> u32 {
    let mut i = 0;
    while i < len {
        // SAFETY: `i < len`, inside the caller's readable range.
        crc ^= u32::from(unsafe { *buf.add(i) });
        let mut bit = 0;
        while bit < 8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (POLY_REFLECTED & mask);
            bit += 1;
        }
        i += 1;
    }
    crc
}

/// The long path: `crc32_z` computed here.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
pub unsafe extern "C" fn adapt_crc32_long(crc: u64, buf: *const u8, len: usize) -> u64 {
    // SAFETY: caller's contract.
    unsafe { zlib_crc32::crc32_z(crc, buf, len, |s, p, n| update(s, p, n)) }
}

// `crc32_z(crc, buf, len)`: len in rdx. Below 64 bytes, a tail jump to
// the original through import slot 0 (`adapt_import_fallback`, resolved
// by the builder); the stack is as at entry.
core::arch::global_asm!(
    ".globl crc32_z",
    ".type crc32_z,@function",
    "crc32_z:",
    "cmp rdx, 64",
    "jb 2f",
    "jmp {long}",
    "2:",
    "jmp qword ptr [rip + adapt_import_fallback]",
    long = sym adapt_crc32_long,
);
