// SPDX-License-Identifier: GPL-2.0
//! zlib's Adler-32 conventions around a core update: component split, the
//! one-byte and short-input paths with zlib's exact (possibly unreduced)
//! results, and a scalar core that the vector variants use for tails.

/// Largest prime below 2^16.
pub const BASE: u32 = 65521;
/// Most bytes summed before `b` could overflow 32 bits (with a, b < BASE).
pub const NMAX: usize = 5552;

/// `adler32_z` over a core `update(a, b, p, n)` taking and returning sums
/// below `BASE`.
///
/// # Safety
///
/// `buf..buf+len` must be readable unless `buf` is null, and `update` must be
/// safe to call on that range.
#[inline(always)]
pub unsafe fn adler32_z(
    adler: u64,
    buf: *const u8,
    len: usize,
    update: impl FnOnce(u32, u32, *const u8, usize) -> (u32, u32),
) -> u64 {
    let base = BASE as u64;
    let mut sum2 = (adler >> 16) & 0xffff;
    let mut a = adler & 0xffff;
    if buf.is_null() {
        return 1;
    }
    if len == 1 {
        // SAFETY: one readable byte (caller's contract).
        a += u64::from(unsafe { *buf });
        if a >= base {
            a -= base;
        }
        sum2 += a;
        if sum2 >= base {
            sum2 -= base;
        }
        return a | (sum2 << 16);
    }
    if len < 16 {
        let mut i = 0;
        while i < len {
            // SAFETY: i < len readable bytes.
            a += u64::from(unsafe { *buf.add(i) });
            sum2 += a;
            i += 1;
        }
        if a >= base {
            a -= base;
        }
        return a | ((sum2 % base) << 16);
    }
    let (a, b) = update((a % base) as u32, (sum2 % base) as u32, buf, len);
    u64::from(a) | (u64::from(b) << 16)
}

/// Scalar core: sums `n` bytes at `p` into `a`, `b` (both below `BASE`).
///
/// # Safety
///
/// `p..p+n` must be readable.
#[inline(always)]
pub unsafe fn scalar(mut a: u32, mut b: u32, mut p: *const u8, mut n: usize) -> (u32, u32) {
    while n > 0 {
        let mut chunk = if n < NMAX { n } else { NMAX };
        n -= chunk;
        while chunk >= 8 {
            let mut i = 0;
            while i < 8 {
                // SAFETY: at least 8 bytes remain at p.
                a += u32::from(unsafe { *p.add(i) });
                b += a;
                i += 1;
            }
            // SAFETY: within the caller's range.
            p = unsafe { p.add(8) };
            chunk -= 8;
        }
        while chunk > 0 {
            // SAFETY: chunk > 0 bytes remain at p.
            unsafe {
                a += u32::from(*p);
                p = p.add(1);
            }
            b += a;
            chunk -= 1;
        }
        a %= BASE;
        b %= BASE;
    }
    (a, b)
}
