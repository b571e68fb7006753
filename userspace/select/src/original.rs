// SPDX-License-Identifier: GPL-2.0
//! The original function: prepared in the (privileged) parent without
//! running anything of it, then loaded and called only in the unprivileged
//! measuring child ([`crate::sandbox`]).
//!
//! **In the parent** ([`PreparedOriginal::prepare`]) the file is *opened
//! and read*, never mapped executable, never `dlopen`ed:
//!
//! - of a process (`pid` given): through `/proc/PID/map_files/START-END`
//!   of a mapping of that file — exactly the bytes the target runs, in the
//!   target's mount namespace, even if the path was replaced since. Opening
//!   `map_files` needs `CAP_SYS_ADMIN`, which the child no longer has: so
//!   the parent opens it (`O_RDONLY|O_NONBLOCK|O_NOCTTY|O_CLOEXEC`) and the
//!   child inherits only that descriptor;
//! - a path: opened the same way; it must be a regular file;
//! - a soname (`libz.so.1`): looked up in the system library directories
//!   ([`SYSTEM_LIBRARY_DIRS`]) only, a regular file owned by root and not
//!   group- or world-writable (never `LD_LIBRARY_PATH` or the current
//!   directory).
//!
//! The bytes are read through the descriptor (at most
//! [`adapt_elf::MAX_FILE`]), hashed (the cache and the content
//! evidence, [`crate::evidence`], key on them) and parsed with `object`
//! as hostile input. A function of an executable must pass
//! [`crate::leaf_check`] here, before any child exists.
//!
//! **In the child** ([`Original::load_in_child`]), after every privilege
//! is gone:
//!
//! - a **shared library** is `dlopen`ed as `/proc/self/fd/N` (the inherited
//!   descriptor) with `RTLD_LOCAL|RTLD_NOW`, and the function found with
//!   `dlsym`, or from the symbol table and the load bias for a file-local
//!   function. Its constructors run — in the child only;
//! - a function of an **executable** (PIE or fixed-address; glibc refuses
//!   to `dlopen` those) runs from a bare mapping of the file's read-only
//!   segments ([`crate::exec_map`]), mapped from the descriptor.

use std::ffi::{c_char, c_void, CString};
use std::fs::File;
use std::io::Read;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use adapt_elf::{ElfFacts, FunctionSymbol, ObjectKind, ParseError, SymbolFilter, MAX_FILE};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::OriginalError;
use crate::exec_map::MappedImage;
use crate::leaf_check::check_self_contained;
use crate::sandbox::Identity;

/// Where a soname is looked up: root-owned system directories only.
pub const SYSTEM_LIBRARY_DIRS: &[&str] = &[
    "/usr/local/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Where the original function is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalSpec {
    /// The ELF file: a path (as in `/proc/PID/maps`), or a soname such as
    /// `libz.so.1`.
    pub object: String,
    /// The function's name in that file.
    pub symbol: String,
    /// The process whose mapping of `object` is measured (opened through
    /// `/proc/PID/map_files`); its user runs the measuring child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// How the original was brought into the measuring child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadMethod {
    /// `dlopen` + `dlsym` (or the symbol table and the load bias), in the
    /// unprivileged child.
    Dlopen,
    /// The executable's read-only segments mapped, the function a checked
    /// self-contained leaf, in the unprivileged child.
    MappedExecutable,
}

/// The original as the parent prepared it: opened, read, parsed; nothing
/// of it has run.
#[derive(Debug)]
pub struct PreparedOriginal {
    /// What was asked for.
    pub spec: OriginalSpec,
    /// The open file (inherited by the child, nothing else is).
    pub file: OwnedFd,
    /// The file's name for people and for the cache: the path in the
    /// target's maps, or the path found.
    pub path: String,
    /// Where it was opened from (`/proc/PID/map_files/…` or the path).
    pub opened: String,
    /// Its ELF facts.
    pub info: ElfFacts,
    /// The function.
    pub function: FunctionSymbol,
    /// sha256 of the file, hex.
    pub file_sha256: String,
    /// sha256 of the function's bytes in the file, hex (absent when its
    /// size is unknown or its bytes are not in the file).
    pub function_sha256: Option<String>,
    /// Who the child runs as.
    pub identity: Identity,
}

