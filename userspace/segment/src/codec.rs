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
use crate::format::{limits, Segment, SegmentFile, FORMAT_VERSION, MAGIC};

/// The outer shape, decoded first so the format version is checked before the
/// body is interpreted.
#[derive(Deserialize)]
struct Envelope {
    magic: String,
    format_version: u32,
    #[serde(with = "serde_bytes")]
    content_hash: Vec<u8>,
    segment: ciborium::Value,
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

    /// The segment file: magic, format version, content hash and segment.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(&SegmentFile {
            magic: MAGIC.to_owned(),
            format_version: FORMAT_VERSION,
            content_hash: self.content_hash().to_vec(),
            segment: self.clone(),
        })
    }

    /// Decodes and checks a segment file: size limit, CBOR shape, magic,
    /// format version, canonical encoding, content hash, then
    /// [`Segment::validate`]. The code is not verified here; call
    /// [`crate::verify::verify_segment`] for that.
    pub fn from_bytes(bytes: &[u8]) -> Result<Segment, FormatError> {
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
        if env.format_version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: env.format_version,
            });
        }
        let segment: Segment = env
            .segment
            .deserialized()
            .map_err(|e| FormatError::Decode(format!("segment: {e}")))?;
        let file = SegmentFile {
            magic: env.magic,
            format_version: env.format_version,
            content_hash: env.content_hash,
            segment,
        };
        if encode(&file) != bytes {
            return Err(FormatError::NonCanonical);
        }
        let computed = file.segment.content_hash();
        if file.content_hash != computed {
            return Err(FormatError::HashMismatch {
                stored: hex(&file.content_hash),
                computed: hex(&computed),
            });
        }
        file.segment.validate()?;
        Ok(file.segment)
    }

    /// Reads and checks a segment file (see [`Segment::from_bytes`]). The
    /// size is checked before the file is read.
    pub fn read_file(path: &Path) -> Result<Segment, LoadError> {
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
        let bytes = std::fs::read(path).map_err(io)?;
        Segment::from_bytes(&bytes).map_err(|source| LoadError::Format {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the segment file to `path` (atomically: a temporary file in the
    /// same directory renamed over it).
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("seg.tmp");
        std::fs::write(&tmp, self.to_bytes())?;
        std::fs::rename(&tmp, path)
    }
}
