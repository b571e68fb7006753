// SPDX-License-Identifier: GPL-2.0
//! The BLAS segments against the netlib reference BLAS they replace
//! (`/usr/lib/x86_64-linux-gnu/blas/libblas.so.3`, dlopened by that path):
//! every variant this CPU runs, loaded from its built file with its
//! `fallback` import bound to the reference's own function, on random
//! cases (shapes including 0, 1 and non-multiples of every vector width,
//! every transpose flag in both cases, alpha/beta in {0, -0, 1, -1,
//! random, Inf, NaN}, NaN with random payloads and signs, ±Inf, ±0 and
//! subnormals in A, B and C, leading dimensions larger than needed). The
//! whole output buffer, padding included, must be byte-identical to the
//! reference's, and A, B and the bytes of C outside the submatrix
//! unchanged. A second test points `fallback` at a recorder and checks
//! that every argument error reaches it with all fifteen arguments as
//! given.

mod common;

use std::sync::Mutex;

use adapt_library_build::blas::Blas;
use adapt_segment::{CpuFeatures, InProcessVariant, SegmentFile};
use common::library_dir;
use rand::{Rng, SeedableRng};

const CASES: usize = 10_000;

fn rng(seed: u64) -> rand::rngs::SmallRng {
    rand::rngs::SmallRng::seed_from_u64(seed)
}

/// The element types, as bits.
trait Elem: Copy + Default + std::fmt::Debug {
    const BYTES: usize;
    fn from_f64(x: f64) -> Self;
    /// A NaN with a random sign, quiet or signalling, random payload.
    fn nan(r: &mut impl Rng) -> Self;
    fn subnormal(r: &mut impl Rng) -> Self;
    fn bytes(v: &[Self]) -> Vec<u8>;
}

impl Elem for f64 {
    const BYTES: usize = 8;
    fn from_f64(x: f64) -> f64 {
        x
    }
    fn nan(r: &mut impl Rng) -> f64 {
        let payload = r.gen::<u64>() & ((1 << 52) - 1);
        let payload = if payload == 0 { 1 } else { payload };
        f64::from_bits((u64::from(r.gen::<bool>()) << 63) | (0x7ff << 52) | payload)
    }
    fn subnormal(r: &mut impl Rng) -> f64 {
        f64::from_bits((u64::from(r.gen::<bool>()) << 63) | (r.gen::<u64>() & ((1 << 52) - 1)))
    }
    fn bytes(v: &[f64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect()
    }
}

impl Elem for f32 {
    const BYTES: usize = 4;
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
    fn nan(r: &mut impl Rng) -> f32 {
        let payload = r.gen::<u32>() & ((1 << 23) - 1);
        let payload = if payload == 0 { 1 } else { payload };
        f32::from_bits((u32::from(r.gen::<bool>()) << 31) | (0xff << 23) | payload)
    }
    fn subnormal(r: &mut impl Rng) -> f32 {
        f32::from_bits((u32::from(r.gen::<bool>()) << 31) | (r.gen::<u32>() & ((1 << 23) - 1)))
    }
    fn bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect()
    }
}

/// A matrix element: mostly ordinary, sometimes special (when `special`).
fn element<T: Elem>(r: &mut impl Rng, special: bool) -> T {
    if special && r.gen_range(0..16) == 0 {
        return match r.gen_range(0..7) {
            0 => T::nan(r),
            1 => T::from_f64(f64::INFINITY),
            2 => T::from_f64(f64::NEG_INFINITY),
            3 => T::from_f64(-0.0),
            4 => T::from_f64(0.0),
            5 => T::subnormal(r),
            _ => T::from_f64(if r.gen() { 1e300 } else { -1e-300 }),
        };
    }
    match r.gen_range(0..8) {
        0 => T::from_f64(0.0),
        1 => T::from_f64(f64::from(r.gen_range(-4i32..=4))),
        _ => T::from_f64(r.gen_range(-2.0..2.0)),
    }
}

