// SPDX-License-Identifier: GPL-2.0
//! The data model of a segment file.
//!
//! Everything is flat: byte vectors for code and read-only data, vectors of
//! fixed-shape records for relocations and entry points, and every offset is
//! relative to the start of the variant's code or read-only data. A reader in
//! C needs nothing but bounds checks to validate a variant (see
//! [`Segment::validate`]), which is exactly what the kernel repeats on upload.
//!
//! ```text
//! SegmentFile
//! ├─ magic            "adapt-segment"
//! ├─ format_version   FORMAT_VERSION
//! ├─ content_hash     sha256 of the canonical CBOR encoding of `segment`
//! └─ segment: Segment
//!    ├─ name, version, description, build
//!    ├─ functions[i]   symbol, library, C contract, reference
//!    └─ variants[j]    best first
//!       ├─ name, features (closed under implication, sorted)
//!       ├─ code, rodata, rodata_align
//!       ├─ relocations[k]   { offset, rodata_offset, addend }   (rel32)
//!       └─ entry_offsets[i] entry of functions[i], a code offset
//! ```

use serde::{Deserialize, Serialize};

use crate::contract::Contract;
use crate::cpu::CpuFeatures;

/// Magic string every segment file starts with.
pub const MAGIC: &str = "adapt-segment";

/// Version of the segment file format. Bumped on every incompatible change;
/// a reader refuses every other version.
pub const FORMAT_VERSION: u32 = 1;

/// Size limits, checked on load (and again by the kernel on upload).
pub mod limits {
    /// Largest segment file accepted, in bytes.
    pub const MAX_FILE_SIZE: u64 = 8 << 20;
    /// Largest code of one variant, in bytes.
    pub const MAX_CODE: usize = 1 << 20;
    /// Largest read-only data of one variant, in bytes.
    pub const MAX_RODATA: usize = 1 << 20;
    /// Largest alignment of the read-only data (one page).
    pub const MAX_RODATA_ALIGN: u32 = 4096;
    /// Most relocations in one variant.
    pub const MAX_RELOCATIONS: usize = 4096;
    /// Largest absolute relocation addend.
    pub const MAX_ADDEND: i32 = 1 << 16;
    /// Most functions one segment replaces.
    pub const MAX_FUNCTIONS: usize = 16;
    /// Most variants of one segment.
    pub const MAX_VARIANTS: usize = 16;
    /// Most parameters of one function.
    pub const MAX_PARAMS: usize = 16;
    /// Longest name (segment, variant, symbol, library, parameter, type spelling).
    pub const MAX_NAME: usize = 64;
    /// Longest free text (description, reference, build information).
    pub const MAX_TEXT: usize = 1024;
}

/// What a segment file holds on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentFile {
    /// Always [`MAGIC`].
    pub magic: String,
    /// Always [`FORMAT_VERSION`] for files this crate accepts.
    pub format_version: u32,
    /// sha256 of the canonical CBOR encoding of `segment`.
    #[serde(with = "serde_bytes")]
    pub content_hash: Vec<u8>,
    /// The segment.
    pub segment: Segment,
}

/// A segment: functions it replaces and the variants implementing them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Short name, e.g. `crc32`: lowercase ASCII letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// Version of the implementation; bumped when the code changes meaning.
    pub version: u32,
    /// One line for humans.
    pub description: String,
    /// How it was built (toolchain, flags); informative.
    pub build: String,
    /// The functions it replaces; `variants[j].entry_offsets[i]` implements
    /// `functions[i]`.
    pub functions: Vec<Function>,
    /// The implementations, best first (see [`Segment::best_variant`]).
    pub variants: Vec<Variant>,
}

/// One function a segment replaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    /// The symbol it replaces, e.g. `crc32_z`.
    pub symbol: String,
    /// The library that usually exports it, e.g. `libz.so.1`; empty if none.
    pub library: String,
    /// Its C ABI contract.
    pub contract: Contract,
    /// The behaviour it must match and the reference the differential tests
    /// compare it with.
    pub reference: String,
}

/// One implementation of a segment's functions for a set of CPU features.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// Variant name, e.g. `pclmul`, `avx2`, `avx512-vpclmul`, `portable`.
    pub name: String,
    /// CPU features the code needs beyond baseline x86-64, closed under
    /// implication (`avx2` comes with `avx`, `sse4.2`, ...).
    pub features: CpuFeatures,
    /// Position-independent machine code. Mapped read+execute.
    #[serde(with = "serde_bytes")]
    pub code: Vec<u8>,
    /// Read-only data (constants, tables). Mapped read-only, not executable,
    /// anywhere within ±2 GiB of the code.
    #[serde(with = "serde_bytes")]
    pub rodata: Vec<u8>,
    /// Required alignment of the read-only data's start (power of two, at
    /// most one page).
    pub rodata_align: u32,
    /// Places in the code referring to the read-only data, sorted by offset,
    /// not overlapping.
    pub relocations: Vec<Relocation>,
    /// Code offset of the entry of each function, in [`Segment::functions`]
    /// order.
    pub entry_offsets: Vec<u32>,
}

/// A 32-bit PC-relative reference from the code to the read-only data (ELF's
/// `R_X86_64_PC32`): once code and read-only data are placed, the
/// little-endian `i32` at `code[offset..offset + 4]` becomes
/// `rodata_base + rodata_offset + addend - (code_base + offset)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relocation {
    /// Offset of the 4-byte field in the code.
    pub offset: u32,
    /// Offset of the referenced symbol in the read-only data.
    pub rodata_offset: u32,
    /// Constant added (usually `-4`: the field ends 4 bytes before the next
    /// instruction).
    pub addend: i32,
}

impl Segment {
    /// The function replacing `symbol`, with its index.
    pub fn function(&self, symbol: &str) -> Option<(usize, &Function)> {
        self.functions
            .iter()
            .enumerate()
            .find(|(_, f)| f.symbol == symbol)
    }

    /// The variant named `name`, with its index.
    pub fn variant(&self, name: &str) -> Option<(usize, &Variant)> {
        self.variants
            .iter()
            .enumerate()
            .find(|(_, v)| v.name == name)
    }

    /// The best variant `cpu` can run.
    ///
    /// Ordering: variants are stored best first, so this is the first variant
    /// whose required features are all in `cpu`. The builder orders them from
    /// the widest vectors down (AVX-512, then AVX2/VPCLMUL, then SSE-level
    /// extensions like PCLMUL, SSE4.2 or SHA-NI, then `portable`), which is
    /// the fastest order on the hosts measured so far; the in-situ benchmark
    /// may later pick another one from [`Segment::supported_variants`].
    pub fn best_variant(&self, cpu: &CpuFeatures) -> Option<(usize, &Variant)> {
        self.variants
            .iter()
            .enumerate()
            .find(|(_, v)| cpu.is_superset(&v.features))
    }

    /// Every variant `cpu` can run, best first.
    pub fn supported_variants<'a>(
        &'a self,
        cpu: &'a CpuFeatures,
    ) -> impl Iterator<Item = (usize, &'a Variant)> + 'a {
        self.variants
            .iter()
            .enumerate()
            .filter(|(_, v)| cpu.is_superset(&v.features))
    }
}

impl Variant {
    /// The entry offset of function `index`.
    pub fn entry(&self, index: usize) -> Option<u32> {
        self.entry_offsets.get(index).copied()
    }
}
