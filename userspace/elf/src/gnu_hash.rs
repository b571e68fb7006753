//! Looking a name up through an ELF file's GNU hash table (`.gnu.hash`,
//! `DT_GNU_HASH`), as the dynamic loader does: a bloom-filter word, one
//! bucket and a short chain instead of every entry of `.dynsym`.
//!
//! The table is input a target chose. [`GnuHash::parse`] checks that its
//! header, bloom filter and buckets lie inside the section, and
//! [`GnuHash::candidates`] reads every chain word through a bounds check
//! and stops at the end of the symbol table: a lookup reads at most one
//! chain word per symbol, whatever the table claims.
//!
//! # Layout (ELFCLASS64)
//!
//! ```text
//! u32 nbuckets, u32 symoffset, u32 bloom_size, u32 bloom_shift
//! u64 bloom[bloom_size]
//! u32 buckets[nbuckets]        first symbol index of each bucket's chain (0: empty)
//! u32 chain[nsyms - symoffset] hash of each symbol, low bit set on a chain's last
//! ```
//!
//! Symbols below `symoffset` (undefined and local dynamic symbols) are not
//! in the table: the loader cannot bind to them either.

use std::fmt;

/// The GNU hash of `name`: `h = h * 33 + byte`, from 5381.
pub fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &b| {
        h.wrapping_mul(33).wrapping_add(u32::from(b))
    })
}

/// Why a section is not a GNU hash table this reader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GnuHashError {
    /// Shorter than its header, bloom filter and buckets.
    Truncated,
    /// No bucket or no bloom word.
    Empty,
    /// `symoffset` lies beyond the symbol table.
    SymbolOffset,
}

impl fmt::Display for GnuHashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GnuHashError::Truncated => "the GNU hash table is truncated",
            GnuHashError::Empty => "the GNU hash table has no bucket or no bloom word",
            GnuHashError::SymbolOffset => "the GNU hash table starts beyond the symbol table",
        })
    }
}

impl std::error::Error for GnuHashError {}

/// A parsed GNU hash table over a symbol table of `nsyms` entries.
///
/// # Invariants
///
/// `nbuckets > 0`, `bloom.len() == 8 * bloom_size > 0`,
/// `buckets.len() == 4 * nbuckets`, `symoffset <= nsyms`; `chain` holds
/// whole words (maybe fewer than `nsyms - symoffset`).
#[derive(Clone, Copy, Debug)]
pub struct GnuHash<'d> {
    big_endian: bool,
    nsyms: u32,
    symoffset: u32,
    bloom_shift: u32,
    bloom: &'d [u8],
    buckets: &'d [u8],
    chain: &'d [u8],
}

impl<'d> GnuHash<'d> {
    /// Reads the table in `section` (the bytes of `.gnu.hash`) for a symbol
    /// table of `nsyms` entries.
    pub fn parse(section: &'d [u8], nsyms: u32, big_endian: bool) -> Result<Self, GnuHashError> {
        let word = |at: usize| read_u32(section, at, big_endian).ok_or(GnuHashError::Truncated);
        let (nbuckets, symoffset, bloom_size, bloom_shift) =
            (word(0)?, word(4)?, word(8)?, word(12)?);
        if nbuckets == 0 || bloom_size == 0 {
            return Err(GnuHashError::Empty);
        }
        if symoffset > nsyms {
            return Err(GnuHashError::SymbolOffset);
        }
        let bloom_len = usize::try_from(bloom_size)
            .ok()
            .and_then(|n| n.checked_mul(8))
            .ok_or(GnuHashError::Truncated)?;
        let buckets_len = usize::try_from(nbuckets)
            .ok()
            .and_then(|n| n.checked_mul(4))
            .ok_or(GnuHashError::Truncated)?;
        let rest = section.get(16..).ok_or(GnuHashError::Truncated)?;
        if rest.len() < bloom_len {
            return Err(GnuHashError::Truncated);
        }
        let (bloom, rest) = rest.split_at(bloom_len);
        if rest.len() < buckets_len {
            return Err(GnuHashError::Truncated);
        }
        let (buckets, chain) = rest.split_at(buckets_len);
        // Whole words only; a chain longer than the symbols it hashes is
        // read no further than them (candidates stops at nsyms).
        let chain = &chain[..chain.len() / 4 * 4];
        Ok(Self {
            big_endian,
            nsyms,
            symoffset,
            bloom_shift,
            bloom,
            buckets,
            chain,
        })
    }

