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
//! ├─ format_version   FORMAT_VERSION (1), or FORMAT_VERSION_IMPORTS (2) with imports
//! ├─ content_hash     sha256 of the canonical CBOR encoding of `segment`
//! │                   (then of `imports` too, when there are imports)
//! ├─ segment: Segment
//! │  ├─ name, version, description, build
//! │  ├─ numerics       `exact` (absent) or `float-reassociate`
//! │  ├─ functions[i]   symbol, library, C contract, reference
//! │  └─ variants[j]    best first
//! │     ├─ name, features (closed under implication, sorted)
//! │     ├─ code, rodata, rodata_align
//! │     ├─ relocations[k]   { offset, rodata_offset, addend }   (rel32)
//! │     └─ entry_offsets[i] entry of functions[i], a code offset
//! └─ imports[m]       name (`fallback` or a C symbol), library, C contract;
//!                     absent in version 1
//! ```
//!
//! # Imports (format version 2, issue 12)
//!
//! A segment may call out of itself, but only to what its file declares in
//! [`SegmentFile::imports`]: `fallback` ([`FALLBACK`], the trampoline to the
//! original function, see `adapt_target::relocate`) or a function of the
//! target's own objects by symbol name (`memset`, `free`, `xerbla_`), each
//! with its C [`Contract`] declared like the segment's own functions.
//!
//! Every variant of such a segment gets an **import table**: one 8-byte
//! slot per declared import, slot `m` holding the run-time address of
//! `imports[m]`. Its place relative to the variant's code is fixed (see
//! [`import_table`]), so the code reaches slot `m` with a plain RIP-relative
//! operand and no relocation:
//!
//! ```text
//! code offset 0                      the variant's code (code.len() bytes)
//! trampoline_offset(len)             = len rounded up to 16: TRAMPOLINE_SPACE
//!                                      bytes for the trampoline (int3 when none)
//! import_table_offset(len)           = page_align(trampoline_offset + TRAMPOLINE_SPACE)
//! slot_offset(len, m)                = import_table_offset(len) + 8 * m
//! ```
//!
//! The only instructions that may use a slot are `call qword ptr [rip+d]`
//! and `jmp qword ptr [rip+d]` whose operand is exactly `slot_offset(len, m)`
//! for a declared `m` (the verifier refuses everything else, and checks the
//! stack alignment at each call; see [`crate::verify`]).
//!
//! ## How the kernel maps it, what adaptctl resolves
//!
//! (ABI 3: `adapt_abi::adapt_import_layout` states the same rule for the
//! module; a test in `adapt-target` pins the two equal. adaptctl chooses
//! the address, see `adapt_ops::inject`.)
//!
//! - **Code + trampoline**: one read+execute mapping (module pages,
//!   `VM_WRITE`/`VM_MAYWRITE` clear), from the code's start through
//!   `import_table_offset(len)`; the module writes the code, the trampoline
//!   adaptctl relocated for the address the module chose, and `int3` fill
//!   into its own pages before they are mapped.
//! - **Import table**: its own read-only, non-executable mapping starting
//!   exactly at `code_base + import_table_offset(len)` (whole pages: the
//!   table is `8 * imports.len()` bytes, at most one page); the module
//!   writes the slot values before mapping it, never afterwards.
//! - **Read-only data**: after the import table's pages (any place within
//!   ±2 GiB is valid, relocations are resolved for it); see
//!   [`import_table::ImportLayout`].
//! - **adaptctl at inject time** resolves every import: `fallback` is the
//!   address of the trampoline (`code_base + trampoline_offset(len)`); a
//!   symbol is looked up in the target's symbol tables (the replaced
//!   function's object first when `library` is empty, else the object
//!   named), checked to be a function, and recorded in the injection; an
//!   import that does not resolve refuses the injection with its name.
//!
//! Files whose segment declares no imports are written exactly as before,
//! with [`FORMAT_VERSION`] (1), the same bytes and the same content hash;
//! files with imports carry [`FORMAT_VERSION_IMPORTS`] (2), which older
//! builds refuse with "format version 2 is not supported".

use serde::{Deserialize, Serialize};

use crate::contract::Contract;
use crate::cpu::CpuFeatures;

/// Magic string every segment file starts with.
pub const MAGIC: &str = "adapt-segment";

/// Version of the segment file format of segments without imports (leaf
/// code). Bumped on every incompatible change; a reader refuses every
/// version it does not know.
pub const FORMAT_VERSION: u32 = 1;

/// Version of files whose segment declares imports ([`SegmentFile::imports`]
/// non-empty). A file without imports is always written as
/// [`FORMAT_VERSION`], so leaf segments keep their bytes and content hash.
pub const FORMAT_VERSION_IMPORTS: u32 = 2;

/// The import that names the trampoline to the original function.
pub const FALLBACK: &str = "fallback";

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
    /// Most imports of one segment (the import table is at most one page).
    pub const MAX_IMPORTS: usize = 64;
    /// Largest per-injection data area of generated code (see
    /// `verify::verify_with_data`), in bytes.
    pub const MAX_DATA: usize = 64 << 10;
}

/// Where a variant's trampoline space and import table lie relative to its
/// code (see the module documentation). Everything here is a function of
/// the code's length only, so the verifier, adaptctl and the module agree
/// without any field in the file.
pub mod import_table {
    use crate::reloc::page_align;

