// SPDX-License-Identifier: GPL-2.0
//! Arithmetic of the bit-identical BLAS segments, with the operand order
//! pinned.
//!
//! The netlib reference, as Debian's gfortran built it, computes every
//! element with separate `mulsd`/`addsd` (no FMA) in a fixed order, and
//! x86 returns the *first* source operand's NaN when both operands are
//! NaN. LLVM treats `fmul`/`fadd` as commutative and may swap them, which
//! would change which NaN payload survives; so every multiply and add here
//! is one `asm!` instruction with the operands in the order the caller
//! wrote. That also rules out any contraction into an FMA.
//!
//! The vector width follows the variant's compilation features: AVX-512F
//! (zmm), AVX (ymm, VEX three-operand forms), or SSE2 (xmm, two-operand
//! forms); the scalars `f64`/`f32` are the one-lane case used for the
//! remainder rows.

// Each variant uses the element types of its own routines only.
#![allow(dead_code)]

use core::arch::asm;
use core::arch::x86_64::*;

/// One register of elements with ordered arithmetic.
pub trait Arith: Copy {
    /// The element.
    type S: Copy;
    /// Elements per register.
    const W: usize;
    /// Loads `W` elements (unaligned).
    ///
    /// # Safety
    ///
    /// `p..p+W` must be readable.
    unsafe fn load(p: *const Self::S) -> Self;
    /// Stores `W` elements (unaligned).
    ///
    /// # Safety
    ///
    /// `p..p+W` must be writable.
    unsafe fn store(p: *mut Self::S, v: Self);
    /// Every lane set to `*p`.
    ///
    /// # Safety
    ///
    /// `p` must be readable.
    unsafe fn splat(p: *const Self::S) -> Self;
    /// Lane `q` set to `*p.add(q * stride)`.
    ///
    /// # Safety
    ///
    /// Those `W` elements must be readable.
    unsafe fn gather(p: *const Self::S, stride: usize) -> Self;
    /// +0.0 in every lane, produced by an instruction the optimiser cannot
    /// see through (so a loop storing it is never turned into `memset`).
    fn zero() -> Self;
    /// `a * b`, `a` the first source (its NaN wins over `b`'s).
    fn mul(a: Self, b: Self) -> Self;
    /// `a + b`, `a` the first source (its NaN wins over `b`'s).
    fn add(a: Self, b: Self) -> Self;
    /// `a*b + c`: fused (one rounding) in variants built with FMA, which
    /// only the relaxed (not bit-identical) variants are; the exact ones
    /// never call it.
    #[inline(always)]
    fn fma(a: Self, b: Self, c: Self) -> Self {
        Self::add(Self::mul(a, b), c)
    }
}

/// The element types: the constants the reference compares with.
pub trait Real: Copy + PartialEq {
    /// 0.0.
    const ZERO: Self;
    /// 1.0.
    const ONE: Self;
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
}

/// Two-operand SSE forms: `op r, b` computes `r = r op b`.
#[cfg(not(target_feature = "avx"))]
macro_rules! ops {
    ($cls:ident, $mul:literal, $add:literal, $xor:literal) => {
        #[inline(always)]
        fn zero() -> Self {
            let r: Self;
            // SAFETY: a register-only instruction of the baseline (SSE2).
            unsafe {
                asm!(concat!($xor, " {r}, {r}"), r = out($cls) r,
                     options(pure, nomem, nostack, preserves_flags));
            }
            r
        }
        #[inline(always)]
        fn mul(a: Self, b: Self) -> Self {
            let mut r = a;
            // SAFETY: a register-only instruction of the baseline (SSE2).
            unsafe {
                asm!(concat!($mul, " {r}, {b}"), r = inout($cls) r, b = in($cls) b,
                     options(pure, nomem, nostack, preserves_flags));
            }
            r
        }
        #[inline(always)]
        fn add(a: Self, b: Self) -> Self {
            let mut r = a;
            // SAFETY: a register-only instruction of the baseline (SSE2).
            unsafe {
                asm!(concat!($add, " {r}, {b}"), r = inout($cls) r, b = in($cls) b,
                     options(pure, nomem, nostack, preserves_flags));
            }
            r
        }
    };
}

