// SPDX-License-Identifier: GPL-2.0
//! Verification results remembered by content, so that an unchanged
//! segment is verified once per build of the verifier, not once per
//! command.
//!
//! A segment that passed [`verify::verify_segment`] (or [`verify::verify_with_imports`]) leaves an empty marker file in
//! `CACHE_DIR/verified/` named by the hex sha256 of:
//!
//! ```text
//! "adapt-verified-v1\0"
//! str verifier identity   this crate's version and the running executable's
//!                         (device, inode, size, mtime): a rebuilt verifier
//!                         starts over
//! bytes content hash      SegmentFile::hash_of(segment, imports) (sha256 of
//!                         the canonical encoding of the segment and, when
//!                         it has any, of its imports: every byte the
//!                         verifier looks at; without imports it is
//!                         Segment::content_hash)
//! ```
//!
//! (`str`/`bytes` = `u32` little-endian length, then the bytes.) Only
//! successes are remembered; a refusal is verified again (and reported in
//! full) every time.
//!
//! A marker another user could have planted must not skip root's
//! verification: the directory and the marker must be owned by the caller
//! and not group- or world-writable, and the marker must be a regular file.
//! Otherwise the cache is not used (the segment is verified), and
//! [`VerifyCache::refused`] says why. New directories are created 0700,
//! markers 0600 with `O_EXCL`.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::codec::hex;
use crate::format::{Import, Segment, SegmentFile};
use crate::verify::{self, VerifyError};

/// Subdirectory of the cache directory holding the markers.
pub const VERIFIED_DIR: &str = "verified";
/// Domain separator and version of the marker name.
const DOMAIN: &[u8] = b"adapt-verified-v1\0";

/// Whether a verification ran or was remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    /// The verifier ran now, and the result was recorded if the cache is
    /// usable.
    Now,
    /// This exact content passed this verifier before.
    Remembered,
}

/// The markers of segments that passed the verifier (see the module
/// documentation).
#[derive(Clone, Debug)]
pub struct VerifyCache {
    dir: Option<PathBuf>,
    identity: String,
    refused: Option<String>,
}

impl VerifyCache {
    /// The cache in `cache_dir/verified`; `None` (no cache directory)
    /// verifies every time.
    pub fn open(cache_dir: Option<&Path>) -> Self {
        let dir = cache_dir.map(|d| d.join(VERIFIED_DIR));
        let refused = dir.as_deref().and_then(|d| match std::fs::metadata(d) {
            Ok(meta) => untrusted(d, &meta),
            Err(_) => None,
        });
        Self {
            dir,
            identity: verifier_identity(),
            refused,
        }
    }

    /// Why the cache is not used, if it is not.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// [`verify::verify_segment`], unless this content passed this
    /// verifier before.
    pub fn verify(&self, segment: &Segment) -> Result<Verified, VerifyError> {
        self.verify_with_imports(segment, &[])
    }

    /// [`verify::verify_with_imports`], unless this content with these
    /// imports passed this verifier before.
    pub fn verify_with_imports(
        &self,
        segment: &Segment,
        imports: &[Import],
    ) -> Result<Verified, VerifyError> {
        let marker = self.marker(segment, imports);
        if let Some(marker) = &marker {
            if self.trusted_marker(marker) {
                return Ok(Verified::Remembered);
            }
        }
        verify::verify_with_imports(segment, imports)?;
        if let Some(marker) = &marker {
            // A cache that cannot be written costs a verification next
            // time, nothing else.
            let _ = self.record(marker);
        }
        Ok(Verified::Now)
    }

    /// The marker path for `segment` with `imports`, when the cache is
    /// usable.
    fn marker(&self, segment: &Segment, imports: &[Import]) -> Option<PathBuf> {
        if self.refused.is_some() {
            return None;
        }
        let dir = self.dir.as_ref()?;
        let mut h = Sha256::new();
        let field = |h: &mut Sha256, b: &[u8]| {
            h.update((b.len() as u32).to_le_bytes());
            h.update(b);
        };
        h.update(DOMAIN);
        field(&mut h, self.identity.as_bytes());
        field(&mut h, &SegmentFile::hash_of(segment, imports));
        Some(dir.join(hex(&h.finalize())))
    }

    fn trusted_marker(&self, marker: &Path) -> bool {
        match std::fs::symlink_metadata(marker) {
            Ok(meta) => meta.file_type().is_file() && untrusted(marker, &meta).is_none(),
            Err(_) => false,
        }
    }

