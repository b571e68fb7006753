// SPDX-License-Identifier: GPL-2.0
//! `crc32c`: VPCLMULQDQ folding on AVX-512 from 256 bytes on; shorter
//! inputs and tails use the SSE4.2 `crc32` instruction (AVX-512F implies
//! SSE4.2).
#![no_std]

#[path = "../common/crc_math.rs"]
mod crc_math;
#[path = "../common/crc32c_api.rs"]
mod crc32c_api;
#[path = "../common/crc32c_hw_bytes.rs"]
mod crc_bytes;
#[path = "../common/fold_sse.rs"]
mod fold_sse;
#[path = "../common/fold_avx512.rs"]
mod fold_avx512;

/// The Castagnoli polynomial, normal form with the x^32 term.
const POLY: u64 = 0x1_1edc_6f41;

/// `uint32_t crc32c(uint32_t crc, const uint8_t *buf, size_t len)`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
#[target_feature(enable = "avx512f,avx512vl,vpclmulqdq,pclmulqdq,sse4.2")]
pub unsafe extern "C" fn crc32c(crc: u32, buf: *const u8, len: usize) -> u32 {
    // SAFETY: caller's contract.
    unsafe {
        crc32c_api::crc32c(crc, buf, len, |s, p, n| {
            if n < 256 {
                crc_bytes::update(s, p, n)
            } else {
                fold_avx512::update(s, p, n)
            }
        })
    }
}