    /// The indices of the symbols whose hash is `name`'s, in chain order:
    /// the only symbols that may be named `name` (the caller compares the
    /// names). Empty when the bloom filter rules the name out.
    pub fn candidates(&self, name: &[u8]) -> Candidates<'d> {
        let hash = gnu_hash(name);
        let mut none = Candidates {
            table: *self,
            hash,
            next: None,
        };
        // Two bits of one 64-bit bloom word, as the loader tests them.
        let words = self.bloom.len() / 8;
        let at = (hash / 64) as usize % words;
        let Some(word) = read_u64(self.bloom, at * 8, self.big_endian) else {
            return none;
        };
        let shifted = hash.checked_shr(self.bloom_shift).unwrap_or(0);
        let mask = (1u64 << (hash % 64)) | (1u64 << (shifted % 64));
        if word & mask != mask {
            return none;
        }
        let nbuckets = (self.buckets.len() / 4) as u32;
        let bucket = read_u32(
            self.buckets,
            (hash % nbuckets) as usize * 4,
            self.big_endian,
        );
        // 0 is an empty bucket (symbol 0 is the null symbol).
        none.next =
            bucket.filter(|&first| first != 0 && first >= self.symoffset && first < self.nsyms);
        none
    }
}

/// The iterator [`GnuHash::candidates`] returns: at most one step per
/// symbol of the table.
#[derive(Clone, Debug)]
pub struct Candidates<'d> {
    table: GnuHash<'d>,
    hash: u32,
    /// The next symbol index to test; `None` once the chain ended.
    next: Option<u32>,
}

impl Iterator for Candidates<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        loop {
            let index = self.next.take()?;
            let t = &self.table;
            // `index >= symoffset` holds for every index stored in `next`.
            let slot = (index - t.symoffset) as usize;
            let value = slot
                .checked_mul(4)
                .and_then(|at| read_u32(t.chain, at, t.big_endian))?;
            if value & 1 == 0 && index + 1 < t.nsyms {
                self.next = Some(index + 1);
            }
            if value | 1 == self.hash | 1 {
                return Some(index);
            }
        }
    }
}

fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    })
}

fn read_u64(bytes: &[u8], at: usize, big_endian: bool) -> Option<u64> {
    let raw: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(if big_endian {
        u64::from_be_bytes(raw)
    } else {
        u64::from_le_bytes(raw)
    })
}

/// Builds a GNU hash table for `names` (the symbols from `symoffset` on,
/// in the order given: the caller's symbol table must be sorted by bucket,
/// as [`build`] returns the order it needs). For tests: a table built the
/// way a linker builds one, to check lookups against a linear scan.
#[doc(hidden)]
pub mod build {
    use super::gnu_hash;

