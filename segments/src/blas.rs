// SPDX-License-Identifier: GPL-2.0
//! The BLAS libraries the BLAS segments are measured against, opened with
//! `dlopen` by their own paths: the netlib reference (Debian 12
//! `libblas3`, what the segments replace and must equal bit for bit) and
//! OpenBLAS (`libopenblas0-pthread`, the benchmark's competitor).
//!
//! Both are opened by full path, never through the `libblas.so.3`
//! alternatives link, which may point at either; `RTLD_LOCAL` keeps their
//! equally named exports apart.

use std::ffi::{c_char, c_void, CStr};

/// The reference BLAS of Debian 12's `libblas3` (LAPACK 3.11).
pub const REFERENCE_BLAS_PATH: &str = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3";
/// OpenBLAS's BLAS of Debian 12's `libopenblas0-pthread`.
pub const OPENBLAS_PATH: &str = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3";

/// Fortran `DGEMM` (every argument by reference, then the two hidden
/// character lengths).
pub type Dgemm = unsafe extern "C" fn(
    *const u8,
    *const u8,
    *const i32,
    *const i32,
    *const i32,
    *const f64,
    *const f64,
    *const i32,
    *const f64,
    *const i32,
    *const f64,
    *mut f64,
    *const i32,
    usize,
    usize,
);

/// Fortran `SGEMM`.
pub type Sgemm = unsafe extern "C" fn(
    *const u8,
    *const u8,
    *const i32,
    *const i32,
    *const i32,
    *const f32,
    *const f32,
    *const i32,
    *const f32,
    *const i32,
    *const f32,
    *mut f32,
    *const i32,
    usize,
    usize,
);

/// Fortran `DGEMV(TRANS, M, N, ALPHA, A, LDA, X, INCX, BETA, Y, INCY)` and
/// the hidden length of TRANS.
pub type Dgemv = unsafe extern "C" fn(
    *const u8,
    *const i32,
    *const i32,
    *const f64,
    *const f64,
    *const i32,
    *const f64,
    *const i32,
    *const f64,
    *mut f64,
    *const i32,
    usize,
);

/// Fortran `DSYRK(UPLO, TRANS, N, K, ALPHA, A, LDA, BETA, C, LDC)` and the
/// hidden lengths of UPLO and TRANS.
pub type Dsyrk = unsafe extern "C" fn(
    *const u8,
    *const u8,
    *const i32,
    *const i32,
    *const f64,
    *const f64,
    *const i32,
    *const f64,
    *mut f64,
    *const i32,
    usize,
    usize,
);

/// A BLAS library opened by path.
#[derive(Debug)]
pub struct Blas {
    handle: *mut c_void,
    /// The path it was opened from.
    pub path: &'static str,
    /// `dgemm_`.
    pub dgemm: Dgemm,
    /// `sgemm_`.
    pub sgemm: Sgemm,
    /// `dgemv_`.
    pub dgemv: Dgemv,
    /// `dsyrk_`.
    pub dsyrk: Dsyrk,
}

fn dlerror() -> String {
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

impl Blas {
    /// Opens the reference BLAS at [`REFERENCE_BLAS_PATH`].
    pub fn reference() -> Result<Blas, String> {
        Blas::open(REFERENCE_BLAS_PATH)
    }

    /// Opens OpenBLAS at [`OPENBLAS_PATH`] for one thread, with its own CPU
    /// detection: `OPENBLAS_NUM_THREADS=1`, and `OPENBLAS_CORETYPE` and
    /// `OPENBLAS_L2_SIZE` unset while it initialises (each is put back as
    /// it was afterwards). Call it before starting other threads.
    pub fn openblas_single_thread() -> Result<Blas, String> {
        let keys = [
            "OPENBLAS_NUM_THREADS",
            "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE",
        ];
        let saved: Vec<_> = keys.iter().map(std::env::var_os).collect();
        std::env::set_var("OPENBLAS_NUM_THREADS", "1");
        std::env::remove_var("OPENBLAS_CORETYPE");
        std::env::remove_var("OPENBLAS_L2_SIZE");
        let blas = Blas::open(OPENBLAS_PATH);
        for (k, v) in keys.iter().zip(saved) {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
        blas
    }

    /// Opens the BLAS at `path` (`RTLD_NOW | RTLD_LOCAL`).
    pub fn open(path: &'static str) -> Result<Blas, String> {
        let cpath = std::ffi::CString::new(path).map_err(|e| e.to_string())?;
        // SAFETY: dlopen of a system library by path; both BLAS builds only
        // initialise themselves in their constructors.
        let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!("dlopen {path}: {}", dlerror()));
        }
        let blas = Blas {
            handle,
            path,
            // SAFETY (all four): the Fortran BLAS exports of both libraries
            // have exactly these signatures under gfortran's ABI; function
            // and data pointers have the same representation on x86-64.
            dgemm: unsafe {
                std::mem::transmute::<*mut c_void, Dgemm>(sym(handle, path, c"dgemm_")?)
            },
            // SAFETY: as above.
            sgemm: unsafe {
                std::mem::transmute::<*mut c_void, Sgemm>(sym(handle, path, c"sgemm_")?)
            },
            // SAFETY: as above.
            dgemv: unsafe {
                std::mem::transmute::<*mut c_void, Dgemv>(sym(handle, path, c"dgemv_")?)
            },
            // SAFETY: as above.
            dsyrk: unsafe {
                std::mem::transmute::<*mut c_void, Dsyrk>(sym(handle, path, c"dsyrk_")?)
            },
        };
        Ok(blas)
    }

    /// The address of exported function `name` (for a test's import slots).
    pub fn address(&self, name: &CStr) -> Result<u64, String> {
        sym(self.handle, self.path, name).map(|p| p as u64)
    }

    /// OpenBLAS's `openblas_get_corename()` (the kernel family it chose),
    /// or `None` for a library without it (the reference).
    pub fn openblas_corename(&self) -> Option<String> {
        let f = sym(self.handle, self.path, c"openblas_get_corename").ok()?;
        // SAFETY: OpenBLAS exports `char *openblas_get_corename(void)`,
        // returning a static NUL-terminated string.
        unsafe {
            let f: unsafe extern "C" fn() -> *const c_char = std::mem::transmute(f);
            let s = f();
            (!s.is_null()).then(|| CStr::from_ptr(s).to_string_lossy().into_owned())
        }
    }
}

fn sym(handle: *mut c_void, path: &str, name: &CStr) -> Result<*mut c_void, String> {
    // SAFETY: handle is a live dlopen handle and name a NUL-terminated string.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() {
        return Err(format!("{path} has no symbol {name:?}"));
    }
    Ok(p)
}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: the handle came from dlopen; the function pointers die
        // with self.
        unsafe { libc::dlclose(self.handle) };
    }
}
