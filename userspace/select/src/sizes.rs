// SPDX-License-Identifier: GPL-2.0
//! Input sizes and size classes.
//!
//! A *size* is the length in bytes of the buffer a call works on: the byte
//! buffer of crc32/adler32/crc32c, the blocks of sha256 (64 bytes each), and
//! one float array of dot/axpy (`n = size / 4`). Measurements are made and
//! cached per *size class*: the power of two nearest (in ratio) to the size,
//! clamped to [`MIN_CLASS`]..=[`MAX_CLASS`], so 1000 B and 1100 B are both
//! measured at 1 KiB and share a cache entry.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Smallest size class measured.
pub const MIN_CLASS: usize = 16;
/// Largest size class measured (16 MiB).
pub const MAX_CLASS: usize = 16 << 20;

/// The sizes measured when the caller observed none: a short call, a
/// typical I/O chunk, a medium block and an L2-sized buffer.
pub const DEFAULT_SIZES: [usize; 4] = [64, 1 << 10, 16 << 10, 256 << 10];

/// A power-of-two size in bytes, the unit of measurement and caching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SizeClass(usize);

impl SizeClass {
    /// The class of an observed size: the nearest power of two in ratio
    /// (`2^round(log2 size)`), clamped to [`MIN_CLASS`]..=[`MAX_CLASS`].
    pub fn of(size: usize) -> SizeClass {
        let size = size.clamp(MIN_CLASS, MAX_CLASS);
        let lower = 1usize << (usize::BITS - 1 - size.leading_zeros());
        // size / lower is in [1, 2): round up past sqrt(2), i.e. when
        // size^2 >= 2 * lower^2 (no overflow: size <= 16 MiB).
        let class = if (size as u128) * (size as u128) >= 2 * (lower as u128) * (lower as u128) {
            lower * 2
        } else {
            lower
        };
        SizeClass(class.min(MAX_CLASS))
    }

    /// The size in bytes measured for the class.
    pub fn bytes(self) -> usize {
        self.0
    }

    /// The classes of `sizes` (or of [`DEFAULT_SIZES`] when empty), sorted,
    /// without duplicates.
    pub fn classes(sizes: &[usize]) -> Vec<SizeClass> {
        let sizes: &[usize] = if sizes.is_empty() {
            &DEFAULT_SIZES
        } else {
            sizes
        };
        let mut out: Vec<SizeClass> = sizes.iter().map(|&s| SizeClass::of(s)).collect();
        out.sort();
        out.dedup();
        out
    }
}

impl fmt::Display for SizeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        human_bytes(self.0, f)
    }
}

fn human_bytes(n: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        write!(f, "{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        write!(f, "{} KiB", n >> 10)
    } else {
        write!(f, "{n} B")
    }
}

/// Why a size could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a size: write bytes as 4096, 4K, 4KiB, 1M or 1MiB (between {MIN_CLASS} B and 16 MiB)")]
pub struct SizeParseError(pub String);

/// Parses `4096`, `4K`, `4k`, `4KiB`, `1M`, `1MiB`, `64B`.
pub fn parse_size(text: &str) -> Result<usize, SizeParseError> {
    let err = || SizeParseError(text.to_owned());
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits.parse().map_err(|_| err())?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return Err(err()),
    };
    let bytes = n.checked_mul(factor).ok_or_else(err)?;
    if !(MIN_CLASS..=MAX_CLASS).contains(&bytes) {
        return Err(err());
    }
    Ok(bytes)
}

/// Parses a comma-separated list of sizes.
pub fn parse_sizes(text: &str) -> Result<Vec<usize>, SizeParseError> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(parse_size)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_to_the_nearest_power_of_two() {
        assert_eq!(SizeClass::of(64).bytes(), 64);
        assert_eq!(SizeClass::of(1000).bytes(), 1024);
        assert_eq!(SizeClass::of(1400).bytes(), 1024);
        assert_eq!(SizeClass::of(1500).bytes(), 2048);
        assert_eq!(SizeClass::of(1).bytes(), MIN_CLASS);
        assert_eq!(SizeClass::of(usize::MAX).bytes(), MAX_CLASS);
        assert_eq!(
            SizeClass::classes(&[])
                .iter()
                .map(|c| c.bytes())
                .collect::<Vec<_>>(),
            DEFAULT_SIZES
        );
        assert_eq!(SizeClass::classes(&[1000, 1024, 1100]).len(), 1);
        assert_eq!(SizeClass::of(16 << 10).to_string(), "16 KiB");
        assert_eq!(SizeClass::of(64).to_string(), "64 B");
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(
            parse_sizes("64,1K,16KiB, 256k,1M").unwrap(),
            [64, 1024, 16384, 262144, 1 << 20]
        );
        assert!(parse_size("lots").is_err());
        assert!(parse_size("4T").is_err());
        assert!(parse_size("1").is_err());
    }
}
