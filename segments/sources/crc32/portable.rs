// SPDX-License-Identifier: GPL-2.0
//! zlib's `crc32`/`crc32_z`, slicing-by-16, baseline x86-64.
#![no_std]

#[path = "../common/crc_math.rs"]
mod crc_math;
#[path = "../common/crc_slice16.rs"]
mod crc_slice16;
#[path = "../common/zlib_crc32.rs"]
mod zlib_crc32;

/// zlib's CRC-32 polynomial, normal form with the x^32 term.
const POLY: u64 = 0x1_04c1_1db7;
static SLICE_TABLES: [[u32; 256]; 16] = crc_math::slice_tables::<16>(POLY);

/// `uLong crc32_z(uLong crc, const Bytef *buf, z_size_t len)`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
pub unsafe extern "C" fn crc32_z(crc: u64, buf: *const u8, len: usize) -> u64 {
    // SAFETY: caller's contract.
    unsafe { zlib_crc32::crc32_z(crc, buf, len, |s, p, n| crc_slice16::update(s, p, n)) }
}

/// `uLong crc32(uLong crc, const Bytef *buf, uInt len)`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
pub unsafe extern "C" fn crc32(crc: u64, buf: *const u8, len: u32) -> u64 {
    // SAFETY: caller's contract.
    unsafe { zlib_crc32::crc32_z(crc, buf, len as usize, |s, p, n| crc_slice16::update(s, p, n)) }
}
