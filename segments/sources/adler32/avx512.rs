// SPDX-License-Identifier: GPL-2.0
//! zlib's `adler32`/`adler32_z` with AVX-512BW byte sums (AVX2 below 64 bytes).
#![no_std]

#[path = "../common/zlib_adler.rs"]
mod zlib_adler;
#[path = "../common/adler_avx2.rs"]
mod adler_avx2;
#[path = "../common/adler_avx512.rs"]
mod adler_avx512;

/// `uLong adler32_z(uLong adler, const Bytef *buf, z_size_t len)`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
pub unsafe extern "C" fn adler32_z(adler: u64, buf: *const u8, len: usize) -> u64 {
    // SAFETY: caller's contract.
    unsafe { zlib_adler::adler32_z(adler, buf, len, |a, b, p, n| adler_avx512::update(a, b, p, n)) }
}

/// `uLong adler32(uLong adler, const Bytef *buf, uInt len)`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
pub unsafe extern "C" fn adler32(adler: u64, buf: *const u8, len: u32) -> u64 {
    // SAFETY: caller's contract.
    unsafe { zlib_adler::adler32_z(adler, buf, len as usize, |a, b, p, n| adler_avx512::update(a, b, p, n)) }
}
