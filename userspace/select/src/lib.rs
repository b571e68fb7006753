// SPDX-License-Identifier: GPL-2.0
//! In-situ selection: which variant of a segment to inject, decided by
//! measuring on this machine.
//!
//! CPU flags do not say which implementation is fastest where a target
//! runs: under emulation (QEMU TCG) a hardware CRC or carry-less multiply
//! can be ten times slower than table-driven code, and real CPUs differ
//! too. So before an injection the selection runs each variant the CPU
//! supports — from its packed bytes through
//! [`adapt_segment::InProcessVariant`], exactly as it runs in a target — and
//! the original function, from the same ELF file the target mapped
//! ([`original`]), on inputs of the sizes the target uses ([`sizes`]),
//! interleaved, repeated, median taken ([`timing`]). It checks that every
//! variant computes what the original computes, and injects the fastest
//! only if it beats the original by a margin ([`decide`]). Figures are
//! cached per (segment, function, variant build, CPU, original file, size
//! class) ([`cache`]).
//!
//! # The privilege boundary
//!
//! The caller is usually root; the original is code the target chose. So
//! this process only *opens and reads* the original's file (through
//! `/proc/PID/map_files` for a target) and parses it as hostile input
//! ([`adapt_elf`], size-bounded). Everything that runs code — the original
//! and the variants, one mechanism — runs in a forked child that first
//! drops every privilege (the target's uid or `nobody`, no capability,
//! `no_new_privs`, seccomp, no inherited descriptor, CPU and wall-clock
//! limits: [`sandbox`]) and answers in CBOR, which is validated before use
//! ([`child`]). A crash, hang or garbage there means "original not
//! measured", never an effect here. Whether the original is the function
//! the segment replaces is judged by content where possible ([`evidence`]),
//! else by the differential check in the child.
//!
//! # Using it (what `adaptctl bench` and `adaptctl inject` call)
//!
//! | task | call |
//! |---|---|
//! | measure and decide | [`SelectRequest::new`], adjust fields, [`select`] → [`Selection`] |
//! | print for a person | `Display` of [`Selection`] (table + verdict), [`Selection::verdict`] (one line) |
//! | print for a program | `Serialize` of [`Selection`] |
//! | what to inject | [`Selection::decision`] → [`Decision::variant_to_inject`] (`None`: inject nothing) |
//! | the rule alone, on figures | [`decide()`](decide::decide) with [`Comparison`]s, [`DEFAULT_MARGIN`] |
//! | sizes from the command line | [`parse_sizes`], [`SizeClass`], [`DEFAULT_SIZES`] |
//! | read the original (parent) | [`PreparedOriginal::prepare`] with an [`OriginalSpec`] |
//! | run something unprivileged | [`sandbox::Sandbox`], [`Identity`], [`Limits`] |
//! | the cache | [`default_cache_dir`], [`Cache`], [`variant_cache_hash`] |
//!
//! When the original cannot be run (an executable's
//! function that is not a self-contained leaf, a fixed-address executable
//! whose addresses are taken, no original named) the decision is
//! [`Choice::OriginalUnavailable`] with the reason and the fastest variant
//! measured here: the caller then measures in the target (before and
//! after, with the profiler) and reverts if it did not help.

pub mod blas;
pub mod cache;
pub mod child;
pub mod cpu_id;
pub mod decide;
pub mod driver;
pub mod error;
pub mod evidence;
pub mod exact_f64;
pub mod exec_map;
pub mod leaf_check;
pub mod original;
pub mod report;
pub mod sandbox;
pub mod selection;
pub mod shape;
pub mod sizes;
pub mod timing;

pub use cache::{
    default_cache_dir, variant_cache_hash, Cache, CacheEntry, FigureKey, OriginalKey, CACHE_FILE,
};
pub use cpu_id::CpuIdentity;
pub use decide::{decide, Choice, Comparison, Decision, Forced, DEFAULT_MARGIN};
pub use error::{OriginalError, SelectError};
pub use evidence::{Evidence, Match};
pub use original::{LoadMethod, Original, OriginalSpec, PreparedOriginal};
pub use sandbox::{Identity, Limits};
pub use selection::{
    select, CacheReport, CacheUse, OriginalReport, SelectRequest, Selection, SizeRow, Skipped,
    VariantFigure, VariantSpeedup,
};
pub use shape::{Shape, UnknownShape};
pub use sizes::{parse_size, parse_sizes, SizeClass, SizeParseError, DEFAULT_SIZES};
pub use timing::{Budget, Figure};
