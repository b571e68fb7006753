// SPDX-License-Identifier: GPL-2.0
//! `crc32c`: SSE4.2 `crc32` instruction, three streams combined with PCLMULQDQ.
#![no_std]

#[path = "../common/crc_math.rs"]
mod crc_math;
#[path = "../common/crc32c_api.rs"]
mod crc32c_api;
#[path = "../common/crc32c_sse42.rs"]
mod crc32c_sse42;

/// The Castagnoli polynomial, normal form with the x^32 term.
const POLY: u64 = 0x1_1edc_6f41;

/// `uint32_t crc32c(uint32_t crc, const uint8_t *buf, size_t len)`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
#[target_feature(enable = "sse4.2,pclmulqdq")]
pub unsafe extern "C" fn crc32c(crc: u32, buf: *const u8, len: usize) -> u32 {
    // SAFETY: caller's contract.
    unsafe { crc32c_api::crc32c(crc, buf, len, |s, p, n| crc32c_sse42::update(s, p, n)) }
}
