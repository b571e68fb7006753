// SPDX-License-Identifier: GPL-2.0
//! `dot_f32` with AVX2 and FMA: four 8-lane accumulators, masked tail.
#![no_std]

use core::arch::x86_64::*;

/// `float dot_f32(const float *a, const float *b, size_t n)`.
///
/// # Safety
///
/// `a[0..n]` and `b[0..n]` must be readable.
#[no_mangle]
#[target_feature(enable = "avx2,fma")]
pub unsafe extern "C" fn dot_f32(a: *const f32, b: *const f32, n: usize) -> f32 {
    // SAFETY: every load reads lanes below n (loop conditions; the tail is
    // masked, and masked-off lanes are not accessed), per the caller's
    // contract.
    unsafe {
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        while n - i >= 32 {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i + 8)), _mm256_loadu_ps(b.add(i + 8)), acc1);
            acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i + 16)), _mm256_loadu_ps(b.add(i + 16)), acc2);
            acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i + 24)), _mm256_loadu_ps(b.add(i + 24)), acc3);
            i += 32;
        }
        while n - i >= 8 {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), acc0);
            i += 8;
        }
        if i < n {
            let rem = (n - i) as i32;
            let m = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            acc1 = _mm256_fmadd_ps(_mm256_maskload_ps(a.add(i), m), _mm256_maskload_ps(b.add(i), m), acc1);
        }
        let acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
        let x = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        let x = _mm_add_ss(x, _mm_movehdup_ps(x));
        _mm_cvtss_f32(x)
    }
}
