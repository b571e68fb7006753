// SPDX-License-Identifier: GPL-2.0
//! TEST-ONLY: zlib's `crc32_z` that computes buffers of 64 bytes
//! and more itself (one bit at a time: correct and slow) and hands shorter
//! ones to the original through its `fallback` import (a tail jump through
//! the import table: `jmp qword ptr [rip+slot]`, which the builder points
//! at slot 0). Both paths are taken by any workload with mixed sizes, so a
//! guest test sees at once whether the segment and the trampoline to the
//! original give zlib's results. Built only into the testing library.
#![no_std]

#[path = "../common/crc32_fallback.rs"]
mod crc32_fallback;
