//! Which functions the optimization library can replace, by symbol name.

use adapt_segment::{default_library_dir, Library};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Symbol name → name of the segment that replaces it.
#[derive(Debug, Default)]
pub struct LibraryIndex {
    pub dir: Option<PathBuf>,
    by_symbol: HashMap<String, String>,
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
        for (path, segment) in library.load_all()? {
            match segment {
                Ok(segment) => {
                    for function in &segment.functions {
                        index
                            .by_symbol
                            .entry(function.symbol.clone())
                            .or_insert_with(|| segment.name.clone());
                    }
                }
                Err(err) => index.unreadable.push(format!("{}: {err}", path.display())),
            }
        }
        Ok(index)
    }

    /// The segment replacing `symbol`, if any.
    pub fn segment_for(&self, symbol: &str) -> Option<&str> {
        self.by_symbol.get(symbol).map(String::as_str)
    }
}
