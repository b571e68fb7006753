// SPDX-License-Identifier: GPL-2.0
//! Encoding and decoding of segment files (CBOR through ciborium), the
//! content hash, and reading/writing files.
//!
//! The encoding is canonical: a file is accepted only if re-encoding what was
//! decoded gives back exactly its bytes, so one segment has exactly one file
//! representation and the content hash identifies it.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{FormatError, LoadError};
use crate::format::{
    limits, Import, Segment, SegmentFile, FORMAT_VERSION, FORMAT_VERSION_IMPORTS, MAGIC,
};

/// The outer shape, decoded first so the format version is checked before the
/// body is interpreted.
#[derive(Deserialize)]
struct Envelope {
    magic: String,
    format_version: u32,
    #[serde(with = "serde_bytes")]
    content_hash: Vec<u8>,
    segment: ciborium::Value,
    #[serde(default)]
    imports: Option<ciborium::Value>,
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and every type of this crate is made of
    // structs, sequences, strings, byte strings and integers, which CBOR
    // always represents: serialization has no error path here.
    ciborium::into_writer(value, &mut out).expect("CBOR encoding into a Vec cannot fail");
    out
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Segment {
    /// The canonical CBOR encoding of the segment alone (what the content
    /// hash covers).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// sha256 over [`Segment::canonical_bytes`].
    pub fn content_hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_bytes()).into()
    }

    /// The content hash as lowercase hex.
    pub fn content_hash_hex(&self) -> String {
        hex(&self.content_hash())
    }

    /// The segment file of a segment without imports: magic,
    /// [`FORMAT_VERSION`], content hash and segment.
    pub fn to_bytes(&self) -> Vec<u8> {
        SegmentFile::new(self.clone(), Vec::new()).to_bytes()
    }

    /// Decodes and checks a segment file: size limit, CBOR shape, magic,
    /// format version, canonical encoding, content hash, then
    /// [`Segment::validate`]. The code is not verified here; call
    /// [`crate::verify::verify_segment`] for that.
    ///
    /// A file whose segment declares imports is refused
    /// ([`FormatError::HasImports`]): its code calls through an import table
    /// that only a caller resolving the imports can fill, so such a caller
    /// reads it with [`SegmentFile::from_bytes`] instead.
    pub fn from_bytes(bytes: &[u8]) -> Result<Segment, FormatError> {
        SegmentFile::from_bytes(bytes)?.into_leaf()
    }

    /// Reads and checks a segment file (see [`Segment::from_bytes`]). The
    /// size is checked before the file is read.
    pub fn read_file(path: &Path) -> Result<Segment, LoadError> {
        SegmentFile::read_file(path)?
            .into_leaf()
            .map_err(|source| LoadError::Format {
                path: path.to_owned(),
                source,
            })
    }

    /// Writes the segment file to `path` (atomically, as
    /// [`SegmentFile::write_file`]).
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        SegmentFile::new(self.clone(), Vec::new()).write_file(path)
    }
}

/// Reads `path` after checking its size against [`limits::MAX_FILE_SIZE`].
fn read_bounded(path: &Path) -> Result<Vec<u8>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > limits::MAX_FILE_SIZE {
        return Err(LoadError::Format {
            path: path.to_owned(),
            source: FormatError::TooLarge {
                size,
                limit: limits::MAX_FILE_SIZE,
            },
        });
    }
    std::fs::read(path).map_err(io)
}

impl SegmentFile {
    /// The file of `segment` with `imports`: [`FORMAT_VERSION`] without
    /// imports, [`FORMAT_VERSION_IMPORTS`] with some, and the content hash.
    pub fn new(segment: Segment, imports: Vec<Import>) -> SegmentFile {
        let format_version = if imports.is_empty() {
            FORMAT_VERSION
        } else {
            FORMAT_VERSION_IMPORTS
        };
        let content_hash = SegmentFile::hash_of(&segment, &imports).to_vec();
        SegmentFile {
            magic: MAGIC.to_owned(),
            format_version,
            content_hash,
            segment,
            imports,
        }
    }

