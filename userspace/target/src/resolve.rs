//! Resolving a function name in a running process.
//!
//! # Which definition wins
//!
//! The objects mapped into the process (from `/proc/PID/maps`: every
//! file-backed mapping that is an ELF file) are searched: the executable
//! (`/proc/PID/exe`) first, then the shared libraries in the order of their
//! first mapping. A definition in the executable wins, as it does for the
//! dynamic loader; the libraries that also define the name are reported
//! (`also_defined_in`). A name that only libraries define, more than one
//! of them, is refused ([`ResolveError::InSeveralLibraries`]): the maps are
//! ordered by address, and top-down `mmap` places a library loaded later
//! below one loaded earlier, so their order is not the loader's binding
//! order. `--object` restricts the search to the objects it names (see
//! [`ObjectRef::matches`]) and so settles it, unless it still names several
//! (two copies of a library share a soname; their paths tell them apart).
//!
//! Inside one object, a global (or weak) definition is preferred over a
//! file-local one; two different addresses left after that are ambiguous and
//! refused. Names match the symbol as stored or as demangled (Rust, without
//! the hash).
//!
//! # Address
//!
//! The symbol's linked virtual address lies in a `PT_LOAD` segment, which
//! gives its file offset; the executable mapping of that file covering the
//! offset gives the run-time address: `mapping start + (file offset -
//! mapping offset)`. This is right for PIE executables, shared libraries and
//! fixed-address executables alike.
//!
//! The ELF file is read through `/proc/PID/map_files/START-END` (exactly the
//! file mapped, even if it was replaced or deleted on disk since), falling
//! back to the path as the process sees it (`/proc/PID/root/…`) when its
//! inode is the mapped one.
//!
//! # What is read
//!
//! `/proc/PID/maps` once. `--object` is decided by each object's path
//! before its file is opened; an object it does not name by path is read
//! for its `DT_SONAME` only. In a selected object the name is looked up in
//! `.dynsym` through the GNU hash table, as the dynamic loader finds it
//! ([`SymbolFilter::Lookup`]), and `.symtab`, when the file has one, is
//! scanned for local definitions and the parts split off the function.

use adapt_elf::{ElfError, ElfObject, FunctionSymbol, Mapping, ProcessMaps, SymbolFilter};
use serde::Serialize;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What role the object a symbol was found in plays in the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectRole {
    /// The process's executable (PIE or not).
    Executable,
    /// A shared library (or any other ELF object mapped into the process).
    SharedLibrary,
}

/// One ELF object mapped into the process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    /// The path in `/proc/PID/maps`.
    pub path: String,
    pub kind: ObjectRole,
    /// `DT_SONAME`, if it has one.
    pub soname: Option<String>,
}

impl ObjectRef {
    /// The file name without directories.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// Whether the object is the library `name`, a soname such as
    /// `libz.so.1`: its `DT_SONAME` is `name`, or its file name is `name`
    /// or `name` followed by a version (`.` then digits and dots:
    /// `libz.so.1.2.13` is `libz.so.1` and `libz.so`; `libz.so.10` and
    /// `libz` are not `libz.so.1`).
    pub fn is_library(&self, name: &str) -> bool {
        !name.is_empty()
            && (self.soname.as_deref() == Some(name)
                || adapt_elf::is_library_file(self.file_name(), name))
    }

    /// Whether `--object FILTER` selects this object: the full path, or
    /// [`ObjectRef::is_library`] (file name, soname or soname prefix).
    pub fn matches(&self, filter: &str) -> bool {
        self.path == filter || self.is_library(filter)
    }
}

/// A function found in a process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedSymbol {
    /// The name as stored in the object.
    pub name: String,
    /// Run-time address of its entry.
    pub address: u64,
    /// `st_size` (0: unknown).
    pub size: u64,
    /// Its virtual address as linked.
    pub link_address: u64,
    /// A file-local symbol.
    pub local: bool,
    pub object: ObjectRef,
    /// Other objects of the process that define a function of this name.
    pub also_defined_in: Vec<String>,
}

