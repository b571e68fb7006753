// SPDX-License-Identifier: GPL-2.0
//! The counters a counting segment leaves in its data area, and reading
//! them back.
//!
//! ```text
//! offset 0          u64  calls
//! offset 8 + 8*b    u64  histogram bucket b (0..BUCKETS): b = 0 counts
//!                        argument value 0, b ≥ 1 counts values in
//!                        [2^(b-1), 2^b)
//! ```
//!
//! All little-endian, naturally aligned, only ever incremented by the
//! target. Readers take differences of two reads ([`Counters::since`]): a
//! data area reused by a later injection of the same code starts from the
//! counts it had.

use serde::Serialize;

/// Histogram buckets: value 0, then one per bit position of a 64-bit value.
pub const BUCKETS: usize = 65;

/// Offset of the call counter in the data area.
pub const CALLS_OFFSET: usize = 0;

/// Offset of histogram bucket `b`.
pub const fn bucket_offset(b: usize) -> usize {
    8 + 8 * b
}

/// Bytes of the counters the generated code uses.
pub const COUNTERS_LEN: usize = bucket_offset(BUCKETS);

/// Bytes of the data area a counting segment asks for (one page).
pub const DATA_LEN: u32 = 4096;

/// One read of the counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Calls counted.
    pub calls: u64,
    /// Histogram of the argument, [`BUCKETS`] buckets (all zero without one).
    pub histogram: Vec<u64>,
}

/// One bucket of a histogram, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Smallest value counted here.
    pub from: u64,
    /// Largest value counted here.
    pub to: u64,
    /// Calls with the argument in `from..=to`.
    pub calls: u64,
}

impl Counters {
    /// The counters in `bytes`, the first [`COUNTERS_LEN`] bytes of a data
    /// area as read from the target (`None` when fewer were read).
    pub fn parse(bytes: &[u8]) -> Option<Counters> {
        let word = |at: usize| -> Option<u64> {
            let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
            Some(u64::from_le_bytes(b))
        };
        Some(Counters {
            calls: word(CALLS_OFFSET)?,
            histogram: (0..BUCKETS)
                .map(|b| word(bucket_offset(b)))
                .collect::<Option<_>>()?,
        })
    }

    /// What was counted between `earlier` and `self` (two reads of the
    /// same data area; counters only grow, wrapping is treated as growth).
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            calls: self.calls.wrapping_sub(earlier.calls),
            histogram: self
                .histogram
                .iter()
                .zip(&earlier.histogram)
                .map(|(now, then)| now.wrapping_sub(*then))
                .collect(),
        }
    }

    /// The non-empty buckets, smallest values first.
    pub fn buckets(&self) -> Vec<Bucket> {
        self.histogram
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(b, &calls)| {
                let (from, to) = bucket_range(b);
                Bucket { from, to, calls }
            })
            .collect()
    }
}

/// The values bucket `b` counts (inclusive).
pub fn bucket_range(b: usize) -> (u64, u64) {
    match b {
        0 => (0, 0),
        64.. => (1 << 63, u64::MAX),
        _ => (1 << (b - 1), (1u64 << b) - 1),
    }
}

/// The bucket value `v` falls into.
pub fn bucket_of(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        64 - v.leading_zeros() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_once() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(2), 2);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4096), 13);
        assert_eq!(bucket_of(u64::MAX), 64);
        for b in 0..BUCKETS {
            let (from, to) = bucket_range(b);
            assert_eq!(bucket_of(from), b);
            assert_eq!(bucket_of(to), b);
            if b + 1 < BUCKETS {
                assert_eq!(bucket_range(b + 1).0, to + 1);
            }
        }
    }

    #[test]
    fn parse_and_difference() {
        let mut bytes = vec![0u8; COUNTERS_LEN];
        bytes[..8].copy_from_slice(&10u64.to_le_bytes());
        bytes[bucket_offset(3)..bucket_offset(3) + 8].copy_from_slice(&7u64.to_le_bytes());
        let later = Counters::parse(&bytes).unwrap();
        assert_eq!(later.calls, 10);
        assert_eq!(later.histogram[3], 7);
        let mut earlier = later.clone();
        earlier.calls = 4;
        earlier.histogram[3] = 2;
        let d = later.since(&earlier);
        assert_eq!(d.calls, 6);
        assert_eq!(
            d.buckets(),
            vec![Bucket {
                from: 4,
                to: 7,
                calls: 5
            }]
        );
        assert!(Counters::parse(&bytes[..COUNTERS_LEN - 1]).is_none());
    }
}
