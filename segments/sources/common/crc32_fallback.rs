// SPDX-License-Identifier: GPL-2.0
//! The code of the `crc32-fallback` testing segment (and of
//! `crc32-unresolved`, which only declares one more import): zlib's
//! `crc32_z` computed here, bit by bit, for 64 bytes and more, and a tail
//! jump to the original through import slot 0 below that.

#[path = "zlib_crc32.rs"]
mod zlib_crc32;

#[path = "crc32_bitwise.rs"]
mod crc32_bitwise;
use crc32_bitwise::update;

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