/// Why a name could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no process with pid {pid}")]
    NoSuchProcess { pid: u32 },
    #[error("pid {pid} is a kernel thread: it has no user code to inject into")]
    KernelThread { pid: u32 },
    #[error("cannot read /proc/{pid}/maps: {source} (run as root; the target must be dumpable)")]
    Maps {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no object mapped into pid {pid} matches --object {filter:?}; its objects are: {objects}"
    )]
    NoSuchObject {
        pid: u32,
        filter: String,
        objects: String,
    },
    #[error(
        "no function named {name:?} in {searched}: check the name (`nm -D` on a library, `nm` on \
         an executable with symbols), or that the process has loaded the library yet"
    )]
    NotFound { name: String, searched: String },
    #[error(
        "{name:?} is defined {count} times in {object} (at {addresses}), all file-local: it is \
         ambiguous; nothing to inject into by name"
    )]
    Ambiguous {
        name: String,
        object: String,
        count: usize,
        addresses: String,
    },
    #[error(
        "{name:?} is defined in {objects}: which one the process calls depends on the order the \
         dynamic loader loaded them in, which adapt does not guess; name the one to replace with \
         --object (its path, or a soname no other of them has)"
    )]
    InSeveralLibraries { name: String, objects: String },
    #[error(
        "{name} in {object} is a GNU indirect function (IFUNC): its symbol is the resolver the \
         dynamic loader runs once, not the code called at run time; it cannot be replaced by name"
    )]
    Ifunc { name: String, object: String },
    #[error(
        "{name} in {object} is not in an executable segment of the file (link address \
         {link_address:#x}); it is not code"
    )]
    NotCode {
        name: String,
        object: String,
        link_address: u64,
    },
    #[error("{name} in {object} (file offset {offset:#x}) is not mapped executable in pid {pid}")]
    NotMapped {
        name: String,
        object: String,
        offset: u64,
        pid: u32,
    },
    #[error(
        "{object} on disk is no longer the file pid {pid} has mapped (inode {mapped}, now \
         {on_disk}) and /proc/{pid}/map_files could not be opened: run as root, or restart the \
         process"
    )]
    FileReplaced {
        object: String,
        pid: u32,
        mapped: u64,
        on_disk: u64,
    },
    #[error(transparent)]
    Elf(#[from] ElfError),
}

/// A resolved symbol together with its parsed object, for callers that need
/// the function's bytes.
#[derive(Debug)]
pub struct Resolution {
    pub symbol: ResolvedSymbol,
    pub elf: ElfObject,
    /// The function symbol in `elf`.
    pub function: FunctionSymbol,
}

/// One object in search order: its first mapping and whether it is the
/// executable.
struct Candidate<'m> {
    first: &'m Mapping,
    kind: ObjectRole,
}

