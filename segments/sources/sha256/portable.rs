// SPDX-License-Identifier: GPL-2.0
//! `sha256_transform` in plain scalar code (FIPS 180-4 §6.2.2), baseline
//! x86-64.
#![no_std]

#[path = "../common/sha256_k.rs"]
mod sha256_k;

/// `void sha256_transform(uint32_t state[8], const uint8_t *block, size_t nblocks)`.
///
/// # Safety
///
/// `state[0..8]` must be readable and writable, `block[0..64*nblocks]`
/// readable.
#[no_mangle]
pub unsafe extern "C" fn sha256_transform(state: *mut u32, block: *const u8, nblocks: usize) {
    // SAFETY: reads and writes stay within state[0..8] and the nblocks
    // blocks (caller's contract); array indices are below their lengths by
    // the loop bounds.
    unsafe {
        let mut h = [0u32; 8];
        let mut j = 0;
        while j < 8 {
            *h.get_unchecked_mut(j) = *state.add(j);
            j += 1;
        }
        let mut p = block;
        let mut left = nblocks;
        while left > 0 {
            let mut w = [0u32; 64];
            let mut t = 0;
            while t < 16 {
                *w.get_unchecked_mut(t) = u32::from_be((p.add(4 * t) as *const u32).read_unaligned());
                t += 1;
            }
            while t < 64 {
                let w15 = *w.get_unchecked(t - 15);
                let w2 = *w.get_unchecked(t - 2);
                let s0 = w15.rotate_right(7) ^ w15.rotate_right(18) ^ (w15 >> 3);
                let s1 = w2.rotate_right(17) ^ w2.rotate_right(19) ^ (w2 >> 10);
                *w.get_unchecked_mut(t) =
                    w.get_unchecked(t - 16).wrapping_add(s0).wrapping_add(*w.get_unchecked(t - 7)).wrapping_add(s1);
                t += 1;
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
            t = 0;
            while t < 64 {
                let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(*sha256_k::K.get_unchecked(t))
                    .wrapping_add(*w.get_unchecked(t));
                let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                hh = g;
                g = f;
                f = e;
                e = d.wrapping_add(t1);
                d = c;
                c = b;
                b = a;
                a = t1.wrapping_add(t2);
                t += 1;
            }
            let add = [a, b, c, d, e, f, g, hh];
            j = 0;
            while j < 8 {
                *h.get_unchecked_mut(j) = h.get_unchecked(j).wrapping_add(*add.get_unchecked(j));
                j += 1;
            }
            p = p.add(64);
            left -= 1;
        }
        j = 0;
        while j < 8 {
            *state.add(j) = *h.get_unchecked(j);
            j += 1;
        }
    }
}
