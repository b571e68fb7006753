// SPDX-License-Identifier: GPL-2.0
//! `xSYRK` of the netlib reference BLAS (LAPACK 3.11, as Debian 12 builds
//! it), bit for bit: `C := alpha*A*A**T + beta*C` (`trans = 'N'`) or
//! `C := alpha*A**T*A + beta*C`, on the upper or lower triangle of C only.
//!
//! The reference, per element of the triangle (`i <= j` upper, `i >= j`
//! lower; nothing else of C is touched):
//!
//! 1. quick return when `n == 0` or `(alpha == 0 || k == 0) && beta == 1`;
//! 2. `alpha == 0`: `C(i,j) = 0` when `beta == 0`, else `C(i,j)*beta`;
//! 3. `trans = 'N'`: `C(i,j) = 0` / `C(i,j)*beta` as above when `beta !=
//!    1`, then for `l = 1..k` in order, **only when `A(j,l) != 0`** (3.11
//!    still skips zeros here, unlike xGEMM): `temp = A(j,l)*alpha`,
//!    `C(i,j) = (A(i,l)*temp) + C(i,j)`;
//! 4. `trans = 'T'/'C'`: `temp = sum A(l,i)*A(l,j)` from `+0` in `l` order
//!    (`blas_dots`), then `C(i,j) = temp*alpha` when `beta == 0`, else
//!    `(temp*alpha) + (C(i,j)*beta)`.
//!
//! The `N` form uses xGEMM's register tile with a per-`l` mask of the
//! tile's columns whose `A(j,l)` is zero: one test per `l` when no column
//! skips, the exact per-column skip otherwise. The triangle is cut into
//! whole tiles off the diagonal and single columns on the diagonal block.

use core::mem::MaybeUninit;

use crate::blas_arith::{Arith, Real};
use crate::blas_dots::dot_columns;
use crate::blas_gemm::{scale, KC, MV, NR};

/// One tile of the `N` form: as xGEMM's, but term `l` of column `jj` is
/// skipped when bit `bit0 + jj` of `mask[l]` is set.
///
/// # Safety
///
/// As xGEMM's tile; `mask` holds `kc` bytes.
#[inline(always)]
unsafe fn tile<V: Arith, const M: usize, const NJ: usize>(
    a: *const V::S,
    lda: usize,
    t: *const V::S,
    mask: *const u8,
    bit0: u32,
    c: *mut V::S,
    ldc: usize,
    kc: usize,
) {
    // SAFETY: the caller's contract covers every address below.
    unsafe {
        let mut acc = [[V::load(c); M]; NJ];
        for (j, col) in acc.iter_mut().enumerate() {
            for (v, x) in col.iter_mut().enumerate() {
                *x = V::load(c.add(j * ldc + v * V::W));
            }
        }
        let bits = ((1u32 << NJ) - 1) << bit0;
        for l in 0..kc {
            let ap = a.add(l * lda);
            let mut av = [V::load(ap); M];
            for (v, x) in av.iter_mut().enumerate().skip(1) {
                *x = V::load(ap.add(v * V::W));
            }
            let tp = t.add(l * NR);
            let skip = u32::from(mask.add(l).read()) & bits;
            for (j, col) in acc.iter_mut().enumerate() {
                if skip != 0 && skip & (1 << (bit0 + j as u32)) != 0 {
                    continue;
                }
                let tb = V::splat(tp.add(j));
                for (x, &a) in col.iter_mut().zip(av.iter()) {
                    *x = V::add(V::mul(a, tb), *x);
                }
            }
        }
        for (j, col) in acc.iter().enumerate() {
            for (v, x) in col.iter().enumerate() {
                V::store(c.add(j * ldc + v * V::W), *x);
            }
        }
    }
}

/// Rows `0..m` of `NJ` columns, as xGEMM's rows, with the skip mask.
///
/// # Safety
///
/// As [`tile`] for every row `< m`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn rows<V: Arith<S = S>, S: Arith<S = S>, const NJ: usize>(
    m: usize,
    a: *const S,
    lda: usize,
    t: *const S,
    mask: *const u8,
    bit0: u32,
    c: *mut S,
    ldc: usize,
    kc: usize,
) {
    let mut i = 0;
    // SAFETY: every tile covers rows below m (the caller's contract).
    unsafe {
        while i + MV * V::W <= m {
            tile::<V, MV, NJ>(a.add(i), lda, t, mask, bit0, c.add(i), ldc, kc);
            i += MV * V::W;
        }
        while i + V::W <= m {
            tile::<V, 1, NJ>(a.add(i), lda, t, mask, bit0, c.add(i), ldc, kc);
            i += V::W;
        }
        while i < m {
            tile::<S, 1, NJ>(a.add(i), lda, t, mask, bit0, c.add(i), ldc, kc);
            i += 1;
        }
    }
}

