// SPDX-License-Identifier: GPL-2.0
//! `dot_f32` with SSE2 only: two 4-lane accumulators, multiply then add.
#![no_std]

use core::arch::x86_64::*;

/// `float dot_f32(const float *a, const float *b, size_t n)`.
///
/// # Safety
///
/// `a[0..n]` and `b[0..n]` must be readable.
#[no_mangle]
pub unsafe extern "C" fn dot_f32(a: *const f32, b: *const f32, n: usize) -> f32 {
    // SAFETY: every read is of an index below n (loop conditions), per the
    // caller's contract; SSE2 is baseline.
    unsafe {
        let mut acc0 = _mm_setzero_ps();
        let mut acc1 = _mm_setzero_ps();
        let mut i = 0;
        while n - i >= 8 {
            acc0 = _mm_add_ps(acc0, _mm_mul_ps(_mm_loadu_ps(a.add(i)), _mm_loadu_ps(b.add(i))));
            acc1 = _mm_add_ps(acc1, _mm_mul_ps(_mm_loadu_ps(a.add(i + 4)), _mm_loadu_ps(b.add(i + 4))));
            i += 8;
        }
        let acc = _mm_add_ps(acc0, acc1);
        let x = _mm_add_ps(acc, _mm_movehl_ps(acc, acc));
        let x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 0b01));
        let mut s = _mm_cvtss_f32(x);
        while i < n {
            s += *a.add(i) * *b.add(i);
            i += 1;
        }
        s
    }
}
