// SPDX-License-Identifier: GPL-2.0
//! The library directory: where segment files live and how to find them.

use std::path::{Path, PathBuf};

use crate::error::LoadError;
use crate::format::{Segment, SegmentFile};

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
    #[error("no segment library found (looked at ${LIBRARY_ENV}, $CARGO_TARGET_DIR/{LIBRARY_DIR_NAME}, {LIBRARY_DIR_NAME}/ or target/{LIBRARY_DIR_NAME}/ above the executable, {SYSTEM_LIBRARY_DIR}, and the same above the current directory); build it with `cargo run -p adapt-library-build --bin build-library`")]
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

/// Where an installed adapt keeps its library (the Debian package puts the
/// built, verified segments here).
pub const SYSTEM_LIBRARY_DIR: &str = "/usr/lib/adapt/library";

/// Where the library is, in this order: `$ADAPT_LIBRARY`;
/// `$CARGO_TARGET_DIR/adapt-library`; the first `adapt-library/` or
/// `target/adapt-library/` in a directory above the running executable
/// (`target/debug/adaptctl` finds `target/adapt-library`); the system
/// library [`SYSTEM_LIBRARY_DIR`]; the same search above the current
/// directory. Only existing directories count, except that
/// `$ADAPT_LIBRARY` is returned as set.
///
/// The system library comes after the places a build from source finds
/// (so a developer's `target/debug/adaptctl` uses the library built beside
/// it even on a machine where adapt is installed) and before the current
/// directory (so the installed `/usr/bin/adaptctl` uses the installed
/// library wherever root's shell happens to be, a source checkout
/// included). The environment and the commands' `--library`/`--dir`
/// options still override it.
pub fn default_library_dir() -> Option<PathBuf> {
    search(&Places {
        env: std::env::var_os(LIBRARY_ENV).map(PathBuf::from),
        cargo_target_dir: std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from),
        exe: std::env::current_exe().ok(),
        system: PathBuf::from(SYSTEM_LIBRARY_DIR),
        cwd: std::env::current_dir().ok(),
    })
}

/// What [`default_library_dir`] looks at.
struct Places {
    env: Option<PathBuf>,
    cargo_target_dir: Option<PathBuf>,
    exe: Option<PathBuf>,
    system: PathBuf,
    cwd: Option<PathBuf>,
}

fn search(places: &Places) -> Option<PathBuf> {
    if let Some(p) = &places.env {
        return Some(p.clone());
    }
    if let Some(t) = &places.cargo_target_dir {
        let p = t.join(LIBRARY_DIR_NAME);
        if p.is_dir() {
            return Some(p);
        }
    }
    let above = |start: &Path| {
        start.ancestors().find_map(|dir| {
            [
                dir.join(LIBRARY_DIR_NAME),
                dir.join("target").join(LIBRARY_DIR_NAME),
            ]
            .into_iter()
            .find(|cand| cand.is_dir())
        })
    };
    if let Some(p) = places.exe.as_deref().and_then(Path::parent).and_then(above) {
        return Some(p);
    }
    if places.system.is_dir() {
        return Some(places.system.clone());
    }
    places.cwd.as_deref().and_then(above)
}

/// A file of the library and the result of reading it as a `T`.
type Loaded<T> = (PathBuf, Result<T, LoadError>);

/// A segment file and the result of loading it.
pub type LoadedFile = Loaded<Segment>;

/// A segment file read as a [`SegmentFile`] (imports allowed), or why it
/// could not be.
pub type LoadedSegmentFile = Loaded<SegmentFile>;

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
        self.load_all_with(Segment::read_file)
    }

    /// [`Library::load_all`] reading each file as a [`SegmentFile`]
    /// (imports allowed).
    pub fn load_all_files(&self) -> Result<Vec<LoadedSegmentFile>, LibraryDirError> {
        self.load_all_with(SegmentFile::read_file)
    }

    /// The segment named `name`: the file `name.seg`, or else the file whose
    /// segment is called `name`.
    pub fn find(&self, name: &str) -> Result<(PathBuf, Segment), LibraryDirError> {
        self.find_with(name, Segment::read_file, |s| &s.name)
    }

    /// [`Library::find`] reading the file as a [`SegmentFile`] (imports
    /// allowed: for callers that resolve them).
    pub fn find_file(&self, name: &str) -> Result<(PathBuf, SegmentFile), LibraryDirError> {
        self.find_with(name, SegmentFile::read_file, |s| &s.segment.name)
    }

    /// Every segment file, each read by `read`.
    fn load_all_with<T>(
        &self,
        read: fn(&Path) -> Result<T, LoadError>,
    ) -> Result<Vec<Loaded<T>>, LibraryDirError> {
        Ok(self
            .segment_paths()?
            .into_iter()
            .map(|p| {
                let r = read(&p);
                (p, r)
            })
            .collect())
    }

    /// `name.seg` read by `read`, or else the first readable file whose
    /// segment `name_of` says is called `name`.
    fn find_with<T>(
        &self,
        name: &str,
        read: fn(&Path) -> Result<T, LoadError>,
        name_of: fn(&T) -> &str,
    ) -> Result<(PathBuf, T), LibraryDirError> {
        let direct = self.path_for(name);
        if direct.is_file() {
            let s = read(&direct)?;
            return Ok((direct, s));
        }
        for (p, r) in self.load_all_with(read)? {
            if let Ok(s) = r {
                if name_of(&s) == name {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn places(root: &Path) -> Places {
        Places {
            env: None,
            cargo_target_dir: None,
            exe: Some(root.join("checkout/target/debug/adaptctl")),
            system: root.join("usr/lib/adapt/library"),
            cwd: Some(root.join("elsewhere/src")),
        }
    }

    fn mkdir(p: &Path) -> PathBuf {
        std::fs::create_dir_all(p).unwrap();
        p.to_path_buf()
    }

    #[test]
    fn search_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let p = places(root);
        assert_eq!(search(&p), None);

        // Above the current directory: the last resort.
        let cwd_lib = mkdir(&root.join("elsewhere/target/adapt-library"));
        assert_eq!(search(&p), Some(cwd_lib));

        // The system library wins over the current directory…
        let system = mkdir(&p.system);
        assert_eq!(search(&p), Some(system.clone()));

        // …but not over the library beside the executable.
        let beside = mkdir(&root.join("checkout/target/adapt-library"));
        assert_eq!(search(&p), Some(beside));

        // $CARGO_TARGET_DIR/adapt-library before the executable's.
        let cargo = mkdir(&root.join("ct/adapt-library"));
        let p = Places {
            cargo_target_dir: Some(root.join("ct")),
            ..places(root)
        };
        assert_eq!(search(&p), Some(cargo));

        // $ADAPT_LIBRARY wins, existing or not.
        let p = Places {
            env: Some(root.join("nowhere")),
            ..places(root)
        };
        assert_eq!(search(&p), Some(root.join("nowhere")));

        // An installed adaptctl (no library above /usr/bin) uses the
        // system library even when started inside a checkout.
        let p = Places {
            exe: Some(root.join("usr/bin/adaptctl")),
            cwd: Some(root.join("checkout")),
            ..places(root)
        };
        assert_eq!(search(&p), Some(system));
    }
}
