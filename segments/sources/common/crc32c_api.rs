// SPDX-License-Identifier: GPL-2.0
//! The `crc32c` contract around a raw-register update: a null buffer returns
//! `crc` unchanged; otherwise `~update(~crc, buf, len)`.

/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null, and `update` must be
/// safe to call on that range.
#[inline(always)]
pub unsafe fn crc32c(crc: u32, buf: *const u8, len: usize, update: impl FnOnce(u32, *const u8, usize) -> u32) -> u32 {
    if buf.is_null() {
        return crc;
    }
    !update(!crc, buf, len)
}
