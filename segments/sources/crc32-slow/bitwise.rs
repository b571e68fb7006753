// SPDX-License-Identifier: GPL-2.0
//! TEST-ONLY: zlib's `crc32`/`crc32_z`, one bit at a time. Correct, and
//! several times slower than zlib itself: `adaptctl auto` must inject it (it
//! looks like an opportunity) and then revert it as a regression. Built only
//! into the testing library (`build-library --testing`).
#![no_std]

#[path = "../common/zlib_crc32.rs"]
mod zlib_crc32;

#[path = "../common/crc32_bitwise.rs"]
mod crc32_bitwise;
use crc32_bitwise::update;

/// `uLong crc32_z(uLong crc, const Bytef *buf, z_size_t len)`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
pub unsafe extern "C" fn crc32_z(crc: u64, buf: *const u8, len: usize) -> u64 {
    // SAFETY: caller's contract.
    unsafe { zlib_crc32::crc32_z(crc, buf, len, |s, p, n| update(s, p, n)) }
}

/// `uLong crc32(uLong crc, const Bytef *buf, uInt len)`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null.
#[no_mangle]
pub unsafe extern "C" fn crc32(crc: u64, buf: *const u8, len: u32) -> u64 {
    // SAFETY: caller's contract.
    unsafe { zlib_crc32::crc32_z(crc, buf, len as usize, |s, p, n| update(s, p, n)) }
}
