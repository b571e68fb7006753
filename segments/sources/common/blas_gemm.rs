// SPDX-License-Identifier: GPL-2.0
//! `xGEMM` of the netlib reference BLAS (LAPACK 3.11, as Debian 12 builds
//! it), bit for bit: `C := alpha*op(A)*op(B) + beta*C`.
//!
//! With A transposed (`transa` `T`/`C`) the reference computes each
//! element as a dot product, `temp = sum A(l,i)*op(B)(l,j)` in `l` order
//! from `+0` (`temp + A*B`: the running sum first), then
//! `C(i,j) = temp*alpha` when `beta == 0`, else `temp*alpha + C(i,j)*beta`.
//! This code runs that on the packed tiles of the `N` form in dot mode
//! (`DOT`), C holding the partial sums between chunks of `l` (so only when
//! `beta == 0` or `k <= GKC`, and `k > 0`), else as gathered dot products
//! (see `blas_dots`, [`gemm_t`]). Otherwise
//! (`NOTA`), what the reference does for each element `C(i,j)`, and this
//! code keeps exactly:
//!
//! 1. quick return when `m == 0`, `n == 0`, or `(alpha == 0 || k == 0) &&
//!    beta == 1`;
//! 2. `alpha == 0`: `C(i,j) = 0` if `beta == 0` (a NaN in C is dropped),
//!    else `C(i,j) = C(i,j)*beta`; done;
//! 3. otherwise `C(i,j) = 0` if `beta == 0`, else `C(i,j)*beta` if
//!    `beta != 1`; then for `l = 1..k` in order, with
//!    `temp = B(l,j)*alpha` (`B(j,l)` when B is transposed), rounded once:
//!    `C(i,j) = (A(i,l)*temp) + C(i,j)`, a rounded multiply then a rounded
//!    add. No element of B is skipped (3.11 has no `B(l,j) != 0` test), so
//!    Inf and NaN propagate as in the reference. The operand order of each
//!    multiply and add is the compiled reference's (see `blas_arith`).
//!
//! Vectorising over the contiguous index `i` keeps every element's
//! sequence; the register tile covers `MV` vectors of rows by `NR`
//! columns, `l` runs sequentially inside it, and `l` is cut into chunks of
//! `GKC` that are taken in ascending order, so every element still sees its
//! `l` terms in order. Within a chunk, a block of rows of A (`PACKV`
//! vectors: up to 48 rows of `f64`) is copied into a stack buffer, strip by
//! strip in the order the tiles read it (a copy: no arithmetic, so nothing
//! changes in the values), and serves every column of C; `temp` for the
//! chunk and a block of `NC` columns is computed into `temps`, a stack
//! array of `GKC * NC` elements. Stack: the packed block (24 KiB with ymm
//! or zmm, 12 KiB with xmm) plus `temps` (3 KiB, 4 KiB with `NR` 8) plus
//! saved registers and spills: measured frames of 26-31 KiB (ymm, zmm)
//! and 14-16 KiB (xmm); bound: 32 KiB, half a 64 KiB thread stack. The
//! compiler touches such a frame page by page (an unrolled inline stack
//! probe: `sub rsp, 4096` and a store, which the verifier's stack-depth
//! analysis follows; above 32 KiB it would emit a probe loop).
//!
//! The relaxed variants (`FUSED`, never bit-identical) use the same
//! blocks for every `transa`, with one fused multiply-add per term and
//! each tile's terms summed from zero before C is added.

use crate::blas_arith::{Arith, Real};
use crate::blas_dots::dot_columns;

/// Vectors of rows in the register tile.
#[cfg(target_feature = "avx512f")]
pub const MV: usize = 3;
/// Columns in the register tile.
#[cfg(target_feature = "avx512f")]
pub const NR: usize = 8;
/// Vectors of rows in the register tile.
#[cfg(not(target_feature = "avx512f"))]
pub const MV: usize = 2;
/// Columns in the register tile.
#[cfg(not(target_feature = "avx512f"))]
pub const NR: usize = 6;

