// SPDX-License-Identifier: GPL-2.0
//! Reflected CRC-32, slicing-by-16 over the tables in `crate::SLICE_TABLES`
//! (16 KiB), baseline x86-64 only.

/// `crate::SLICE_TABLES[t][i]` without a bounds check.
#[inline(always)]
fn t(t: usize, i: u32) -> u32 {
    // SAFETY: callers pass t < 16 (constants) and i masked to 0..=255.
    unsafe { *crate::SLICE_TABLES.get_unchecked(t).get_unchecked((i & 0xff) as usize) }
}

/// Reads a little-endian u32.
///
/// # Safety
///
/// `p..p+4` must be readable.
#[inline(always)]
unsafe fn le32(p: *const u8) -> u32 {
    // SAFETY: caller's contract; unaligned read.
    u32::from_le(unsafe { (p as *const u32).read_unaligned() })
}

/// Runs the raw CRC register `s` over `n` bytes at `p`.
///
/// # Safety
///
/// `p..p+n` must be readable.
#[inline(always)]
pub unsafe fn update(mut s: u32, mut p: *const u8, mut n: usize) -> u32 {
    while n >= 16 {
        // SAFETY: 16 bytes remain at p.
        let (a, b, c, d) = unsafe { (le32(p) ^ s, le32(p.add(4)), le32(p.add(8)), le32(p.add(12))) };
        s = t(15, a) ^ t(14, a >> 8) ^ t(13, a >> 16) ^ t(12, a >> 24)
            ^ t(11, b) ^ t(10, b >> 8) ^ t(9, b >> 16) ^ t(8, b >> 24)
            ^ t(7, c) ^ t(6, c >> 8) ^ t(5, c >> 16) ^ t(4, c >> 24)
            ^ t(3, d) ^ t(2, d >> 8) ^ t(1, d >> 16) ^ t(0, d >> 24);
        // SAFETY: stays within (or one past) the caller's range.
        p = unsafe { p.add(16) };
        n -= 16;
    }
    while n > 0 {
        // SAFETY: n > 0 bytes remain at p.
        unsafe {
            s = (s >> 8) ^ t(0, s ^ *p as u32);
            p = p.add(1);
        }
        n -= 1;
    }
    s
}
