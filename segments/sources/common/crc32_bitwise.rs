// SPDX-License-Identifier: GPL-2.0
//! CRC-32/ISO-HDLC on the raw register, one bit at a time: correct and
//! deliberately slow (the testing segments use it).

/// Reflected CRC-32/ISO-HDLC polynomial.
const POLY_REFLECTED: u32 = 0xedb8_8320;

/// # Safety
///
/// `buf..buf+len` must be readable.
#[inline(always)]
pub unsafe fn update(mut crc: u32, buf: *const u8, len: usize) -> u32 {
    let mut i = 0;
    while i < len {
        // SAFETY: `i < len`, inside the caller's readable range.
        crc ^= u32::from(unsafe { *buf.add(i) });
        let mut bit = 0;
        while bit < 8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (POLY_REFLECTED & mask);
            bit += 1;
        }
        i += 1;
    }
    crc
}
