// SPDX-License-Identifier: GPL-2.0
//! `xGEMV` of the netlib reference BLAS (LAPACK 3.11, as Debian 12 builds
//! it), bit for bit: `y := alpha*op(A)*x + beta*y`.
//!
//! The reference, per element of y:
//!
//! 1. quick return when `m == 0`, `n == 0` or `alpha == 0 && beta == 1`
//!    (y untouched, even when `beta != 1`);
//! 2. `beta != 1`: `y(i) = 0` when `beta == 0` (a NaN is dropped), else
//!    `y(i)*beta`; then return if `alpha == 0`;
//! 3. `trans = 'N'`: for `j = 1..n` in order, `temp = x(jx)*alpha`, then
//!    `y(i) = (A(i,j)*temp) + y(i)`: exactly xGEMM's `NOTA` form with one
//!    column (done by `gemm_n`, `B(l, 0) = x(l)`);
//! 4. `trans = 'T'/'C'`: `temp = sum A(i,j)*x(i)` from `+0` in `i` order
//!    (`blas_dots`), then `y(jy) = (temp*alpha) + y(jy)`.
//!
//! Negative increments start at the far end, as the reference's `KX`/`KY`.
//! The entry sends `trans = 'N'` with `incy != 1` to the original, with
//! every argument error.

use crate::blas_arith::{Arith, Real};
use crate::blas_dots::dot_columns;
use crate::blas_gemm::gemm_n;

/// Columns of A per pass over y in the `N` form.
const GEMV_COLUMNS: usize = 8;

/// Offset of the first element of a vector of `len` elements with stride
/// `inc` (the reference's `1 - (len-1)*inc` for a negative `inc`).
#[inline(always)]
pub fn start(len: usize, inc: isize) -> isize {
    if inc > 0 {
        0
    } else {
        -(len as isize - 1) * inc
    }
}

/// The body of xGEMV for arguments the entry accepted.
///
/// # Safety
///
/// The Fortran contract of xGEMV: A is `lda × n`, x and y hold their
/// elements at their increments; `incy == 1` when `trans` is `N`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn gemv<V: Arith<S = S>, S: Arith<S = S> + Real>(
    notrans: bool,
    m: usize,
    n: usize,
    alpha: S,
    a: *const S,
    lda: usize,
    x: *const S,
    incx: isize,
    beta: S,
    y: *mut S,
    incy: isize,
) {
    if m == 0 || n == 0 || (alpha == S::ZERO && beta == S::ONE) {
        return;
    }
    // SAFETY: every index below is inside the vectors and the matrix of
    // the contract.
    unsafe {
        if notrans {
            // y(0..m) contiguous; x(l) for l < n at its increment. A few
            // columns per pass over y: every column is a stream of its own.
            gemm_n::<V, S, false, false>(
                m,
                1,
                n,
                alpha,
                a,
                (1, lda),
                x.offset(start(n, incx)),
                (incx, 0),
                beta,
                y,
                m,
                GEMV_COLUMNS,
            );
            return;
        }
        let y0 = y.offset(start(n, incy));
        if beta != S::ONE {
            for j in 0..n {
                let p = y0.offset(j as isize * incy);
                if beta == S::ZERO {
                    S::store(p, S::zero());
                } else {
                    S::store(p, S::mul(S::load(p), beta));
                }
            }
        }
        if alpha == S::ZERO {
            return;
        }
        let x0 = x.offset(start(m, incx));
        dot_columns::<V, S>(n, m, a, lda, x0, incx, |j, temp| {
            let p = y0.offset(j as isize * incy);
            S::store(p, S::add(S::mul(temp, alpha), S::load(p)));
        });
    }
}

/// The entry of a Fortran `xGEMV(TRANS, M, N, ALPHA, A, LDA, X, INCX,
/// BETA, Y, INCY)` (and the hidden length of TRANS): the reference's checks
/// in assembly (`trans` one of `N n T t C c`, `m, n >= 0`, `lda >= max(1,
/// m)`, `incx != 0`, `incy != 0`) plus `incy == 1` for `trans = 'N'`, then
/// a tail jump to `$body`, or to the original (`fallback`, slot 0) for
/// anything else. Only `r10`, `r11` and the flags are changed first.
///
/// Arguments: rdi trans, rsi m, rdx n, rcx alpha, r8 a, r9 lda, then on the
/// stack x (+8), incx (+16), beta (+24), y (+32), incy (+40), the length.
macro_rules! gemv_entry {
    ($name:literal, $body:path) => {
        core::arch::global_asm!(
            concat!(".globl ", $name),
            concat!(".type ", $name, ",@function"),
            concat!($name, ":"),
            "movzx r10d, byte ptr [rdi]",
            "or r10d, 0x20",
            "cmp r10d, 0x74",
            "je 2f",
            "cmp r10d, 0x63",
            "je 2f",
            "cmp r10d, 0x6e",
            "jne 9f",
            // Not transposed: y must be contiguous here.
            "mov r11, qword ptr [rsp + 40]",
            "cmp dword ptr [r11], 1",
            "jne 9f",
            "2:",
            // m, n >= 0.
            "mov r10d, dword ptr [rsi]",
            "or r10d, dword ptr [rdx]",
            "js 9f",
            // lda >= max(1, m).
            "mov r10d, dword ptr [rsi]",
            "test r10d, r10d",
            "jg 3f",
            "mov r10d, 1",
            "3:",
            "cmp dword ptr [r9], r10d",
            "jl 9f",
            // incx != 0, incy != 0.
            "mov r11, qword ptr [rsp + 16]",
            "cmp dword ptr [r11], 0",
            "je 9f",
            "mov r11, qword ptr [rsp + 40]",
            "cmp dword ptr [r11], 0",
            "je 9f",
            "jmp {body}",
            "9:",
            "jmp qword ptr [rip + adapt_import_fallback]",
            body = sym $body,
        );
    };
}
pub(crate) use gemv_entry;

/// The Rust body of a `gemv_entry!`: reads the Fortran arguments.
macro_rules! gemv_body {
    ($body:ident, $s:ty, $v:ty) => {
        /// The body behind the entry (arguments checked there).
        ///
        /// # Safety
        ///
        /// Reached only from the entry, with the Fortran contract of
        /// `xGEMV` and arguments it accepted.
        #[no_mangle]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $body(
            trans: *const u8,
            m: *const i32,
            n: *const i32,
            alpha: *const $s,
            a: *const $s,
            lda: *const i32,
            x: *const $s,
            incx: *const i32,
            beta: *const $s,
            y: *mut $s,
            incy: *const i32,
            _trans_len: usize,
        ) {
            // SAFETY: the entry checked the flag, the sizes, the leading
            // dimension and the increments as the reference does; the rest
            // is the caller's Fortran contract.
            unsafe {
                // The reference reads alpha and beta only when neither
                // dimension is 0.
                if *m == 0 || *n == 0 {
                    return;
                }
                $crate::blas_gemv::gemv::<$v, $s>(
                    (*trans | 0x20) == b'n',
                    *m as usize,
                    *n as usize,
                    *alpha,
                    a,
                    *lda as usize,
                    x,
                    *incx as isize,
                    *beta,
                    y,
                    *incy as isize,
                )
            }
        }
    };
}
pub(crate) use gemv_body;
