// SPDX-License-Identifier: GPL-2.0
//! Errors of the selection.

use std::path::PathBuf;

use adapt_segment::LoaderError;

use crate::shape::UnknownShape;

/// Why the original function cannot be run in this process. The selection
/// turns every one of these into the decision
/// [`crate::Choice::OriginalUnavailable`]: the caller then measures in the
/// target (before/after, with the profiler) instead.
#[derive(Debug, thiserror::Error)]
pub enum OriginalError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a usable ELF file.
    #[error("{} is not a 64-bit ELF file: {source}", path.display())]
    Elf {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: object::Error,
    },
    /// `dlopen` failed.
    #[error("dlopen {what}: {message}")]
    Dlopen {
        /// The path or soname given to dlopen.
        what: String,
        /// `dlerror()`.
        message: String,
    },
    /// The object has no function of that name.
    #[error("{} defines no function {symbol}", path.display())]
    NoSymbol {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        symbol: String,
    },
    /// The object cannot be loaded or the function cannot be run here.
    #[error("cannot run {} outside the target: {why}", path.display())]
    NotLoadable {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The function is not a self-contained leaf, so its code cannot be
    /// run from a bare mapping of the executable.
    #[error(
        "cannot run {symbol} of {} outside the target: {why}; measure it in the target \
         instead (inject, then compare profiles or throughput, and revert if it did not help)",
        path.display()
    )]
    NotSelfContained {
        /// The executable.
        path: PathBuf,
        /// The function.
        symbol: String,
        /// The first thing that makes it depend on the running process.
        why: String,
    },
    /// A mapping call failed.
    #[error("mapping {} into this process: {what}: {source}", path.display())]
    Map {
        /// The executable.
        path: PathBuf,
        /// The call that failed.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// No original was named and the segment function declares no library.
    #[error(
        "no original to compare with: {symbol} declares no library; name the object the \
         target uses with --object PATH"
    )]
    NoneNamed {
        /// The function.
        symbol: String,
    },
}

/// Why a selection could not be made at all.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// The segment replaces no function of that name.
    #[error("segment {segment} replaces no function {function} (it replaces: {available})")]
    NoSuchFunction {
        /// Segment.
        segment: String,
        /// The function asked for.
        function: String,
        /// What it replaces.
        available: String,
    },
    /// The function's contract has no driver.
    #[error("segment {segment} function {function}: {source}")]
    Shape {
        /// Segment.
        segment: String,
        /// Function.
        function: String,
        /// The unknown signature.
        source: UnknownShape,
    },
    /// A variant named with `forced` does not exist or cannot run here.
    #[error(
        "segment {segment} has no variant {variant} this CPU can run (it can run: {available})"
    )]
    NoSuchVariant {
        /// Segment.
        segment: String,
        /// The variant asked for.
        variant: String,
        /// Variants this CPU runs.
        available: String,
    },
    /// No variant of the segment runs on this CPU.
    #[error("no variant of segment {segment} runs on this CPU")]
    NoVariant {
        /// Segment.
        segment: String,
    },
    /// The segment's code calls something the measuring child cannot
    /// provide (it provides only `fallback`, the original itself, and only
    /// when the original is run).
    #[error("segment {segment} cannot be measured here: {why}")]
    Imports {
        /// Segment.
        segment: String,
        /// What is missing.
        why: String,
    },
    /// A variant could not be loaded into this process.
    #[error(transparent)]
    Load(#[from] LoaderError),
    /// The unprivileged measuring child failed even without the original.
    #[error("nothing was measured: {reason}")]
    Child {
        /// What happened to it.
        reason: String,
    },
}
