// SPDX-License-Identifier: GPL-2.0
//! Benchmark drivers: one per [`Shape`], calling a function by address on
//! inputs of one size.
//!
//! | shape | one call | bytes counted per call | result compared |
//! |---|---|---|---|
//! | crc-like / adler-like (`u64(u64,const u8*,u32\|u64)`) | `f(0, buf, size)` | `size` | the returned value, exactly |
//! | crc32c | `f(0, buf, size)` | `size` | the returned value, exactly |
//! | dot | `f(a, b, size/4)` | `size` (one array) | within twice the summation-order error bound γ(n)·Σ\|aᵢbᵢ\| |
//! | axpy | `f(1e-3, x, y, size/4)` on the candidate's own `y` | `size` (one array) | every `y[i]` within 4 ulp of `a·x[i]+y[i]` (fused or not) |
//! | sha256 transform | `f(state, blocks, size/64)` on the candidate's own state | `size` | the 8 state words, exactly |
//!
//! Inputs are deterministic pseudo-random bytes (floats in [-1, 1)), the
//! buffers 64-byte aligned. Every candidate of a measurement gets the same
//! inputs.

use std::hint::black_box;

use crate::blas::{max_ulp, BlasInputs};
use crate::shape::Shape;
use crate::timing::Runner;

type Checksum32 = unsafe extern "C" fn(u64, *const u8, u32) -> u64;
type Checksum64 = unsafe extern "C" fn(u64, *const u8, u64) -> u64;
type Crc32c = unsafe extern "C" fn(u32, *const u8, u64) -> u32;
type Dot = unsafe extern "C" fn(*const f32, *const f32, u64) -> f32;
type Axpy = unsafe extern "C" fn(f32, *const f32, *mut f32, u64);
type Sha = unsafe extern "C" fn(*mut u32, *const u8, u64);

/// The `a` of the axpy driver: small, so `y` stays far from overflow over
/// billions of calls.
const AXPY_A: f32 = 1e-3;

/// FIPS 180-4 initial SHA-256 state.
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A 64-byte aligned, owned byte buffer.
struct Aligned {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let storage = vec![0u8; len + 64];
        let offset = storage.as_ptr().align_offset(64).min(64);
        Aligned {
            storage,
            offset,
            len,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.offset..self.offset + self.len]
    }
}

/// What one call returned, for comparing candidates.
#[derive(Clone, Debug, PartialEq)]
pub enum CallResult {
    /// An integer result (checksums).
    Int(u64),
    /// A float result with the bound it may differ by.
    Float {
        /// The value.
        value: f32,
        /// Largest difference two correct results may have.
        tolerance: f64,
    },
    /// An output array (axpy's `y`) with per-element tolerances.
    Floats {
        /// The values.
        values: Vec<f32>,
        /// Largest difference per element.
        tolerance: Vec<f64>,
    },
    /// Output words (a hash state).
    Words(Vec<u32>),
    /// Output elements of a BLAS routine (`single`: `f32` values, widened
    /// exactly), equal only bit for bit ([`CallResult::within`] for a
    /// reassociating implementation).
    Elements {
        /// The values.
        values: Vec<f64>,
        /// They are `f32`s.
        single: bool,
    },
}

