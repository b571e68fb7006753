//! An ELF file opened and mapped read-only, with its facts.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::facts::{ElfFacts, ParseError, SymbolFilter};

/// Why an ELF file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// It could not be opened or mapped.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// It is not an ELF file adapt reads.
    #[error("{} is not a 64-bit ELF file adapt can read: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ParseError,
    },
}

/// A parsed ELF file; the file stays mapped for [`ElfObject::bytes`]. Its
/// facts are reached through `Deref` ([`ElfFacts`]).
///
/// # Invariants
///
/// `facts` were parsed from `data`: their addresses and offsets are this
/// mapping's.
pub struct ElfObject {
    path: PathBuf,
    data: memmap2::Mmap,
    facts: ElfFacts,
}

impl std::fmt::Debug for ElfObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfObject")
            .field("path", &self.path)
            .field("kind", &self.facts.kind)
            .field("loads", &self.facts.loads)
            .field("soname", &self.facts.soname)
            .field("functions", &self.facts.functions.len())
            .finish()
    }
}

impl std::ops::Deref for ElfObject {
    type Target = ElfFacts;

    fn deref(&self) -> &ElfFacts {
        &self.facts
    }
}

impl ElfObject {
    /// Maps and parses the file at `path`, with every function symbol.
    pub fn open(path: &Path) -> Result<Self, ElfError> {
        Self::open_for(path, None)
    }

    /// Maps and parses the file at `path`; with `name`, only the function
    /// symbols that may be `name` are kept ([`SymbolFilter::MayBe`]).
    pub fn open_for(path: &Path, name: Option<&str>) -> Result<Self, ElfError> {
        Self::open_with(path, name.map_or(SymbolFilter::All, SymbolFilter::MayBe))
    }

    /// Maps and parses the file at `path`, keeping the function symbols
    /// `filter` keeps ([`SymbolFilter::Nothing`]: the headers' facts only,
    /// then [`ElfObject::look_up`] if needed).
    pub fn open_with(path: &Path, filter: SymbolFilter<'_>) -> Result<Self, ElfError> {
        let open_error = |source| ElfError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        // SAFETY: The mapping is private and read-only. Like every debugger
        // and profiler reading mapped binaries, we accept that truncating the
        // file underneath would fault this process; object files are
        // replaced by rename, not rewritten in place.
        let data = unsafe { memmap2::Mmap::map(&file) }.map_err(open_error)?;
        let facts = ElfFacts::parse(&data, filter).map_err(|source| ElfError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            data,
            facts,
        })
    }

    /// Replaces its function symbols with those [`SymbolFilter::Lookup`]
    /// finds for `name`, from the same mapping.
    pub fn look_up(&mut self, name: &str) -> Result<(), ElfError> {
        let facts = ElfFacts::parse(&self.data, SymbolFilter::Lookup(name)).map_err(|source| {
            ElfError::Parse {
                path: self.path.clone(),
                source,
            }
        })?;
        self.facts.functions = facts.functions;
        self.facts.symbol_source = facts.symbol_source;
        Ok(())
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its facts, without the mapping.
    pub fn into_facts(self) -> ElfFacts {
        self.facts
    }

    /// The `len` bytes at virtual address `vaddr` as stored in the file, if
    /// all of them are in one segment's file part.
    pub fn bytes(&self, vaddr: u64, len: u64) -> Option<&[u8]> {
        self.facts.bytes_in(&self.data, vaddr, len)
    }
}
