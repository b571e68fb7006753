// SPDX-License-Identifier: GPL-2.0
//! adapt's optimization library: the catalog of segments, the reproducible
//! builder (rustc → ELF object → `object` → segment file → verifier), and
//! the native references used by the differential tests and the benchmark.
//!
//! Build the library with
//! `cargo run -p adapt-library-build --bin build-library [-- --out DIR]`
//! (default `target/adapt-library/`); measure it with
//! `cargo run --release -p adapt-library-build --bin bench-library`.

pub mod blas;
pub mod builder;
pub mod catalog;
pub mod compile;
pub mod extract;
pub mod reference;
