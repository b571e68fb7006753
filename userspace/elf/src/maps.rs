//! `/proc/PID/maps`: which file (or anonymous region) backs an address.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    /// File offset of `start`.
    pub offset: u64,
    /// `inode` is 0 for anonymous mappings.
    pub inode: u64,
    /// The path or pseudo-name (`[heap]`, `[vdso]`, `[adapt:crc32-pclmul]`),
    /// empty for plain anonymous memory.
    pub name: String,
}

impl Mapping {
    /// Whether the mapping is backed by a regular file.
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.name.starts_with('/')
    }

    /// The file name without its directories, or the pseudo-name.
    pub fn short_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }
}

/// The mappings of one process at one moment.
#[derive(Clone, Debug, Default)]
pub struct ProcessMaps {
    pub pid: u32,
    /// Sorted by `start`, non-overlapping (as the kernel prints them).
    pub mappings: Vec<Mapping>,
    /// The `/proc` directory they were read from ([`proc_dir`]).
    dir: PathBuf,
}

/// The `/proc` directory that shows process `pid`'s address space:
/// `/proc/PID`, or `/proc/PID/task/TID` of a live thread once the main
/// thread has called `pthread_exit` (the process lives on in its other
/// threads, but `/proc/PID/{maps,mem,exe,map_files}` go empty with the
/// leader's address space).
///
/// Whether a directory shows an address space is decided from the first
/// byte of its `maps` (the kernel formats only the first mapping for it),
/// not from the whole file.
pub fn proc_dir(pid: u32) -> PathBuf {
    let main = PathBuf::from(format!("/proc/{pid}"));
    let has_mm = |dir: &Path| {
        let mut byte = [0u8; 1];
        File::open(dir.join("maps")).is_ok_and(|mut f| f.read(&mut byte).is_ok_and(|n| n == 1))
    };
    if has_mm(&main) {
        return main;
    }
    task_with_mm(&main, has_mm).unwrap_or(main)
}

/// The first `/proc/PID/task/TID` directory that `has_mm` accepts.
fn task_with_mm(main: &Path, mut has_mm: impl FnMut(&Path) -> bool) -> Option<PathBuf> {
    std::fs::read_dir(main.join("task"))
        .ok()?
        .flatten()
        .map(|t| t.path())
        .find(|t| has_mm(t))
}

/// The whole text of a `/proc` file, read in large chunks (a `/proc` file
/// has no size: `std::fs::read` would start with a few bytes per call).
fn read_proc_text(path: &Path) -> io::Result<String> {
    let mut text = String::with_capacity(64 * 1024);
    File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

impl ProcessMaps {
    /// Reads the maps of process `pid` once, from the directory
    /// [`proc_dir`] names (found from the text itself: no second read).
    pub fn read(pid: u32) -> io::Result<Self> {
        let main = PathBuf::from(format!("/proc/{pid}"));
        let text = read_proc_text(&main.join("maps"))?;
        if !text.is_empty() {
            return Ok(Self::parse_in(pid, main, &text));
        }
        // The leader's address space is gone: a live thread shows it.
        let mut found = None;
        let _ = task_with_mm(&main, |dir| match read_proc_text(&dir.join("maps")) {
            Ok(text) if !text.is_empty() => {
                found = Some((dir.to_path_buf(), text));
                true
            }
            _ => false,
        });
        Ok(match found {
            Some((dir, text)) => Self::parse_in(pid, dir, &text),
            None => Self::parse_in(pid, main, ""),
        })
    }

    /// Parses the text of a maps file; malformed lines are skipped.
    pub fn parse(pid: u32, text: &str) -> Self {
        Self::parse_in(pid, PathBuf::from(format!("/proc/{pid}")), text)
    }

    fn parse_in(pid: u32, dir: PathBuf, text: &str) -> Self {
        let mut mappings: Vec<Mapping> = text.lines().filter_map(parse_line).collect();
        mappings.sort_by_key(|m| m.start);
        Self { pid, mappings, dir }
    }

    /// The `/proc` directory the maps were read from: `/proc/PID`, or a
    /// live thread's once the leader has exited (see [`proc_dir`]).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The mapping containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&Mapping> {
        let index = self.mappings.partition_point(|m| m.start <= addr);
        let mapping = self.mappings.get(index.checked_sub(1)?)?;
        (addr < mapping.end).then_some(mapping)
    }

    /// `/proc/PID/map_files/START-END` of `mapping`: exactly the file
    /// mapped there, even if its path was replaced or deleted since
    /// (opening it needs `CAP_SYS_ADMIN`).
    pub fn map_file(&self, mapping: &Mapping) -> PathBuf {
        self.dir
            .join("map_files")
            .join(format!("{:x}-{:x}", mapping.start, mapping.end))
    }

    /// Where the process's view of `path` can be opened from this process
    /// (through `/proc/PID/root`, so mount namespaces and chroots are
    /// honoured), falling back to the path itself.
    pub fn open_path(&self, path: &str) -> PathBuf {
        let through_root = PathBuf::from(format!("{}/root{path}", self.dir.display()));
        if through_root.exists() {
            through_root
        } else {
            PathBuf::from(path)
        }
    }
}