/// Resolves `name` in process `pid`, optionally only in the objects
/// `object` selects. See the module documentation for the rules.
pub fn resolve_symbol(
    pid: u32,
    name: &str,
    object: Option<&str>,
) -> Result<Resolution, ResolveError> {
    let maps = read_maps(pid)?;
    let exe = std::fs::read_link(maps.dir().join("exe"));
    if maps.mappings.is_empty()
        && exe
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    {
        // Kernel threads have neither an executable nor a user mapping.
        return Err(ResolveError::KernelThread { pid });
    }
    let exe = exe.ok().map(|p| {
        p.to_string_lossy()
            .trim_end_matches(" (deleted)")
            .to_owned()
    });
    let candidates = candidates(&maps, exe.as_deref());

    let mut found: Vec<(ObjectRef, ElfObject, FunctionSymbol)> = Vec::new();
    let mut searched = Vec::new();
    let mut selected_any = false;
    for candidate in &candidates {
        let path = &candidate.first.name;
        let by_path = ObjectRef {
            path: path.clone(),
            kind: candidate.kind,
            soname: None,
        };
        // --object is decided by the path before anything is read; an
        // object it does not name by path is read for its soname only, and
        // its symbols only if the soname is the one named.
        let named_by_path = object.is_none_or(|f| by_path.matches(f));
        let symbols = if named_by_path {
            SymbolFilter::Lookup(name)
        } else {
            SymbolFilter::Nothing
        };
        let mut elf = match open_object(&maps, candidate.first, symbols) {
            Ok(elf) => elf,
            Err(err) => {
                // Objects that are not ELF files (locale archives, fonts…)
                // or cannot be read are skipped, unless --object names them.
                if object.is_some_and(|f| by_path.matches(f)) {
                    return Err(err);
                }
                continue;
            }
        };
        let object_ref = ObjectRef {
            soname: elf.soname.clone(),
            ..by_path
        };
        if !named_by_path {
            if !object.is_some_and(|f| object_ref.matches(f)) {
                continue;
            }
            elf.look_up(name)?;
        }
        selected_any = true;
        searched.push(path.clone());
        if let Some(function) = pick(&elf, name, path)? {
            found.push((object_ref, elf, function));
        }
    }

    if let Some(filter) = object {
        if !selected_any {
            return Err(ResolveError::NoSuchObject {
                pid,
                filter: filter.to_owned(),
                objects: candidates
                    .iter()
                    .map(|c| c.first.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    if found.is_empty() {
        return Err(ResolveError::NotFound {
            name: name.to_owned(),
            searched: if searched.is_empty() {
                format!("pid {pid} (no readable ELF object)")
            } else {
                format!("pid {pid} ({})", searched.join(", "))
            },
        });
    }
    // The executable comes first in every lookup the dynamic loader makes;
    // between libraries, their order in the maps (by address) is not the
    // order they were loaded in, so a name several libraries define is
    // refused rather than guessed (`--object` picks one). The same holds
    // when --object names several of them (a soname two copies share).
    if found.len() > 1 && found[0].0.kind != ObjectRole::Executable {
        return Err(ResolveError::InSeveralLibraries {
            name: name.to_owned(),
            objects: found
                .iter()
                .map(|(o, _, _)| match &o.soname {
                    Some(soname) => format!("{soname} ({})", o.path),
                    None => o.path.clone(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let also_defined_in = found[1..].iter().map(|(o, _, _)| o.path.clone()).collect();
    let (object_ref, elf, function) = found.swap_remove(0);
    if function.ifunc {
        return Err(ResolveError::Ifunc {
            name: function.name.clone(),
            object: object_ref.path,
        });
    }
    let address = runtime_address(&maps, &object_ref, &elf, &function, pid)?;
    Ok(Resolution {
        symbol: ResolvedSymbol {
            name: function.name.clone(),
            address,
            size: function.size,
            link_address: function.vaddr,
            local: !function.global,
            object: object_ref,
            also_defined_in,
        },
        elf,
        function,
    })
}

fn read_maps(pid: u32) -> Result<ProcessMaps, ResolveError> {
    ProcessMaps::read(pid).map_err(|source| match source.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => ResolveError::NoSuchProcess { pid },
        _ => ResolveError::Maps { pid, source },
    })
}

/// Every file-backed object with code once, the executable first, then in
/// map order.
fn candidates<'m>(maps: &'m ProcessMaps, exe: Option<&str>) -> Vec<Candidate<'m>> {
    let mut seen: Vec<(&str, u64)> = Vec::new();
    let mut out = Vec::new();
    // Only objects with code mapped: not data files, nor the separate debug
    // files a symbolizer may have mapped.
    let has_code = |m: &Mapping| {
        maps.mappings
            .iter()
            .any(|x| x.executable && x.name == m.name && x.inode == m.inode)
    };
    for mapping in maps.mappings.iter().filter(|m| m.is_file() && has_code(m)) {
        let key = (mapping.name.as_str(), mapping.inode);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let kind = if exe == Some(mapping.name.as_str()) {
            ObjectRole::Executable
        } else {
            ObjectRole::SharedLibrary
        };
        out.push(Candidate {
            first: mapping,
            kind,
        });
    }
    // Stable: the executable moves to the front, the rest keep map order.
    out.sort_by_key(|c| c.kind != ObjectRole::Executable);
    out
}

/// Opens the ELF file behind `mapping` (see the module documentation).
fn open_object(
    maps: &ProcessMaps,
    mapping: &Mapping,
    symbols: SymbolFilter<'_>,
) -> Result<ElfObject, ResolveError> {
    if let Ok(elf) = ElfObject::open_with(&maps.map_file(mapping), symbols) {
        return Ok(elf);
    }
    let path = maps.open_path(&mapping.name);
    let on_disk = std::fs::metadata(&path).map(|m| m.ino()).unwrap_or(0);
    if on_disk != mapping.inode {
        return Err(ResolveError::FileReplaced {
            object: mapping.name.clone(),
            pid: maps.pid,
            mapped: mapping.inode,
            on_disk,
        });
    }
    Ok(ElfObject::open_with(Path::new(&path), symbols)?)
}

/// The definition of `name` in `elf`, per the rules above.
fn pick(elf: &ElfObject, name: &str, path: &str) -> Result<Option<FunctionSymbol>, ResolveError> {
    let found = elf.functions_named(name);
    match found.first() {
        None => Ok(None),
        Some(first) if first.global || found.len() == 1 => Ok(Some((*first).clone())),
        Some(_) => Err(ResolveError::Ambiguous {
            name: name.to_owned(),
            object: path.to_owned(),
            count: found.len(),
            addresses: found
                .iter()
                .map(|f| format!("{:#x}", f.vaddr))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn runtime_address(
    maps: &ProcessMaps,
    object: &ObjectRef,
    elf: &ElfObject,
    function: &FunctionSymbol,
    pid: u32,
) -> Result<u64, ResolveError> {
    let not_code = || ResolveError::NotCode {
        name: function.name.clone(),
        object: object.path.clone(),
        link_address: function.vaddr,
    };
    let load = elf.load_of(function.vaddr).ok_or_else(not_code)?;
    if !load.executable() {
        return Err(not_code());
    }
    let offset = elf.offset_of(function.vaddr).ok_or_else(not_code)?;
    maps.mappings
        .iter()
        .filter(|m| m.name == object.path && m.executable)
        .find(|m| offset >= m.offset && offset - m.offset < m.end - m.start)
        .map(|m| m.start + (offset - m.offset))
        .ok_or_else(|| ResolveError::NotMapped {
            name: function.name.clone(),
            object: object.path.clone(),
            offset,
            pid,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    #[no_mangle]
    pub extern "C" fn adapt_target_test_function(x: u64) -> u64 {
        std::hint::black_box(x)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(13)
            ^ 0x55
    }

    fn me() -> u32 {
        std::process::id()
    }

    #[test]
    fn a_function_of_this_pie_test_binary_resolves_to_its_real_address() {
        let r = resolve_symbol(me(), "adapt_target_test_function", None).unwrap();
        assert_eq!(
            r.symbol.address,
            adapt_target_test_function as *const () as u64
        );
        assert_eq!(r.symbol.object.kind, ObjectRole::Executable);
        assert_eq!(
            r.symbol.object.path,
            std::env::current_exe().unwrap().to_string_lossy()
        );
        assert!(r.symbol.size > 0 && !r.symbol.local);
        assert!(
            r.elf.kind.position_independent(),
            "cargo builds PIE test binaries"
        );
        assert_ne!(
            r.symbol.address, r.symbol.link_address,
            "PIE: loaded at a bias"
        );
    }

    #[test]
    fn a_libc_function_resolves_to_the_address_the_dynamic_loader_bound() {
        // getpid is a plain function in glibc (not an IFUNC).
        let r = resolve_symbol(me(), "getpid", None).unwrap();
        assert_eq!(r.symbol.object.kind, ObjectRole::SharedLibrary);
        assert_eq!(r.symbol.object.soname.as_deref(), Some("libc.so.6"));
        assert!(r.symbol.object.is_library("libc.so.6"));
        assert_eq!(r.symbol.address, libc::getpid as *const () as u64);
        // Selecting the object explicitly gives the same answer.
        let again = resolve_symbol(me(), "getpid", Some("libc.so.6")).unwrap();
        assert_eq!(again.symbol.address, r.symbol.address);
    }

    #[test]
    fn a_demangled_rust_name_resolves() {
        let r = resolve_symbol(me(), "adapt_target::resolve::resolve_symbol", None).unwrap();
        assert_eq!(r.symbol.address, resolve_symbol as *const () as u64);
        assert!(r.symbol.name.starts_with("_ZN") || r.symbol.name.starts_with("_R"));
    }

    #[test]
    fn ifuncs_are_refused_with_the_reason() {
        let err = resolve_symbol(me(), "memcpy", Some("libc.so.6")).unwrap_err();
        assert!(matches!(err, ResolveError::Ifunc { .. }), "{err}");
        assert!(err.to_string().contains("IFUNC"));
    }

    #[test]
    fn unknown_names_objects_and_processes_are_errors() {
        let err = resolve_symbol(me(), "no_such_function_at_all_42", None).unwrap_err();
        assert!(matches!(err, ResolveError::NotFound { .. }), "{err}");
        assert!(
            err.to_string().contains("libc.so.6"),
            "searched objects are named: {err}"
        );
        let err = resolve_symbol(me(), "getpid", Some("libnothing.so.9")).unwrap_err();
        assert!(matches!(err, ResolveError::NoSuchObject { .. }), "{err}");
        // getpid is not in the executable.
        let exe = std::env::current_exe().unwrap();
        let err = resolve_symbol(me(), "getpid", Some(exe.to_str().unwrap())).unwrap_err();
        assert!(matches!(err, ResolveError::NotFound { .. }), "{err}");
        let err = resolve_symbol(u32::MAX / 2, "getpid", None).unwrap_err();
        assert!(matches!(err, ResolveError::NoSuchProcess { .. }), "{err}");
        // kthreadd is pid 2 on every Linux system (in the initial pid
        // namespace, where these tests run).
        let err = resolve_symbol(2, "getpid", None).unwrap_err();
        assert!(
            matches!(err, ResolveError::KernelThread { pid: 2 }),
            "{err}"
        );
    }

    /// A name glibc also defines (and that nothing here calls).
    #[inline(never)]
    #[no_mangle]
    pub extern "C" fn memfrob(s: *mut u8, n: usize) -> *mut u8 {
        std::hint::black_box(n);
        s
    }

    #[test]
    fn the_executable_wins_over_libraries_and_the_rest_are_reported() {
        assert!(memfrob(std::ptr::null_mut(), 0).is_null());
        let r = resolve_symbol(me(), "memfrob", None).unwrap();
        assert_eq!(
            r.symbol.object.kind,
            ObjectRole::Executable,
            "{:?}",
            r.symbol
        );
        assert_eq!(r.symbol.address, memfrob as *const () as u64);
        assert_eq!(r.symbol.also_defined_in.len(), 1, "{:?}", r.symbol);
        assert!(
            r.symbol.also_defined_in[0].contains("libc.so"),
            "{:?}",
            r.symbol
        );
        let in_libc = resolve_symbol(me(), "memfrob", Some("libc.so.6")).unwrap();
        assert_eq!(in_libc.symbol.object.soname.as_deref(), Some("libc.so.6"));
        assert_ne!(in_libc.symbol.address, r.symbol.address);
    }

    #[test]
    fn library_names_match_by_soname_and_prefix() {
        let libz = ObjectRef {
            path: "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13".into(),
            kind: ObjectRole::SharedLibrary,
            soname: None,
        };
        assert!(libz.is_library("libz.so.1"));
        assert!(libz.is_library("libz.so.1.2.13"));
        assert!(libz.is_library("libz.so"));
        assert!(!libz.is_library("libz.so.10"));
        assert!(!libz.is_library("libz"));
        assert!(!libz.is_library(""));
        assert!(libz.matches("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"));
        let renamed = ObjectRef {
            path: "/opt/zlib/libzz.so".into(),
            soname: Some("libz.so.1".into()),
            ..libz
        };
        assert!(renamed.is_library("libz.so.1"));
    }
}
