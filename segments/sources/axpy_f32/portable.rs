// SPDX-License-Identifier: GPL-2.0
//! `axpy_f32` with SSE2 only: multiply then add (two roundings, exactly the
//! plain C loop).
#![no_std]

use core::arch::x86_64::*;

/// `void axpy_f32(float a, const float *x, float *y, size_t n)`.
///
/// # Safety
///
/// `x[0..n]` must be readable, `y[0..n]` readable and writable, and the two
/// must not partially overlap.
#[no_mangle]
pub unsafe extern "C" fn axpy_f32(a: f32, x: *const f32, y: *mut f32, n: usize) {
    // SAFETY: every access is of an index below n (loop conditions), per the
    // caller's contract; SSE2 is baseline.
    unsafe {
        let va = _mm_set1_ps(a);
        let mut i = 0;
        while n - i >= 8 {
            let y0 = _mm_add_ps(_mm_mul_ps(va, _mm_loadu_ps(x.add(i))), _mm_loadu_ps(y.add(i)));
            let y1 = _mm_add_ps(_mm_mul_ps(va, _mm_loadu_ps(x.add(i + 4))), _mm_loadu_ps(y.add(i + 4)));
            _mm_storeu_ps(y.add(i), y0);
            _mm_storeu_ps(y.add(i + 4), y1);
            i += 8;
        }
        while i < n {
            *y.add(i) = a * *x.add(i) + *y.add(i);
            i += 1;
        }
    }
}
