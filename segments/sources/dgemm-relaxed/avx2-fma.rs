// SPDX-License-Identifier: GPL-2.0
//! RELAXED, NOT bit-identical: the reference BLAS `dgemm_` with every
//! term one fused multiply-add (AVX2 and FMA), the terms of a chunk summed from
//! zero before C is added, A packed for every `transa`, so results differ
//! from the reference in the last bits. In the library,
//! marked `float-reassociate`: chosen only where the policy sets
//! `allow_float_reassociate` (or `inject --allow-float-reassociate`).
#![no_std]

#[path = "../common/blas_arith.rs"]
mod blas_arith;
#[path = "../common/blas_dots.rs"]
mod blas_dots;
#[path = "../common/blas_gemm.rs"]
mod blas_gemm;

blas_gemm::gemm_body!(adapt_dgemm_body, f64, blas_arith::VecD, true);
blas_gemm::gemm_entry!("dgemm_", adapt_dgemm_body);
