// SPDX-License-Identifier: GPL-2.0
//! Call counting (issue 12 §2): the profiler's call-frequency source.
//!
//! A **counting segment** is generated here, not built into the library:
//! at its entry it adds one to a counter in the injection's data area
//! (`lock inc`: exact under any number of threads), optionally adds one to
//! the log2 bucket of one integer argument, and tail-jumps to the original
//! function through its `fallback` import (the trampoline). It keeps every
//! argument register, the stack and the return address as they were, and
//! clobbers only `r11` and the flags, which no System V call preserves or
//! passes anything in. It is verified like any segment
//! ([`adapt_segment::verify_with_data`]) and injected with the same
//! rendezvous; adaptctl reads the counters from the target's memory.
//!
//! The data area ([`data`]) holds the counters: calls first, then the
//! histogram's [`data::BUCKETS`] buckets.

pub mod compose;
pub mod data;
pub mod generate;

pub use compose::{counted_variant, COUNTED_SUFFIX};
pub use data::{Bucket, Counters, BUCKETS, DATA_LEN};
pub use generate::{counting_segment, CountingSegment, GenerateError, MAX_ARG};