/// Terms of `l` per chunk of xSYRK (which shares [`MV`] and [`NR`]).
#[allow(dead_code)]
pub const KC: usize = 32;

/// Terms of `l` per chunk of xGEMM's `N` form: C is read and written
/// once per chunk.
pub const GKC: usize = 64;

/// Vectors of the packed block of A: `GKC` terms of `PACKV / GKC` vectors
/// of rows (24 KiB with ymm: 48 rows of `f64`; 24 KiB with zmm: 48 rows;
/// 12 KiB with xmm: 48 rows). The block is reused for every column of C.
#[cfg(target_feature = "avx512f")]
pub const PACKV: usize = 384;
/// Vectors of the packed block of A: `GKC` terms of `PACKV / GKC` vectors
/// of rows (24 KiB with ymm: 48 rows of `f64`; 24 KiB with zmm: 48 rows;
/// 12 KiB with xmm: 48 rows). The block is reused for every column of C.
#[cfg(not(target_feature = "avx512f"))]
pub const PACKV: usize = 768;

/// Columns of a block of `temp`s (`GKC × NC` elements, 3 KiB with `NR`
/// 6, 4 KiB with `NR` 8), computed once per chunk, block of A and block
/// of columns.
pub const NC: usize = NR;

/// Where a chunk of `l` stands in the dot form (exact xGEMM with A
/// transposed, `DOT`): the first starts from +0, the last ends with
/// `temp*alpha (+ C*beta)`; between chunks C holds the partial sums.
#[derive(Clone, Copy)]
struct Ends<S> {
    first: bool,
    last: bool,
    alpha: S,
    beta: S,
    beta_zero: bool,
}

/// One tile: `C(i0.., j0..j0+NJ)` for `M` vectors of rows, updated with
/// `kc` terms of the chunk. `a` is `A(i0, l0)` (`A(i0 + r, l0 + l)` at
/// `a[l*lda + r]`: A itself or its packed block), `t` the chunk's `temp`
/// of the tile's first column (`temp(l, jj)` at `t[jj*GKC + l]`), `c` is
/// `C(i0, j0)`.
///
/// # Safety
///
/// Every `a[l*lda + r]`, `t[jj*GKC + l]` and `C(i0 + r, j0 + jj)` for
/// `r < M*W`, `l < kc`, `jj < NJ` must be valid.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<V: Arith, const M: usize, const NJ: usize, const FUSED: bool, const DOT: bool>(
    a: *const V::S,
    lda: usize,
    t: *const V::S,
    c: *mut V::S,
    ldc: usize,
    kc: usize,
    ends: Ends<V::S>,
) {
    // SAFETY: the caller's contract covers every address below.
    unsafe {
        // The exact tile starts from C (each element's sum in the
        // reference's order); the relaxed one from zero, C added at the
        // end, so no term waits for C's loads.
        // The dot form (exact, A transposed) starts from +0, or from the
        // partial sum an earlier chunk left in C.
        let mut acc = [[V::zero(); M]; NJ];
        if if DOT { !ends.first } else { !FUSED } {
            for (j, col) in acc.iter_mut().enumerate() {
                for (v, x) in col.iter_mut().enumerate() {
                    *x = V::load(c.add(j * ldc + v * V::W));
                }
            }
        }
        let mut ap = a;
        let mut tp = t;
        if FUSED {
            // Two terms per trip (fewer loop instructions); the exact
            // tile has no register to spare for it.
            for _ in 0..kc / 2 {
                step::<V, M, NJ, FUSED, DOT>(&mut acc, ap, tp);
                step::<V, M, NJ, FUSED, DOT>(&mut acc, ap.add(lda), tp.add(1));
                ap = ap.add(2 * lda);
                tp = tp.add(2);
            }
            if kc % 2 != 0 {
                step::<V, M, NJ, FUSED, DOT>(&mut acc, ap, tp);
            }
        } else {
            for _ in 0..kc {
                step::<V, M, NJ, FUSED, DOT>(&mut acc, ap, tp);
                ap = ap.add(lda);
                tp = tp.add(1);
            }
        }
        if DOT && ends.last {
            // The reference's end of the dot form: `temp*alpha`, plus
            // `C*beta` unless beta is 0.
            let va = V::splat(&ends.alpha);
            let vb = V::splat(&ends.beta);
            for (j, col) in acc.iter().enumerate() {
                for (v, x) in col.iter().enumerate() {
                    let p = c.add(j * ldc + v * V::W);
                    let r = V::mul(*x, va);
                    V::store(
                        p,
                        if ends.beta_zero {
                            r
                        } else {
                            V::add(r, V::mul(V::load(p), vb))
                        },
                    );
                }
            }
            return;
        }
        for (j, col) in acc.iter().enumerate() {
            for (v, x) in col.iter().enumerate() {
                let p = c.add(j * ldc + v * V::W);
                V::store(p, if FUSED { V::add(V::load(p), *x) } else { *x });
            }
        }
    }
}

