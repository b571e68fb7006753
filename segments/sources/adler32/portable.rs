// SPDX-License-Identifier: GPL-2.0
//! zlib's `adler32`/`adler32_z`, unrolled scalar sums, baseline x86-64.
#![no_std]

#[path = "../common/zlib_adler.rs"]
mod zlib_adler;

/// `uLong adler32_z(uLong adler, const Bytef *buf, z_size_t len)`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
pub unsafe extern "C" fn adler32_z(adler: u64, buf: *const u8, len: usize) -> u64 {
    // SAFETY: caller's contract.
    unsafe { zlib_adler::adler32_z(adler, buf, len, |a, b, p, n| zlib_adler::scalar(a, b, p, n)) }
}

/// `uLong adler32(uLong adler, const Bytef *buf, uInt len)`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
pub unsafe extern "C" fn adler32(adler: u64, buf: *const u8, len: u32) -> u64 {
    // SAFETY: caller's contract.
    unsafe { zlib_adler::adler32_z(adler, buf, len as usize, |a, b, p, n| zlib_adler::scalar(a, b, p, n)) }
}
