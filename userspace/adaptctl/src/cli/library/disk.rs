//! Finding the library directory and the segments a command names.

use adapt_segment::{Library, LibraryDirError, SegmentFile};
use std::path::PathBuf;

/// `--dir DIR`, shared by every library command.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DirArg {
    /// Library directory (default: $ADAPT_LIBRARY, else the adapt-library
    /// directory of the cargo target directory adaptctl was built in).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

impl DirArg {
    /// The library `--dir` names, or the default one.
    pub(crate) fn open(&self) -> Result<Library, LibraryDirError> {
        Library::open_or_default(self.dir.as_deref())
    }
}

/// A segment file that could not be read, with the reason.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Unreadable {
    pub(crate) path: PathBuf,
    pub(crate) error: String,
}

/// Segments chosen by a command, with their files.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// Each with its imports (format version 2 files too).
    pub(crate) segments: Vec<(PathBuf, SegmentFile)>,
    /// Files that could not be read (only when selecting everything).
    pub(crate) unreadable: Vec<Unreadable>,
}

/// The segments named, or every segment of the library when `names` is
/// empty. Files that cannot be read are returned apart when listing
/// everything; a named segment that cannot be found or read is an error.
pub(crate) fn select(library: &Library, names: &[String]) -> Result<Selection, LibraryDirError> {
    if names.is_empty() {
        let mut segments = Vec::new();
        let mut unreadable = Vec::new();
        for (path, result) in library.load_all_files()? {
            match result {
                Ok(segment) => segments.push((path, segment)),
                Err(err) => unreadable.push(Unreadable {
                    path,
                    error: err.to_string(),
                }),
            }
        }
        return Ok(Selection {
            segments,
            unreadable,
        });
    }
    let mut segments = Vec::new();
    for name in names {
        if !segments
            .iter()
            .any(|(_, s): &(PathBuf, SegmentFile)| &s.segment.name == name)
        {
            segments.push(library.find_file(name)?);
        }
    }
    Ok(Selection {
        segments,
        unreadable: Vec::new(),
    })
}