impl CallResult {
    /// Whether two outcomes are equal within their tolerances.
    pub fn agrees(&self, other: &CallResult) -> bool {
        match (self, other) {
            (CallResult::Int(a), CallResult::Int(b)) => a == b,
            (CallResult::Words(a), CallResult::Words(b)) => a == b,
            (
                CallResult::Elements {
                    values: a,
                    single: s,
                },
                CallResult::Elements {
                    values: b,
                    single: t,
                },
            ) => {
                s == t
                    && a.len() == b.len()
                    && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            (
                CallResult::Float {
                    value: a,
                    tolerance,
                },
                CallResult::Float { value: b, .. },
            ) => {
                a.is_finite()
                    && b.is_finite()
                    && (f64::from(*a) - f64::from(*b)).abs() <= *tolerance
            }
            (
                CallResult::Floats {
                    values: a,
                    tolerance,
                },
                CallResult::Floats { values: b, .. },
            ) => {
                a.len() == b.len()
                    && a.iter().zip(b).zip(tolerance).all(|((x, y), t)| {
                        x.is_finite()
                            && y.is_finite()
                            && (f64::from(*x) - f64::from(*y)).abs() <= *t
                    })
            }
            _ => false,
        }
    }

    /// Whether `other`'s elements are within `tolerance` of these
    /// (elementwise, all finite): the check of a reassociating
    /// implementation. Other results: [`CallResult::agrees`].
    pub fn within(&self, other: &CallResult, tolerance: &[f64]) -> bool {
        match (self, other) {
            (
                CallResult::Elements {
                    values: a,
                    single: s,
                },
                CallResult::Elements {
                    values: b,
                    single: t,
                },
            ) => {
                s == t
                    && a.len() == b.len()
                    && a.len() == tolerance.len()
                    && a.iter().zip(b).zip(tolerance).all(|((x, y), tol)| {
                        x.is_finite() && y.is_finite() && (x - y).abs() <= *tol
                    })
            }
            _ => self.agrees(other),
        }
    }

    /// The largest distance of `other`'s elements from these, in ulps of
    /// the element type (`None` unless both are BLAS outputs of one
    /// length with finite elements).
    pub fn max_ulp(&self, other: &CallResult) -> Option<u64> {
        match (self, other) {
            (
                CallResult::Elements {
                    values: a,
                    single: s,
                },
                CallResult::Elements {
                    values: b,
                    single: t,
                },
            ) if s == t => max_ulp(a, b, *s),
            _ => None,
        }
    }

    /// A short description for reports.
    pub fn summary(&self) -> String {
        match self {
            CallResult::Int(v) => format!("{v:#x}"),
            CallResult::Float { value, .. } => format!("{value}"),
            CallResult::Floats { values, .. } => format!(
                "y[0..{}] starting {:?}",
                values.len(),
                &values[..values.len().min(2)]
            ),
            CallResult::Words(w) => w.iter().map(|x| format!("{x:08x}")).collect(),
            CallResult::Elements { values, .. } => format!(
                "{} elements starting {:?}",
                values.len(),
                &values[..values.len().min(2)]
            ),
        }
    }
}

/// Inputs of one size for one shape.
pub struct Workload {
    shape: Shape,
    size: usize,
    bytes: Aligned,
    x: Vec<f32>,
    y: Vec<f32>,
    blas: Option<BlasInputs>,
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

impl Workload {
    /// Inputs of `size` bytes (rounded down to the shape's granule, at
    /// least one granule).
    pub fn new(shape: Shape, size: usize) -> Workload {
        if shape.is_blas() {
            let blas = BlasInputs::new(shape, size);
            return Workload {
                shape,
                size: blas.n(),
                bytes: Aligned::new(0),
                x: Vec::new(),
                y: Vec::new(),
                blas: Some(blas),
            };
        }
        let g = shape.granule();
        let size = (size / g).max(1) * g;
        let mut seed = 0x2545_f491_4f6c_dd1d ^ size as u64;
        let mut bytes = Aligned::new(size);
        for b in bytes.bytes_mut() {
            *b = xorshift(&mut seed) as u8;
        }
        let floats = |seed: &mut u64| -> Vec<f32> {
            (0..size / 4)
                .map(|_| (xorshift(seed) >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
                .collect()
        };
        let (x, y) = match shape {
            Shape::Dot | Shape::Axpy => (floats(&mut seed), floats(&mut seed)),
            _ => (Vec::new(), Vec::new()),
        };
        Workload {
            shape,
            size,
            bytes,
            x,
            y,
            blas: None,
        }
    }

    /// Bytes of work one call does (see the module table); for the BLAS
    /// shapes, floating-point operations.
    pub fn bytes_per_call(&self) -> u64 {
        match &self.blas {
            Some(b) => b.flops_per_call(),
            None => self.size as u64,
        }
    }

    /// The shape driven.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Per output element, the difference allowed to a reassociating
    /// (`float-reassociate`) implementation; `None` for the non-BLAS
    /// shapes, whose checks already allow for it.
    pub fn relaxed_tolerance(&self) -> Option<Vec<f64>> {
        self.blas.as_ref().map(BlasInputs::relaxed_tolerance)
    }

    /// The size measured, in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    fn n_floats(&self) -> u64 {
        (self.size / 4) as u64
    }

    /// A runner making `calls` calls of the function at `entry`.
    ///
    /// # Safety
    ///
    /// `entry` must be the address of a function with this workload's
    /// shape (C ABI, the contract of [`Shape`]) that only reads and writes
    /// the memory its arguments describe, and it must stay callable for
    /// the runner's lifetime.
    pub unsafe fn runner<'a>(&'a self, entry: usize) -> Runner<'a> {
        if let Some(b) = &self.blas {
            // SAFETY: the caller's contract.
            return unsafe { b.runner(entry) };
        }
        let len = self.size as u64;
        let buf = self.bytes.bytes().as_ptr();
        // SAFETY (all arms): by the caller's contract `entry` is a function
        // of this shape; the pointers passed cover exactly `size` bytes (or
        // n floats, or `size / 64` blocks) of buffers owned by `self` or by
        // the closure, which outlive every call.
        match self.shape {
            Shape::Checksum32Len => {
                // SAFETY: `entry` is a function of this shape (caller's contract).
                let f: Checksum32 = unsafe { std::mem::transmute::<usize, Checksum32>(entry) };
                Box::new(move |calls| {
                    let mut acc = 0u64;
                    for _ in 0..calls {
                        // SAFETY: as above; the pointers cover the lengths passed, in buffers that outlive the call.
                        acc = unsafe { f(black_box(acc), black_box(buf), len as u32) };
                    }
                    black_box(acc);
                })
            }
            Shape::Checksum64Len => {
                // SAFETY: `entry` is a function of this shape (caller's contract).
                let f: Checksum64 = unsafe { std::mem::transmute::<usize, Checksum64>(entry) };
                Box::new(move |calls| {
                    let mut acc = 0u64;
                    for _ in 0..calls {
                        // SAFETY: as above; the pointers cover the lengths passed, in buffers that outlive the call.
                        acc = unsafe { f(black_box(acc), black_box(buf), len) };
                    }
                    black_box(acc);
                })
            }
            Shape::Crc32c => {
                // SAFETY: `entry` is a function of this shape (caller's contract).
                let f: Crc32c = unsafe { std::mem::transmute::<usize, Crc32c>(entry) };
                Box::new(move |calls| {
                    let mut acc = 0u32;
                    for _ in 0..calls {
                        // SAFETY: as above; the pointers cover the lengths passed, in buffers that outlive the call.
                        acc = unsafe { f(black_box(acc), black_box(buf), len) };
                    }
                    black_box(acc);
                })
            }
            Shape::Dot => {
                // SAFETY: `entry` is a function of this shape (caller's contract).
                let f: Dot = unsafe { std::mem::transmute::<usize, Dot>(entry) };
                let (a, b, n) = (self.x.as_ptr(), self.y.as_ptr(), self.n_floats());
                Box::new(move |calls| {
                    for _ in 0..calls {
                        // SAFETY: as above; the pointers cover the lengths passed, in buffers that outlive the call.
                        black_box(unsafe { f(black_box(a), black_box(b), n) });
                    }
                })
            }
            Shape::Axpy => {
                // SAFETY: `entry` is a function of this shape (caller's contract).
                let f: Axpy = unsafe { std::mem::transmute::<usize, Axpy>(entry) };
                let x = self.x.as_ptr();
                let n = self.n_floats();
                let mut y = self.y.clone();
                Box::new(move |calls| {
                    let yp = y.as_mut_ptr();
                    for _ in 0..calls {
                        // SAFETY: as above; the pointers cover the lengths passed, in buffers that outlive the call.
                        unsafe { f(AXPY_A, black_box(x), black_box(yp), n) };
                    }
                    black_box(&y);
                })
            }
            Shape::Sha256Transform => {
                // SAFETY: `entry` is a function of this shape (caller's contract).
                let f: Sha = unsafe { std::mem::transmute::<usize, Sha>(entry) };
                let blocks = len / 64;
                let mut state = SHA256_IV;
                Box::new(move |calls| {
                    for _ in 0..calls {
                        // SAFETY: as above; the pointers cover the lengths passed, in buffers that outlive the call.
                        unsafe { f(state.as_mut_ptr(), black_box(buf), blocks) };
                    }
                    black_box(&state);
                })
            }
            // Driven by `self.blas` above.
            Shape::Dgemm | Shape::Sgemm | Shape::Dgemv | Shape::Dsyrk => Box::new(|_| {}),
        }
    }

