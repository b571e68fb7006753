// SPDX-License-Identifier: GPL-2.0
//! zlib's `crc32`/`crc32_z` with VPCLMULQDQ folding on AVX-512 (PCLMULQDQ below 256 bytes).
#![no_std]

#[path = "../common/crc_math.rs"]
mod crc_math;
#[path = "../common/crc_bytes.rs"]
mod crc_bytes;
#[path = "../common/fold_sse.rs"]
mod fold_sse;
#[path = "../common/fold_avx512.rs"]
mod fold_avx512;
#[path = "../common/zlib_crc32.rs"]
mod zlib_crc32;

/// zlib's CRC-32 polynomial, normal form with the x^32 term.
const POLY: u64 = 0x1_04c1_1db7;
static BYTE_TABLE: [u32; 256] = crc_math::byte_table(POLY);

/// `uLong crc32_z(uLong crc, const Bytef *buf, z_size_t len)`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
#[target_feature(enable = "avx512f,avx512vl,vpclmulqdq,pclmulqdq,sse4.1")]
pub unsafe extern "C" fn crc32_z(crc: u64, buf: *const u8, len: usize) -> u64 {
    // SAFETY: caller's contract.
    unsafe { zlib_crc32::crc32_z(crc, buf, len, |s, p, n| fold_avx512::update(s, p, n)) }
}

/// `uLong crc32(uLong crc, const Bytef *buf, uInt len)`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
#[target_feature(enable = "avx512f,avx512vl,vpclmulqdq,pclmulqdq,sse4.1")]
pub unsafe extern "C" fn crc32(crc: u64, buf: *const u8, len: u32) -> u64 {
    // SAFETY: caller's contract.
    unsafe { zlib_crc32::crc32_z(crc, buf, len as usize, |s, p, n| fold_avx512::update(s, p, n)) }
}
