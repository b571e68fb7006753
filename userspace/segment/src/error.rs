// SPDX-License-Identifier: GPL-2.0
//! Errors of reading and validating segment files.

use std::path::PathBuf;

/// Why bytes are not an acceptable segment. Every variant names the part that
/// was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The file is larger than [`crate::limits::MAX_FILE_SIZE`].
    #[error("segment file is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Size found.
        size: u64,
        /// Limit.
        limit: u64,
    },
    /// The bytes are not CBOR of the segment file's shape (garbage,
    /// truncated, wrong types, unknown fields or names).
    #[error("not a segment file: {0}")]
    Decode(String),
    /// The magic string is not [`crate::MAGIC`].
    #[error("bad magic {found:?}, expected {expected:?}", expected = crate::MAGIC)]
    BadMagic {
        /// Magic found.
        found: String,
    },
    /// The format version is neither [`crate::FORMAT_VERSION`] nor
    /// [`crate::FORMAT_VERSION_IMPORTS`].
    #[error("format version {found} is not supported (this build reads versions {leaf} and {imports})", leaf = crate::FORMAT_VERSION, imports = crate::FORMAT_VERSION_IMPORTS)]
    UnsupportedVersion {
        /// Version found.
        found: u32,
    },
    /// Re-encoding the decoded segment does not give the same bytes (extra
    /// bytes after the end, non-shortest integers, unsorted features, ...).
    #[error("segment file is not in canonical encoding (re-encoding the decoded segment gives other bytes)")]
    NonCanonical,
    /// The stored content hash is not the hash of the content.
    #[error("content hash mismatch: file says {stored}, content hashes to {computed}")]
    HashMismatch {
        /// Hash in the file, hex.
        stored: String,
        /// Hash of the content, hex.
        computed: String,
    },
    /// A length or count is above its limit.
    #[error("{what}: {len} is more than the limit of {limit}")]
    Limit {
        /// The thing that is too long.
        what: String,
        /// Its length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The segment declares imports, and the caller reads leaf segments
    /// only ([`crate::Segment::from_bytes`]); callers that resolve imports
    /// read it with [`crate::SegmentFile::from_bytes`].
    #[error(
        "segment {segment} imports {} (format version 2): its code calls through an import table \
         this reader does not fill; it needs a build of adapt that resolves imports",
        imports.join(", ")
    )]
    HasImports {
        /// The segment's name.
        segment: String,
        /// The names of its imports.
        imports: Vec<String>,
    },
    /// A field has a value the format forbids.
    #[error("{what}: {why}")]
    Invalid {
        /// The field.
        what: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Why a segment file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an acceptable segment.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: FormatError,
    },
}

impl LoadError {
    /// The format error, if that is what this is.
    pub fn format_error(&self) -> Option<&FormatError> {
        match self {
            LoadError::Format { source, .. } => Some(source),
            LoadError::Io { .. } => None,
        }
    }
}
