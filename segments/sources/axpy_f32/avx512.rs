// SPDX-License-Identifier: GPL-2.0
//! `axpy_f32` with AVX-512F (one rounding per element), masked tail.
#![no_std]

use core::arch::x86_64::*;

/// `void axpy_f32(float a, const float *x, float *y, size_t n)`.
///
/// # Safety
///
/// `x[0..n]` must be readable, `y[0..n]` readable and writable, and the two
/// must not partially overlap.
#[no_mangle]
#[target_feature(enable = "avx512f")]
pub unsafe extern "C" fn axpy_f32(a: f32, x: *const f32, y: *mut f32, n: usize) {
    // SAFETY: every access is of lanes below n (loop conditions; the tail is
    // masked, and masked-off lanes are not accessed), per the caller's
    // contract.
    unsafe {
        let va = _mm512_set1_ps(a);
        let mut i = 0;
        while n - i >= 64 {
            let y0 = _mm512_fmadd_ps(va, _mm512_loadu_ps(x.add(i)), _mm512_loadu_ps(y.add(i)));
            let y1 = _mm512_fmadd_ps(va, _mm512_loadu_ps(x.add(i + 16)), _mm512_loadu_ps(y.add(i + 16)));
            let y2 = _mm512_fmadd_ps(va, _mm512_loadu_ps(x.add(i + 32)), _mm512_loadu_ps(y.add(i + 32)));
            let y3 = _mm512_fmadd_ps(va, _mm512_loadu_ps(x.add(i + 48)), _mm512_loadu_ps(y.add(i + 48)));
            _mm512_storeu_ps(y.add(i), y0);
            _mm512_storeu_ps(y.add(i + 16), y1);
            _mm512_storeu_ps(y.add(i + 32), y2);
            _mm512_storeu_ps(y.add(i + 48), y3);
            i += 64;
        }
        while n - i >= 16 {
            _mm512_storeu_ps(y.add(i), _mm512_fmadd_ps(va, _mm512_loadu_ps(x.add(i)), _mm512_loadu_ps(y.add(i))));
            i += 16;
        }
        if i < n {
            let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
            let r = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x.add(i)), _mm512_maskz_loadu_ps(m, y.add(i)));
            _mm512_mask_storeu_ps(y.add(i), m, r);
        }
    }
}
