// SPDX-License-Identifier: GPL-2.0
//! zlib's conventions around the raw CRC register: a null buffer gives 0, the
//! incoming CRC's high 32 bits are ignored, the register is inverted on the
//! way in and out.

/// `crc32_z` over a raw-register update function.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null, and `update` must be
/// safe to call on that range.
#[inline(always)]
pub unsafe fn crc32_z(crc: u64, buf: *const u8, len: usize, update: impl FnOnce(u32, *const u8, usize) -> u32) -> u64 {
    if buf.is_null() {
        return 0;
    }
    u64::from(!update(!(crc as u32), buf, len))
}
