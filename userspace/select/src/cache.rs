// SPDX-License-Identifier: GPL-2.0
//! The measurement cache, so that repeated decisions (the automatic loop)
//! do not re-measure.
//!
//! One JSON file, `selection.json`, in the cache directory
//! (`$ADAPT_CACHE_DIR`, else `$XDG_CACHE_HOME/adapt`, else
//! `~/.cache/adapt`):
//!
//! ```json
//! { "format": 2,
//!   "entries": [
//!     { "key": { "segment": "crc32", "function": "crc32", "variant": "pclmul",
//!                "variant_hash": "<sha256 of the variant's code, data, relocations, entries, features>",
//!                "cpu": { "model": "AMD EPYC 9B14", "features": "sse3,ssse3,…" },
//!                "original": { "path": "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
//!                              "symbol": "crc32", "file_sha256": "…" },
//!                "size": 16384 },
//!       "variant": { "bytes_per_sec": …, "p25": …, "p75": …, … },
//!       "original": { … the original's figure from the same run … },
//!       "ratio": 2.41,
//!       "correct": true,
//!       "measured_unix": 1795482529 } ] }
//! ```
//!
//! Figures are stored exactly: reading the file back gives the bits that
//! were measured ([`crate::exact_f64`]), so a cached decision is the
//! decision the measurement made.
//!
//! An entry is used only if its whole key equals the request's: another
//! CPU model or feature set, another build of the variant (its hash) or
//! another file for the original is a miss, the pair is measured again and
//! the new entry *replaces* the stale one (same segment, function,
//! variant name, original path and symbol, size). The file is rewritten
//! atomically (temporary file + rename); an unreadable or other-format file
//! counts as empty. At most [`MAX_ENTRIES`] are kept, newest first.
//!
//! A cache another user can write must not steer the caller's (root's)
//! decision: the directory and the file must be owned by the caller and
//! not group- or world-writable, and the file must be a regular file (not
//! a symbolic link). Otherwise the cache is *refused*: nothing is read
//! from it or written to it, and [`Cache::refused`] names the file and
//! what is wrong. New directories are created 0700, the file 0600, the
//! temporary file with `O_EXCL` (never through a planted link).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};

use std::io;
use std::path::{Path, PathBuf};

use adapt_segment::Segment;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cpu_id::CpuIdentity;
use crate::sizes::SizeClass;
use crate::timing::Figure;

/// File name inside the cache directory.
pub const CACHE_FILE: &str = "selection.json";
/// Version of the file's layout.
pub const CACHE_FORMAT: u32 = 2;
/// Most entries kept.
pub const MAX_ENTRIES: usize = 4096;

/// The cache directory: `$ADAPT_CACHE_DIR`, else `$XDG_CACHE_HOME/adapt`,
/// else `~/.cache/adapt` (`None` without any of them).
pub fn default_cache_dir() -> Option<PathBuf> {
    let non_empty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    non_empty("ADAPT_CACHE_DIR")
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|p| p.join("adapt")))
        .or_else(|| non_empty("HOME").map(|p| p.join(".cache").join("adapt")))
}

/// sha256 (hex) of everything that determines what variant `index` of
/// `segment` executes: its name, features, code, read-only data and its
/// alignment, relocations and entry offsets, and the segment's functions.
pub fn variant_cache_hash(segment: &Segment, index: usize) -> Option<String> {
    let v = segment.variants.get(index)?;
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(segment.name.as_bytes());
    for f in &segment.functions {
        field(f.symbol.as_bytes());
        field(f.contract.declaration(&f.symbol).as_bytes());
    }
    field(v.name.as_bytes());
    field(v.features.to_string().as_bytes());
    field(&v.code);
    field(&v.rodata);
    field(&v.rodata_align.to_le_bytes());
    for r in &v.relocations {
        field(&r.offset.to_le_bytes());
        field(&r.rodata_offset.to_le_bytes());
        field(&r.addend.to_le_bytes());
    }
    for e in &v.entry_offsets {
        field(&e.to_le_bytes());
    }
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The original a measurement compared with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalKey {
    /// Its file.
    pub path: String,
    /// Its name.
    pub symbol: String,
    /// sha256 of the file.
    pub file_sha256: String,
}

/// What a cached figure is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FigureKey {
    /// Segment name.
    pub segment: String,
    /// Segment function measured.
    pub function: String,
    /// Variant name.
    pub variant: String,
    /// [`variant_cache_hash`].
    pub variant_hash: String,
    /// The CPU.
    pub cpu: CpuIdentity,
    /// The original compared with.
    pub original: OriginalKey,
    /// Size class.
    pub size: SizeClass,
}

impl FigureKey {
    /// Same slot (everything but what invalidates): a new measurement for
    /// the slot replaces the old one.
    fn same_slot(&self, other: &FigureKey) -> bool {
        self.segment == other.segment
            && self.function == other.function
            && self.variant == other.variant
            && self.original.path == other.original.path
            && self.original.symbol == other.original.symbol
            && self.size == other.size
    }
}

