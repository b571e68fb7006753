// SPDX-License-Identifier: GPL-2.0
//! Reflected CRC-32 by carry-less multiplication on 512-bit vectors
//! (VPCLMULQDQ, AVX-512F): four 64-byte accumulators folded 256 bytes per
//! step, combined into one, narrowed to 128 bits, then finished by
//! `crate::fold_sse` (folding, Barrett reduction, byte tail). Inputs under
//! 256 bytes go straight to `crate::fold_sse`.

use core::arch::x86_64::*;

use crate::crc_math::fold;
use crate::fold_sse::{fold16, pair};

const FOLD_2048: (u64, u64) = fold(2048, crate::POLY);
const FOLD_1536: (u64, u64) = fold(1536, crate::POLY);
const FOLD_1024: (u64, u64) = fold(1024, crate::POLY);
const FOLD_512: (u64, u64) = fold(512, crate::POLY);
const FOLD_384: (u64, u64) = fold(384, crate::POLY);
const FOLD_256: (u64, u64) = fold(256, crate::POLY);
const FOLD_128: (u64, u64) = fold(128, crate::POLY);

/// The constant pair in all four 128-bit lanes.
#[inline(always)]
fn wide(c: (u64, u64)) -> __m512i {
    // SAFETY: AVX-512F is enabled for the crate.
    unsafe { _mm512_broadcast_i32x4(pair(c)) }
}

/// Folds each lane of `z` forward and adds `d`.
#[inline(always)]
fn fold64(z: __m512i, k: __m512i, d: __m512i) -> __m512i {
    // SAFETY: VPCLMULQDQ and AVX-512F are enabled for the crate.
    unsafe {
        _mm512_ternarylogic_epi64(
            _mm512_clmulepi64_epi128(z, k, 0x00),
            _mm512_clmulepi64_epi128(z, k, 0x11),
            d,
            0x96,
        )
    }
}

/// Loads 64 bytes.
///
/// # Safety
///
/// `p..p+64` must be readable.
#[inline(always)]
unsafe fn load(p: *const u8) -> __m512i {
    // SAFETY: caller's contract; unaligned load.
    unsafe { _mm512_loadu_si512(p as *const _) }
}

/// Runs the raw CRC register `s` over `n` bytes at `p`.
///
/// # Safety
///
/// `p..p+n` must be readable.
#[inline(always)]
pub unsafe fn update(s: u32, mut p: *const u8, mut n: usize) -> u32 {
    if n < 256 {
        // SAFETY: caller's contract.
        return unsafe { crate::fold_sse::update(s, p, n) };
    }
    // SAFETY: every load reads 64 bytes at p with at least that many
    // remaining (loop conditions), per the caller's contract.
    unsafe {
        let init = _mm512_zextsi128_si512(_mm_cvtsi32_si128(s as i32));
        let mut z0 = _mm512_xor_si512(load(p), init);
        let mut z1 = load(p.add(64));
        let mut z2 = load(p.add(128));
        let mut z3 = load(p.add(192));
        p = p.add(256);
        n -= 256;
        let k4 = wide(FOLD_2048);
        while n >= 256 {
            z0 = fold64(z0, k4, load(p));
            z1 = fold64(z1, k4, load(p.add(64)));
            z2 = fold64(z2, k4, load(p.add(128)));
            z3 = fold64(z3, k4, load(p.add(192)));
            p = p.add(256);
            n -= 256;
        }
        let mut z = fold64(z0, wide(FOLD_1536), fold64(z1, wide(FOLD_1024), fold64(z2, wide(FOLD_512), z3)));
        let k1 = wide(FOLD_512);
        while n >= 64 {
            z = fold64(z, k1, load(p));
            p = p.add(64);
            n -= 64;
        }
        let x0 = _mm512_extracti32x4_epi32(z, 0);
        let x1 = _mm512_extracti32x4_epi32(z, 1);
        let x2 = _mm512_extracti32x4_epi32(z, 2);
        let x3 = _mm512_extracti32x4_epi32(z, 3);
        let x = _mm_ternarylogic_epi64(fold16(x0, pair(FOLD_384)), fold16(x1, pair(FOLD_256)), x3, 0x96);
        let x = _mm_xor_si128(x, fold16(x2, pair(FOLD_128)));
        let (s, p, n) = crate::fold_sse::finish(x, p, n);
        crate::crc_bytes::update(s, p, n)
    }
}
