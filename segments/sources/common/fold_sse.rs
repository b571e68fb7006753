// SPDX-License-Identifier: GPL-2.0
//! Reflected CRC-32 by carry-less multiplication on 128-bit lanes (PCLMULQDQ,
//! SSE4.1): four chunks folded in parallel, 64 bytes per step, then one
//! chunk, then a Barrett reduction. The polynomial is `crate::POLY`; every
//! constant comes from `crate::crc_math` at compile time.

use core::arch::x86_64::*;

use crate::crc_math::{barrett_mu, fold, k, poly_reflected};

const FOLD_512: (u64, u64) = fold(512, crate::POLY);
const FOLD_128: (u64, u64) = fold(128, crate::POLY);
const K95: u64 = k(95, crate::POLY);
const K63: u64 = k(63, crate::POLY);
const MU: u64 = barrett_mu(crate::POLY);
const P33: u64 = poly_reflected(crate::POLY);

/// Builds the 128-bit constant (low qword, high qword).
#[inline(always)]
pub fn pair(c: (u64, u64)) -> __m128i {
    // SAFETY: SSE2 is baseline on x86-64.
    unsafe { _mm_set_epi64x(c.1 as i64, c.0 as i64) }
}

/// Folds `x` forward by the distance `k` was made for.
#[inline(always)]
pub fn fold16(x: __m128i, k: __m128i) -> __m128i {
    // SAFETY: the crate is compiled with PCLMULQDQ enabled and only called
    // after the variant's features were checked.
    unsafe { _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)) }
}

/// Loads 16 bytes.
///
/// # Safety
///
/// `p..p+16` must be readable.
#[inline(always)]
pub unsafe fn load(p: *const u8) -> __m128i {
    // SAFETY: caller's contract; unaligned load.
    unsafe { _mm_loadu_si128(p as *const __m128i) }
}

/// The raw CRC register value of the 128-bit chunk `x` (its CRC with a zero
/// register): two folds down to 64 bits, then Barrett.
#[inline(always)]
pub fn reduce128(x: __m128i) -> u32 {
    // SAFETY: PCLMULQDQ and SSE4.1 are enabled for the crate.
    unsafe {
        let mask32 = _mm_set_epi32(0, 0, 0, -1);
        let k = _mm_set_epi64x(K63 as i64, K95 as i64);
        let u = _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_srli_si128(x, 8));
        let w = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(u, mask32), k, 0x10), _mm_srli_si128(u, 4));
        let m = _mm_set_epi64x(P33 as i64, MU as i64);
        let q = _mm_clmulepi64_si128(_mm_and_si128(w, mask32), m, 0x00);
        let r = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(q, mask32), m, 0x10), w);
        _mm_extract_epi32(r, 1) as u32
    }
}

/// Folds the 16-byte chunks at `p` into `x` while at least 16 bytes remain;
/// returns the reduced register and the unconsumed tail.
///
/// # Safety
///
/// `p..p+n` must be readable.
#[inline(always)]
pub unsafe fn finish(mut x: __m128i, mut p: *const u8, mut n: usize) -> (u32, *const u8, usize) {
    let k1 = pair(FOLD_128);
    while n >= 16 {
        // SAFETY: at least 16 bytes remain at p.
        unsafe {
            x = _mm_xor_si128(fold16(x, k1), load(p));
            p = p.add(16);
        }
        n -= 16;
    }
    (reduce128(x), p, n)
}

/// Runs the raw CRC register `s` over `n` bytes at `p`.
///
/// # Safety
///
/// `p..p+n` must be readable.
#[inline(always)]
pub unsafe fn update(s: u32, mut p: *const u8, mut n: usize) -> u32 {
    if n < 16 {
        // SAFETY: caller's contract.
        return unsafe { crate::crc_bytes::update(s, p, n) };
    }
    // SAFETY: every load below reads 16 bytes at p with at least that many
    // remaining (checked by the loop conditions), per the caller's contract.
    unsafe {
        let init = _mm_cvtsi32_si128(s as i32);
        let x;
        if n >= 64 {
            let mut x0 = _mm_xor_si128(load(p), init);
            let mut x1 = load(p.add(16));
            let mut x2 = load(p.add(32));
            let mut x3 = load(p.add(48));
            p = p.add(64);
            n -= 64;
            let k4 = pair(FOLD_512);
            while n >= 64 {
                x0 = _mm_xor_si128(fold16(x0, k4), load(p));
                x1 = _mm_xor_si128(fold16(x1, k4), load(p.add(16)));
                x2 = _mm_xor_si128(fold16(x2, k4), load(p.add(32)));
                x3 = _mm_xor_si128(fold16(x3, k4), load(p.add(48)));
                p = p.add(64);
                n -= 64;
            }
            let k1 = pair(FOLD_128);
            let mut y = _mm_xor_si128(fold16(x0, k1), x1);
            y = _mm_xor_si128(fold16(y, k1), x2);
            x = _mm_xor_si128(fold16(y, k1), x3);
        } else {
            x = _mm_xor_si128(load(p), init);
            p = p.add(16);
            n -= 16;
        }
        let (s, p, n) = finish(x, p, n);
        crate::crc_bytes::update(s, p, n)
    }
}
