// SPDX-License-Identifier: GPL-2.0
//! `axpy_f32` with AVX2 and FMA (one rounding per element), masked tail.
#![no_std]

use core::arch::x86_64::*;

/// `void axpy_f32(float a, const float *x, float *y, size_t n)`.
///
/// # Safety
///
/// `x[0..n]` must be readable, `y[0..n]` readable and writable, and the two
/// must not partially overlap.
#[no_mangle]
#[target_feature(enable = "avx2,fma")]
pub unsafe extern "C" fn axpy_f32(a: f32, x: *const f32, y: *mut f32, n: usize) {
    // SAFETY: every access is of lanes below n (loop conditions; the tail is
    // masked, and masked-off lanes are not accessed), per the caller's
    // contract.
    unsafe {
        let va = _mm256_set1_ps(a);
        let mut i = 0;
        while n - i >= 32 {
            let y0 = _mm256_fmadd_ps(va, _mm256_loadu_ps(x.add(i)), _mm256_loadu_ps(y.add(i)));
            let y1 = _mm256_fmadd_ps(va, _mm256_loadu_ps(x.add(i + 8)), _mm256_loadu_ps(y.add(i + 8)));
            let y2 = _mm256_fmadd_ps(va, _mm256_loadu_ps(x.add(i + 16)), _mm256_loadu_ps(y.add(i + 16)));
            let y3 = _mm256_fmadd_ps(va, _mm256_loadu_ps(x.add(i + 24)), _mm256_loadu_ps(y.add(i + 24)));
            _mm256_storeu_ps(y.add(i), y0);
            _mm256_storeu_ps(y.add(i + 8), y1);
            _mm256_storeu_ps(y.add(i + 16), y2);
            _mm256_storeu_ps(y.add(i + 24), y3);
            i += 32;
        }
        while n - i >= 8 {
            _mm256_storeu_ps(y.add(i), _mm256_fmadd_ps(va, _mm256_loadu_ps(x.add(i)), _mm256_loadu_ps(y.add(i))));
            i += 8;
        }
        if i < n {
            let rem = (n - i) as i32;
            let m = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            let r = _mm256_fmadd_ps(va, _mm256_maskload_ps(x.add(i), m), _mm256_maskload_ps(y.add(i), m));
            _mm256_maskstore_ps(y.add(i), m, r);
        }
    }
}
