// SPDX-License-Identifier: GPL-2.0
//! The netlib reference BLAS `dsyrk_` (Fortran ABI), bit-identical, with
//! SSE2 (xmm): see `common/blas_syrk.rs`.
#![no_std]

#[path = "../common/blas_arith.rs"]
mod blas_arith;
#[path = "../common/blas_dots.rs"]
mod blas_dots;
#[path = "../common/blas_gemm.rs"]
#[allow(dead_code, unused_imports, unused_macros)]
mod blas_gemm;
#[path = "../common/blas_syrk.rs"]
mod blas_syrk;

blas_syrk::syrk_body!(adapt_dsyrk_body, f64, blas_arith::VecD);
blas_syrk::syrk_entry!("dsyrk_", adapt_dsyrk_body);