/// Term `l` of a tile: `ap` is `A(i0, l)` (or its packed copy), `tp` the
/// `temp(l, 0)` of the tile's first column.
///
/// # Safety
///
/// As [`tile`] for that one `l`.
#[inline(always)]
unsafe fn step<V: Arith, const M: usize, const NJ: usize, const FUSED: bool, const DOT: bool>(
    acc: &mut [[V; M]; NJ],
    ap: *const V::S,
    tp: *const V::S,
) {
    // SAFETY: the caller's contract covers every address below.
    unsafe {
        let mut av = [V::load(ap); M];
        for (v, x) in av.iter_mut().enumerate().skip(1) {
            *x = V::load(ap.add(v * V::W));
        }
        for (j, col) in acc.iter_mut().enumerate() {
            let tb = V::splat(tp.add(j * GKC));
            for (x, &a) in col.iter_mut().zip(av.iter()) {
                *x = if FUSED {
                    V::fma(a, tb, *x)
                } else if DOT {
                    // `temp + A(l,i)*B(l,j)`: the running sum first.
                    V::add(*x, V::mul(a, tb))
                } else {
                    V::add(V::mul(a, tb), *x)
                };
            }
        }
    }
}

/// One strip of rows (`M` vectors of `V`) across the `nc` columns of a
/// block: tiles of [`NR`] columns, then single columns. `t` holds the
/// block's `temp`s, `t[jj*GKC + l]`.
///
/// # Safety
///
/// As [`tile`] for every column `< nc`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn strip<V: Arith, const M: usize, const FUSED: bool, const DOT: bool>(
    nc: usize,
    a: *const V::S,
    lda: usize,
    t: *const V::S,
    c: *mut V::S,
    ldc: usize,
    kc: usize,
    ends: Ends<V::S>,
) {
    let mut jj = 0;
    // SAFETY: every tile covers columns below nc (the caller's contract).
    unsafe {
        while jj + NR <= nc {
            tile::<V, M, NR, FUSED, DOT>(a, lda, t.add(jj * GKC), c.add(jj * ldc), ldc, kc, ends);
            jj += NR;
        }
        while jj < nc {
            tile::<V, M, 1, FUSED, DOT>(a, lda, t.add(jj * GKC), c.add(jj * ldc), ldc, kc, ends);
            jj += 1;
        }
    }
}

