// SPDX-License-Identifier: GPL-2.0
//! The original function, loaded into this process from the same ELF file
//! the target mapped, so that it can be measured side by side with the
//! variants.
//!
//! - A **shared library** is `dlopen`ed by its path (or soname)
//!   with `RTLD_LOCAL|RTLD_NOW`, and the function found with `dlsym`; a
//!   file-local function (not exported) is found from the symbol table and
//!   the library's load bias (`dlinfo(RTLD_DI_LINKMAP)`). The library's
//!   constructors run in this process, as they do in every process that
//!   links it.
//! - A function of an **executable** (PIE or fixed-address; glibc refuses
//!   to `dlopen` those) is run from a bare mapping of the file's read-only
//!   segments, if [`crate::leaf_check`] proves it a self-contained leaf
//!   (see [`crate::exec_map`] for how it is mapped). Otherwise the error
//!   says why, and the selection answers "cannot run the original outside
//!   the target".

use std::ffi::{c_char, c_void, CStr, CString};
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::elf_info::{ElfInfo, ObjectKind};
use crate::error::OriginalError;
use crate::exec_map::MappedImage;
use crate::leaf_check::check_self_contained;

/// Where the original function is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalSpec {
    /// The ELF file the target mapped: a path (as in `/proc/PID/maps`), or
    /// a soname such as `libz.so.1` for the dynamic loader to find.
    pub object: String,
    /// The function's name in that file.
    pub symbol: String,
}

/// How the original was brought into this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadMethod {
    /// `dlopen` + `dlsym` (or the symbol table and the load bias).
    Dlopen,
    /// The executable's read-only segments mapped, the function a checked
    /// self-contained leaf.
    MappedExecutable,
}

/// The original function, callable in this process.
///
/// # Invariants
///
/// `entry` is the address of the function, kept mapped by `_holder` for as
/// long as this value lives.
#[derive(Debug)]
pub struct Original {
    entry: usize,
    /// The file it was loaded from (resolved when a soname was given).
    pub path: PathBuf,
    /// The function's name.
    pub symbol: String,
    /// How it was loaded.
    pub method: LoadMethod,
    /// sha256 of the file, hex: the cache keys on it.
    pub file_sha256: String,
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
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Original {
    /// Loads the original `spec` names (see the module documentation).
    pub fn open(spec: &OriginalSpec) -> Result<Original, OriginalError> {
        if !spec.object.contains('/') {
            return Original::dlopen(&spec.object, &spec.symbol);
        }
        let path = Path::new(&spec.object);
        let info = ElfInfo::read(path)?;
        match info.kind {
            ObjectKind::SharedLibrary => Original::dlopen(&spec.object, &spec.symbol),
            ObjectKind::PieExecutable | ObjectKind::FixedExecutable => {
                Original::map_executable(path, &spec.symbol)
            }
        }
    }

    /// The function's address in this process.
    pub fn entry(&self) -> usize {
        self.entry
    }

    fn dlopen(what: &str, symbol: &str) -> Result<Original, OriginalError> {
        let dl_err = |message: String| OriginalError::Dlopen {
            what: what.to_owned(),
            message,
        };
        let c_what =
            CString::new(what).map_err(|_| dl_err("the name holds a NUL byte".to_owned()))?;
        // SAFETY: dlopen of a file the caller named; RTLD_LOCAL keeps its
        // symbols out of this process's global scope. Its constructors run,
        // as in any process linking it (documented above).
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
        // SAFETY: glibc's link_map starts with l_addr and l_name, and the
        // map lives as long as the handle.
        let (bias, name) = unsafe { ((*map).l_addr, (*map).l_name) };
        let path = if name.is_null() {
            PathBuf::from(what)
        } else {
            // SAFETY: l_name is a NUL-terminated string owned by the loader.
            PathBuf::from(
                unsafe { CStr::from_ptr(name) }
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        // One name per file (libz.so.1 and libz.so.1.2.13 are one file).
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        let data = std::fs::read(&path).map_err(|source| OriginalError::Io {
            path: path.clone(),
            source,
        })?;
        let c_sym =
            CString::new(symbol).map_err(|_| dl_err("the symbol holds a NUL byte".to_owned()))?;
        // SAFETY: a live handle and a NUL-terminated name.
        let exported = unsafe { libc::dlsym(handle.0, c_sym.as_ptr()) } as usize;
        let entry = if exported != 0 {
            // dlsym searches the library's dependencies too: make sure the
            // definition found is this file's.
            let info = ElfInfo::parse(&path, &data)?;
            match info.function(symbol) {
                Ok(f) if !f.ifunc && f.vaddr.wrapping_add(bias as u64) as usize != exported => {
                    return Err(OriginalError::NotLoadable {
                        path,
                        why: format!("dlsym found {symbol} in another object than this file"),
                    })
                }
                _ => exported,
            }
        } else {
            // Not exported: a file-local function, by its symbol.
            let info = ElfInfo::parse(&path, &data)?;
            let f = info.function(symbol)?;
            if f.ifunc {
                return Err(OriginalError::NotLoadable {
                    path,
                    why: format!("{symbol} is an IFUNC resolver"),
                });
            }
            f.vaddr.wrapping_add(bias as u64) as usize
        };
        Ok(Original {
            entry,
            path,
            symbol: symbol.to_owned(),
            method: LoadMethod::Dlopen,
            file_sha256: sha256_hex(&data),
            _holder: Holder::Dl(handle),
        })
    }

    fn map_executable(path: &Path, symbol: &str) -> Result<Original, OriginalError> {
        let io_err = |source| OriginalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let data = std::fs::read(path).map_err(io_err)?;
        let info = ElfInfo::parse(path, &data)?;
        let f = info.function(symbol)?.clone();
        let body = info
            .load_of(f.vaddr)
            .filter(|l| l.executable() && !l.writable())
            .and_then(|l| {
                let start = usize::try_from(l.offset + (f.vaddr - l.vaddr)).ok()?;
                let end = start.checked_add(usize::try_from(f.size).ok()?)?;
                (f.vaddr - l.vaddr + f.size <= l.filesz).then_some(())?;
                data.get(start..end)
            })
            .ok_or_else(|| OriginalError::NotSelfContained {
                path: path.to_path_buf(),
                symbol: symbol.to_owned(),
                why: "its body is not inside one read-only executable segment of the file"
                    .to_owned(),
            })?;
        check_self_contained(&info, &f, body).map_err(|why| OriginalError::NotSelfContained {
            path: path.to_path_buf(),
            symbol: symbol.to_owned(),
            why,
        })?;
        let image = MappedImage::map(&info, &file, &f)?;
        Ok(Original {
            entry: image.entry(),
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            symbol: symbol.to_owned(),
            method: LoadMethod::MappedExecutable,
            file_sha256: sha256_hex(&data),
            _holder: Holder::Image(image),
        })
    }
}