/// Three-operand VEX/EVEX forms: `op r, a, b` computes `r = a op b`.
///
/// `{vex3}`: LLVM's assembler, seeing a commutative VEX instruction whose
/// second source is one of `xmm8..15`/`ymm8..15`, swaps the two sources to
/// save a byte with the two-byte VEX prefix, and so would swap which NaN
/// wins; forcing the three-byte prefix keeps the sources as written.
#[cfg(target_feature = "avx")]
macro_rules! ops {
    ($cls:ident, $mul:literal, $add:literal, $xor:literal) => {
        ops!($cls, $mul, $add, $xor, "{{vex3}} ");
    };
    ($cls:ident, $mul:literal, $add:literal, $xor:literal, $pre:literal) => {
        #[inline(always)]
        fn zero() -> Self {
            let r: Self;
            // SAFETY: a register-only instruction of the variant's features.
            unsafe {
                asm!(concat!($xor, " {r}, {r}, {r}"), r = out($cls) r,
                     options(pure, nomem, nostack, preserves_flags));
            }
            r
        }
        #[inline(always)]
        fn mul(a: Self, b: Self) -> Self {
            let r: Self;
            // SAFETY: a register-only instruction of the variant's features.
            unsafe {
                asm!(concat!($pre, $mul, " {r}, {a}, {b}"), r = lateout($cls) r, a = in($cls) a,
                     b = in($cls) b, options(pure, nomem, nostack, preserves_flags));
            }
            r
        }
        #[inline(always)]
        fn add(a: Self, b: Self) -> Self {
            let r: Self;
            // SAFETY: a register-only instruction of the variant's features.
            unsafe {
                asm!(concat!($pre, $add, " {r}, {a}, {b}"), r = lateout($cls) r, a = in($cls) a,
                     b = in($cls) b, options(pure, nomem, nostack, preserves_flags));
            }
            r
        }
    };
}

/// A scalar lane of `$t`: plain loads and stores, the arithmetic in an xmm
/// register with the given mnemonics (SSE or VEX forms, see [`ops!`]).
macro_rules! scalar {
    ($t:ty, $mul:literal, $add:literal, $xor:literal) => {
        impl Arith for $t {
            type S = $t;
            const W: usize = 1;
            #[inline(always)]
            unsafe fn load(p: *const $t) -> $t {
                // SAFETY: caller's contract.
                unsafe { p.read() }
            }
            #[inline(always)]
            unsafe fn store(p: *mut $t, v: $t) {
                // SAFETY: caller's contract.
                unsafe { p.write(v) }
            }
            #[inline(always)]
            unsafe fn splat(p: *const $t) -> $t {
                // SAFETY: caller's contract.
                unsafe { p.read() }
            }
            #[inline(always)]
            unsafe fn gather(p: *const $t, _stride: usize) -> $t {
                // SAFETY: caller's contract.
                unsafe { p.read() }
            }
            ops!(xmm_reg, $mul, $add, $xor);
        }
    };
}

#[cfg(not(target_feature = "avx"))]
scalar!(f64, "mulsd", "addsd", "xorpd");
#[cfg(not(target_feature = "avx"))]
scalar!(f32, "mulss", "addss", "xorps");
#[cfg(target_feature = "avx")]
scalar!(f64, "vmulsd", "vaddsd", "vxorpd");
#[cfg(target_feature = "avx")]
scalar!(f32, "vmulss", "vaddss", "vxorps");

/// The widest register of `f64` this variant has.
#[cfg(target_feature = "avx512f")]
pub type VecD = __m512d;
/// The widest register of `f64` this variant has.
#[cfg(all(target_feature = "avx", not(target_feature = "avx512f")))]
pub type VecD = __m256d;
/// The widest register of `f64` this variant has.
#[cfg(not(target_feature = "avx"))]
pub type VecD = __m128d;

/// The widest register of `f32` this variant has.
#[cfg(target_feature = "avx512f")]
pub type VecS = __m512;
/// The widest register of `f32` this variant has.
#[cfg(all(target_feature = "avx", not(target_feature = "avx512f")))]
pub type VecS = __m256;
/// The widest register of `f32` this variant has.
#[cfg(not(target_feature = "avx"))]
pub type VecS = __m128;

