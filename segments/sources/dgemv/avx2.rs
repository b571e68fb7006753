// SPDX-License-Identifier: GPL-2.0
//! The netlib reference BLAS `dgemv_` (Fortran ABI), bit-identical, with
//! AVX (ymm; no FMA): see `common/blas_gemv.rs`.
#![no_std]

#[path = "../common/blas_arith.rs"]
mod blas_arith;
#[path = "../common/blas_dots.rs"]
mod blas_dots;
#[path = "../common/blas_gemm.rs"]
#[allow(dead_code, unused_imports, unused_macros)]
mod blas_gemm;
#[path = "../common/blas_gemv.rs"]
mod blas_gemv;

blas_gemv::gemv_body!(adapt_dgemv_body, f64, blas_arith::VecD);
blas_gemv::gemv_entry!("dgemv_", adapt_dgemv_body);