/// alpha or beta.
fn scalar<T: Elem>(r: &mut impl Rng) -> T {
    match r.gen_range(0..12) {
        0 | 1 => T::from_f64(0.0),
        2 | 3 => T::from_f64(1.0),
        4 => T::from_f64(-1.0),
        5 => T::from_f64(-0.0),
        6 => T::nan(r),
        7 => T::from_f64(if r.gen() {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        }),
        _ => T::from_f64(r.gen_range(-3.0..3.0)),
    }
}

/// A dimension: biased to 0, 1, the vector widths' edges, and sometimes
/// larger than one register tile.
fn dim(r: &mut impl Rng) -> i32 {
    match r.gen_range(0..10) {
        0 => 0,
        1 => 1,
        2 => *[
            2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49,
        ]
        .get(r.gen_range(0..19))
        .unwrap_or(&1),
        3 => r.gen_range(60..140),
        _ => r.gen_range(0..40),
    }
}

fn flag(r: &mut impl Rng) -> u8 {
    *b"NnTtCc".get(r.gen_range(0..6)).unwrap_or(&b'N')
}

fn lead(r: &mut impl Rng, rows: i32) -> i32 {
    rows.max(1)
        + match r.gen_range(0..4) {
            0 | 1 => 0,
            2 => r.gen_range(1..4),
            _ => r.gen_range(1..40),
        }
}

/// `cols` columns of `ld` elements, all filled (the padding too).
fn matrix<T: Elem>(r: &mut impl Rng, ld: i32, cols: i32, special: bool) -> Vec<T> {
    // One spare element after the last column catches writes past it.
    let len = ld as usize * cols as usize + 1;
    (0..len).map(|_| element(r, special)).collect()
}

type Gemm<T> = unsafe extern "C" fn(
    *const u8,
    *const u8,
    *const i32,
    *const i32,
    *const i32,
    *const T,
    *const T,
    *const i32,
    *const T,
    *const i32,
    *const T,
    *mut T,
    *const i32,
    usize,
    usize,
);

/// Every variant of `segment` this CPU has, with `fallback` at `fallback`.
fn variants(segment: &str, fallback: u64) -> Vec<InProcessVariant> {
    let file = SegmentFile::read_file(&library_dir().join(format!("{segment}.seg")))
        .unwrap_or_else(|e| panic!("{segment}: {e}"));
    assert!(!file.imports.is_empty() && file.imports[0].is_fallback());
    let cpu = CpuFeatures::detect();
    let mut out = Vec::new();
    for (i, v) in file.segment.variants.iter().enumerate() {
        if !cpu.is_superset(&v.features) {
            eprintln!(
                "SKIPPED: segment {segment} variant {}: this CPU lacks {}",
                v.name,
                cpu.missing(&v.features)
            );
            continue;
        }
        // SAFETY: slot 0 is `fallback`, given the replaced function itself
        // (the reference's, same contract) or a recorder of that contract.
        let lv = unsafe { InProcessVariant::load_with_imports(&file, i, &[fallback]) }
            .unwrap_or_else(|e| panic!("loading {segment}/{}: {e}", v.name));
        out.push(lv);
    }
    eprintln!(
        "segment {segment}: {} of {} variant(s) run here",
        out.len(),
        file.segment.variants.len()
    );
    out
}

/// One xGEMM case, run through `f`: the output buffer.
#[derive(Clone, Debug)]
struct GemmCase<T> {
    ta: u8,
    tb: u8,
    m: i32,
    n: i32,
    k: i32,
    alpha: T,
    beta: T,
    lda: i32,
    ldb: i32,
    ldc: i32,
    a: Vec<T>,
    b: Vec<T>,
    c: Vec<T>,
}

impl<T: Elem> GemmCase<T> {
    fn random(r: &mut impl Rng) -> GemmCase<T> {
        let (ta, tb) = (flag(r), flag(r));
        let (m, n, k) = (dim(r), dim(r), dim(r));
        let nota = ta.eq_ignore_ascii_case(&b'n');
        let notb = tb.eq_ignore_ascii_case(&b'n');
        let (arows, acols) = if nota { (m, k) } else { (k, m) };
        let (brows, bcols) = if notb { (k, n) } else { (n, k) };
        let (lda, ldb, ldc) = (lead(r, arows), lead(r, brows), lead(r, m));
        let special = r.gen_range(0..3) == 0;
        GemmCase {
            ta,
            tb,
            m,
            n,
            k,
            alpha: scalar(r),
            beta: scalar(r),
            lda,
            ldb,
            ldc,
            a: matrix(r, lda, acols, special),
            b: matrix(r, ldb, bcols, special),
            c: matrix(r, ldc, n, special),
        }
    }