/// `C(0..m, j) := C(0..m, j)*beta`, or 0 when `beta == 0`, for every column.
///
/// # Safety
///
/// `C(i, j)` valid for `i < m`, `j < n`.
#[inline(always)]
pub unsafe fn scale<V: Arith<S = S>, S: Arith<S = S> + Real>(
    m: usize,
    n: usize,
    beta: S,
    c: *mut S,
    ldc: usize,
) {
    // SAFETY: the caller's contract covers every address below.
    unsafe {
        let vb = V::splat(&beta);
        for j in 0..n {
            let col = c.add(j * ldc);
            let mut i = 0;
            if beta == S::ZERO {
                let vz = V::zero();
                let sz = S::zero();
                while i + V::W <= m {
                    V::store(col.add(i), vz);
                    i += V::W;
                }
                while i < m {
                    S::store(col.add(i), sz);
                    i += 1;
                }
            } else {
                while i + V::W <= m {
                    let p = col.add(i);
                    V::store(p, V::mul(V::load(p), vb));
                    i += V::W;
                }
                while i < m {
                    let p = col.add(i);
                    S::store(p, S::mul(S::load(p), beta));
                    i += 1;
                }
            }
        }
    }
}

/// `C := alpha*op(A)*B + beta*C`, where `op(A)(i, l)` is `a[i*ai + l*al]`
/// (`(1, lda)` for `transa = 'N'`, `(lda, 1)` transposed) and `B(l, j)` is
/// `b[l*bl + j*bj]` (`(1, ldb)` for B, `(ldb, 1)` for `B**T`, `(incx, 0)`
/// for xGEMV's x); arguments already checked as the reference checks them
/// (the entry sends every other case to the original). `l` is taken in
/// chunks of at most `kcmax` (at most [`GKC`]). Exact: the reference's
/// `N` form (`DOT` false; `ai == 1`), or its dot form (`DOT` true; only
/// with `k > 0` and `beta == 0 || k <= GKC`). `FUSED` (the relaxed
/// variants only, never bit-identical, `DOT` false) makes each term one
/// fused multiply-add, for any strides of A.
///
/// # Safety
///
/// The Fortran contract of `xGEMM` with valid arguments: every
/// `op(A)(i, l)` and `B(l, j)` readable, C is `ldc × n`, column-major.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn gemm_n<
    V: Arith<S = S>,
    S: Arith<S = S> + Real,
    const FUSED: bool,
    const DOT: bool,