    /// Returns the section bytes (little-endian) and the order of `names`
    /// the symbol table must have after `symoffset` (sorted by bucket).
    /// `symoffset` is at least 1, as in every linked file (symbol 0 is the
    /// null symbol, and a bucket holding 0 is empty).
    pub fn table(
        names: &[Vec<u8>],
        symoffset: u32,
        nbuckets: u32,
        bloom_size: u32,
        bloom_shift: u32,
    ) -> (Vec<u8>, Vec<usize>) {
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by_key(|&i| gnu_hash(&names[i]) % nbuckets);
        let mut bloom = vec![0u64; bloom_size as usize];
        let mut buckets = vec![0u32; nbuckets as usize];
        let mut chain = vec![0u32; names.len()];
        for (pos, &i) in order.iter().enumerate() {
            let h = gnu_hash(&names[i]);
            let word = (h / 64) as usize % bloom.len();
            bloom[word] |=
                (1u64 << (h % 64)) | (1u64 << (h.checked_shr(bloom_shift).unwrap_or(0) % 64));
            let b = (h % nbuckets) as usize;
            if buckets[b] == 0 {
                buckets[b] = symoffset + pos as u32;
            }
            let last = order
                .get(pos + 1)
                .is_none_or(|&n| gnu_hash(&names[n]) % nbuckets != h % nbuckets);
            chain[pos] = (h & !1) | u32::from(last);
        }
        let mut out = Vec::new();
        for w in [nbuckets, symoffset, bloom_size, bloom_shift] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        for w in bloom {
            out.extend_from_slice(&w.to_le_bytes());
        }
        for w in buckets.into_iter().chain(chain) {
            out.extend_from_slice(&w.to_le_bytes());
        }
        (out, order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_loaders() {
        // Values from the GNU hash definition (h = h * 33 + c, from 5381).
        assert_eq!(gnu_hash(b""), 5381);
        assert_eq!(gnu_hash(b"a"), 5381 * 33 + 97);
        assert_eq!(gnu_hash(b"printf"), 0x156b_2bb8);
        assert_eq!(gnu_hash(b"exit"), 0x7c96_7e3f);
    }

    fn lookup(table: &GnuHash<'_>, names: &[Vec<u8>], symoffset: u32, name: &[u8]) -> Vec<u32> {
        table
            .candidates(name)
            .filter(|&i| names[(i - symoffset) as usize] == name)
            .collect()
    }

    #[test]
    fn every_name_is_found_and_absent_names_are_not() {
        let names: Vec<Vec<u8>> = (0..300).map(|i| format!("fn_{i}").into_bytes()).collect();
        for (nbuckets, bloom_size, shift) in [(1, 1, 0), (7, 2, 5), (64, 4, 26), (301, 1, 40)] {
            let symoffset = 3;
            let (section, order) = build::table(&names, symoffset, nbuckets, bloom_size, shift);
            let sorted: Vec<Vec<u8>> = order.iter().map(|&i| names[i].clone()).collect();
            let nsyms = symoffset + names.len() as u32;
            let table = GnuHash::parse(&section, nsyms, false).unwrap();
            for (pos, name) in sorted.iter().enumerate() {
                assert_eq!(
                    lookup(&table, &sorted, symoffset, name),
                    [symoffset + pos as u32]
                );
            }
            for absent in [&b"fn_300"[..], b"", b"fn_", b"crc32"] {
                assert!(lookup(&table, &sorted, symoffset, absent).is_empty());
            }
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(
            GnuHash::parse(&[0; 15], 10, false).unwrap_err(),
            GnuHashError::Truncated
        );
        let header = |n: u32, off: u32, bloom: u32| {
            [n, off, bloom, 0]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect::<Vec<u8>>()
        };
        assert_eq!(
            GnuHash::parse(&header(0, 0, 1), 1, false).unwrap_err(),
            GnuHashError::Empty
        );
        assert_eq!(
            GnuHash::parse(&header(1, 0, 0), 1, false).unwrap_err(),
            GnuHashError::Empty
        );
        assert_eq!(
            GnuHash::parse(&header(1, 5, 1), 4, false).unwrap_err(),
            GnuHashError::SymbolOffset
        );
        // Claims u32::MAX bloom words and buckets.
        assert_eq!(
            GnuHash::parse(&header(u32::MAX, 0, u32::MAX), 1, false).unwrap_err(),
            GnuHashError::Truncated
        );
    }

    #[test]
    fn a_chain_without_an_end_stops_at_the_last_symbol() {
        // One bucket pointing at symbol 1 (symoffset 1), a full bloom word,
        // and chain words that all equal the hash with the end bit clear.
        let h = gnu_hash(b"x") & !1;
        let mut s = Vec::new();
        for w in [1u32, 1, 1, 0] {
            s.extend_from_slice(&w.to_le_bytes());
        }
        s.extend_from_slice(&u64::MAX.to_le_bytes());
        s.extend_from_slice(&1u32.to_le_bytes());
        for _ in 0..1000 {
            s.extend_from_slice(&h.to_le_bytes());
        }
        let table = GnuHash::parse(&s, 10, false).unwrap();
        assert_eq!(
            table.candidates(b"x").collect::<Vec<_>>(),
            (1..10).collect::<Vec<_>>()
        );
        // Fewer chain words than symbols: stops at the last word.
        let table = GnuHash::parse(&s[..s.len() - 4 * 995], 10, false).unwrap();
        assert_eq!(table.candidates(b"x").count(), 5);
    }
}
