// SPDX-License-Identifier: GPL-2.0
//! Dot products of the reference BLAS, several at once and each in its own
//! order: `temp = 0; for l: temp = temp + A(l, i)*x(l)` (the `TEMP`
//! loops of xGEMM with A transposed, xGEMV transposed and xSYRK
//! transposed), `+0.0` first, then one rounded multiply (A's element
//! first) and one rounded add (the running sum first) per `l`.
//!
//! The lanes of a vector are different columns `i` of A (gathered with
//! stride `lda`), so every lane keeps the sequential `l` order of its own
//! dot product; `x(l)` is broadcast.

use core::mem::MaybeUninit;

use crate::blas_arith::Arith;

/// Vectors of columns computed together.
const NV: usize = 2;

/// `NV2` vectors of dot products: columns `a + c*lda` for `c < NV2*W`, with
/// `x(l) = x[l*incx]`, into `out[0..NV2*W]`.
///
/// # Safety
///
/// `a[l + c*lda]` readable for `l < k`, `c < NV2*W`; `x[l*incx]` readable
/// for `l < k`; `out` writable for `NV2*W` elements.
#[inline(always)]
unsafe fn dots<V: Arith<S = S>, S: Arith<S = S>, const NV2: usize>(
    k: usize,
    a: *const S,
    lda: usize,
    x: *const S,
    incx: isize,
    out: *mut S,
) {
    // SAFETY: the caller's contract covers every address below.
    unsafe {
        let mut acc = [V::zero(); NV2];
        let mut xp = x;
        for l in 0..k {
            let xb = V::splat(xp);
            for (v, s) in acc.iter_mut().enumerate() {
                let av = V::gather(a.add(l + v * V::W * lda), lda);
                *s = V::add(*s, V::mul(av, xb));
            }
            xp = xp.offset(incx);
        }
        for (v, s) in acc.iter().enumerate() {
            V::store(out.add(v * V::W), *s);
        }
    }
}

/// The dot products of columns `i < count` of A (`a + i*lda`, `k` long)
/// with `x`, each handed to `f(i, temp)` once, in increasing `i`.
///
/// # Safety
///
/// `a[l + i*lda]` readable for `l < k`, `i < count`; `x[l*incx]` readable
/// for `l < k`.
#[inline(always)]
pub unsafe fn dot_columns<V: Arith<S = S>, S: Arith<S = S>>(
    count: usize,
    k: usize,
    a: *const S,
    lda: usize,
    x: *const S,
    incx: isize,
    mut f: impl FnMut(usize, S),
) {
    // Room for NV vectors of the widest register (16 lanes of f32).
    let mut buf = MaybeUninit::<[S; 32]>::uninit();
    let out = buf.as_mut_ptr().cast::<S>();
    let mut i = 0;
    // SAFETY: every block covers columns below `count` (the caller's
    // contract); `out` holds 32 >= NV*W elements, each written by `dots`
    // before it is read.
    unsafe {
        while i + NV * V::W <= count {
            dots::<V, S, NV>(k, a.add(i * lda), lda, x, incx, out);
            for q in 0..NV * V::W {
                f(i + q, out.add(q).read());
            }
            i += NV * V::W;
        }
        while i + V::W <= count {
            dots::<V, S, 1>(k, a.add(i * lda), lda, x, incx, out);
            for q in 0..V::W {
                f(i + q, out.add(q).read());
            }
            i += V::W;
        }
        while i < count {
            dots::<S, S, 1>(k, a.add(i * lda), lda, x, incx, out);
            f(i, out.read());
            i += 1;
        }
    }
}
