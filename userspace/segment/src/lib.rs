// SPDX-License-Identifier: GPL-2.0
//! Segments of adapt's optimization library: the file format, CPU features,
//! the iced-x86 verifier and an in-process loader.
//!
//! A *segment* (e.g. `crc32`) replaces one or more C functions (`crc32`,
//! `crc32_z`) and carries several *variants* (`avx512-vpclmul`, `pclmul`,
//! `portable`, ...), each made of position-independent code, read-only data,
//! relocations from the code to the data, one entry offset per function and
//! the CPU features it needs. Files are CBOR (serde + ciborium), canonical,
//! with a format version and a sha256 content hash; see [`format`](mod@format) for the
//! layout and [`limits`] for the bounds every length is checked against.
//!
//! # Using it (what `adaptctl library …` calls)
//!
//! | task | call |
//! |---|---|
//! | find the library directory | [`default_library_dir`], [`Library::open_default`], [`Library::open`] |
//! | list segment files | [`Library::segment_paths`], [`Library::load_all`] (each with its own `Result`) |
//! | load one | [`Library::find`] by name, [`Segment::read_file`], [`Segment::from_bytes`] |
//! | verify once per content | [`VerifyCache::verify`] (remembers successes by content hash and verifier build) |
//! | verify | [`verify_segment`] → per-variant [`VariantReport`]s or [`VerifyError::Refused`] with [`Refusal`]s (offset, instruction, [`Rule`]) |
//! | describe for display / JSON | [`Segment::describe`] → [`SegmentSummary`] (`Display` and `Serialize`) |
//! | choose a variant | [`CpuFeatures::detect`], [`Segment::best_variant`], [`Segment::supported_variants`] |
//! | identify | [`Segment::content_hash`] (sha256 of [`Segment::canonical_bytes`]) |
//! | upload bytes | [`Variant`] fields are flat: `code`, `rodata`, `rodata_align`, `relocations`, `entry_offsets`; [`Layout`] and [`apply_relocations`] define placement |
//! | run here | [`InProcessVariant::load`] then [`InProcessVariant::function`] |
//! | segments with imports (format version 2) | [`SegmentFile::from_bytes`], [`SegmentFile::verify`]; [`import_table`] fixes where each variant's import slots are (see [`format`](mod@format)) |
//!
//! Loading a file ([`Segment::from_bytes`]) checks, in order: the size limit,
//! the CBOR shape, the magic, the [`FORMAT_VERSION`], that the encoding is
//! canonical, the content hash, then [`Segment::validate`] (every count,
//! length, name and offset). The code itself is checked by [`verify_segment`].

pub mod codec;
pub mod contract;
pub mod cpu;
pub mod describe;
pub mod error;
pub mod format;
pub mod library;
pub mod loader;
pub mod reloc;
pub mod validate;
pub mod verify;
pub mod verify_cache;

pub use codec::hex;
pub use contract::{CType, Contract, Indirection, Param, Scalar};
pub use cpu::{CpuFeature, CpuFeatures, UnknownCpuFeature};
pub use describe::{FunctionSummary, SegmentSummary, VariantSummary};
pub use error::{FormatError, LoadError};
pub use format::{
    import_table, limits, Function, Import, Numerics, Relocation, Segment, SegmentFile, Variant,
    FALLBACK, FORMAT_VERSION, FORMAT_VERSION_IMPORTS, MAGIC,
};
pub use library::{
    default_library_dir, Library, LibraryDirError, LoadedFile, LoadedSegmentFile, LIBRARY_DIR_NAME,
    LIBRARY_ENV, SEGMENT_EXTENSION, SYSTEM_LIBRARY_DIR,
};
pub use loader::{InProcessVariant, LoaderError};
pub use reloc::{apply_relocations, page_align, Layout, RelocError, PAGE_SIZE};
pub use verify::{
    data_area_offset, verify_segment, verify_variant, verify_with_data, verify_with_imports,
    Refusal, Rule, VariantReport, VerifyError, BASELINE_CPUID,
};
pub use verify_cache::{Verified, VerifyCache};