    /// The content hash of `segment` with `imports`: sha256 of the
    /// segment's canonical CBOR encoding, followed (only when there are
    /// imports) by the canonical encoding of the import list. Without
    /// imports it is [`Segment::content_hash`], as in version 1.
    pub fn hash_of(segment: &Segment, imports: &[Import]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(segment.canonical_bytes());
        if !imports.is_empty() {
            h.update(encode(&imports));
        }
        h.finalize().into()
    }

    /// The content hash of this file's segment and imports.
    pub fn content_hash(&self) -> [u8; 32] {
        SegmentFile::hash_of(&self.segment, &self.imports)
    }

    /// The file's bytes (canonical CBOR).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes and checks a segment file of either version: size limit,
    /// CBOR shape, magic, format version, canonical encoding, content hash,
    /// that the version matches the presence of imports, then
    /// [`SegmentFile::validate`]. The code is not verified here; call
    /// [`SegmentFile::verify`] for that.
    pub fn from_bytes(bytes: &[u8]) -> Result<SegmentFile, FormatError> {
        if bytes.len() as u64 > limits::MAX_FILE_SIZE {
            return Err(FormatError::TooLarge {
                size: bytes.len() as u64,
                limit: limits::MAX_FILE_SIZE,
            });
        }
        let env: Envelope =
            ciborium::from_reader(bytes).map_err(|e| FormatError::Decode(e.to_string()))?;
        if env.magic != MAGIC {
            return Err(FormatError::BadMagic { found: env.magic });
        }
        if env.format_version != FORMAT_VERSION && env.format_version != FORMAT_VERSION_IMPORTS {
            return Err(FormatError::UnsupportedVersion {
                found: env.format_version,
            });
        }
        let segment: Segment = env
            .segment
            .deserialized()
            .map_err(|e| FormatError::Decode(format!("segment: {e}")))?;
        let imports: Vec<Import> = match env.imports {
            None => Vec::new(),
            Some(v) => v
                .deserialized()
                .map_err(|e| FormatError::Decode(format!("imports: {e}")))?,
        };
        let expected_version = if imports.is_empty() {
            FORMAT_VERSION
        } else {
            FORMAT_VERSION_IMPORTS
        };
        if env.format_version != expected_version {
            return Err(FormatError::Invalid {
                what: "format version".into(),
                why: if imports.is_empty() {
                    format!(
                        "version {} without imports: segments without imports are written as \
                         version {FORMAT_VERSION}",
                        env.format_version
                    )
                } else {
                    format!(
                        "version {} cannot declare imports (they need version \
                         {FORMAT_VERSION_IMPORTS})",
                        env.format_version
                    )
                },
            });
        }
        let file = SegmentFile {
            magic: env.magic,
            format_version: env.format_version,
            content_hash: env.content_hash,
            segment,
            imports,
        };
        if encode(&file) != bytes {
            return Err(FormatError::NonCanonical);
        }
        let computed = file.content_hash();
        if file.content_hash != computed {
            return Err(FormatError::HashMismatch {
                stored: hex(&file.content_hash),
                computed: hex(&computed),
            });
        }
        file.validate()?;
        Ok(file)
    }

    /// The segment of a file that declares no imports; a file that does
    /// is refused ([`FormatError::HasImports`], see [`Segment::from_bytes`]).
    pub fn into_leaf(self) -> Result<Segment, FormatError> {
        if !self.imports.is_empty() {
            return Err(FormatError::HasImports {
                segment: self.segment.name,
                imports: self.imports.into_iter().map(|i| i.name).collect(),
            });
        }
        Ok(self.segment)
    }

    /// Reads and checks a segment file of either version (see
    /// [`SegmentFile::from_bytes`]). The size is checked before the file is
    /// read.
    pub fn read_file(path: &Path) -> Result<SegmentFile, LoadError> {
        let bytes = read_bounded(path)?;
        SegmentFile::from_bytes(&bytes).map_err(|source| LoadError::Format {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the file to `path` (atomically: a temporary file in the same
    /// directory renamed over it).
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("seg.tmp");
        std::fs::write(&tmp, self.to_bytes())?;
        std::fs::rename(&tmp, path)
    }
}
