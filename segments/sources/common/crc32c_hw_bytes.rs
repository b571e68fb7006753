// SPDX-License-Identifier: GPL-2.0
//! CRC-32C tails with the SSE4.2 `crc32` instruction, in place of the table
//! walk of `crc_bytes.rs` (same interface, so the folding code can use
//! either).

use core::arch::x86_64::*;

/// Runs the raw CRC-32C register `s` over `n` bytes at `p`.
///
/// # Safety
///
/// `p..p+n` must be readable.
#[inline(always)]
pub unsafe fn update(s: u32, mut p: *const u8, mut n: usize) -> u32 {
    // SAFETY: SSE4.2 is enabled for the crate; reads stay within p..p+n.
    unsafe {
        let mut c = u64::from(s);
        while n >= 8 {
            c = _mm_crc32_u64(c, u64::from_le((p as *const u64).read_unaligned()));
            p = p.add(8);
            n -= 8;
        }
        let mut s = c as u32;
        while n > 0 {
            s = _mm_crc32_u8(s, *p);
            p = p.add(1);
            n -= 1;
        }
        s
    }
}
