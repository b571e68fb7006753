//! zlib's `crc32` for the injector probes: the system `libz.so.1`'s, a
//! plain table implementation with the same contract for functions inside
//! an executable, and an independent reference (the `crc32fast` crate) to
//! check both against.
//!
//! The contract (segment `crc32`): `uLong crc32(uLong crc, const Bytef *buf,
//! uInt len)`, CRC-32/ISO-HDLC continuing from `crc`, the high 32 bits of
//! `crc` ignored, a null `buf` returns 0.

use std::ffi::CString;

/// The C signature of zlib's `crc32`.
pub type Crc32Fn = unsafe extern "C" fn(crc: u64, buf: *const u8, len: u32) -> u64;

/// `crc32` of the system `libz.so.1` (dlopen'ed, never closed).
pub fn libz_crc32() -> Result<Crc32Fn, String> {
    let lib = CString::new("libz.so.1").map_err(|e| e.to_string())?;
    // SAFETY: dlopen with a valid C string; the handle is never closed, so
    // the function pointer below stays valid for the life of the process.
    let handle = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_NOW) };
    if handle.is_null() {
        return Err("dlopen(libz.so.1) failed: install zlib1g".into());
    }
    let name = CString::new("crc32").map_err(|e| e.to_string())?;
    // SAFETY: `handle` is a live dlopen handle, `name` a C string.
    let sym = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if sym.is_null() {
        return Err("libz.so.1 has no crc32".into());
    }
    // SAFETY: zlib's crc32 has exactly this C signature (zlib.h).
    Ok(unsafe { std::mem::transmute::<*mut libc::c_void, Crc32Fn>(sym) })
}

/// The C signature of zlib's `crc32_z`.
pub type Crc32ZFn = unsafe extern "C" fn(crc: u64, buf: *const u8, len: usize) -> u64;

static CRC32_Z: std::sync::OnceLock<Crc32ZFn> = std::sync::OnceLock::new();

/// Calls the system `crc32_z` with `len` widened (set by [`libz_crc32_z`]).
unsafe extern "C" fn call_crc32_z(crc: u64, buf: *const u8, len: u32) -> u64 {
    match CRC32_Z.get() {
        // SAFETY: zlib's crc32_z, called with the caller's buffer.
        Some(f) => unsafe { f(crc, buf, len as usize) },
        None => u64::MAX,
    }
}

/// A [`Crc32Fn`] calling the system `libz.so.1`'s `crc32_z` (so that a
/// segment replacing `crc32_z` sees every call).
pub fn libz_crc32_z() -> Result<Crc32Fn, String> {
    let lib = CString::new("libz.so.1").map_err(|e| e.to_string())?;
    // SAFETY: as in `libz_crc32`.
    let handle = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_NOW) };
    if handle.is_null() {
        return Err("dlopen(libz.so.1) failed: install zlib1g".into());
    }
    let name = CString::new("crc32_z").map_err(|e| e.to_string())?;
    // SAFETY: `handle` is a live dlopen handle, `name` a C string.
    let sym = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if sym.is_null() {
        return Err("libz.so.1 has no crc32_z".into());
    }
    // SAFETY: zlib's crc32_z has exactly this C signature (zlib.h).
    let f = unsafe { std::mem::transmute::<*mut libc::c_void, Crc32ZFn>(sym) };
    let _ = CRC32_Z.set(f);
    Ok(call_crc32_z)
}

/// The reference: what `crc32(crc, buf, len)` must return (`None` is a
/// null `buf`).
pub fn reference(crc: u64, data: Option<&[u8]>) -> u64 {
    match data {
        None => 0,
        Some(data) => {
            let mut h = crc32fast::Hasher::new_with_initial(crc as u32);
            h.update(data);
            u64::from(h.finalize())
        }
    }
}

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// The byte-wise CRC table of the reflected polynomial 0xEDB88320.
pub static TABLE: [u32; 256] = make_table();

/// A plain table CRC with zlib's contract (for a `crc32` inside an
/// executable).
///
/// # Safety
///
/// `buf` is null or points to `len` readable bytes.
#[inline(always)]
pub unsafe fn table_crc32(crc: u64, buf: *const u8, len: u32) -> u64 {
    if buf.is_null() {
        return 0;
    }
    // SAFETY: the caller guarantees `len` readable bytes at `buf`.
    let data = unsafe { std::slice::from_raw_parts(buf, len as usize) };
    let mut c = !(crc as u32);
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    u64::from(!c)
}

/// xorshift64*: fast, good enough to pick lengths, offsets and bytes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_crc_and_the_reference_agree_with_the_check_value() {
        let data = b"123456789";
        assert_eq!(reference(0, Some(data)), 0xcbf4_3926);
        // SAFETY: `data` is 9 readable bytes.
        assert_eq!(unsafe { table_crc32(0, data.as_ptr(), 9) }, 0xcbf4_3926);
        // Continuing from a previous CRC, high bits ignored.
        let first = reference(0, Some(&data[..4]));
        // SAFETY: 5 readable bytes.
        let cont = unsafe { table_crc32(first | 0xdead_0000_0000_0000, data[4..].as_ptr(), 5) };
        assert_eq!(cont, 0xcbf4_3926);
        assert_eq!(reference(77, None), 0);
        // SAFETY: null is allowed.
        assert_eq!(unsafe { table_crc32(77, std::ptr::null(), 5) }, 0);
    }

    #[test]
    fn libz_agrees_with_the_reference() {
        let crc32 = libz_crc32().unwrap();
        let mut rng = Rng::new(1);
        let mut buf = vec![0u8; 5000];
        rng.fill(&mut buf);
        for _ in 0..200 {
            let start = rng.below(64) as usize;
            let len = rng.below(4000) as usize;
            let crc = rng.next_u64();
            let slice = &buf[start..start + len];
            // SAFETY: `slice` is `len` readable bytes.
            let got = unsafe { crc32(crc, slice.as_ptr(), len as u32) };
            assert_eq!(got, reference(crc, Some(slice)), "len {len} crc {crc:#x}");
        }
        // SAFETY: zlib accepts a null buffer.
        assert_eq!(unsafe { crc32(5, std::ptr::null(), 10) }, 0);
    }
}
