// SPDX-License-Identifier: GPL-2.0
//! CRC-32C with the SSE4.2 `crc32` instruction. Long inputs run three
//! independent streams over consecutive thirds of a block (the instruction's
//! latency is three times its throughput), then combine them: a stream's
//! register shifted over the `n` bytes after it is register·x^(8n) mod P,
//! one `pclmulqdq` by x^(8n-33) mod P (made at compile time) followed by a
//! `crc32` of the 64-bit product.

use core::arch::x86_64::*;

use crate::crc_math::k;

const LONG: usize = 4096;
const SHORT: usize = 256;
const K_LONG: u64 = k(8 * LONG as u32 - 33, crate::POLY);
const K_LONG2: u64 = k(16 * LONG as u32 - 33, crate::POLY);
const K_SHORT: u64 = k(8 * SHORT as u32 - 33, crate::POLY);
const K_SHORT2: u64 = k(16 * SHORT as u32 - 33, crate::POLY);

/// Reads a little-endian u64.
///
/// # Safety
///
/// `p..p+8` must be readable.
#[inline(always)]
unsafe fn rd(p: *const u8) -> u64 {
    // SAFETY: caller's contract; unaligned read.
    u64::from_le(unsafe { (p as *const u64).read_unaligned() })
}

/// One block of `3 * B` bytes in three streams, combined.
///
/// # Safety
///
/// `p..p+3*B` must be readable.
#[inline(always)]
unsafe fn three_way<const B: usize>(s: u32, p: *const u8, k1: u64, k2: u64) -> u32 {
    // SAFETY: SSE4.2 and PCLMULQDQ are enabled for the crate; every read is
    // within p..p+3*B.
    unsafe {
        let (mut c0, mut c1, mut c2) = (u64::from(s), 0u64, 0u64);
        let mut i = 0;
        while i < B {
            c0 = _mm_crc32_u64(c0, rd(p.add(i)));
            c1 = _mm_crc32_u64(c1, rd(p.add(B + i)));
            c2 = _mm_crc32_u64(c2, rd(p.add(2 * B + i)));
            i += 8;
        }
        let a = _mm_clmulepi64_si128(_mm_cvtsi64_si128(c0 as i64), _mm_cvtsi64_si128(k2 as i64), 0x00);
        let b = _mm_clmulepi64_si128(_mm_cvtsi64_si128(c1 as i64), _mm_cvtsi64_si128(k1 as i64), 0x00);
        let v = _mm_cvtsi128_si64(_mm_xor_si128(a, b)) as u64;
        (_mm_crc32_u64(0, v) ^ c2) as u32
    }
}

/// Runs the raw CRC register `s` over `n` bytes at `p`.
///
/// # Safety
///
/// `p..p+n` must be readable.
#[inline(always)]
pub unsafe fn update(mut s: u32, mut p: *const u8, mut n: usize) -> u32 {
    // SAFETY: every read is within the caller's range (loop conditions).
    unsafe {
        while n >= 3 * LONG {
            s = three_way::<LONG>(s, p, K_LONG, K_LONG2);
            p = p.add(3 * LONG);
            n -= 3 * LONG;
        }
        while n >= 3 * SHORT {
            s = three_way::<SHORT>(s, p, K_SHORT, K_SHORT2);
            p = p.add(3 * SHORT);
            n -= 3 * SHORT;
        }
        let mut c = u64::from(s);
        while n >= 8 {
            c = _mm_crc32_u64(c, rd(p));
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