>(
    m: usize,
    n: usize,
    k: usize,
    alpha: S,
    a: *const S,
    (ai, al): (usize, usize),
    b: *const S,
    (bl, bj): (isize, isize),
    beta: S,
    c: *mut S,
    ldc: usize,
    kcmax: usize,
) {
    if m == 0 || n == 0 || ((alpha == S::ZERO || k == 0) && beta == S::ONE) {
        return;
    }
    // SAFETY: every index below is inside the matrices of the contract.
    unsafe {
        if alpha == S::ZERO {
            scale::<V, S>(m, n, beta, c, ldc);
            return;
        }
        if !DOT && beta != S::ONE {
            scale::<V, S>(m, n, beta, c, ldc);
        }
        let kcmax = if kcmax < GKC { kcmax } else { GKC };
        let mut ends = Ends {
            first: true,
            last: true,
            alpha,
            beta,
            beta_zero: beta == S::ZERO,
        };
        // Never read before written: `temp(l, jj)` of the chunk's l and
        // the block's jj at `t[jj*GKC + l]`; the packed block of A, strip
        // `s` (rows `i0 + s*mr..`) with `A(i0 + s*mr + r, l0 + l)` at
        // `p[s*kc*mr + l*mr + r]`, then the block's last `rem < mr` rows
        // (if any) at `p[strips*kc*mr + l*rem + r]`.
        let mut temps = core::mem::MaybeUninit::<[S; GKC * NC]>::uninit();
        let t = temps.as_mut_ptr().cast::<S>();
        let mut pack = core::mem::MaybeUninit::<[V; PACKV]>::uninit();
        let p = pack.as_mut_ptr().cast::<S>();
        let mr = MV * V::W;
        // Rows of a packed block: whole strips.
        let mcmax = PACKV / GKC / MV * mr;
        // Columns used once (xGEMV, a thin C) are not worth packing A for:
        // every row is then taken from A itself, which needs A's rows
        // contiguous (`ai == 1`; the transposed form always packs).
        let packed = n > NR || ai != 1;
        let mut l0 = 0;
        while l0 < k {
            let kc = if k - l0 < kcmax { k - l0 } else { kcmax };
            ends.first = l0 == 0;
            ends.last = l0 + kc == k;
            let a0 = a.add(l0 * al);
            let bl0 = b.offset(l0 as isize * bl);
            let mut i0 = 0;
            while packed && i0 < m {
                let mc = if m - i0 < mcmax { m - i0 } else { mcmax };
                let strips = mc / mr;
                let rem = mc % mr;
                let pr = p.add(strips * kc * mr);
                if ai == 1 {
                    for l in 0..kc {
                        let src = a0.add(l * al + i0);
                        for s in 0..strips {
                            for v in 0..MV {
                                let x = V::load(src.add(s * mr + v * V::W));
                                V::store(p.add(s * kc * mr + l * mr + v * V::W), x);
                            }
                        }
                        for r in 0..rem {
                            // Volatile: a plain loop here becomes a call
                            // to `memcpy`, which a segment cannot make.
                            let x = src.add(strips * mr + r).read_volatile();
                            S::store(pr.add(l * rem + r), x);
                        }
                    }
                } else {
                    // Row `i` of op(A) is contiguous in `l`.
                    for r in 0..mc {
                        let src = a0.add((i0 + r) * ai);
                        let (dst, ld) = if r < strips * mr {
                            (p.add(r / mr * kc * mr + r % mr), mr)
                        } else {
                            (pr.add(r - strips * mr), rem)
                        };
                        for l in 0..kc {
                            // Volatile: no `memcpy` (as above).
                            S::store(dst.add(l * ld), src.add(l * al).read_volatile());
                        }
                    }
                }
                let mut j0 = 0;
                while j0 < n {
                    let nc = if n - j0 < NC { n - j0 } else { NC };
                    temps_of::<V, S, DOT>(kc, nc, bl0.offset(j0 as isize * bj), (bl, bj), alpha, t);
                    let cb = c.add(j0 * ldc + i0);
                    // The next columns' C block and B chunk are fetched
                    // while this block runs, a column or so per strip.
                    let jn = j0 + nc;
                    let ncn = if n - jn < NC { n - jn } else { NC };
                    let per = if strips > 0 { strips } else { 1 };
                    for s in 0..per {
                        let mut jj = s;
                        while jj < ncn {
                            prefetch(c.add((jn + jj) * ldc + i0), mc);
                            if bl == 1 {
                                prefetch(bl0.offset((jn + jj) as isize * bj), kc);
                            }
                            jj += per;
                        }
                        if bj == 1 && bl != 1 && ncn > 0 {
                            // B transposed: the next columns' temps come
                            // from the same rows of B**T, one line each.
                            let mut l = s;
                            while l < kc {
                                prefetch(bl0.offset(l as isize * bl + jn as isize), ncn);
                                l += per;
                            }
                        }
                        if s < strips {
                            let ps = p.add(s * kc * mr);
                            strip::<V, MV, FUSED, DOT>(
                                nc,
                                ps,
                                mr,
                                t,
                                cb.add(s * mr),
                                ldc,
                                kc,
                                ends,
                            );
                        }
                    }
                    let cr = cb.add(strips * mr);
                    let mut i = 0;
                    while i + V::W <= rem {
                        strip::<V, 1, FUSED, DOT>(nc, pr.add(i), rem, t, cr.add(i), ldc, kc, ends);
                        i += V::W;
                    }
                    while i < rem {
                        strip::<S, 1, FUSED, DOT>(nc, pr.add(i), rem, t, cr.add(i), ldc, kc, ends);
                        i += 1;
                    }
                    j0 += nc;
                }
                i0 += mc;
            }
            if !packed {
                let mut j0 = 0;
                while j0 < n {
                    let nc = if n - j0 < NC { n - j0 } else { NC };
                    temps_of::<V, S, DOT>(kc, nc, bl0.offset(j0 as isize * bj), (bl, bj), alpha, t);
                    let cj = c.add(j0 * ldc);
                    let mut i = 0;
                    while i + mr <= m {
                        strip::<V, MV, FUSED, DOT>(nc, a0.add(i), al, t, cj.add(i), ldc, kc, ends);
                        i += mr;
                    }
                    while i + V::W <= m {
                        strip::<V, 1, FUSED, DOT>(nc, a0.add(i), al, t, cj.add(i), ldc, kc, ends);
                        i += V::W;
                    }
                    while i < m {
                        strip::<S, 1, FUSED, DOT>(nc, a0.add(i), al, t, cj.add(i), ldc, kc, ends);
                        i += 1;
                    }
                    j0 += nc;
                }
            }
            l0 += kc;
        }
    }
}