/// hex of sha256.
pub fn sha256_hex(data: &[u8]) -> String {
    adapt_segment::codec::hex(&Sha256::digest(data))
}

/// The facts of `data`, the file `path`, with the function symbols that
/// may be `symbol`; refused unless it is an executable or a shared library.
fn parse_elf(path: &Path, data: &[u8], symbol: &str) -> Result<ElfFacts, OriginalError> {
    let info = ElfFacts::parse(data, SymbolFilter::MayBe(symbol)).map_err(|e| match e {
        ParseError::Object(source) => OriginalError::Elf {
            path: path.to_path_buf(),
            source,
        },
        too_many @ ParseError::TooManySymbols { .. } => OriginalError::NotLoadable {
            path: path.to_path_buf(),
            why: too_many.to_string(),
        },
    })?;
    if let ObjectKind::Other(other) = info.kind {
        return Err(OriginalError::NotLoadable {
            path: path.to_path_buf(),
            why: format!("ELF type {other} is neither an executable nor a shared library"),
        });
    }
    Ok(info)
}

/// The function named `name` in `info` (versioned names such as
/// `crc32@@ZLIB_1.2.0` match too): a global definition first; several
/// file-local ones at different addresses are ambiguous.
fn find_function<'i>(
    path: &Path,
    info: &'i ElfFacts,
    name: &str,
) -> Result<&'i FunctionSymbol, OriginalError> {
    let found = info.functions_where(|f| {
        f.name == name || f.name.split_once('@').is_some_and(|(base, _)| base == name)
    });
    match found.as_slice() {
        [] => Err(OriginalError::NoSymbol {
            path: path.to_path_buf(),
            symbol: name.to_owned(),
        }),
        [one, ..] if one.global => Ok(one),
        [one] => Ok(one),
        many => Err(OriginalError::NotLoadable {
            path: path.to_path_buf(),
            why: format!("{} file-local functions are named {name}", many.len()),
        }),
    }
}

fn open_file(path: &Path) -> Result<File, OriginalError> {
    let io = |source| OriginalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(OriginalError::NotLoadable {
            path: path.to_path_buf(),
            why: "it is not a regular file".to_owned(),
        });
    }
    if meta.len() > MAX_FILE {
        return Err(OriginalError::NotLoadable {
            path: path.to_path_buf(),
            why: format!("it is {} bytes, more than the {MAX_FILE} read", meta.len()),
        });
    }
    Ok(file)
}

/// The system library named `soname` (see [`SYSTEM_LIBRARY_DIRS`]).
pub fn find_system_library(soname: &str) -> Result<PathBuf, OriginalError> {
    if soname.contains('/') || soname.is_empty() || soname.starts_with('.') {
        return Err(OriginalError::NotLoadable {
            path: PathBuf::from(soname),
            why: "not a soname".to_owned(),
        });
    }
    for dir in SYSTEM_LIBRARY_DIRS {
        let p = Path::new(dir).join(soname);
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.file_type().is_file() && meta.uid() == 0 && meta.mode() & 0o022 == 0 {
            return Ok(p);
        }
    }
    Err(OriginalError::NotLoadable {
        path: PathBuf::from(soname),
        why: format!(
            "no root-owned, not group- or world-writable file of that name in {}; name the \
             file with --object PATH",
            SYSTEM_LIBRARY_DIRS.join(", ")
        ),
    })
}

