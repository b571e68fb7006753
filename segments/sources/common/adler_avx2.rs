// SPDX-License-Identifier: GPL-2.0
//! Adler-32 sums with AVX2: 32-byte blocks, four per step. Per block,
//! `vpsadbw` adds the bytes (into `a`), `vpmaddubsw`+`vpmaddwd` add them
//! weighted 32..1 (into `b`), and `vs` accumulates `a` before each block, so
//! that b grows by 32*vs + weighted sums + n*a over a chunk of n bytes.

use core::arch::x86_64::*;

use crate::zlib_adler::{scalar, BASE, NMAX};

const BLOCK: usize = 32;
const CHUNK: usize = NMAX / BLOCK * BLOCK;

/// Sum of the eight u32 lanes.
#[inline(always)]
fn hsum(v: __m256i) -> u64 {
    // SAFETY: AVX2 is enabled for the crate.
    unsafe {
        let x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0b01_00_11_10));
        let x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0b10_11_00_01));
        _mm_cvtsi128_si32(x) as u32 as u64
    }
}

/// Sums `n` bytes at `p` into `a`, `b` (both below `BASE`).
///
/// # Safety
///
/// `p..p+n` must be readable.
#[inline(always)]
pub unsafe fn update(mut a: u32, mut b: u32, mut p: *const u8, mut n: usize) -> (u32, u32) {
    // SAFETY: AVX2 is enabled; every load reads 32 bytes with at least that
    // many remaining in the current chunk, inside the caller's range.
    unsafe {
        let zero = _mm256_setzero_si256();
        let ones = _mm256_set1_epi16(1);
        let w = _mm256_setr_epi8(
            32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7,
            6, 5, 4, 3, 2, 1,
        );
        let ld = |p: *const u8| _mm256_loadu_si256(p as *const __m256i);
        let weigh = |d: __m256i| _mm256_madd_epi16(_mm256_maddubs_epi16(d, w), ones);
        while n >= BLOCK {
            let len = if n < CHUNK { n / BLOCK * BLOCK } else { CHUNK };
            n -= len;
            let mut left = len;
            let mut va = zero;
            let mut vs = zero;
            let mut vb = zero;
            while left >= 4 * BLOCK {
                let (d0, d1, d2, d3) = (ld(p), ld(p.add(32)), ld(p.add(64)), ld(p.add(96)));
                vs = _mm256_add_epi32(vs, va);
                va = _mm256_add_epi32(va, _mm256_sad_epu8(d0, zero));
                vs = _mm256_add_epi32(vs, va);
                va = _mm256_add_epi32(va, _mm256_sad_epu8(d1, zero));
                vs = _mm256_add_epi32(vs, va);
                va = _mm256_add_epi32(va, _mm256_sad_epu8(d2, zero));
                vs = _mm256_add_epi32(vs, va);
                va = _mm256_add_epi32(va, _mm256_sad_epu8(d3, zero));
                let t = _mm256_add_epi32(_mm256_add_epi32(weigh(d0), weigh(d1)), _mm256_add_epi32(weigh(d2), weigh(d3)));
                vb = _mm256_add_epi32(vb, t);
                p = p.add(4 * BLOCK);
                left -= 4 * BLOCK;
            }
            while left >= BLOCK {
                let d = ld(p);
                vs = _mm256_add_epi32(vs, va);
                va = _mm256_add_epi32(va, _mm256_sad_epu8(d, zero));
                vb = _mm256_add_epi32(vb, weigh(d));
                p = p.add(BLOCK);
                left -= BLOCK;
            }
            let base = BASE as u64;
            let bb = b as u64 + len as u64 * a as u64 + BLOCK as u64 * hsum(vs) + hsum(vb);
            a = ((a as u64 + hsum(va)) % base) as u32;
            b = (bb % base) as u32;
        }
        scalar(a, b, p, n)
    }
}