/// A hint to bring the lines of `p[0..len]` into the caches (`prefetcht0`;
/// never faults, reads nothing the program sees).
#[inline(always)]
fn prefetch<S>(p: *const S, len: usize) {
    let first = p as usize & !63;
    let last = p as usize + (len * core::mem::size_of::<S>()).saturating_sub(1);
    let mut line = first;
    while line <= last {
        // SAFETY: a prefetch is only a hint: it accesses no memory
        // architecturally and cannot fault (SSE, baseline).
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                line as *const i8,
            )
        };
        line += 64;
    }
}

/// `temp(l, jj) = B(l, jj)*alpha` (the reference's rounded product, B's
/// element the first operand) into `t[jj*GKC + l]` for `l < kc`,
/// `jj < nc`; `b` is `B(l0, j0)`, `B(l, j)` at `b[l*bl + j*bj]`. A column
/// of B contiguous in `l` is taken in vectors (each lane the same product).
///
/// # Safety
///
/// Those elements of B readable; `t` holds `GKC * nc` elements.
#[inline(always)]
unsafe fn temps_of<V: Arith<S = S>, S: Arith<S = S>, const DOT: bool>(
    kc: usize,
    nc: usize,
    b: *const S,
    (bl, bj): (isize, isize),
    alpha: S,
    t: *mut S,
) {
    // SAFETY: the caller's contract covers every address below.
    unsafe {
        if DOT {
            // The dot form multiplies by B itself (alpha comes last):
            // copied (volatile reads: no `memcpy` call).
            if bl == 1 {
                for jj in 0..nc {
                    let bp = b.offset(jj as isize * bj);
                    let tp = t.add(jj * GKC);
                    for l in 0..kc {
                        S::store(tp.add(l), bp.add(l).read_volatile());
                    }
                }
            } else {
                // Along the rows of B**T (or any other stride).
                for l in 0..kc {
                    let bp = b.offset(l as isize * bl);
                    for jj in 0..nc {
                        let bv = bp.offset(jj as isize * bj).read_volatile();
                        S::store(t.add(jj * GKC + l), bv);
                    }
                }
            }
            return;
        }
        let va = V::splat(&alpha);
        if bj == 1 && bl != 1 {
            // B transposed: row `l` of B**T holds the block's columns.
            for l in 0..kc {
                let bp = b.offset(l as isize * bl);
                for jj in 0..nc {
                    S::store(t.add(jj * GKC + l), S::mul(S::load(bp.add(jj)), alpha));
                }
            }
            return;
        }
        for jj in 0..nc {
            let bp = b.offset(jj as isize * bj);
            let tp = t.add(jj * GKC);
            let mut l = 0;
            if bl == 1 {
                while l + V::W <= kc {
                    V::store(tp.add(l), V::mul(V::load(bp.add(l)), va));
                    l += V::W;
                }
            }
            while l < kc {
                let bv = S::load(bp.offset(l as isize * bl));
                S::store(tp.add(l), S::mul(bv, alpha));
                l += 1;
            }
        }
    }
}

