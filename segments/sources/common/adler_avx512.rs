// SPDX-License-Identifier: GPL-2.0
//! Adler-32 sums with AVX-512BW: 64-byte blocks, four per step, weights
//! 64..1; otherwise as `adler_avx2`, which handles what is left below 64
//! bytes.

use core::arch::x86_64::*;

use crate::zlib_adler::{BASE, NMAX};

const BLOCK: usize = 64;
const CHUNK: usize = NMAX / BLOCK * BLOCK;

/// Sums `n` bytes at `p` into `a`, `b` (both below `BASE`).
///
/// # Safety
///
/// `p..p+n` must be readable.
#[inline(always)]
pub unsafe fn update(mut a: u32, mut b: u32, mut p: *const u8, mut n: usize) -> (u32, u32) {
    // SAFETY: AVX-512F/BW are enabled; every load reads 64 bytes with at
    // least that many remaining in the current chunk, inside the caller's
    // range.
    unsafe {
        let zero = _mm512_setzero_si512();
        let ones = _mm512_set1_epi16(1);
        let w = _mm512_set_epi8(
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
            29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53,
            54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
        );
        let ld = |p: *const u8| _mm512_loadu_si512(p as *const _);
        let weigh = |d: __m512i| _mm512_madd_epi16(_mm512_maddubs_epi16(d, w), ones);
        while n >= BLOCK {
            let len = if n < CHUNK { n / BLOCK * BLOCK } else { CHUNK };
            n -= len;
            let mut left = len;
            let mut va = zero;
            let mut vs = zero;
            let mut vb = zero;
            while left >= 4 * BLOCK {
                let (d0, d1, d2, d3) = (ld(p), ld(p.add(64)), ld(p.add(128)), ld(p.add(192)));
                vs = _mm512_add_epi32(vs, va);
                va = _mm512_add_epi32(va, _mm512_sad_epu8(d0, zero));
                vs = _mm512_add_epi32(vs, va);
                va = _mm512_add_epi32(va, _mm512_sad_epu8(d1, zero));
                vs = _mm512_add_epi32(vs, va);
                va = _mm512_add_epi32(va, _mm512_sad_epu8(d2, zero));
                vs = _mm512_add_epi32(vs, va);
                va = _mm512_add_epi32(va, _mm512_sad_epu8(d3, zero));
                let t = _mm512_add_epi32(_mm512_add_epi32(weigh(d0), weigh(d1)), _mm512_add_epi32(weigh(d2), weigh(d3)));
                vb = _mm512_add_epi32(vb, t);
                p = p.add(4 * BLOCK);
                left -= 4 * BLOCK;
            }
            while left >= BLOCK {
                let d = ld(p);
                vs = _mm512_add_epi32(vs, va);
                va = _mm512_add_epi32(va, _mm512_sad_epu8(d, zero));
                vb = _mm512_add_epi32(vb, weigh(d));
                p = p.add(BLOCK);
                left -= BLOCK;
            }
            let base = BASE as u64;
            let sum = |v: __m512i| _mm512_reduce_add_epi32(v) as u32 as u64;
            let bb = b as u64 + len as u64 * a as u64 + BLOCK as u64 * sum(vs) + sum(vb);
            a = ((a as u64 + sum(va)) % base) as u32;
            b = (bb % base) as u32;
        }
        crate::adler_avx2::update(a, b, p, n)
    }
}