    /// Runs `f`; returns C after it, and whether A and B are unchanged.
    fn run(&self, f: Gemm<T>) -> (Vec<T>, bool) {
        let (a, b) = (self.a.clone(), self.b.clone());
        let mut c = self.c.clone();
        // SAFETY: a valid xGEMM call: every matrix holds ld*cols elements.
        unsafe {
            f(
                &self.ta,
                &self.tb,
                &self.m,
                &self.n,
                &self.k,
                &self.alpha,
                a.as_ptr(),
                &self.lda,
                b.as_ptr(),
                &self.ldb,
                &self.beta,
                c.as_mut_ptr(),
                &self.ldc,
                1,
                1,
            )
        };
        let same = T::bytes(&a) == T::bytes(&self.a) && T::bytes(&b) == T::bytes(&self.b);
        (c, same)
    }

    /// Whether C's bytes outside the m×n submatrix equal the input's.
    fn outside_unchanged(&self, c: &[T]) -> bool {
        let (was, now) = (T::bytes(&self.c), T::bytes(c));
        let inside = |e: usize| {
            let (i, j) = (e % self.ldc as usize, e / self.ldc as usize);
            i < self.m as usize && j < self.n as usize
        };
        (0..self.c.len())
            .filter(|&e| !inside(e))
            .all(|e| was[e * T::BYTES..(e + 1) * T::BYTES] == now[e * T::BYTES..(e + 1) * T::BYTES])
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().rev().map(|x| format!("{x:02x}")).collect()
}

fn gemm_against_reference<T: Elem>(
    segment: &str,
    symbol: &str,
    reference: Gemm<T>,
    fallback: u64,
    seed: u64,
) {
    let loaded = variants(segment, fallback);
    assert!(!loaded.is_empty(), "no variant of {segment} runs here");
    let mut r = rng(seed);
    let cases: Vec<GemmCase<T>> = (0..CASES).map(|_| GemmCase::random(&mut r)).collect();
    let mut computed = 0;
    for lv in &loaded {
        // SAFETY: the catalog gives the entry the Fortran xGEMM contract.
        let f: Gemm<T> = unsafe { lv.function(symbol).expect("entry") };
        for (i, case) in cases.iter().enumerate() {
            let (want, ref_same) = case.run(reference);
            let (got, same) = case.run(f);
            assert!(ref_same, "the reference wrote to A or B?");
            assert!(
                same,
                "{segment}/{} case {i}: A or B changed: {case:?}",
                lv.variant()
            );
            assert!(
                case.outside_unchanged(&got),
                "{segment}/{} case {i}: bytes outside C's submatrix changed: {case:?}",
                lv.variant()
            );
            if T::bytes(&got) != T::bytes(&want) {
                let first = (0..got.len())
                    .find(|&e| T::bytes(&got[e..=e]) != T::bytes(&want[e..=e]))
                    .unwrap_or(0);
                panic!(
                    "{segment}/{} case {i}: C differs from the reference first at element {first}: \
                     got {:?} ({}), want {:?} ({}); case {:?}",
                    lv.variant(),
                    got[first],
                    hex(&T::bytes(&got[first..=first])),
                    want[first],
                    hex(&T::bytes(&want[first..=first])),
                    (case.ta as char, case.tb as char, case.m, case.n, case.k, case.alpha, case.beta, case.lda, case.ldb, case.ldc)
                );
            }
            if case.ta.eq_ignore_ascii_case(&b'n') {
                computed += 1;
            }
        }
        eprintln!(
            "{segment}/{}: {} cases byte-identical",
            lv.variant(),
            cases.len()
        );
    }
    eprintln!("{segment}: {computed} of the case runs had transa N (the axpy form), the others T/C (dot products)");
}

#[test]
fn dgemm_is_bit_identical_to_the_reference() {
    let blas = Blas::reference().expect("the reference BLAS (libblas3)");
    let fallback = blas.address(c"dgemm_").unwrap();
    gemm_against_reference::<f64>("dgemm", "dgemm_", blas.dgemm, fallback, 0xd6e3);
}

#[test]
fn sgemm_is_bit_identical_to_the_reference() {
    let blas = Blas::reference().expect("the reference BLAS (libblas3)");
    let fallback = blas.address(c"sgemm_").unwrap();
    gemm_against_reference::<f32>("sgemm", "sgemm_", blas.sgemm, fallback, 0x56e3);
}

type Gemv = unsafe extern "C" fn(
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

fn increment(r: &mut impl Rng) -> i32 {
    match r.gen_range(0..8) {
        0..=3 => 1,
        4 => -1,
        5 => 2,
        6 => -3,
        _ => r.gen_range(-5..=5i32).max(1),
    }
}

/// Elements of a vector of `len` at increment `inc`, and one more.
fn vector(r: &mut impl Rng, len: i32, inc: i32, special: bool) -> Vec<f64> {
    let n = if len == 0 {
        1
    } else {
        1 + (len as usize - 1) * inc.unsigned_abs() as usize
    } + 1;
    (0..n).map(|_| element(r, special)).collect()
}

#[test]
fn dgemv_is_bit_identical_to_the_reference() {
    let blas = Blas::reference().expect("the reference BLAS (libblas3)");
    let loaded = variants("dgemv", blas.address(c"dgemv_").unwrap());
    assert!(!loaded.is_empty());
    let mut r = rng(0xd6e5);
    for lv in &loaded {
        // SAFETY: the catalog gives the entry the Fortran DGEMV contract.
        let f: Gemv = unsafe { lv.function("dgemv_").expect("entry") };
        let (mut own, mut handed) = (0, 0);
        for i in 0..CASES {
            let tr = flag(&mut r);
            let (m, n) = (dim(&mut r), dim(&mut r));
            let notrans = tr.eq_ignore_ascii_case(&b'n');
            let (lenx, leny) = if notrans { (n, m) } else { (m, n) };
            let (incx, incy) = (increment(&mut r), increment(&mut r));
            let lda = lead(&mut r, m);
            let special = r.gen_range(0..3) == 0;
            let a: Vec<f64> = matrix(&mut r, lda, n, special);
            let x = vector(&mut r, lenx, incx, special);
            let y = vector(&mut r, leny, incy, special);
            let (alpha, beta): (f64, f64) = (scalar(&mut r), scalar(&mut r));
            let run = |g: Gemv| {
                let mut out = y.clone();
                // SAFETY: a valid DGEMV call: A is lda×n, x and y hold
                // their elements at their increments.
                unsafe {
                    g(
                        &tr,
                        &m,
                        &n,
                        &alpha,
                        a.as_ptr(),
                        &lda,
                        x.as_ptr(),
                        &incx,
                        &beta,
                        out.as_mut_ptr(),
                        &incy,
                        1,
                    )
                };
                out
            };
            let (want, got) = (run(blas.dgemv), run(f));
            assert_eq!(
                f64::bytes(&got),
                f64::bytes(&want),
                "dgemv/{} case {i}: {:?}",
                lv.variant(),
                (tr as char, m, n, alpha, beta, lda, incx, incy)
            );
            if notrans && incy != 1 {
                handed += 1;
            } else {
                own += 1;
            }
        }
        eprintln!(
            "dgemv/{}: {CASES} cases byte-identical ({own} computed here, {handed} trans N with incy != 1 handed to the original)",
            lv.variant()
        );
    }
}

type Syrk = unsafe extern "C" fn(
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

#[test]
fn dsyrk_is_bit_identical_to_the_reference() {
    let blas = Blas::reference().expect("the reference BLAS (libblas3)");
    let loaded = variants("dsyrk", blas.address(c"dsyrk_").unwrap());
    assert!(!loaded.is_empty());
    let mut r = rng(0xd5e4);
    for lv in &loaded {
        // SAFETY: the catalog gives the entry the Fortran DSYRK contract.
        let f: Syrk = unsafe { lv.function("dsyrk_").expect("entry") };
        for i in 0..CASES {
            let uplo = *b"UuLl".get(r.gen_range(0..4)).unwrap_or(&b'U');
            let tr = flag(&mut r);
            let (n, k) = (dim(&mut r), dim(&mut r));
            let notrans = tr.eq_ignore_ascii_case(&b'n');
            let (rows, cols) = if notrans { (n, k) } else { (k, n) };
            let (lda, ldc) = (lead(&mut r, rows), lead(&mut r, n));
            let special = r.gen_range(0..3) == 0;
            let a: Vec<f64> = matrix(&mut r, lda, cols, special);
            let c: Vec<f64> = matrix(&mut r, ldc, n, special);
            let (alpha, beta): (f64, f64) = (scalar(&mut r), scalar(&mut r));
            let run = |g: Syrk| {
                let mut out = c.clone();
                // SAFETY: a valid DSYRK call: A is lda×cols, C is ldc×n.
                unsafe {
                    g(
                        &uplo,
                        &tr,
                        &n,
                        &k,
                        &alpha,
                        a.as_ptr(),
                        &lda,
                        &beta,
                        out.as_mut_ptr(),
                        &ldc,
                        1,
                        1,
                    )
                };
                out
            };
            let (want, got) = (run(blas.dsyrk), run(f));
            let upper = uplo.eq_ignore_ascii_case(&b'u');
            let outside = (0..c.len()).filter(|&e| {
                let (ii, jj) = ((e % ldc as usize) as i32, (e / ldc as usize) as i32);
                ii >= n || jj >= n || (upper && ii > jj) || (!upper && ii < jj)
            });
            for e in outside {
                assert_eq!(
                    got[e].to_bits(),
                    c[e].to_bits(),
                    "dsyrk/{} case {i}: element {e} outside the triangle changed",
                    lv.variant()
                );
            }
            assert_eq!(
                f64::bytes(&got),
                f64::bytes(&want),
                "dsyrk/{} case {i}: {:?}",
                lv.variant(),
                (uplo as char, tr as char, n, k, alpha, beta, lda, ldc)
            );
        }
        eprintln!("dsyrk/{}: {CASES} cases byte-identical", lv.variant());
    }
}

/// The arguments the recorder saw last.
static SEEN: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

#[allow(clippy::too_many_arguments)]
extern "C" fn record_gemm(
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
    la: usize,
    lb: usize,
) {
    let args = [
        ta as u64,
        tb as u64,
        m as u64,
        n as u64,
        k as u64,
        alpha as u64,
        a as u64,
        lda as u64,
        b as u64,
        ldb as u64,
        beta as u64,
        c as u64,
        ldc as u64,
        la as u64,
        lb as u64,
    ];
    SEEN.lock().unwrap().push(args.to_vec());
}

/// Every argument error goes to `fallback` with the fifteen arguments
/// exactly as the caller passed them; valid calls never do.
#[test]
fn dgemm_sends_argument_errors_to_the_original() {
    let reference = Blas::reference().expect("the reference BLAS (libblas3)");
    let loaded = variants("dgemm", record_gemm as *const () as u64);
    let base = GemmCase::<f64> {
        ta: b'N',
        tb: b'N',
        m: 3,
        n: 2,
        k: 4,
        alpha: 1.5,
        beta: 0.5,
        lda: 3,
        ldb: 4,
        ldc: 3,
        a: vec![1.0; 64],
        b: vec![1.0; 64],
        c: vec![1.0; 64],
    };
    type Edit = fn(&mut GemmCase<f64>);
    let errors: &[(&str, Edit)] = &[
        ("transa X", |c| c.ta = b'X'),
        ("lda < k (A transposed)", |c| {
            c.ta = b'T';
            c.lda = 3
        }),
        ("transb Q", |c| c.tb = b'Q'),
        ("m < 0", |c| c.m = -1),
        ("n < 0", |c| c.n = -5),
        ("k < 0", |c| c.k = i32::MIN),
        ("lda < m", |c| c.lda = 2),
        ("ldb < k", |c| c.ldb = 3),
        ("ldb < n (B transposed)", |c| {
            c.tb = b't';
            c.ldb = 1
        }),
        ("ldc < m", |c| c.ldc = 2),
        ("lda 0 with m 0", |c| {
            c.m = 0;
            c.lda = 0
        }),
        ("ldc 0 with m 0", |c| {
            c.m = 0;
            c.ldc = 0
        }),
    ];
    for lv in &loaded {
        // SAFETY: the Fortran xGEMM contract; the recorder has it too.
        let f: Gemm<f64> = unsafe { lv.function("dgemm_").expect("entry") };
        for (what, edit) in errors {
            let mut case = base.clone();
            edit(&mut case);
            let mut c = case.c.clone();
            SEEN.lock().unwrap().clear();
            // SAFETY: the recorder reads nothing; the buffers are valid.
            unsafe {
                f(
                    &case.ta,
                    &case.tb,
                    &case.m,
                    &case.n,
                    &case.k,
                    &case.alpha,
                    case.a.as_ptr(),
                    &case.lda,
                    case.b.as_ptr(),
                    &case.ldb,
                    &case.beta,
                    c.as_mut_ptr(),
                    &case.ldc,
                    7,
                    9,
                )
            };
            let want = vec![
                &case.ta as *const u8 as u64,
                &case.tb as *const u8 as u64,
                &case.m as *const i32 as u64,
                &case.n as *const i32 as u64,
                &case.k as *const i32 as u64,
                &case.alpha as *const f64 as u64,
                case.a.as_ptr() as u64,
                &case.lda as *const i32 as u64,
                case.b.as_ptr() as u64,
                &case.ldb as *const i32 as u64,
                &case.beta as *const f64 as u64,
                c.as_ptr() as u64,
                &case.ldc as *const i32 as u64,
                7,
                9,
            ];
            let seen = SEEN.lock().unwrap().clone();
            assert_eq!(
                seen,
                vec![want],
                "{}/{}: {what}",
                lv.segment(),
                lv.variant()
            );
            assert_eq!(c, case.c, "{what}: C written before the fallback");
        }
        // A valid call is computed here, never handed on.
        let mut c = base.c.clone();
        SEEN.lock().unwrap().clear();
        // SAFETY: valid arguments and buffers.
        unsafe {
            f(
                &base.ta,
                &base.tb,
                &base.m,
                &base.n,
                &base.k,
                &base.alpha,
                base.a.as_ptr(),
                &base.lda,
                base.b.as_ptr(),
                &base.ldb,
                &base.beta,
                c.as_mut_ptr(),
                &base.ldc,
                1,
                1,
            )
        };
        assert!(
            SEEN.lock().unwrap().is_empty(),
            "{}: a valid call reached the fallback",
            lv.variant()
        );
        assert_eq!(c[0], 0.5 + 1.5 * 4.0);
        // An empty product reads neither alpha nor beta nor a matrix, as
        // the reference (checked below on the same null pointers).
        for (m, n) in [(0, 2), (3, 0)] {
            SEEN.lock().unwrap().clear();
            for g in [f, reference.dgemm] {
                // SAFETY: with m or n 0 neither DGEMM reads the null ones.
                unsafe {
                    g(
                        &b'N',
                        &b'T',
                        &m,
                        &n,
                        &base.k,
                        std::ptr::null(),
                        std::ptr::null(),
                        &base.lda,
                        std::ptr::null(),
                        &base.ldb,
                        std::ptr::null(),
                        std::ptr::null_mut(),
                        &base.ldc,
                        1,
                        1,
                    )
                };
            }
            assert!(
                SEEN.lock().unwrap().is_empty(),
                "{}: empty product",
                lv.variant()
            );
        }
    }
}

static SEEN_GEMV: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

#[allow(clippy::too_many_arguments)]
extern "C" fn record_gemv(
    tr: *const u8,
    m: *const i32,
    n: *const i32,
    alpha: *const f64,
    a: *const f64,
    lda: *const i32,
    x: *const f64,
    incx: *const i32,
    beta: *const f64,
    y: *mut f64,
    incy: *const i32,
    len: usize,
) {
    let args = [
        tr as u64,
        m as u64,
        n as u64,
        alpha as u64,
        a as u64,
        lda as u64,
        x as u64,
        incx as u64,
        beta as u64,
        y as u64,
        incy as u64,
        len as u64,
    ];
    SEEN_GEMV.lock().unwrap().push(args.to_vec());
}

/// DGEMV's argument errors (and `N` with `incy != 1`) reach `fallback`
/// with the twelve arguments as given; a valid call does not.
#[test]
fn dgemv_sends_argument_errors_to_the_original() {
    let loaded = variants("dgemv", record_gemv as *const () as u64);
    type Args = (u8, i32, i32, i32, i32, i32);
    // trans, m, n, lda, incx, incy
    let base: Args = (b'N', 3, 2, 3, 1, 1);
    let cases: &[(&str, Args, bool)] = &[
        ("valid N", base, false),
        ("valid T, incy -2", (b't', 3, 2, 3, 1, -2), false),
        ("trans Z", (b'Z', 3, 2, 3, 1, 1), true),
        ("m < 0", (b'N', -1, 2, 3, 1, 1), true),
        ("n < 0", (b'T', 3, -2, 3, 1, 1), true),
        ("lda < m", (b'N', 3, 2, 2, 1, 1), true),
        ("lda 0, m 0", (b'C', 0, 2, 0, 1, 1), true),
        ("incx 0", (b'N', 3, 2, 3, 0, 1), true),
        ("incy 0", (b'T', 3, 2, 3, 1, 0), true),
        ("N with incy 2", (b'n', 3, 2, 3, 1, 2), true),
    ];
    let (alpha, beta) = (2.0f64, 0.5f64);
    for lv in &loaded {
        // SAFETY: the Fortran DGEMV contract; the recorder has it too.
        let f: Gemv = unsafe { lv.function("dgemv_").expect("entry") };
        for &(what, (tr, m, n, lda, incx, incy), handed) in cases {
            let a = vec![1.0f64; 64];
            let x = vec![1.0f64; 64];
            let mut y = vec![1.0f64; 64];
            SEEN_GEMV.lock().unwrap().clear();
            // SAFETY: buffers large enough for every case's valid form.
            unsafe {
                f(
                    &tr,
                    &m,
                    &n,
                    &alpha,
                    a.as_ptr(),
                    &lda,
                    x.as_ptr(),
                    &incx,
                    &beta,
                    y.as_mut_ptr(),
                    &incy,
                    5,
                )
            };
            let seen = SEEN_GEMV.lock().unwrap().clone();
            if handed {
                let want = vec![
                    &tr as *const u8 as u64,
                    &m as *const i32 as u64,
                    &n as *const i32 as u64,
                    &alpha as *const f64 as u64,
                    a.as_ptr() as u64,
                    &lda as *const i32 as u64,
                    x.as_ptr() as u64,
                    &incx as *const i32 as u64,
                    &beta as *const f64 as u64,
                    y.as_ptr() as u64,
                    &incy as *const i32 as u64,
                    5,
                ];
                assert_eq!(seen, vec![want], "dgemv/{}: {what}", lv.variant());
                assert!(
                    y.iter().all(|&v| v == 1.0),
                    "{what}: y written before the fallback"
                );
            } else {
                assert!(
                    seen.is_empty(),
                    "dgemv/{}: {what} reached the fallback",
                    lv.variant()
                );
                assert_eq!(y[0], 0.5 + 2.0 * f64::from(if tr == b'N' { n } else { m }));
            }
        }
    }
}

static SEEN_SYRK: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

#[allow(clippy::too_many_arguments)]
extern "C" fn record_syrk(
    uplo: *const u8,
    tr: *const u8,
    n: *const i32,
    k: *const i32,
    alpha: *const f64,
    a: *const f64,
    lda: *const i32,
    beta: *const f64,
    c: *mut f64,
    ldc: *const i32,
    l1: usize,
    l2: usize,
) {
    let args = [
        uplo as u64,
        tr as u64,
        n as u64,
        k as u64,
        alpha as u64,
        a as u64,
        lda as u64,
        beta as u64,
        c as u64,
        ldc as u64,
        l1 as u64,
        l2 as u64,
    ];
    SEEN_SYRK.lock().unwrap().push(args.to_vec());
}

/// DSYRK's argument errors reach `fallback` with the twelve arguments as
/// given; valid calls do not.
#[test]
fn dsyrk_sends_argument_errors_to_the_original() {
    let loaded = variants("dsyrk", record_syrk as *const () as u64);
    type Args = (u8, u8, i32, i32, i32, i32);
    // uplo, trans, n, k, lda, ldc
    let cases: &[(&str, Args, bool)] = &[
        ("valid U N", (b'U', b'N', 3, 2, 3, 3), false),
        ("valid l t", (b'l', b't', 3, 2, 2, 3), false),
        ("uplo X", (b'X', b'N', 3, 2, 3, 3), true),
        ("trans Q", (b'U', b'Q', 3, 2, 3, 3), true),
        ("n < 0", (b'U', b'N', -3, 2, 3, 3), true),
        ("k < 0", (b'L', b'T', 3, -1, 3, 3), true),
        ("lda < n", (b'U', b'N', 3, 2, 2, 3), true),
        ("lda < k (transposed)", (b'U', b'C', 3, 4, 3, 3), true),
        ("ldc < n", (b'L', b'N', 3, 2, 3, 2), true),
        ("ldc 0, n 0", (b'L', b'N', 0, 2, 1, 0), true),
    ];
    let (alpha, beta) = (2.0f64, 0.5f64);
    for lv in &loaded {
        // SAFETY: the Fortran DSYRK contract; the recorder has it too.
        let f: Syrk = unsafe { lv.function("dsyrk_").expect("entry") };
        for &(what, (uplo, tr, n, k, lda, ldc), handed) in cases {
            let a = vec![1.0f64; 64];
            let mut c = vec![1.0f64; 64];
            SEEN_SYRK.lock().unwrap().clear();
            // SAFETY: buffers large enough for every case's valid form.
            unsafe {
                f(
                    &uplo,
                    &tr,
                    &n,
                    &k,
                    &alpha,
                    a.as_ptr(),
                    &lda,
                    &beta,
                    c.as_mut_ptr(),
                    &ldc,
                    3,
                    4,
                )
            };
            let seen = SEEN_SYRK.lock().unwrap().clone();
            if handed {
                let want = vec![
                    &uplo as *const u8 as u64,
                    &tr as *const u8 as u64,
                    &n as *const i32 as u64,
                    &k as *const i32 as u64,
                    &alpha as *const f64 as u64,
                    a.as_ptr() as u64,
                    &lda as *const i32 as u64,
                    &beta as *const f64 as u64,
                    c.as_ptr() as u64,
                    &ldc as *const i32 as u64,
                    3,
                    4,
                ];
                assert_eq!(seen, vec![want], "dsyrk/{}: {what}", lv.variant());
                assert!(
                    c.iter().all(|&v| v == 1.0),
                    "{what}: C written before the fallback"
                );
            } else {
                assert!(
                    seen.is_empty(),
                    "dsyrk/{}: {what} reached the fallback",
                    lv.variant()
                );
                assert_eq!(c[0], 0.5 + 2.0 * f64::from(k));
            }
        }
    }
}

/// The exact variants contain no fused multiply-add.
#[test]
fn exact_blas_variants_use_no_fma() {
    for name in ["dgemm", "sgemm", "dgemv", "dsyrk"] {
        let file = SegmentFile::read_file(&library_dir().join(format!("{name}.seg"))).unwrap();
        for report in file.verify().unwrap() {
            assert!(
                !report
                    .features_used
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case("fma")),
                "{name}/{} uses {:?}",
                report.variant,
                report.features_used
            );
        }
    }
}
