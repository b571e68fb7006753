// SPDX-License-Identifier: GPL-2.0
//! The compile-time CRC arithmetic the segments use (sources/common/
//! crc_math.rs, included here as is) against a plain bit-at-a-time CRC: the
//! folding constants really move a chunk forward, the Barrett constants
//! really reduce, the tables really are CRCs, for both polynomials.

#[path = "../sources/common/crc_math.rs"]
mod crc_math;

use crc_math::{barrett_mu, byte_table, fold, k, poly_reflected, slice_tables, xpow_mod};

const POLYS: [u64; 2] = [0x1_04c1_1db7, 0x1_1edc_6f41];

/// Bit-at-a-time reflected CRC register update (no inversion).
fn crc_bits(poly: u64, mut s: u32, data: &[u8]) -> u32 {
    let r = crc_math::reflect(poly & 0xffff_ffff, 32) as u32;
    for &b in data {
        s ^= u32::from(b);
        for _ in 0..8 {
            s = if s & 1 != 0 { (s >> 1) ^ r } else { s >> 1 };
        }
    }
    s
}

/// Carry-less 64x64 multiplication.
fn clmul(a: u64, b: u64) -> u128 {
    (0..64)
        .filter(|i| b >> i & 1 != 0)
        .fold(0u128, |acc, i| acc ^ (u128::from(a) << i))
}

struct Xs(u64);
impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chunk(&mut self) -> u128 {
        u128::from(self.next()) | (u128::from(self.next()) << 64)
    }
}

#[test]
fn xpow_mod_is_polynomial_remainder() {
    for poly in POLYS {
        for n in 0..300u32 {
            // x^n mod P by long division over u128/Vec bits.
            let mut bits = vec![0u8; n as usize + 1];
            bits[n as usize] = 1;
            for d in (32..=n as usize).rev() {
                if bits[d] == 1 {
                    for j in 0..=32 {
                        bits[d - 32 + j] ^= (poly >> j & 1) as u8;
                    }
                }
            }
            let want = (0..32.min(bits.len())).fold(0u32, |acc, j| acc | (u32::from(bits[j]) << j));
            assert_eq!(xpow_mod(n, poly), want, "poly {poly:#x} n {n}");
        }
    }
}

#[test]
fn fold_constants_move_a_chunk_forward() {
    let mut r = Xs(0x1234_5678_9abc_def1);
    for poly in POLYS {
        for bits in [128u32, 256, 384, 512, 1024, 1536, 2048] {
            let kk = fold(bits, poly);
            for _ in 0..20 {
                let x = r.chunk();
                let y = clmul(x as u64, kk.0) ^ clmul((x >> 64) as u64, kk.1);
                let mut m1 = x.to_le_bytes().to_vec();
                m1.extend(std::iter::repeat_n(0u8, bits as usize / 8));
                assert_eq!(
                    crc_bits(poly, 0, &m1),
                    crc_bits(poly, 0, &y.to_le_bytes()),
                    "poly {poly:#x} by {bits}"
                );
            }
        }
    }
}

#[test]
fn barrett_reduction_gives_the_crc_of_a_chunk() {
    let mut r = Xs(0x0fed_cba9_8765_4321);
    for poly in POLYS {
        let (k95, k63, mu, p33) = (
            k(95, poly),
            k(63, poly),
            barrett_mu(poly),
            poly_reflected(poly),
        );
        for _ in 0..200 {
            let x = r.chunk();
            let u = clmul(x as u64, k95) ^ (x >> 64);
            let w = clmul((u & 0xffff_ffff) as u64, k63) ^ (u >> 32);
            let q = clmul((w & 0xffff_ffff) as u64, mu) & 0xffff_ffff;
            let crc = ((clmul(q as u64, p33) ^ w) >> 32) as u32;
            assert_eq!(crc, crc_bits(poly, 0, &x.to_le_bytes()), "poly {poly:#x}");
        }
    }
}

#[test]
fn stream_shift_constants_shift_by_the_block() {
    // crc32c's three streams: reg * x^(8n) mod P == crc32(0, clmul(reg, k(8n-33))).
    let poly = POLYS[1];
    let mut r = Xs(77);
    for n in [256u32, 512, 4096, 8192] {
        let kk = k(8 * n - 33, poly);
        for _ in 0..20 {
            let s = r.next() as u32;
            let v = clmul(u64::from(s), kk) as u64;
            let via_clmul = crc_bits(poly, 0, &v.to_le_bytes());
            let direct = crc_bits(poly, s, &vec![0u8; n as usize]);
            assert_eq!(via_clmul, direct, "shift by {n} bytes");
        }
    }
}

#[test]
fn tables_are_crcs_of_bytes_followed_by_zeros() {
    for poly in POLYS {
        let t0 = byte_table(poly);
        let t: [[u32; 256]; 16] = slice_tables::<16>(poly);
        assert_eq!(t[0], t0);
        for (kz, row) in t.iter().enumerate() {
            for b in [0u8, 1, 0x80, 0xff, 0x5a] {
                let mut m = vec![b];
                m.extend(std::iter::repeat_n(0u8, kz));
                assert_eq!(
                    row[b as usize],
                    crc_bits(poly, 0, &m),
                    "table {kz} byte {b}"
                );
            }
        }
    }
    // The check values of both standards.
    assert_eq!(!crc_bits(POLYS[0], !0, b"123456789"), 0xcbf4_3926);
    assert_eq!(!crc_bits(POLYS[1], !0, b"123456789"), 0xe306_9283);
}
