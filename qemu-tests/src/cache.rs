//! The build cache outside the repository, and the keys that name its entries.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

/// The cache root: `$ADAPT_CACHE_DIR`, else `$XDG_CACHE_HOME/adapt`, else
/// `$HOME/.cache/adapt`.
pub fn cache_dir() -> Result<PathBuf> {
    match cache_dir_from(|name| std::env::var_os(name)) {
        Some(dir) => Ok(dir),
        None => bail!(
            "no cache directory: set ADAPT_CACHE_DIR (or XDG_CACHE_HOME or HOME) to a writable directory outside the repository"
        ),
    }
}

/// [`cache_dir`] with the environment passed in (for tests).
pub fn cache_dir_from(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = non_empty("ADAPT_CACHE_DIR") {
        return Some(dir);
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return Some(dir.join("adapt"));
    }
    non_empty("HOME").map(|home| home.join(".cache/adapt"))
}

/// A sha256 over labelled parts. Each part is length-prefixed, so moving bytes
/// from one part to the next changes the key.
#[derive(Clone, Default)]
pub struct CacheKey {
    hasher: Sha256,
    parts: Vec<String>,
}

impl CacheKey {
    pub fn new() -> CacheKey {
        CacheKey::default()
    }

    /// Adds one labelled input.
    pub fn part(mut self, label: &str, content: impl AsRef<[u8]>) -> CacheKey {
        let content = content.as_ref();
        for piece in [label.as_bytes(), content] {
            self.hasher.update((piece.len() as u64).to_le_bytes());
            self.hasher.update(piece);
        }
        self.parts.push(format!("{label}: {} bytes", content.len()));
        self
    }

    /// The full key, as 64 lowercase hex digits.
    pub fn hex(&self) -> String {
        let digest = self.hasher.clone().finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first 16 hex digits: the name of the cache entry.
    pub fn short(&self) -> String {
        self.hex()[..16].to_string()
    }

    /// What went into the key, one line per part (written next to the entry).
    pub fn describe(&self) -> String {
        let mut text = self.parts.join("\n");
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_prefers_adapt_then_xdg_then_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            cache_dir_from(env(&[
                ("ADAPT_CACHE_DIR", "/a"),
                ("XDG_CACHE_HOME", "/x"),
                ("HOME", "/h")
            ])),
            Some(PathBuf::from("/a"))
        );
        assert_eq!(
            cache_dir_from(env(&[
                ("ADAPT_CACHE_DIR", ""),
                ("XDG_CACHE_HOME", "/x"),
                ("HOME", "/h")
            ])),
            Some(PathBuf::from("/x/adapt"))
        );
        assert_eq!(
            cache_dir_from(env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/adapt"))
        );
        assert_eq!(cache_dir_from(env(&[])), None);
    }

    #[test]
    fn key_depends_on_every_part_and_its_boundaries() {
        let a = CacheKey::new().part("x", "ab").part("y", "c");
        let b = CacheKey::new().part("x", "a").part("y", "bc");
        let c = CacheKey::new().part("x", "ab").part("y", "c");
        assert_ne!(a.hex(), b.hex());
        assert_eq!(a.hex(), c.hex());
        assert_eq!(a.hex().len(), 64);
        assert_eq!(a.short().len(), 16);
        assert!(a.hex().starts_with(&a.short()));
    }
}