fn parse_line(line: &str) -> Option<Mapping> {
    // 55d0c8a00000-55d0c8a02000 r-xp 00002000 fd:01 1234    /usr/bin/foo
    let mut fields = line.splitn(5, ' ');
    let range = fields.next()?;
    let perms = fields.next()?.as_bytes();
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let _dev = fields.next()?;
    let rest = fields.next()?.trim_start();
    let (inode, name) = match rest.split_once(' ') {
        Some((inode, name)) => (inode, name.trim_start()),
        None => (rest, ""),
    };
    let (start, end) = range.split_once('-')?;
    if perms.len() < 4 {
        return None;
    }
    let name = segment_pseudo_name(name).unwrap_or_else(|| name.to_owned());
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        readable: perms[0] == b'r',
        writable: perms[1] == b'w',
        executable: perms[2] == b'x',
        offset,
        inode: inode.parse().ok()?,
        name,
    })
}

/// Whether `file` (a name without directories) is the library `name`, a
/// soname such as `libz.so.1`: equal, or `name` followed by a version (`.`
/// then digits and dots: `libz.so.1.2.13` is `libz.so.1` and `libz.so`;
/// `libz.so.10` and `libz` are not `libz.so.1`).
pub fn is_library_file(file: &str, name: &str) -> bool {
    let version_suffix = |rest: &str| {
        rest.strip_prefix('.')
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
    };
    !name.is_empty() && (file == name || file.strip_prefix(name).is_some_and(version_suffix))
}

/// adapt's segment mappings are files of the module's own pseudo
/// filesystem, which `/proc/PID/maps` shows as `/[adapt:SEG-VAR] (deleted)`:
/// their pseudo-name `[adapt:SEG-VAR]` (no file to open).
fn segment_pseudo_name(name: &str) -> Option<String> {
    let inner = name.strip_prefix("/[adapt:")?;
    let inner = inner.strip_suffix(" (deleted)").unwrap_or(inner);
    let inner = inner.strip_suffix(']')?;
    Some(format!("[adapt:{inner}]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
5581a2e00000-5581a2e02000 r--p 00000000 00:1f 41 /usr/bin/prog
5581a2e02000-5581a2e05000 r-xp 00002000 00:1f 41 /usr/bin/prog
5581a3c4f000-5581a3c70000 rw-p 00000000 00:00 0                          [heap]
7f10e0000000-7f10e0021000 rw-p 00000000 00:00 0 
7f10e1a00000-7f10e1a13000 r-xp 00002000 00:1f 77 /usr/lib/x86_64-linux-gnu/libz.so.1.2.13
7f10e1b00000-7f10e1b01000 r-xs 00000000 00:0f 9                          /[adapt:crc32-pclmul] (deleted)
7ffd4c5e0000-7ffd4c5e2000 r-xp 00000000 00:00 0                          [vdso]
";

    #[test]
    fn parses_files_pseudo_names_and_anonymous_memory() {
        let maps = ProcessMaps::parse(7, MAPS);
        assert_eq!(maps.mappings.len(), 7);
        let text = maps.find(0x5581a2e03000).unwrap();
        assert_eq!(text.name, "/usr/bin/prog");
        assert!(text.executable && !text.writable);
        assert_eq!(text.offset, 0x2000);
        assert!(text.is_file());
        assert_eq!(maps.find(0x5581a3c50000).unwrap().name, "[heap]");
        assert_eq!(maps.find(0x7f10e0000010).unwrap().name, "");
        assert_eq!(
            maps.find(0x7f10e1a00100).unwrap().short_name(),
            "libz.so.1.2.13"
        );
        // A segment file of adapt's pseudo filesystem: its pseudo-name.
        let segment = maps.find(0x7f10e1b00000).unwrap();
        assert_eq!(segment.name, "[adapt:crc32-pclmul]");
        assert!(!segment.is_file());
        assert!(!maps.find(0x7ffd4c5e0000).unwrap().is_file());
    }

    #[test]
    fn addresses_outside_every_mapping_find_nothing() {
        let maps = ProcessMaps::parse(7, MAPS);
        assert!(maps.find(0).is_none());
        assert!(maps.find(0x5581a2e05000).is_none(), "end is exclusive");
        assert!(maps.find(u64::MAX).is_none());
    }

    #[test]
    fn library_file_names_match_sonames_with_versions() {
        assert!(is_library_file("libz.so.1.2.13", "libz.so.1"));
        assert!(is_library_file("libz.so.1", "libz.so.1"));
        assert!(!is_library_file("libz.so.10", "libz.so.1"));
        assert!(!is_library_file("libz.so.1x", "libz.so.1"));
        assert!(!is_library_file("libz.so.1", ""));
    }

    #[test]
    fn this_process_is_read_once_from_its_own_directory() {
        let me = std::process::id();
        let maps = ProcessMaps::read(me).unwrap();
        assert_eq!(maps.dir(), Path::new(&format!("/proc/{me}")));
        assert_eq!(proc_dir(me), maps.dir());
        let here = maps.find(this_process_is_read_once_from_its_own_directory as *const () as u64);
        assert!(here.is_some_and(|m| m.executable && m.is_file()));
        assert!(maps.map_file(here.unwrap()).starts_with(maps.dir()));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let maps = ProcessMaps::parse(1, "garbage\n1-2 r\n\n0-1000 r-xp zz 00:00 0 x\n");
        assert!(maps.mappings.is_empty());
    }
}
