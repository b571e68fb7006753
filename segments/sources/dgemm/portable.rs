// SPDX-License-Identifier: GPL-2.0
//! The netlib reference BLAS `dgemm_` (Fortran ABI), bit-identical, with
//! SSE2 (xmm, 4×6 register tile): see `common/blas_gemm.rs`.
#![no_std]

#[path = "../common/blas_arith.rs"]
mod blas_arith;
#[path = "../common/blas_dots.rs"]
mod blas_dots;
#[path = "../common/blas_gemm.rs"]
mod blas_gemm;

blas_gemm::gemm_body!(adapt_dgemm_body, f64, blas_arith::VecD);
blas_gemm::gemm_entry!("dgemm_", adapt_dgemm_body);
