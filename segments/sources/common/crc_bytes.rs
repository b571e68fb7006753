// SPDX-License-Identifier: GPL-2.0
//! Byte-at-a-time reflected CRC over the table in `crate::BYTE_TABLE`, for
//! short inputs and tails.

/// Runs the raw CRC register `s` over `n` bytes at `p`.
///
/// # Safety
///
/// `p..p+n` must be readable.
#[inline(always)]
pub unsafe fn update(mut s: u32, mut p: *const u8, mut n: usize) -> u32 {
    while n > 0 {
        // SAFETY: n > 0 bytes remain readable at p (caller's contract); the
        // index is masked to the table's 256 entries.
        unsafe {
            s = (s >> 8) ^ *crate::BYTE_TABLE.get_unchecked(((s ^ *p as u32) & 0xff) as usize);
            p = p.add(1);
        }
        n -= 1;
    }
    s
}