    /// What one call of the function at `entry` computes on fresh inputs.
    ///
    /// # Safety
    ///
    /// As for [`Workload::runner`].
    pub unsafe fn outcome(&self, entry: usize) -> CallResult {
        if let Some(b) = &self.blas {
            // SAFETY: the caller's contract.
            return unsafe { b.outcome(entry) };
        }
        let len = self.size as u64;
        let buf = self.bytes.bytes().as_ptr();
        let n = self.n_floats();
        // SAFETY (all arms): as in `runner`.
        match self.shape {
            Shape::Checksum32Len => {
                // SAFETY: `entry` is a function of this shape (caller's contract).
                let f: Checksum32 = unsafe { std::mem::transmute::<usize, Checksum32>(entry) };
                // SAFETY: as above; the pointers cover the lengths passed, in buffers that outlive the call.
                CallResult::Int(unsafe { f(0, buf, len as u32) })
            }
            Shape::Checksum64Len => {
                // SAFETY: `entry` is a function of this shape (caller's contract).
                let f: Checksum64 = unsafe { std::mem::transmute::<usize, Checksum64>(entry) };
                // SAFETY: as above; the pointers cover the lengths passed, in buffers that outlive the call.
                CallResult::Int(unsafe { f(0, buf, len) })
            }
            Shape::Crc32c => {
                // SAFETY: `entry` is a function of this shape (caller's contract).
                let f: Crc32c = unsafe { std::mem::transmute::<usize, Crc32c>(entry) };
                // SAFETY: as above; the pointers cover the lengths passed, in buffers that outlive the call.
                CallResult::Int(u64::from(unsafe { f(0, buf, len) }))
            }
            Shape::Dot => {
                // SAFETY: `entry` is a function of this shape (caller's contract).
                let f: Dot = unsafe { std::mem::transmute::<usize, Dot>(entry) };
                // SAFETY: as above; the pointers cover the lengths passed, in buffers that outlive the call.
                let value = unsafe { f(self.x.as_ptr(), self.y.as_ptr(), n) };
                let abs: f64 = self
                    .x
                    .iter()
                    .zip(&self.y)
                    .map(|(a, b)| (f64::from(*a) * f64::from(*b)).abs())
                    .sum();
                CallResult::Float {
                    value,
                    tolerance: 2.0 * gamma32(n as usize) * abs + f64::from(f32::MIN_POSITIVE),
                }
            }
            Shape::Axpy => {
                // SAFETY: `entry` is a function of this shape (caller's contract).
                let f: Axpy = unsafe { std::mem::transmute::<usize, Axpy>(entry) };
                let mut y = self.y.clone();
                // SAFETY: as above; the pointers cover the lengths passed, in buffers that outlive the call.
                unsafe { f(AXPY_A, self.x.as_ptr(), y.as_mut_ptr(), n) };
                let tolerance = self
                    .x
                    .iter()
                    .zip(&self.y)
                    .map(|(x, y)| {
                        4.0 * f64::from(f32::EPSILON)
                            * ((f64::from(AXPY_A) * f64::from(*x)).abs() + f64::from(*y).abs())
                    })
                    .collect();
                CallResult::Floats {
                    values: y,
                    tolerance,
                }
            }
            Shape::Sha256Transform => {
                // SAFETY: `entry` is a function of this shape (caller's contract).
                let f: Sha = unsafe { std::mem::transmute::<usize, Sha>(entry) };
                let mut state = SHA256_IV;
                // SAFETY: as above; the pointers cover the lengths passed, in buffers that outlive the call.
                unsafe { f(state.as_mut_ptr(), buf, len / 64) };
                CallResult::Words(state.to_vec())
            }
            // Driven by `self.blas` above.
            Shape::Dgemm | Shape::Sgemm | Shape::Dgemv | Shape::Dsyrk => CallResult::Int(0),
        }
    }
}

/// γ(n) = n·u / (1 − n·u) with u = 2⁻²⁴: the relative error bound of any
/// order of summing n single-precision products.
pub fn gamma32(n: usize) -> f64 {
    let nu = n as f64 * 2f64.powi(-24);
    if nu >= 1.0 {
        f64::INFINITY
    } else {
        nu / (1.0 - nu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn sum_bytes(init: u64, buf: *const u8, len: u32) -> u64 {
        // SAFETY: the driver passes len readable bytes.
        let s = unsafe { std::slice::from_raw_parts(buf, len as usize) };
        s.iter().fold(init, |a, &b| a.wrapping_add(u64::from(b)))
    }

    unsafe extern "C" fn dot_plain(a: *const f32, b: *const f32, n: u64) -> f32 {
        // SAFETY: the driver passes n readable floats in each.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(a, n as usize),
                std::slice::from_raw_parts(b, n as usize),
            )
        };
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    unsafe extern "C" fn dot_reversed(a: *const f32, b: *const f32, n: u64) -> f32 {
        // SAFETY: as above.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(a, n as usize),
                std::slice::from_raw_parts(b, n as usize),
            )
        };
        a.iter().zip(b).rev().map(|(x, y)| x * y).sum()
    }