/// `C := alpha*A**T*B + beta*C`, `B(l, j)` at `b[l*bl + j*bj]`: one dot
/// product per element (the reference's `.NOT.NOTA` branches).
///
/// # Safety
///
/// As [`gemm_n`], with A `lda × m` (k rows used).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn gemm_t<V: Arith<S = S>, S: Arith<S = S> + Real>(
    m: usize,
    n: usize,
    k: usize,
    alpha: S,
    a: *const S,
    lda: usize,
    b: *const S,
    (bl, bj): (isize, isize),
    beta: S,
    c: *mut S,
    ldc: usize,
) {
    if m == 0 || n == 0 || ((alpha == S::ZERO || k == 0) && beta == S::ONE) {
        return;
    }
    // SAFETY: every index below is inside the matrices of the contract.
    unsafe {
        if alpha == S::ZERO {
            scale::<V, S>(m, n, beta, c, ldc);
            return;
        }
        for j in 0..n {
            let col = c.add(j * ldc);
            let x = b.offset(j as isize * bj);
            dot_columns::<V, S>(m, k, a, lda, x, bl, |i, temp| {
                let p = col.add(i);
                let t = S::mul(temp, alpha);
                if beta == S::ZERO {
                    S::store(p, t);
                } else {
                    S::store(p, S::add(t, S::mul(S::load(p), beta)));
                }
            });
        }
    }
}

/// The entry of a Fortran `xGEMM(TRANSA, TRANSB, M, N, K, ALPHA, A, LDA,
/// B, LDB, BETA, C, LDC)` (with gfortran's two hidden character lengths
/// after them, unused): the reference's argument checks in assembly, then
/// a tail jump either to `$body` (both flags one of `N n T t C c`, `m, n,
/// k >= 0`, `lda >= max(1, rows of A)`, `ldb >= max(1, rows of B)`, `ldc
/// >= max(1, m)`) or, for anything else, to the original through import
/// slot 0 (`fallback`), which does its own checks and calls `xerbla_`.
/// Only `r10`, `r11` and the flags are changed before either jump: scratch
/// registers that carry no argument in the System V ABI; the stack is as
/// at entry.
///
/// Arguments: rdi transa, rsi transb, rdx m, rcx n, r8 k, r9 alpha, then on
/// the stack (above the return address) a, lda (+16), b, ldb (+32), beta,
/// c, ldc (+56), and the two lengths.
macro_rules! gemm_entry {
    ($name:literal, $body:path) => {
        core::arch::global_asm!(
            concat!(".globl ", $name),
            concat!(".type ", $name, ",@function"),
            concat!($name, ":"),
            // Rows of A: m as is, k transposed.
            "movzx r10d, byte ptr [rdi]",
            "or r10d, 0x20",
            "cmp r10d, 0x6e",
            "je 1f",
            "cmp r10d, 0x74",
            "je 2f",
            "cmp r10d, 0x63",
            "jne 9f",
            "2:",
            "mov r10d, dword ptr [r8]",
            "jmp 3f",
            "1:",
            "mov r10d, dword ptr [rdx]",
            "3:",
            "test r10d, r10d",
            "jg 4f",
            "mov r10d, 1",
            "4:",
            "mov r11, qword ptr [rsp + 16]",
            "cmp dword ptr [r11], r10d",
            "jl 9f",
            // Rows of B: k as is, n transposed.
            "movzx r10d, byte ptr [rsi]",
            "or r10d, 0x20",
            "cmp r10d, 0x6e",
            "je 5f",
            "cmp r10d, 0x74",
            "je 6f",
            "cmp r10d, 0x63",
            "jne 9f",
            "6:",
            "mov r10d, dword ptr [rcx]",
            "jmp 7f",
            "5:",
            "mov r10d, dword ptr [r8]",
            "7:",
            "test r10d, r10d",
            "jg 8f",
            "mov r10d, 1",
            "8:",
            "mov r11, qword ptr [rsp + 32]",
            "cmp dword ptr [r11], r10d",
            "jl 9f",
            // m, n, k >= 0.
            "mov r10d, dword ptr [rdx]",
            "or r10d, dword ptr [rcx]",
            "or r10d, dword ptr [r8]",
            "js 9f",
            // ldc >= max(1, m).
            "mov r10d, dword ptr [rdx]",
            "test r10d, r10d",
            "jg 10f",
            "mov r10d, 1",
            "10:",
            "mov r11, qword ptr [rsp + 56]",
            "cmp dword ptr [r11], r10d",
            "jl 9f",
            "jmp {body}",
            "9:",
            "jmp qword ptr [rip + adapt_import_fallback]",
            body = sym $body,
        );
    };
}
pub(crate) use gemm_entry;