    fn record(&self, marker: &Path) -> io::Result<()> {
        let dir = marker
            .parent()
            .ok_or_else(|| io::Error::other("no parent"))?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        if let Some(why) = untrusted(dir, &std::fs::metadata(dir)?) {
            return Err(io::Error::other(why));
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(marker)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// This crate's version and the running executable's identity.
fn verifier_identity() -> String {
    let exe = std::fs::metadata("/proc/self/exe")
        .map(|m| {
            format!(
                "{}:{}:{}:{}.{}",
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec()
            )
        })
        .unwrap_or_default();
    format!("{} {exe}", env!("CARGO_PKG_VERSION"))
}

/// Why `meta` (of `path`) may not skip a verification for this user.
fn untrusted(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        Some(format!(
            "{} is owned by uid {}, not by the caller (uid {euid}): verification results there \
             are not used; remove it",
            path.display(),
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "{} is group- or world-writable (mode {:o}): verification results there are not \
             used; chmod go-w it, or remove it",
            path.display(),
            meta.mode() & 0o7777
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A small valid segment: `xor eax, eax; ret`.
    fn segment() -> Segment {
        use crate::{CType, Contract, CpuFeatures, Function, Scalar, Variant};
        Segment {
            name: "cached".into(),
            version: 1,
            description: "verification cache test".into(),
            build: "by hand".into(),
            numerics: Default::default(),
            functions: vec![Function {
                symbol: "f".into(),
                library: String::new(),
                contract: Contract {
                    returns: CType::value(Scalar::U32, "uint32_t"),
                    params: vec![],
                },
                reference: "none".into(),
            }],
            variants: vec![Variant {
                name: "v".into(),
                features: CpuFeatures::default(),
                code: vec![0x31, 0xc0, 0xc3],
                rodata: vec![],
                rodata_align: 16,
                relocations: vec![],
                entry_offsets: vec![0],
            }],
        }
    }

    #[test]
    fn a_passing_segment_is_verified_once_then_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VerifyCache::open(Some(dir.path()));
        let s = segment();
        assert_eq!(cache.verify(&s).unwrap(), Verified::Now);
        assert_eq!(cache.verify(&s).unwrap(), Verified::Remembered);
        // Another cache object (another command) remembers it too.
        let again = VerifyCache::open(Some(dir.path()));
        assert_eq!(again.verify(&s).unwrap(), Verified::Remembered);
        let meta = std::fs::metadata(dir.path().join(VERIFIED_DIR)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
    }

    #[test]
    fn imports_are_part_of_what_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VerifyCache::open(Some(dir.path()));
        let s = segment();
        let imports = vec![Import {
            name: crate::FALLBACK.into(),
            library: String::new(),
            contract: s.functions[0].contract.clone(),
        }];
        assert_eq!(cache.verify(&s).unwrap(), Verified::Now);
        // The leaf's marker does not stand for the segment with imports.
        assert_eq!(
            cache.verify_with_imports(&s, &imports).unwrap(),
            Verified::Now
        );
        assert_eq!(
            cache.verify_with_imports(&s, &imports).unwrap(),
            Verified::Remembered
        );
        assert_eq!(cache.verify(&s).unwrap(), Verified::Remembered);
    }

    #[test]
    fn changed_content_is_verified_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VerifyCache::open(Some(dir.path()));
        let s = segment();
        cache.verify(&s).unwrap();
        let mut other = s.clone();
        other.name.push('x');
        assert_eq!(cache.verify(&other).unwrap(), Verified::Now);
    }

    #[test]
    fn a_refused_segment_is_never_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VerifyCache::open(Some(dir.path()));
        let mut s = segment();
        // A privileged instruction the verifier refuses: hlt; ret.
        s.variants[0].code = vec![0xf4, 0xc3];
        assert!(cache.verify(&s).is_err());
        assert!(cache.verify(&s).is_err());
        let markers = std::fs::read_dir(dir.path().join(VERIFIED_DIR))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(markers, 0);
    }

    #[test]
    fn a_writable_cache_directory_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let s = segment();
        VerifyCache::open(Some(dir.path())).verify(&s).unwrap();
        let verified = dir.path().join(VERIFIED_DIR);
        std::fs::set_permissions(&verified, std::fs::Permissions::from_mode(0o777)).unwrap();
        let cache = VerifyCache::open(Some(dir.path()));
        assert!(
            cache.refused().unwrap().contains("world-writable"),
            "{:?}",
            cache.refused()
        );
        assert_eq!(cache.verify(&s).unwrap(), Verified::Now);
    }

    #[test]
    fn without_a_directory_every_call_verifies() {
        let cache = VerifyCache::open(None);
        let s = segment();
        assert_eq!(cache.verify(&s).unwrap(), Verified::Now);
        assert_eq!(cache.verify(&s).unwrap(), Verified::Now);
    }
}
