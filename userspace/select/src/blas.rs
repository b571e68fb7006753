// SPDX-License-Identifier: GPL-2.0
//! Benchmark drivers of the Fortran BLAS shapes ([`Shape::Dgemm`],
//! [`Shape::Sgemm`], [`Shape::Dgemv`], [`Shape::Dsyrk`]): gfortran's ABI,
//! every argument by reference, then the hidden lengths of the character
//! arguments.
//!
//! A size is the square dimension `n` (`m = n = k`), column-major, leading
//! dimensions `n`. Inputs are deterministic pseudo-random values in
//! [-1, 1), `alpha = 1.5`, `beta = 0.5`.
//!
//! | shape | timed call | forms checked | flops per call |
//! |---|---|---|---|
//! | gemm | `NN` on the candidate's own `C` | `NN`, `TN`, `NT` | `2n³` |
//! | gemv | `N` on its own `y` | `N`, `T` | `2n²` |
//! | syrk | `UN` on its own `C` | `UN`, `LT` | `n²(n+1)` |
//!
//! numpy reaches these forms through `cblas_*` (`a @ b` on C-ordered
//! arrays is `NN` with the operands swapped, a transposed operand a `T`,
//! `a @ a.T` is `syrk`). Each check call starts from the same `C`; the
//! outputs of every form are concatenated into one
//! [`CallResult::Elements`], compared bit for bit (exact segments) or
//! within the stated bound of a reassociating segment, with the largest
//! distance in ulps reported either way ([`max_ulp`]).

use std::hint::black_box;

use crate::driver::CallResult;
use crate::shape::Shape;
use crate::timing::Runner;

