// SPDX-License-Identifier: GPL-2.0
//! `dot_f32` with AVX-512F: four 16-lane accumulators, masked tail.
#![no_std]

use core::arch::x86_64::*;

/// `float dot_f32(const float *a, const float *b, size_t n)`.
///
/// # Safety
///
/// `a[0..n]` and `b[0..n]` must be readable.
#[no_mangle]
#[target_feature(enable = "avx512f")]
pub unsafe extern "C" fn dot_f32(a: *const f32, b: *const f32, n: usize) -> f32 {
    // SAFETY: every load reads lanes below n (loop conditions; the tail is
    // masked, and masked-off lanes are not accessed), per the caller's
    // contract.
    unsafe {
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut acc2 = _mm512_setzero_ps();
        let mut acc3 = _mm512_setzero_ps();
        let mut i = 0;
        while n - i >= 64 {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i + 16)), _mm512_loadu_ps(b.add(i + 16)), acc1);
            acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i + 32)), _mm512_loadu_ps(b.add(i + 32)), acc2);
            acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i + 48)), _mm512_loadu_ps(b.add(i + 48)), acc3);
            i += 64;
        }
        while n - i >= 16 {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), acc0);
            i += 16;
        }
        if i < n {
            // n - i < 16 here, so the mask keeps exactly the remaining lanes.
            let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
            acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a.add(i)), _mm512_maskz_loadu_ps(m, b.add(i)), acc1);
        }
        let acc = _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3));
        _mm512_reduce_add_ps(acc)
    }
}