/// The Rust body of a `gemm_entry!`: reads the Fortran arguments.
macro_rules! gemm_body {
    ($body:ident, $s:ty, $v:ty) => {
        $crate::blas_gemm::gemm_body!($body, $s, $v, false);
    };
    ($body:ident, $s:ty, $v:ty, $fused:literal) => {
        /// The body behind the entry (arguments checked there).
        ///
        /// # Safety
        ///
        /// Reached only from the entry, with the Fortran contract of
        /// `xGEMM` and arguments it accepted.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $body(
            transa: *const u8,
            transb: *const u8,
            m: *const i32,
            n: *const i32,
            k: *const i32,
            alpha: *const $s,
            a: *const $s,
            lda: *const i32,
            b: *const $s,
            ldb: *const i32,
            beta: *const $s,
            c: *mut $s,
            ldc: *const i32,
            _transa_len: usize,
            _transb_len: usize,
        ) {
            // SAFETY: the entry checked the flags, the sizes (>= 0) and the
            // leading dimensions (>= 1) as the reference does; the rest is
            // the caller's Fortran contract.
            unsafe {
                // The reference reads alpha and beta only when neither
                // dimension is 0.
                if *m == 0 || *n == 0 {
                    return;
                }
                let ldb = *ldb as isize;
                // B(l, j) = b[l + j*ldb], or B(j, l) = b[j + l*ldb] transposed.
                let strides = if (*transb | 0x20) == b'n' {
                    (1, ldb)
                } else {
                    (ldb, 1)
                };
                let args = (
                    *m as usize,
                    *n as usize,
                    *k as usize,
                    *alpha,
                    *lda as usize,
                    *beta,
                    *ldc as usize,
                );
                let (m, n, k, alpha, lda, beta, ldc) = args;
                // Both inlined: a function pointer would be an indirect
                // call, which the verifier refuses.
                if (*transa | 0x20) == b'n' {
                    $crate::blas_gemm::gemm_n::<$v, $s, $fused, false>(
                        m,
                        n,
                        k,
                        alpha,
                        a,
                        (1, lda),
                        b,
                        strides,
                        beta,
                        c,
                        ldc,
                        $crate::blas_gemm::GKC,
                    )
                } else if $fused {
                    // Relaxed: A transposed is packed as well, the terms
                    // fused like the N form's.
                    $crate::blas_gemm::gemm_n::<$v, $s, $fused, false>(
                        m,
                        n,
                        k,
                        alpha,
                        a,
                        (lda, 1),
                        b,
                        strides,
                        beta,
                        c,
                        ldc,
                        $crate::blas_gemm::GKC,
                    )
                } else if k > 0 && (beta == 0.0 || k <= $crate::blas_gemm::GKC) {
                    // Exact, A transposed: the reference's dot products on
                    // packed blocks; C keeps the partial sums between
                    // chunks of l, which needs beta == 0 (C's own values
                    // are not used) or a single chunk.
                    $crate::blas_gemm::gemm_n::<$v, $s, false, true>(
                        m,
                        n,
                        k,
                        alpha,
                        a,
                        (lda, 1),
                        b,
                        strides,
                        beta,
                        c,
                        ldc,
                        $crate::blas_gemm::GKC,
                    )
                } else {
                    $crate::blas_gemm::gemm_t::<$v, $s>(
                        m, n, k, alpha, a, lda, b, strides, beta, c, ldc,
                    )
                }
            }
        }
    };
}
pub(crate) use gemm_body;