/// The triangle's rows of column `j`: `(first, count)`.
#[inline(always)]
fn span(upper: bool, n: usize, j: usize) -> (usize, usize) {
    if upper {
        (0, j + 1)
    } else {
        (j, n - j)
    }
}

/// The body of xSYRK for arguments the entry accepted.
///
/// # Safety
///
/// The Fortran contract of xSYRK: A is `lda × k` (`lda × n` transposed),
/// C is `ldc × n`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn syrk<V: Arith<S = S>, S: Arith<S = S> + Real>(
    upper: bool,
    notrans: bool,
    n: usize,
    k: usize,
    alpha: S,
    a: *const S,
    lda: usize,
    beta: S,
    c: *mut S,
    ldc: usize,
) {
    if n == 0 || ((alpha == S::ZERO || k == 0) && beta == S::ONE) {
        return;
    }
    // SAFETY: every index below is inside A and the triangle of C.
    unsafe {
        if alpha == S::ZERO || (notrans && beta != S::ONE) {
            for j in 0..n {
                let (i0, len) = span(upper, n, j);
                scale::<V, S>(len, 1, beta, c.add(i0 + j * ldc), ldc);
            }
        }
        if alpha == S::ZERO {
            return;
        }
        if !notrans {
            for j in 0..n {
                let (i0, len) = span(upper, n, j);
                let col = c.add(j * ldc);
                dot_columns::<V, S>(len, k, a.add(i0 * lda), lda, a.add(j * lda), 1, |q, temp| {
                    let p = col.add(i0 + q);
                    let t = S::mul(temp, alpha);
                    if beta == S::ZERO {
                        S::store(p, t);
                    } else {
                        S::store(p, S::add(t, S::mul(S::load(p), beta)));
                    }
                });
            }
            return;
        }
        // `temp[l*NR + jj]` and the zero mask of the chunk's l, the tile's
        // jj; 8-byte units, never read before written.
        let mut temps = MaybeUninit::<[u64; KC * NR]>::uninit();
        let t = temps.as_mut_ptr().cast::<S>();
        let mut masks = MaybeUninit::<[u8; KC]>::uninit();
        let mk = masks.as_mut_ptr().cast::<u8>();
        let mut l0 = 0;
        while l0 < k {
            let kc = if k - l0 < KC { k - l0 } else { KC };
            let a0 = a.add(l0 * lda);
            let mut j0 = 0;
            while j0 < n {
                let nj = if n - j0 < NR { n - j0 } else { NR };
                for l in 0..kc {
                    let mut bits = 0u8;
                    for jj in 0..nj {
                        // A(j, l): the reference skips the term when it is
                        // zero (either sign); NaN is not.
                        let av = S::load(a0.add(l * lda + j0 + jj));
                        if av == S::ZERO {
                            bits |= 1 << jj;
                        }
                        S::store(t.add(l * NR + jj), S::mul(av, alpha));
                    }
                    // Volatile: when it cannot see that a tile has a
                    // column, the optimiser would turn all-zero masks into
                    // a call to memset.
                    core::ptr::write_volatile(mk.add(l), bits);
                }
                let cj = c.add(j0 * ldc);
                // Off the diagonal block: whole tiles.
                let (full0, full) = if upper { (0, j0) } else { (j0 + nj, n - j0 - nj) };
                if nj == NR {
                    rows::<V, S, NR>(full, a0.add(full0), lda, t, mk, 0, cj.add(full0), ldc, kc);
                } else {
                    for jj in 0..nj {
                        rows::<V, S, 1>(
                            full,
                            a0.add(full0),
                            lda,
                            t.add(jj),
                            mk,
                            jj as u32,
                            cj.add(full0 + jj * ldc),
                            ldc,
                            kc,
                        );
                    }
                }
                // The diagonal block, column by column.
                for jj in 0..nj {
                    let (d0, dn) = if upper { (j0, jj + 1) } else { (j0 + jj, nj - jj) };
                    rows::<V, S, 1>(
                        dn,
                        a0.add(d0),
                        lda,
                        t.add(jj),
                        mk,
                        jj as u32,
                        cj.add(d0 + jj * ldc),
                        ldc,
                        kc,
                    );
                }
                j0 += nj;
            }
            l0 += kc;
        }
    }
}

