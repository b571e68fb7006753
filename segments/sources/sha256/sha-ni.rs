// SPDX-License-Identifier: GPL-2.0
//! `sha256_transform` with the SHA extensions (SHA-NI).
//!
//! `sha256rnds2` works on the state split as ABEF and CDGH (most significant
//! dword first) and does two rounds per instruction; `sha256msg1`/`msg2`
//! extend the message schedule four words at a time.
#![no_std]

use core::arch::x86_64::*;

#[path = "../common/sha256_k.rs"]
mod sha256_k;

/// Four rounds with message words `m` (already byte-swapped) and round
/// constants `K[4*i..4*i+4]`.
#[inline(always)]
fn rounds4(abef: &mut __m128i, cdgh: &mut __m128i, m: __m128i, i: usize) {
    // SAFETY: SHA and SSE4.1 are enabled for the crate; i < 16 (callers), so
    // the 16-byte read stays inside K.
    unsafe {
        let k = _mm_loadu_si128(sha256_k::K.as_ptr().add(4 * i) as *const __m128i);
        let wk = _mm_add_epi32(m, k);
        *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
        *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(wk, 0x0e));
    }
}

/// The next four schedule words from the previous sixteen (`w0` oldest).
#[inline(always)]
fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    // SAFETY: SHA and SSSE3 are enabled for the crate.
    unsafe {
        let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4));
        _mm_sha256msg2_epu32(t, w3)
    }
}

/// `void sha256_transform(uint32_t state[8], const uint8_t *block, size_t nblocks)`.
///
/// # Safety
///
/// `state[0..8]` must be readable and writable, `block[0..64*nblocks]`
/// readable.
#[no_mangle]
#[target_feature(enable = "sha,sse4.1")]
pub unsafe extern "C" fn sha256_transform(state: *mut u32, block: *const u8, nblocks: usize) {
    // SAFETY: reads and writes stay within state[0..8] and the nblocks
    // blocks, per the caller's contract.
    unsafe {
        let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        let dcba = _mm_loadu_si128(state as *const __m128i);
        let hgfe = _mm_loadu_si128(state.add(4) as *const __m128i);
        let cdab = _mm_shuffle_epi32(dcba, 0xb1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1b);
        let mut abef = _mm_alignr_epi8(cdab, efgh, 8);
        let mut cdgh = _mm_blend_epi16(efgh, cdab, 0xf0);

        let mut p = block;
        let mut left = nblocks;
        while left > 0 {
            let (abef0, cdgh0) = (abef, cdgh);
            let ld = |o: usize| _mm_shuffle_epi8(_mm_loadu_si128(p.add(o) as *const __m128i), swap);
            let mut w0 = ld(0);
            let mut w1 = ld(16);
            let mut w2 = ld(32);
            let mut w3 = ld(48);
            rounds4(&mut abef, &mut cdgh, w0, 0);
            rounds4(&mut abef, &mut cdgh, w1, 1);
            rounds4(&mut abef, &mut cdgh, w2, 2);
            rounds4(&mut abef, &mut cdgh, w3, 3);
            let mut i = 4;
            while i < 16 {
                let w4 = schedule(w0, w1, w2, w3);
                rounds4(&mut abef, &mut cdgh, w4, i);
                (w0, w1, w2, w3) = (w1, w2, w3, w4);
                i += 1;
            }
            abef = _mm_add_epi32(abef, abef0);
            cdgh = _mm_add_epi32(cdgh, cdgh0);
            p = p.add(64);
            left -= 1;
        }

        let feba = _mm_shuffle_epi32(abef, 0x1b);
        let dchg = _mm_shuffle_epi32(cdgh, 0xb1);
        _mm_storeu_si128(state as *mut __m128i, _mm_blend_epi16(feba, dchg, 0xf0));
        _mm_storeu_si128(state.add(4) as *mut __m128i, _mm_alignr_epi8(dchg, feba, 8));
    }
}