type Dgemm = unsafe extern "C" fn(
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
type Sgemm = unsafe extern "C" fn(
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
type Dgemv = unsafe extern "C" fn(
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
type Dsyrk = unsafe extern "C" fn(
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

/// `alpha` of every call.
pub const ALPHA: f64 = 1.5;
/// `beta` of every call (keeps the timed `C` bounded: it converges).
pub const BETA: f64 = 0.5;
/// Largest dimension measured (a 2048² `f64` matrix is 32 MiB).
pub const MAX_N: usize = 2048;
/// The dimensions measured when the caller gives none.
pub const DEFAULT_DIMENSIONS: [usize; 3] = [64, 256, 512];

/// The forms of each shape: (first character, second character); gemv
/// uses only the first.
fn forms(shape: Shape) -> &'static [(u8, u8)] {
    match shape {
        Shape::Dgemm | Shape::Sgemm => &[(b'N', b'N'), (b'T', b'N'), (b'N', b'T')],
        Shape::Dgemv => &[(b'N', b'N'), (b'T', b'N')],
        Shape::Dsyrk => &[(b'U', b'N'), (b'L', b'T')],
        _ => &[],
    }
}

/// The matrices of one dimension.
pub struct BlasInputs {
    shape: Shape,
    n: usize,
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
    a32: Vec<f32>,
    b32: Vec<f32>,
    c32: Vec<f32>,
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn values(len: usize, seed: &mut u64) -> Vec<f64> {
    (0..len)
        .map(|_| (xorshift(seed) >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
        .collect()
}

impl BlasInputs {
    /// Inputs for dimension `n` (clamped to 1..=[`MAX_N`]).
    pub fn new(shape: Shape, n: usize) -> BlasInputs {
        let n = n.clamp(1, MAX_N);
        let mut seed = 0x9e37_79b9_7f4a_7c15 ^ n as u64;
        let a = values(n * n, &mut seed);
        let (b, c) = match shape {
            Shape::Dgemv => (values(n, &mut seed), values(n, &mut seed)),
            Shape::Dsyrk => (Vec::new(), values(n * n, &mut seed)),
            _ => (values(n * n, &mut seed), values(n * n, &mut seed)),
        };
        let single = |v: &[f64]| -> Vec<f32> {
            if shape == Shape::Sgemm {
                v.iter().map(|&x| x as f32).collect()
            } else {
                Vec::new()
            }
        };
        BlasInputs {
            shape,
            n,
            a32: single(&a),
            b32: single(&b),
            c32: single(&c),
            a,
            b,
            c,
        }
    }

    /// The dimension.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Floating-point operations of one timed call.
    pub fn flops_per_call(&self) -> u64 {
        let n = self.n as u64;
        match self.shape {
            Shape::Dgemv => 2 * n * n,
            Shape::Dsyrk => n * n * (n + 1),
            _ => 2 * n * n * n,
        }
    }

    /// One call of form `form` of the function at `entry` on `c` (which
    /// holds `C`, or `y` for gemv).
    ///
    /// # Safety
    ///
    /// `entry` must be a function of this inputs' shape (gfortran ABI).
    unsafe fn call(&self, entry: usize, (t1, t2): (u8, u8), c: &mut Out<'_>) {
        let n = self.n as i32;
        let (ta, tb) = (&t1 as *const u8, &t2 as *const u8);
        let (alpha, beta) = (ALPHA, BETA);
        let one = 1i32;
        // SAFETY (all arms): the caller's contract for `entry`; every
        // pointer is to a live local or to a buffer of `self` or `c` of
        // exactly the extent the call's dimensions (n, leading dimension n,
        // increments 1) describe.
        match (self.shape, c) {
            (Shape::Dgemm, Out::F64(c)) => unsafe {
                let f = std::mem::transmute::<usize, Dgemm>(entry);
                f(
                    ta,
                    tb,
                    &n,
                    &n,
                    &n,
                    &alpha,
                    self.a.as_ptr(),
                    &n,
                    self.b.as_ptr(),
                    &n,
                    &beta,
                    c.as_mut_ptr(),
                    &n,
                    1,
                    1,
                )
            },
            (Shape::Sgemm, Out::F32(c)) => unsafe {
                let f = std::mem::transmute::<usize, Sgemm>(entry);
                let (alpha, beta) = (alpha as f32, beta as f32);
                f(
                    ta,
                    tb,
                    &n,
                    &n,
                    &n,
                    &alpha,
                    self.a32.as_ptr(),
                    &n,
                    self.b32.as_ptr(),
                    &n,
                    &beta,
                    c.as_mut_ptr(),
                    &n,
                    1,
                    1,
                )
            },
            (Shape::Dgemv, Out::F64(y)) => unsafe {
                let f = std::mem::transmute::<usize, Dgemv>(entry);
                f(
                    ta,
                    &n,
                    &n,
                    &alpha,
                    self.a.as_ptr(),
                    &n,
                    self.b.as_ptr(),
                    &one,
                    &beta,
                    y.as_mut_ptr(),
                    &one,
                    1,
                )
            },
            (Shape::Dsyrk, Out::F64(c)) => unsafe {
                let f = std::mem::transmute::<usize, Dsyrk>(entry);
                f(
                    ta,
                    tb,
                    &n,
                    &n,
                    &alpha,
                    self.a.as_ptr(),
                    &n,
                    &beta,
                    c.as_mut_ptr(),
                    &n,
                    1,
                    1,
                )
            },
            _ => {}
        }
    }

    fn fresh(&self) -> Owned {
        if self.shape == Shape::Sgemm {
            Owned::F32(self.c32.clone())
        } else {
            Owned::F64(self.c.clone())
        }
    }

    /// A runner making `calls` timed calls (first form) on its own `C`.
    ///
    /// # Safety
    ///
    /// As for [`crate::driver::Workload::runner`].
    pub unsafe fn runner<'a>(&'a self, entry: usize) -> Runner<'a> {
        let mut c = self.fresh();
        let form = forms(self.shape)[0];
        Box::new(move |calls| {
            for _ in 0..calls {
                // SAFETY: the caller's contract.
                unsafe { self.call(entry, form, &mut c.out()) };
            }
            black_box(&c);
        })
    }

    /// Every form once, each from the same `C`; the outputs concatenated.
    ///
    /// # Safety
    ///
    /// As for [`crate::driver::Workload::runner`].
    pub unsafe fn outcome(&self, entry: usize) -> CallResult {
        let mut values = Vec::new();
        for &form in forms(self.shape) {
            let mut c = self.fresh();
            // SAFETY: the caller's contract.
            unsafe { self.call(entry, form, &mut c.out()) };
            match c {
                Owned::F64(v) => values.extend(v),
                Owned::F32(v) => values.extend(v.iter().map(|&x| f64::from(x))),
            }
        }
        CallResult::Elements {
            values,
            single: self.shape == Shape::Sgemm,
        }
    }

    /// Per element of [`BlasInputs::outcome`], the largest difference a
    /// reassociating (fused, reordered) implementation may have from the
    /// reference: `2·γ(k+2)·(|α|·Σ|a||b| + |β·c|)`, γ of the element type
    /// (the bound the relaxed segments state).
    pub fn relaxed_tolerance(&self) -> Vec<f64> {
        let n = self.n;
        let unit = if self.shape == Shape::Sgemm {
            2f64.powi(-24)
        } else {
            2f64.powi(-53)
        };
        let nu = (n + 2) as f64 * unit;
        let gamma = if nu >= 1.0 {
            f64::INFINITY
        } else {
            nu / (1.0 - nu)
        };
        let (a, b, c) = if self.shape == Shape::Sgemm {
            let w = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
            (w(&self.a32), w(&self.b32), w(&self.c32))
        } else {
            (self.a.clone(), self.b.clone(), self.c.clone())
        };
        let at = |m: &[f64], i: usize, j: usize, t: bool| {
            if t {
                m[j + i * n].abs()
            } else {
                m[i + j * n].abs()
            }
        };
        let mut out = Vec::new();
        for &(t1, t2) in forms(self.shape) {
            match self.shape {
                Shape::Dgemv => {
                    // y(i) = Σ op(A)(i,l) x(l)
                    for (i, ci) in c.iter().enumerate().take(n) {
                        let s: f64 = (0..n).map(|l| at(&a, i, l, t1 == b'T') * b[l].abs()).sum();
                        out.push(2.0 * gamma * (ALPHA.abs() * s + (BETA * ci).abs()));
                    }
                }
                _ => {
                    // C(i,j) = Σ op(A)(i,l) op(B)(l,j); syrk: B = op(A)ᵀ.
                    let (ta, tb, bm) = if self.shape == Shape::Dsyrk {
                        (t2 == b'T', t2 != b'T', &a)
                    } else {
                        (t1 == b'T', t2 == b'T', &b)
                    };
                    let mut s = vec![0.0f64; n * n];
                    for j in 0..n {
                        for l in 0..n {
                            let blj = at(bm, l, j, tb);
                            let col = &mut s[j * n..(j + 1) * n];
                            for (i, x) in col.iter_mut().enumerate() {
                                *x += at(&a, i, l, ta) * blj;
                            }
                        }
                    }
                    for (x, cij) in s.iter().zip(&c) {
                        out.push(2.0 * gamma * (ALPHA.abs() * x + (BETA * cij).abs()));
                    }
                }
            }
        }
        out
    }
}

enum Owned {
    F64(Vec<f64>),
    F32(Vec<f32>),
}

enum Out<'a> {
    F64(&'a mut [f64]),
    F32(&'a mut [f32]),
}

impl Owned {
    fn out(&mut self) -> Out<'_> {
        match self {
            Owned::F64(v) => Out::F64(v),
            Owned::F32(v) => Out::F32(v),
        }
    }
}

/// The bits of `x` as an integer ordered like the values (adjacent
/// floats differ by one; `-0` and `+0` are the same).
fn ordered64(x: f64) -> i128 {
    let b = x.to_bits() as i64;
    i128::from(if b < 0 { i64::MIN - b } else { b })
}

fn ordered32(x: f32) -> i128 {
    let b = x.to_bits() as i32;
    i128::from(if b < 0 { i32::MIN - b } else { b })
}

/// Distance in ulps of the element type between `a` and `b` (`single`:
/// `f32` values widened to `f64`); `None` if either is not finite.
pub fn ulp_distance(a: f64, b: f64, single: bool) -> Option<u64> {
    if !a.is_finite() || !b.is_finite() {
        return None;
    }
    let d = if single {
        ordered32(a as f32) - ordered32(b as f32)
    } else {
        ordered64(a) - ordered64(b)
    };
    u64::try_from(d.unsigned_abs()).ok()
}

/// The largest [`ulp_distance`] over two equally long outputs; `None` if
/// their lengths differ or an element is not finite.
pub fn max_ulp(a: &[f64], b: &[f64], single: bool) -> Option<u64> {
    if a.len() != b.len() {
        return None;
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| ulp_distance(x, y, single))
        .try_fold(0u64, |m, d| d.map(|d| m.max(d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulps_count_representable_values_between() {
        assert_eq!(ulp_distance(1.0, 1.0, false), Some(0));
        assert_eq!(ulp_distance(1.0, 1.0 + f64::EPSILON, false), Some(1));
        assert_eq!(ulp_distance(0.0, -0.0, false), Some(0));
        // Across zero: the smallest subnormals on either side are 2 apart.
        let tiny = f64::from_bits(1);
        assert_eq!(ulp_distance(tiny, -tiny, false), Some(2));
        assert_eq!(ulp_distance(-1.0, -1.0 - f64::EPSILON, false), Some(1));
        // In f32 units.
        let one_up = f64::from(1.0f32 + f32::EPSILON);
        assert_eq!(ulp_distance(1.0, one_up, true), Some(1));
        assert_eq!(ulp_distance(1.0, one_up, false), Some(1 << 29));
        assert_eq!(ulp_distance(f64::NAN, 1.0, false), None);
        assert_eq!(ulp_distance(f64::INFINITY, 1.0, false), None);
        assert_eq!(max_ulp(&[1.0, 2.0], &[1.0, 2.0], false), Some(0));
        assert_eq!(
            max_ulp(
                &[1.0, 2.0],
                &[1.0 + f64::EPSILON, 2.0 + 8.0 * f64::EPSILON],
                false
            ),
            Some(4)
        );
        assert_eq!(max_ulp(&[1.0], &[1.0, 2.0], false), None);
        assert_eq!(max_ulp(&[1.0], &[f64::NAN], false), None);
    }

    /// Column-major `C = α·op(A)·op(B) + β·C`, plain loops, for the tests.
    unsafe extern "C" fn naive_dgemm(
        ta: *const u8,
        tb: *const u8,
        m: *const i32,
        n: *const i32,
        k: *const i32,
        alpha: *const f64,
        a: *const f64,
        lda: *const i32,
        b: *const f64,
        ldb: *const i32,
        beta: *const f64,
        c: *mut f64,
        ldc: *const i32,
        _: usize,
        _: usize,
    ) {
        // SAFETY: the driver passes valid pointers with these extents.
        unsafe {
            let (m, n, k) = (*m as usize, *n as usize, *k as usize);
            let (lda, ldb, ldc) = (*lda as usize, *ldb as usize, *ldc as usize);
            for j in 0..n {
                for i in 0..m {
                    let mut s = 0.0;
                    for l in 0..k {
                        let x = if *ta == b'N' {
                            *a.add(i + l * lda)
                        } else {
                            *a.add(l + i * lda)
                        };
                        let y = if *tb == b'N' {
                            *b.add(l + j * ldb)
                        } else {
                            *b.add(j + l * ldb)
                        };
                        s += x * y;
                    }
                    let cij = c.add(i + j * ldc);
                    *cij = *alpha * s + *beta * *cij;
                }
            }
        }
    }

    #[test]
    fn gemm_driver_calls_every_form_and_bounds_the_reassociated_result() {
        let w = BlasInputs::new(Shape::Dgemm, 8);
        assert_eq!(w.flops_per_call(), 2 * 512);
        // SAFETY: naive_dgemm has the Dgemm shape.
        let o = unsafe { w.outcome(naive_dgemm as *const () as usize) };
        let CallResult::Elements { values, single } = &o else {
            panic!("{o:?}")
        };
        assert!(!single);
        assert_eq!(values.len(), 3 * 64);
        // C(0,0) of NN by hand.
        let s: f64 = (0..8).map(|l| w.a[l * 8] * w.b[l]).sum();
        assert_eq!(values[0], ALPHA * s + BETA * w.c[0]);
        let tol = w.relaxed_tolerance();
        assert_eq!(tol.len(), values.len());
        assert!(tol.iter().all(|t| t.is_finite() && *t > 0.0));
        // A result off by less than the bound is accepted; one off by
        // more is not.
        let near: Vec<f64> = values.iter().zip(&tol).map(|(v, t)| v + t / 2.0).collect();
        let far: Vec<f64> = values.iter().zip(&tol).map(|(v, t)| v + t * 4.0).collect();
        let with = |v: Vec<f64>| CallResult::Elements {
            values: v,
            single: false,
        };
        assert!(o.within(&with(near), &tol));
        assert!(!o.within(&with(far.clone()), &tol));
        assert!(o.agrees(&o.clone()));
        assert!(!o.agrees(&with(far)));
        // SAFETY: as above.
        let mut r = unsafe { w.runner(naive_dgemm as *const () as usize) };
        r(2);
    }
}