/// The entry of a Fortran `xSYRK(UPLO, TRANS, N, K, ALPHA, A, LDA, BETA,
/// C, LDC)` (and the hidden lengths of UPLO and TRANS): the reference's
/// checks in assembly (`uplo` one of `U u L l`, `trans` one of `N n T t C
/// c`, `n, k >= 0`, `lda >= max(1, n or k)`, `ldc >= max(1, n)`), then a
/// tail jump to `$body`, or to the original (`fallback`, slot 0). Only
/// `r10`, `r11` and the flags are changed first.
///
/// Arguments: rdi uplo, rsi trans, rdx n, rcx k, r8 alpha, r9 a, then on
/// the stack lda (+8), beta (+16), c (+24), ldc (+32), the two lengths.
macro_rules! syrk_entry {
    ($name:literal, $body:path) => {
        core::arch::global_asm!(
            concat!(".globl ", $name),
            concat!(".type ", $name, ",@function"),
            concat!($name, ":"),
            "movzx r10d, byte ptr [rdi]",
            "or r10d, 0x20",
            "cmp r10d, 0x75",
            "je 1f",
            "cmp r10d, 0x6c",
            "jne 9f",
            "1:",
            // Rows of A: n as is, k transposed.
            "movzx r10d, byte ptr [rsi]",
            "or r10d, 0x20",
            "cmp r10d, 0x6e",
            "je 2f",
            "cmp r10d, 0x74",
            "je 3f",
            "cmp r10d, 0x63",
            "jne 9f",
            "3:",
            "mov r10d, dword ptr [rcx]",
            "jmp 4f",
            "2:",
            "mov r10d, dword ptr [rdx]",
            "4:",
            "test r10d, r10d",
            "jg 5f",
            "mov r10d, 1",
            "5:",
            "mov r11, qword ptr [rsp + 8]",
            "cmp dword ptr [r11], r10d",
            "jl 9f",
            // n, k >= 0.
            "mov r10d, dword ptr [rdx]",
            "or r10d, dword ptr [rcx]",
            "js 9f",
            // ldc >= max(1, n).
            "mov r10d, dword ptr [rdx]",
            "test r10d, r10d",
            "jg 6f",
            "mov r10d, 1",
            "6:",
            "mov r11, qword ptr [rsp + 32]",
            "cmp dword ptr [r11], r10d",
            "jl 9f",
            "jmp {body}",
            "9:",
            "jmp qword ptr [rip + adapt_import_fallback]",
            body = sym $body,
        );
    };
}
pub(crate) use syrk_entry;

/// The Rust body of a `syrk_entry!`: reads the Fortran arguments.
macro_rules! syrk_body {
    ($body:ident, $s:ty, $v:ty) => {
        /// The body behind the entry (arguments checked there).
        ///
        /// # Safety
        ///
        /// Reached only from the entry, with the Fortran contract of
        /// `xSYRK` and arguments it accepted.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $body(
            uplo: *const u8,
            trans: *const u8,
            n: *const i32,
            k: *const i32,
            alpha: *const $s,
            a: *const $s,
            lda: *const i32,
            beta: *const $s,
            c: *mut $s,
            ldc: *const i32,
            _uplo_len: usize,
            _trans_len: usize,
        ) {
            // SAFETY: the entry checked the flags, the sizes and the leading
            // dimensions as the reference does; the rest is the caller's
            // Fortran contract.
            unsafe {
                // The reference reads alpha and beta only when n is not 0.
                if *n == 0 {
                    return;
                }
                $crate::blas_syrk::syrk::<$v, $s>(
                    (*uplo | 0x20) == b'u',
                    (*trans | 0x20) == b'n',
                    *n as usize,
                    *k as usize,
                    *alpha,
                    a,
                    *lda as usize,
                    *beta,
                    c,
                    *ldc as usize,
                )
            }
        }
    };
}
pub(crate) use syrk_body;