    unsafe extern "C" fn dot_wrong(a: *const f32, b: *const f32, n: u64) -> f32 {
        // SAFETY: as above.
        unsafe { dot_plain(a, b, n) + 1.0 }
    }

    #[test]
    fn drivers_call_by_address_and_compare_within_tolerance() {
        let w = Workload::new(Shape::Checksum32Len, 1000);
        // SAFETY: sum_bytes has the Checksum32Len shape.
        let o = unsafe { w.outcome(sum_bytes as *const () as usize) };
        let want: u64 = w.bytes.bytes().iter().map(|&b| u64::from(b)).sum();
        assert_eq!(o, CallResult::Int(want));
        // SAFETY: as above.
        let mut r = unsafe { w.runner(sum_bytes as *const () as usize) };
        r(3);

        let d = Workload::new(Shape::Dot, 4096);
        // SAFETY: the dot functions have the Dot shape.
        let (p, q, bad) = unsafe {
            (
                d.outcome(dot_plain as *const () as usize),
                d.outcome(dot_reversed as *const () as usize),
                d.outcome(dot_wrong as *const () as usize),
            )
        };
        assert!(p.agrees(&q), "{p:?} vs {q:?}");
        assert!(!p.agrees(&bad));
        assert!(!p.agrees(&CallResult::Int(0)));
    }

    #[test]
    fn sizes_are_rounded_to_the_shape() {
        assert_eq!(Workload::new(Shape::Sha256Transform, 100).size(), 64);
        assert_eq!(Workload::new(Shape::Sha256Transform, 10).size(), 64);
        assert_eq!(Workload::new(Shape::Dot, 1026).size(), 1024);
        assert_eq!(Workload::new(Shape::Crc32c, 77).size(), 77);
    }
}
