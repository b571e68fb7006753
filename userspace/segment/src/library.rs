// SPDX-License-Identifier: GPL-2.0
//! The library directory: where segment files live and how to find them.

use std::path::{Path, PathBuf};

use crate::error::LoadError;
use crate::format::Segment;

/// Environment variable naming the library directory; wins over every other
/// place.
pub const LIBRARY_ENV: &str = "ADAPT_LIBRARY";
/// Name of the library directory inside a cargo target directory.
pub const LIBRARY_DIR_NAME: &str = "adapt-library";
/// File extension of segment files.
pub const SEGMENT_EXTENSION: &str = "seg";

/// Why the library could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LibraryDirError {
    /// No library directory was found.
    #[error("no segment library found (looked at ${LIBRARY_ENV}, $CARGO_TARGET_DIR/{LIBRARY_DIR_NAME}, and {LIBRARY_DIR_NAME}/ or target/{LIBRARY_DIR_NAME}/ above the executable and the current directory); build it with `cargo run -p adapt-segments --bin build-library`")]
    NotFound,
    /// The path is not a directory.
    #[error("segment library {0} is not a directory")]
    NotADirectory(PathBuf),
    /// Listing the directory failed.
    #[error("listing segment library {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No segment has that name.
    #[error("no segment named {name} in {dir}")]
    NoSuchSegment {
        /// The name asked for.
        name: String,
        /// The library directory.
        dir: PathBuf,
    },
    /// A segment file is unacceptable.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// Where the library is, in this order: `$ADAPT_LIBRARY`;
/// `$CARGO_TARGET_DIR/adapt-library`; the first `adapt-library/` or
/// `target/adapt-library/` in a directory above the running executable
/// (`target/debug/adaptctl` finds `target/adapt-library`); the same above the
/// current directory. Only existing directories count, except that
/// `$ADAPT_LIBRARY` is returned as set.
pub fn default_library_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(LIBRARY_ENV) {
        return Some(PathBuf::from(p));
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let p = PathBuf::from(t).join(LIBRARY_DIR_NAME);
        if p.is_dir() {
            return Some(p);
        }
    }
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    for start in [exe.as_deref().and_then(Path::parent), cwd.as_deref()]
        .into_iter()
        .flatten()
    {
        for dir in start.ancestors() {
            for cand in [
                dir.join(LIBRARY_DIR_NAME),
                dir.join("target").join(LIBRARY_DIR_NAME),
            ] {
                if cand.is_dir() {
                    return Some(cand);
                }
            }
        }
    }
    None
}

/// A segment file and the result of loading it.
pub type LoadedFile = (PathBuf, Result<Segment, LoadError>);

/// A directory of segment files (`NAME.seg`).
#[derive(Clone, Debug)]
pub struct Library {
    dir: PathBuf,
}

impl Library {
    /// The library in `dir`, which must be a directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Library, LibraryDirError> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(LibraryDirError::NotADirectory(dir));
        }
        Ok(Library { dir })
    }

    /// The library at [`default_library_dir`].
    pub fn open_default() -> Result<Library, LibraryDirError> {
        Library::open(default_library_dir().ok_or(LibraryDirError::NotFound)?)
    }

    /// The library in `dir` if one is given (a `--dir` option), else the
    /// default library.
    pub fn open_or_default(dir: Option<&Path>) -> Result<Library, LibraryDirError> {
        match dir {
            Some(dir) => Library::open(dir),
            None => Library::open_default(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the segment `name` is (or would be) stored.
    pub fn path_for(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{SEGMENT_EXTENSION}"))
    }

    /// Every `*.seg` file, sorted by path.
    pub fn segment_paths(&self) -> Result<Vec<PathBuf>, LibraryDirError> {
        let io = |source| LibraryDirError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(io)? {
            let p = e.map_err(io)?.path();
            if p.extension().is_some_and(|x| x == SEGMENT_EXTENSION) && p.is_file() {
                out.push(p);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every segment file with the result of loading it (a bad file does not
    /// hide the others).
    pub fn load_all(&self) -> Result<Vec<LoadedFile>, LibraryDirError> {
        Ok(self
            .segment_paths()?
            .into_iter()
            .map(|p| {
                let r = Segment::read_file(&p);
                (p, r)
            })
            .collect())
    }

    /// The segment named `name`: the file `name.seg`, or else the file whose
    /// segment is called `name`.
    pub fn find(&self, name: &str) -> Result<(PathBuf, Segment), LibraryDirError> {
        let direct = self.path_for(name);
        if direct.is_file() {
            let s = Segment::read_file(&direct)?;
            return Ok((direct, s));
        }
        for (p, r) in self.load_all()? {
            if let Ok(s) = r {
                if s.name == name {
                    return Ok((p, s));
                }
            }
        }
        Err(LibraryDirError::NoSuchSegment {
            name: name.to_owned(),
            dir: self.dir.clone(),
        })
    }
}
