// SPDX-License-Identifier: GPL-2.0
//! Compile-time arithmetic over GF(2)[x] for reflected 32-bit CRCs: the
//! folding and Barrett constants and the lookup tables are all derived here
//! from the polynomial, never typed in.
//!
//! Conventions. `poly` is the CRC polynomial in normal form with its x^32 term
//! (zlib's CRC-32: 0x1_04C1_1DB7; CRC-32C: 0x1_1EDC_6F41). A 128-bit chunk
//! loaded little-endian from the message holds the coefficient of x^(127-i)
//! in bit i. With these, `pclmulqdq` of a message qword by `k(n)` (a 32-bit
//! reflected constant) yields the product times x^33, hence the `-33` and
//! `+31` in the fold distances below.

#![allow(dead_code)]

/// x^n mod poly, normal form (bit i is the coefficient of x^i).
pub const fn xpow_mod(n: u32, poly: u64) -> u32 {
    let mut r: u64 = 1;
    let mut i = 0;
    while i < n {
        r <<= 1;
        if r & (1 << 32) != 0 {
            r ^= poly;
        }
        i += 1;
    }
    r as u32
}

/// Bit-reverses the low `bits` bits of `v`.
pub const fn reflect(v: u64, bits: u32) -> u64 {
    let mut r = 0;
    let mut i = 0;
    while i < bits {
        if v >> i & 1 != 0 {
            r |= 1 << (bits - 1 - i);
        }
        i += 1;
    }
    r
}

/// The reflected constant x^n mod poly, as multiplied by `pclmulqdq`.
pub const fn k(n: u32, poly: u64) -> u64 {
    reflect(xpow_mod(n, poly) as u64, 32)
}

/// Constants to fold a 128-bit chunk forward by `bits` bits: the low qword
/// (higher-degree half) is multiplied by `.0`, the high qword by `.1`.
pub const fn fold(bits: u32, poly: u64) -> (u64, u64) {
    (k(bits + 31, poly), k(bits - 33, poly))
}

/// floor(x^64 / poly), reflected over 33 bits (Barrett's mu).
pub const fn barrett_mu(poly: u64) -> u64 {
    // Long division of x^64 by poly (degree 32): quotient has degree 32.
    let mut rem: u128 = 1 << 64;
    let mut q: u64 = 0;
    let mut d = 64;
    while d >= 32 {
        if rem >> d & 1 != 0 {
            rem ^= (poly as u128) << (d - 32);
            q |= 1 << (d - 32);
        }
        d -= 1;
    }
    reflect(q, 33)
}

/// The polynomial reflected over 33 bits.
pub const fn poly_reflected(poly: u64) -> u64 {
    reflect(poly, 33)
}

/// Byte-at-a-time table of the reflected CRC (slice 0 of slicing-by-N).
pub const fn byte_table(poly: u64) -> [u32; 256] {
    let rpoly = reflect(poly & 0xffff_ffff, 32) as u32;
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut j = 0;
        while j < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ rpoly } else { c >> 1 };
            j += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// Slicing-by-N tables: `t[k][b]` is the CRC of byte `b` followed by `k` zero
/// bytes.
pub const fn slice_tables<const N: usize>(poly: u64) -> [[u32; 256]; N] {
    let t0 = byte_table(poly);
    let mut t = [[0u32; 256]; N];
    t[0] = t0;
    let mut k = 1;
    while k < N {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev >> 8) ^ t0[(prev & 0xff) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}