impl PreparedOriginal {
    /// Opens, reads and checks the original `spec` names (see the module
    /// documentation). Runs nothing of it.
    pub fn prepare(spec: &OriginalSpec) -> Result<PreparedOriginal, OriginalError> {
        let (file, path, opened, identity) = match spec.pid {
            Some(pid) => {
                let maps =
                    adapt_elf::ProcessMaps::read(pid).map_err(|source| OriginalError::Io {
                        path: PathBuf::from(format!("/proc/{pid}/maps")),
                        source,
                    })?;
                let m = maps
                    .mappings
                    .iter()
                    .filter(|m| m.is_file())
                    .find(|m| m.name == spec.object)
                    .or_else(|| {
                        maps.mappings.iter().filter(|m| m.is_file()).find(|m| {
                            !spec.object.contains('/')
                                && adapt_elf::is_library_file(m.short_name(), &spec.object)
                        })
                    })
                    .ok_or_else(|| OriginalError::NotLoadable {
                        path: PathBuf::from(&spec.object),
                        why: format!("process {pid} maps no file {}", spec.object),
                    })?;
                let via = maps.map_file(m);
                let file = open_file(&via)?;
                let via = via.display().to_string();
                (file, m.name.clone(), via, Identity::of_process(pid))
            }
            None => {
                let p = if spec.object.contains('/') {
                    PathBuf::from(&spec.object)
                } else {
                    find_system_library(&spec.object)?
                };
                let file = open_file(&p)?;
                let shown = std::fs::canonicalize(&p).unwrap_or(p);
                let shown = shown.display().to_string();
                (file, shown.clone(), shown, Identity::nobody())
            }
        };
        let label = PathBuf::from(&path);
        let mut data = Vec::new();
        (&file)
            .take(MAX_FILE)
            .read_to_end(&mut data)
            .map_err(|source| OriginalError::Io {
                path: label.clone(),
                source,
            })?;
        let info = parse_elf(&label, &data, &spec.symbol)?;
        let function = find_function(&label, &info, &spec.symbol)?.clone();
        if function.ifunc {
            return Err(OriginalError::NotLoadable {
                path: label,
                why: format!("{} is an IFUNC resolver", spec.symbol),
            });
        }
        let body = info.bytes_in(&data, function.vaddr, function.size);
        if info.kind != ObjectKind::SharedLibrary {
            let body = body
                .filter(|_| {
                    info.load_of(function.vaddr)
                        .is_some_and(|l| l.executable() && !l.writable())
                })
                .ok_or_else(|| OriginalError::NotSelfContained {
                    path: label.clone(),
                    symbol: spec.symbol.clone(),
                    why: "its body is not inside one read-only executable segment of the file"
                        .to_owned(),
                })?;
            check_self_contained(&info, &function, body).map_err(|why| {
                OriginalError::NotSelfContained {
                    path: label.clone(),
                    symbol: spec.symbol.clone(),
                    why,
                }
            })?;
        }
        let function_sha256 = body.filter(|b| !b.is_empty()).map(sha256_hex);
        Ok(PreparedOriginal {
            spec: spec.clone(),
            file: file.into(),
            path,
            opened,
            info,
            function,
            file_sha256: sha256_hex(&data),
            function_sha256,
            identity,
        })
    }