/// One cached comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// What it is for.
    pub key: FigureKey,
    /// The variant's figure.
    pub variant: Figure,
    /// The original's figure, from the same interleaved run.
    pub original: Figure,
    /// The paired ratio variant / original ([`crate::timing::paired_ratio`]).
    #[serde(with = "crate::exact_f64")]
    pub ratio: f64,
    /// Whether the variant's result equalled the original's.
    pub correct: bool,
    /// When it was measured (seconds since the epoch).
    pub measured_unix: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    entries: Vec<CacheEntry>,
}

/// The cache file, in memory.
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    entries: Vec<CacheEntry>,
    dirty: bool,
    refused: Option<String>,
}

/// Why `meta` (of `path`) may not steer a decision of user `euid`.
fn untrusted(path: &Path, meta: &std::fs::Metadata, euid: u32) -> Option<String> {
    let what = if meta.is_dir() { "directory" } else { "file" };
    if meta.uid() != euid {
        Some(format!(
            "the cache {what} {} is owned by uid {}, not by the caller (uid {euid}): it is not \
             used; remove it, or choose another with --cache-dir",
            path.display(),
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "the cache {what} {} is group- or world-writable (mode {:o}): it is not used; \
             chmod go-w it, or remove it",
            path.display(),
            meta.mode() & 0o7777
        ))
    } else {
        None
    }
}

/// Why the cache at `dir`/`file` is refused, if it is.
fn refusal(dir: &Path, file: &Path) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if let Ok(meta) = std::fs::metadata(dir) {
        if let Some(why) = untrusted(dir, &meta, euid) {
            return Some(why);
        }
    }
    match std::fs::symlink_metadata(file) {
        Ok(meta) if !meta.file_type().is_file() => Some(format!(
            "the cache file {} is not a regular file (a symbolic link?): it is not used; \
             remove it",
            file.display()
        )),
        Ok(meta) => untrusted(file, &meta, euid),
        Err(_) => None,
    }
}

impl Cache {
    /// Reads `dir/selection.json` (missing, unreadable or of another
    /// format: empty).
    pub fn open(dir: &Path) -> Cache {
        let path = dir.join(CACHE_FILE);
        let refused = refusal(dir, &path);
        let entries = std::fs::read(&path)
            .ok()
            .filter(|_| refused.is_none())
            .and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
            .filter(|f| f.format == CACHE_FORMAT)
            .map(|f| f.entries)
            .unwrap_or_default();
        Cache {
            path,
            entries,
            dirty: false,
            refused,
        }
    }

    /// Why the cache is not used (see the module documentation), if so.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry for exactly `key`.
    pub fn lookup(&self, key: &FigureKey) -> Option<&CacheEntry> {
        self.entries.iter().find(|e| e.key == *key)
    }

    /// Adds `entry`, replacing any entry of the same slot (stale or not).
    pub fn insert(&mut self, entry: CacheEntry) {
        self.entries.retain(|e| !e.key.same_slot(&entry.key));
        self.entries.insert(0, entry);
        self.entries.truncate(MAX_ENTRIES);
        self.dirty = true;
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the file if anything changed (creating the directory).
    pub fn save(&mut self) -> io::Result<()> {
        if !self.dirty || self.refused.is_some() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            if let Some(why) = refusal(dir, &self.path) {
                return Err(io::Error::other(why));
            }
        }
        let doc = CacheFile {
            format: CACHE_FORMAT,
            entries: self.entries.clone(),
        };
        let text = serde_json::to_vec_pretty(&doc).map_err(io::Error::other)?;
        let tmp = self
            .path
            .with_extension(format!("json.tmp.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?
            .write_all(&text)?;
        std::fs::rename(&tmp, &self.path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn set_mode(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_cache_another_user_can_write_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("c");
        std::fs::create_dir(&d).unwrap();
        set_mode(&d, 0o700);
        let file = d.join(CACHE_FILE);
        std::fs::write(&file, br#"{"format":2,"entries":[]}"#).unwrap();
        set_mode(&file, 0o600);
        assert_eq!(Cache::open(&d).refused(), None);

        set_mode(&file, 0o666);
        let c = Cache::open(&d);
        let why = c.refused().expect("world-writable file refused");
        assert!(why.contains(&file.display().to_string()), "{why}");
        assert!(why.contains("writable"), "{why}");
        set_mode(&file, 0o600);

        set_mode(&d, 0o777);
        let why = Cache::open(&d)
            .refused()
            .map(str::to_owned)
            .expect("refused");
        assert!(
            why.contains("directory") && why.contains(&d.display().to_string()),
            "{why}"
        );
        set_mode(&d, 0o700);

        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &file).unwrap();
        let mut c = Cache::open(&d);
        assert!(c
            .refused()
            .is_some_and(|w| w.contains("not a regular file")));
        // Nothing is written through a refused cache.
        c.dirty = true;
        c.save().unwrap();
        assert!(std::fs::symlink_metadata(&file)
            .unwrap()
            .file_type()
            .is_symlink());
        std::fs::remove_file(&file).unwrap();

        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::fs::write(&file, br#"{"format":2,"entries":[]}"#).unwrap();
            std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
            let why = Cache::open(&d)
                .refused()
                .map(str::to_owned)
                .expect("refused");
            assert!(why.contains("owned by uid 65534"), "{why}");
        }
    }
}
