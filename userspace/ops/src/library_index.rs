//! Which functions the optimization library can replace, by symbol name.

use adapt_segment::{default_library_dir, Library, Numerics, Segment};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Symbol name → name of the segment that replaces it.
#[derive(Debug, Default)]
pub struct LibraryIndex {
    pub dir: Option<PathBuf>,
    /// Symbol → (segment, its numerics).
    by_symbol: HashMap<String, (String, Numerics)>,
    /// Segment name → its numerics.
    numerics: HashMap<String, Numerics>,
    /// Segment files that could not be loaded, with the reason.
    pub unreadable: Vec<String>,
}

impl LibraryIndex {
    /// Indexes the library in `dir`, or the default library; an absent
    /// default library gives an empty index (nothing is covered).
    pub fn load(dir: Option<&Path>) -> crate::Result<Self> {
        let Some(dir) = dir.map(Path::to_path_buf).or_else(default_library_dir) else {
            return Ok(Self::default());
        };
        let library = Library::open(&dir)?;
        let mut index = Self {
            dir: Some(dir),
            ..Self::default()
        };
        // Segments with imports (format version 2) cover functions too.
        for (path, file) in library.load_all_files()? {
            match file {
                Ok(file) => index.insert(&file.segment),
                Err(err) => index.unreadable.push(format!("{}: {err}", path.display())),
            }
        }
        Ok(index)
    }

    /// Adds `segment` (files in path order). A symbol goes to the first
    /// exact segment replacing it; a segment of relaxed numerics
    /// (`float-reassociate`) only when no exact one does, so an exact
    /// segment is always the default choice, whatever the file names.
    fn insert(&mut self, segment: &Segment) {
        self.numerics.insert(segment.name.clone(), segment.numerics);
        for function in &segment.functions {
            let entry = self
                .by_symbol
                .entry(function.symbol.clone())
                .or_insert_with(|| (segment.name.clone(), segment.numerics));
            if !entry.1.is_exact() && segment.numerics.is_exact() {
                *entry = (segment.name.clone(), segment.numerics);
            }
        }
    }

    /// The segment replacing `symbol`, if any: an exact one if there is
    /// one (see [`LibraryIndex::insert`]).
    pub fn segment_for(&self, symbol: &str) -> Option<&str> {
        self.by_symbol.get(symbol).map(|(name, _)| name.as_str())
    }

    /// The numerics of the segment named `segment`, if it is indexed.
    pub fn numerics_of(&self, segment: &str) -> Option<Numerics> {
        self.numerics.get(segment).copied()
    }

    /// The numerics of `segment` when they keep it out of the adaptive
    /// loop: not exact, and `allow_float_reassociate` (the policy's) off.
    /// `None`: it may be a candidate (exact, allowed, or not indexed, which
    /// `plan` then judges itself).
    pub fn refused_numerics(
        &self,
        segment: &str,
        allow_float_reassociate: bool,
    ) -> Option<Numerics> {
        match self.numerics_of(segment)? {
            Numerics::Exact => None,
            Numerics::FloatReassociate if allow_float_reassociate => None,
            refused => Some(refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapt_segment::{CType, Contract, Function, Scalar};

    fn segment(name: &str, numerics: Numerics, symbols: &[&str]) -> Segment {
        Segment {
            name: name.into(),
            version: 1,
            description: String::new(),
            build: String::new(),
            numerics,
            functions: symbols
                .iter()
                .map(|s| Function {
                    symbol: (*s).into(),
                    library: String::new(),
                    contract: Contract {
                        returns: CType::value(Scalar::Void, "void"),
                        params: vec![],
                    },
                    reference: String::new(),
                })
                .collect(),
            variants: vec![],
        }
    }

    #[test]
    fn an_exact_segment_is_the_default_for_a_symbol_whatever_the_order() {
        let exact = segment("dgemm", Numerics::Exact, &["dgemm_"]);
        let relaxed = segment("dgemm-relaxed", Numerics::FloatReassociate, &["dgemm_"]);
        // dgemm-relaxed.seg sorts before dgemm.seg: the relaxed one is
        // seen first in the library.
        for order in [[&relaxed, &exact], [&exact, &relaxed]] {
            let mut index = LibraryIndex::default();
            for s in order {
                index.insert(s);
            }
            assert_eq!(index.segment_for("dgemm_"), Some("dgemm"));
            assert_eq!(
                index.numerics_of("dgemm-relaxed"),
                Some(Numerics::FloatReassociate)
            );
            assert_eq!(index.numerics_of("dgemm"), Some(Numerics::Exact));
        }
    }

    #[test]
    fn the_loop_skips_relaxed_segments_unless_the_policy_allows_them() {
        let mut index = LibraryIndex::default();
        index.insert(&segment("dgemm", Numerics::Exact, &["dgemm_"]));
        index.insert(&segment("fast", Numerics::FloatReassociate, &["f"]));
        assert_eq!(
            index.refused_numerics("fast", false),
            Some(Numerics::FloatReassociate)
        );
        assert_eq!(index.refused_numerics("fast", true), None);
        assert_eq!(index.refused_numerics("dgemm", false), None);
        assert_eq!(index.refused_numerics("unknown", false), None);
    }

    #[test]
    fn a_relaxed_segment_covers_a_symbol_no_exact_one_replaces() {
        let mut index = LibraryIndex::default();
        index.insert(&segment("fast", Numerics::FloatReassociate, &["f"]));
        index.insert(&segment("a", Numerics::Exact, &["g"]));
        index.insert(&segment("b", Numerics::Exact, &["g"]));
        assert_eq!(index.segment_for("f"), Some("fast"));
        // Between exact ones, the first in file order, as before.
        assert_eq!(index.segment_for("g"), Some("a"));
        assert_eq!(index.segment_for("h"), None);
        assert_eq!(index.numerics_of("nothing"), None);
    }
}