    /// The descriptor the child inherits.
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// The original function, callable in the measuring child.
///
/// # Invariants
///
/// `entry` is the address of the function, kept mapped by `_holder` for as
/// long as this value lives.
#[derive(Debug)]
pub struct Original {
    entry: usize,
    /// How it was loaded.
    pub method: LoadMethod,
    _holder: Holder,
}

/// What keeps the original mapped; only its `Drop` matters.
#[derive(Debug)]
enum Holder {
    Dl(#[allow(dead_code)] DlHandle),
    Image(#[allow(dead_code)] MappedImage),
}

/// A `dlopen` handle, closed on drop.
#[derive(Debug)]
struct DlHandle(*mut c_void);

impl Drop for DlHandle {
    fn drop(&mut self) {
        // SAFETY: the handle came from a successful dlopen and is closed
        // once; function pointers from it are not used past the owning
        // Original (they are only handed out borrowed).
        unsafe { libc::dlclose(self.0) };
    }
}

/// The start of glibc's `struct link_map` (`<link.h>`): stable ABI.
#[repr(C)]
struct LinkMapHead {
    l_addr: usize,
    l_name: *const c_char,
}

fn dlerror_message() -> String {
    // SAFETY: dlerror returns a thread-local message or null.
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        "unknown error".to_owned()
    } else {
        // SAFETY: non-null dlerror results are NUL-terminated strings.
        unsafe { std::ffi::CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Original {
    /// Loads the prepared original from descriptor `fd` (the child's copy
    /// of [`PreparedOriginal::file`]). Call only in the measuring child.
    pub fn load_in_child(p: &PreparedOriginal, fd: RawFd) -> Result<Original, OriginalError> {
        match p.info.kind {
            ObjectKind::SharedLibrary => Original::dlopen(p, fd),
            // (`prepare` refused every other kind.)
            ObjectKind::PieExecutable | ObjectKind::FixedExecutable | ObjectKind::Other(_) => {
                // SAFETY: `fd` is the child's open copy of the file; the
                // File is never dropped (ManuallyDrop), so the descriptor
                // stays owned by the sandbox.
                let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
                let image = MappedImage::map(Path::new(&p.path), &p.info, &file, &p.function)?;
                Ok(Original {
                    entry: image.entry(),
                    method: LoadMethod::MappedExecutable,
                    _holder: Holder::Image(image),
                })
            }
        }
    }

    /// The function's address in this process.
    pub fn entry(&self) -> usize {
        self.entry
    }

    fn dlopen(p: &PreparedOriginal, fd: RawFd) -> Result<Original, OriginalError> {
        let what = format!("/proc/self/fd/{fd}");
        let symbol = &p.spec.symbol;
        let dl_err = |message: String| OriginalError::Dlopen {
            what: p.path.clone(),
            message,
        };
        let c_what = CString::new(what.as_str()).map_err(|_| dl_err("NUL in path".to_owned()))?;
        // SAFETY: dlopen of the inherited descriptor, in the unprivileged
        // child; RTLD_LOCAL keeps its symbols out of the global scope. Its
        // constructors run here, and only here.
        let handle = unsafe { libc::dlopen(c_what.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(dl_err(dlerror_message()));
        }
        let handle = DlHandle(handle);
        let mut map: *mut LinkMapHead = std::ptr::null_mut();
        // SAFETY: RTLD_DI_LINKMAP stores a `struct link_map *` through the
        // pointer given, which points to such a pointer.
        let r = unsafe {
            libc::dlinfo(
                handle.0,
                libc::RTLD_DI_LINKMAP,
                (&mut map as *mut *mut LinkMapHead).cast(),
            )
        };
        if r != 0 || map.is_null() {
            return Err(dl_err(format!("dlinfo: {}", dlerror_message())));
        }
        // SAFETY: glibc's link_map starts with l_addr, and the map lives as
        // long as the handle.
        let bias = unsafe { (*map).l_addr };
        let own = p.function.vaddr.wrapping_add(bias as u64) as usize;
        let c_sym =
            CString::new(symbol.as_str()).map_err(|_| dl_err("NUL in the symbol".to_owned()))?;
        // SAFETY: a live handle and a NUL-terminated name.
        let exported = unsafe { libc::dlsym(handle.0, c_sym.as_ptr()) } as usize;
        // dlsym searches the library's dependencies too: the definition
        // must be this file's.
        if exported != 0 && exported != own {
            return Err(OriginalError::NotLoadable {
                path: PathBuf::from(&p.path),
                why: format!("dlsym found {symbol} in another object than this file"),
            });
        }
        Ok(Original {
            entry: own,
            method: LoadMethod::Dlopen,
            _holder: Holder::Dl(handle),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sonames_are_only_found_in_system_directories() {
        assert!(find_system_library("../../tmp/libz.so.1").is_err());
        assert!(find_system_library("/tmp/libz.so.1").is_err());
        assert!(find_system_library("").is_err());
        if let Ok(p) = find_system_library("libc.so.6") {
            assert!(
                SYSTEM_LIBRARY_DIRS.iter().any(|d| p.starts_with(d)),
                "{p:?}"
            );
        }
    }

    #[test]
    fn preparing_reads_but_refuses_what_is_not_a_regular_elf_file() {
        let dir = tempfile::tempdir().unwrap();
        let spec = |object: String| OriginalSpec {
            object,
            symbol: "crc32".into(),
            pid: None,
        };
        let e = PreparedOriginal::prepare(&spec(dir.path().display().to_string())).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let junk = dir.path().join("libz.so.1");
        std::fs::write(&junk, b"\x7fELF junk").unwrap();
        let e = PreparedOriginal::prepare(&spec(junk.display().to_string())).unwrap_err();
        assert!(e.to_string().contains("ELF"), "{e}");
        let e = PreparedOriginal::prepare(&spec("/dev/null".into())).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