    /// Bytes reserved for the trampoline after the code (at least what
    /// `adapt_target::relocate` may produce: its `TRAMPOLINE_MAX`).
    pub const TRAMPOLINE_SPACE: usize = 64;

    /// Bytes of one import slot (a 64-bit address, little-endian).
    pub const SLOT_SIZE: usize = 8;

    /// Code offset of the trampoline: the code's end rounded up to 16.
    pub const fn trampoline_offset(code_len: usize) -> usize {
        code_len.div_ceil(16) * 16
    }

    /// Code offset of the import table: the first page boundary after the
    /// trampoline space.
    pub const fn import_table_offset(code_len: usize) -> usize {
        page_align(trampoline_offset(code_len) + TRAMPOLINE_SPACE)
    }

    /// Code offset of slot `index`.
    pub const fn slot_offset(code_len: usize, index: usize) -> usize {
        import_table_offset(code_len) + index * SLOT_SIZE
    }

    /// The placement of a variant with imports, as the module maps it:
    /// code and trampoline read+execute, the import table read-only on its
    /// own pages, the read-only data after it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ImportLayout {
        /// Offset of the trampoline from the code's start.
        pub trampoline_offset: usize,
        /// Bytes of the read+execute pages (code and trampoline).
        pub exec_pages: usize,
        /// Offset of the import table (= `exec_pages`).
        pub import_table_offset: usize,
        /// Bytes of the import table's pages.
        pub import_table_pages: usize,
        /// Offset of the read-only data.
        pub rodata_offset: usize,
        /// Bytes of the read-only data's pages.
        pub rodata_pages: usize,
    }

    impl ImportLayout {
        /// The layout of a variant of `code_len` bytes of code and
        /// `rodata_len` bytes of read-only data, with `imports` slots.
        pub const fn of(code_len: usize, rodata_len: usize, imports: usize) -> ImportLayout {
            let table = import_table_offset(code_len);
            let table_pages = page_align(imports * SLOT_SIZE);
            ImportLayout {
                trampoline_offset: trampoline_offset(code_len),
                exec_pages: table,
                import_table_offset: table,
                import_table_pages: table_pages,
                rodata_offset: table + table_pages,
                rodata_pages: page_align(rodata_len),
            }
        }

        /// Bytes of the whole reservation.
        pub const fn total(&self) -> usize {
            self.rodata_offset + self.rodata_pages
        }
    }
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
    /// What the segment's code may call (format version 2; absent, and
    /// empty, in version 1 files). Slot `m` of every variant's import
    /// table holds the address of `imports[m]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<Import>,
}

/// A function a segment's code may call through its import table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    /// [`FALLBACK`] (the trampoline to the original of the function being
    /// replaced), or the C symbol of a function in the target's objects.
    pub name: String,
    /// The object expected to define the symbol, e.g. `libc.so.6`; empty:
    /// the object of the replaced function first, then the executable and
    /// its libraries in load order. Always empty for [`FALLBACK`].
    pub library: String,
    /// Its C ABI contract (for [`FALLBACK`]: the replaced functions' own).
    pub contract: Contract,
}

impl Import {
    /// Whether this is the trampoline to the original.
    pub fn is_fallback(&self) -> bool {
        self.name == FALLBACK
    }
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
    /// Whether its results are bit for bit those of the functions it
    /// replaces ([`Numerics::Exact`], the default, absent from the file so
    /// that every file written before this field keeps its bytes and
    /// content hash) or may differ in rounding
    /// ([`Numerics::FloatReassociate`]: opt-in only, see the policy's
    /// `allow_float_reassociate`).
    #[serde(default, skip_serializing_if = "Numerics::is_exact")]
    pub numerics: Numerics,
    /// The functions it replaces; `variants[j].entry_offsets[i]` implements
    /// `functions[i]`.
    pub functions: Vec<Function>,
    /// The implementations, best first (see [`Segment::best_variant`]).
    pub variants: Vec<Variant>,
}

/// The numerical contract of a segment: how its floating-point results
/// relate to those of the functions it replaces.
///
/// Written as a string (`"float-reassociate"`); an unknown value makes the
/// file undecodable ([`crate::FormatError::Decode`]). A build of adapt that
/// predates the field refuses a file carrying it as non-canonical (its
/// decoder drops the field, so re-encoding gives other bytes): a relaxed
/// segment can never be taken for an exact one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Numerics {
    /// Bit-identical to the replaced function on every input (or, for
    /// integer code, simply the same function). The default.
    #[default]
    Exact,
    /// Floating-point operations may be fused (FMA) and sums reordered:
    /// results within the error bound the functions' `reference` text
    /// states, not bit for bit. Never chosen unless the policy allows it
    /// (`allow_float_reassociate`) or the caller overrides
    /// (`adaptctl inject --allow-float-reassociate`).
    FloatReassociate,
}

impl Numerics {
    /// Whether this is [`Numerics::Exact`].
    pub fn is_exact(&self) -> bool {
        *self == Numerics::Exact
    }

    /// The name used in files, policy messages and displays.
    pub fn name(&self) -> &'static str {
        match self {
            Numerics::Exact => "exact",
            Numerics::FloatReassociate => "float-reassociate",
        }
    }
}

impl std::fmt::Display for Numerics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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

    /// The variants' names, comma-separated (for messages listing what a
    /// segment has).
    pub fn variant_names(&self) -> String {
        let names: Vec<&str> = self.variants.iter().map(|v| v.name.as_str()).collect();
        names.join(", ")
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