#[cfg(target_feature = "avx512f")]
impl Arith for __m512d {
    type S = f64;
    const W: usize = 8;
    #[inline(always)]
    unsafe fn load(p: *const f64) -> Self {
        // SAFETY: caller's contract; AVX-512F is enabled for the crate.
        unsafe { _mm512_loadu_pd(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f64, v: Self) {
        // SAFETY: caller's contract; AVX-512F is enabled for the crate.
        unsafe { _mm512_storeu_pd(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f64) -> Self {
        // SAFETY: caller's contract; AVX-512F is enabled for the crate.
        unsafe { _mm512_set1_pd(p.read()) }
    }
    #[inline(always)]
    unsafe fn gather(p: *const f64, s: usize) -> Self {
        // SAFETY: caller's contract; AVX-512F is enabled for the crate.
        unsafe {
            let g = |q: usize| p.add(q * s).read();
            _mm512_set_pd(g(7), g(6), g(5), g(4), g(3), g(2), g(1), g(0))
        }
    }
    #[inline(always)]
    fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: AVX-512F is enabled for the crate; only relaxed variants
        // call this.
        unsafe { _mm512_fmadd_pd(a, b, c) }
    }
    // EVEX has no shorter form the assembler could swap sources for.
    ops!(zmm_reg, "vmulpd", "vaddpd", "vpxorq", "");
}

#[cfg(target_feature = "avx512f")]
impl Arith for __m512 {
    type S = f32;
    const W: usize = 16;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: caller's contract; AVX-512F is enabled for the crate.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        // SAFETY: caller's contract; AVX-512F is enabled for the crate.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> Self {
        // SAFETY: caller's contract; AVX-512F is enabled for the crate.
        unsafe { _mm512_set1_ps(p.read()) }
    }
    #[inline(always)]
    unsafe fn gather(p: *const f32, s: usize) -> Self {
        // SAFETY: caller's contract; AVX-512F is enabled for the crate.
        unsafe {
            let g = |q: usize| p.add(q * s).read();
            _mm512_set_ps(
                g(15), g(14), g(13), g(12), g(11), g(10), g(9), g(8), g(7), g(6), g(5), g(4), g(3),
                g(2), g(1), g(0),
            )
        }
    }
    #[inline(always)]
    fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: AVX-512F is enabled for the crate; only relaxed variants
        // call this.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    // EVEX has no shorter form the assembler could swap sources for.
    ops!(zmm_reg, "vmulps", "vaddps", "vpxord", "");
}

#[cfg(all(target_feature = "avx", not(target_feature = "avx512f")))]
impl Arith for __m256d {
    type S = f64;
    const W: usize = 4;
    #[inline(always)]
    unsafe fn load(p: *const f64) -> Self {
        // SAFETY: caller's contract; AVX is enabled for the crate.
        unsafe { _mm256_loadu_pd(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f64, v: Self) {
        // SAFETY: caller's contract; AVX is enabled for the crate.
        unsafe { _mm256_storeu_pd(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f64) -> Self {
        // SAFETY: caller's contract; AVX is enabled for the crate.
        unsafe { _mm256_broadcast_sd(&*p) }
    }
    #[inline(always)]
    unsafe fn gather(p: *const f64, s: usize) -> Self {
        // SAFETY: caller's contract; AVX is enabled for the crate.
        unsafe {
            let g = |q: usize| p.add(q * s).read();
            _mm256_set_pd(g(3), g(2), g(1), g(0))
        }
    }
    #[cfg(target_feature = "fma")]
    #[inline(always)]
    fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: FMA is enabled for the crate (relaxed variants only).
        unsafe { _mm256_fmadd_pd(a, b, c) }
    }
    ops!(ymm_reg, "vmulpd", "vaddpd", "vxorpd");
}

#[cfg(all(target_feature = "avx", not(target_feature = "avx512f")))]
impl Arith for __m256 {
    type S = f32;
    const W: usize = 8;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: caller's contract; AVX is enabled for the crate.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        // SAFETY: caller's contract; AVX is enabled for the crate.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> Self {
        // SAFETY: caller's contract; AVX is enabled for the crate.
        unsafe { _mm256_broadcast_ss(&*p) }
    }
    #[inline(always)]
    unsafe fn gather(p: *const f32, s: usize) -> Self {
        // SAFETY: caller's contract; AVX is enabled for the crate.
        unsafe {
            let g = |q: usize| p.add(q * s).read();
            _mm256_set_ps(g(7), g(6), g(5), g(4), g(3), g(2), g(1), g(0))
        }
    }
    #[cfg(target_feature = "fma")]
    #[inline(always)]
    fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: FMA is enabled for the crate (relaxed variants only).
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    ops!(ymm_reg, "vmulps", "vaddps", "vxorps");
}

#[cfg(not(target_feature = "avx"))]
impl Arith for __m128d {
    type S = f64;
    const W: usize = 2;
    #[inline(always)]
    unsafe fn load(p: *const f64) -> Self {
        // SAFETY: caller's contract; SSE2 is baseline.
        unsafe { _mm_loadu_pd(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f64, v: Self) {
        // SAFETY: caller's contract; SSE2 is baseline.
        unsafe { _mm_storeu_pd(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f64) -> Self {
        // SAFETY: caller's contract; SSE2 is baseline.
        unsafe { _mm_load1_pd(p) }
    }
    #[inline(always)]
    unsafe fn gather(p: *const f64, s: usize) -> Self {
        // SAFETY: caller's contract; SSE2 is baseline.
        unsafe { _mm_set_pd(p.add(s).read(), p.read()) }
    }
    ops!(xmm_reg, "mulpd", "addpd", "xorpd");
}

#[cfg(not(target_feature = "avx"))]
impl Arith for __m128 {
    type S = f32;
    const W: usize = 4;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: caller's contract; SSE is baseline.
        unsafe { _mm_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        // SAFETY: caller's contract; SSE is baseline.
        unsafe { _mm_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> Self {
        // SAFETY: caller's contract; SSE is baseline.
        unsafe { _mm_load1_ps(p) }
    }
    #[inline(always)]
    unsafe fn gather(p: *const f32, s: usize) -> Self {
        // SAFETY: caller's contract; SSE is baseline.
        unsafe {
            let g = |q: usize| p.add(q * s).read();
            _mm_set_ps(g(3), g(2), g(1), g(0))
        }
    }
    ops!(xmm_reg, "mulps", "addps", "xorps");
}
