// SPDX-License-Identifier: GPL-2.0
//! The system's `libz.so.1`, opened with `dlopen`: the functions the crc32
//! and adler32 segments replace, used as references by the differential
//! tests and as the baseline of the benchmark.

use std::ffi::{c_char, c_void, CStr};

/// `uLong f(uLong, const Bytef *, uInt)`.
pub type ZlibFn = unsafe extern "C" fn(u64, *const u8, u32) -> u64;
/// `uLong f(uLong, const Bytef *, z_size_t)`.
pub type ZlibFnZ = unsafe extern "C" fn(u64, *const u8, usize) -> u64;

/// The system zlib.
#[derive(Debug)]
pub struct SystemZlib {
    handle: *mut c_void,
    /// `crc32`.
    pub crc32: ZlibFn,
    /// `crc32_z`.
    pub crc32_z: ZlibFnZ,
    /// `adler32`.
    pub adler32: ZlibFn,
    /// `adler32_z`.
    pub adler32_z: ZlibFnZ,
    /// `zlibVersion()`.
    pub version: String,
}

fn sym(handle: *mut c_void, name: &CStr) -> Result<*mut c_void, String> {
    // SAFETY: handle is a live dlopen handle and name a NUL-terminated string.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() {
        return Err(format!("libz.so.1 has no symbol {name:?}"));
    }
    Ok(p)
}

impl SystemZlib {
    /// Opens `libz.so.1`.
    pub fn open() -> Result<SystemZlib, String> {
        // SAFETY: dlopen of a system library by its soname; zlib has no
        // constructors with side effects.
        let handle =
            unsafe { libc::dlopen(c"libz.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns a thread-local message or null.
            let msg = unsafe { libc::dlerror() };
            let msg = if msg.is_null() {
                "unknown error".to_owned()
            } else {
                // SAFETY: non-null dlerror results are NUL-terminated strings.
                unsafe { CStr::from_ptr(msg) }
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(format!("dlopen libz.so.1: {msg}"));
        }
        let get = |n: &CStr| sym(handle, n);
        // SAFETY: these zlib exports have exactly these C signatures
        // (zlib.h); function pointers and data pointers have the same size
        // and representation on x86-64 Linux.
        unsafe {
            let version_fn: unsafe extern "C" fn() -> *const c_char =
                std::mem::transmute(get(c"zlibVersion")?);
            Ok(SystemZlib {
                handle,
                crc32: std::mem::transmute::<*mut c_void, ZlibFn>(get(c"crc32")?),
                crc32_z: std::mem::transmute::<*mut c_void, ZlibFnZ>(get(c"crc32_z")?),
                adler32: std::mem::transmute::<*mut c_void, ZlibFn>(get(c"adler32")?),
                adler32_z: std::mem::transmute::<*mut c_void, ZlibFnZ>(get(c"adler32_z")?),
                version: CStr::from_ptr(version_fn()).to_string_lossy().into_owned(),
            })
        }
    }
}

impl Drop for SystemZlib {
    fn drop(&mut self) {
        // SAFETY: the handle came from dlopen; the function pointers die with
        // self.
        unsafe { libc::dlclose(self.handle) };
    }
}
