// SPDX-License-Identifier: GPL-2.0
//! The relaxed (not bit-identical) BLAS segments against the reference
//! BLAS: in the library, but marked `float-reassociate` (every other
//! segment `exact`); each element within the error bound their contract
//! states, the structure (beta == 0 drops C, bytes outside C untouched)
//! exactly the reference's, and really fused (some results differ from the
//! reference's bits).

use adapt_library_build::blas::{Blas, Dgemm};
use adapt_library_build::builder::library_for_tests;
use adapt_segment::{CpuFeatures, InProcessVariant, Library, Numerics, SegmentFile};
use rand::{Rng, SeedableRng};

const CASES: usize = 10_000;

/// `n*u/(1 - n*u)`, u = 2^-53.
fn gamma(n: usize) -> f64 {
    let nu = n as f64 * f64::EPSILON / 2.0;
    nu / (1.0 - nu)
}

/// The bits of `x` as an integer that orders like the floats, so the
/// distance of two is their distance in ulps.
fn ordered(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    if b < 0 {
        i64::MIN - b
    } else {
        b
    }
}

#[test]
fn relaxed_dgemm_is_within_its_bound_and_marked_float_reassociate() {
    let library = Library::open(library_for_tests("blas_relaxed")).unwrap();
    let mut relaxed = Vec::new();
    for (path, file) in library.load_all_files().unwrap() {
        let file = file.unwrap();
        let expected = if file.segment.name.ends_with("-relaxed") {
            relaxed.push(path);
            Numerics::FloatReassociate
        } else {
            Numerics::Exact
        };
        assert_eq!(file.segment.numerics, expected, "{}", file.segment.name);
    }
    assert_eq!(relaxed.len(), 1, "dgemm-relaxed is in the library");
    let file = SegmentFile::read_file(&relaxed[0]).unwrap();
    assert_eq!(file.segment.name, "dgemm-relaxed");
    file.verify().unwrap();

    let blas = Blas::reference().expect("the reference BLAS (libblas3)");
    let fallback = blas.address(c"dgemm_").unwrap();
    let cpu = CpuFeatures::detect();
    let mut ran = 0;
    for (vi, v) in file.segment.variants.iter().enumerate() {
        if !cpu.is_superset(&v.features) {
            eprintln!(
                "SKIPPED: dgemm-relaxed/{}: this CPU lacks {}",
                v.name,
                cpu.missing(&v.features)
            );
            continue;
        }
        ran += 1;
        // SAFETY: slot 0 is the reference's own dgemm_ (the same contract).
        let lv = unsafe { InProcessVariant::load_with_imports(&file, vi, &[fallback]) }.unwrap();
        // SAFETY: the catalog gives the entry the Fortran DGEMM contract.
        let f: Dgemm = unsafe { lv.function("dgemm_").unwrap() };
        let mut r = rand::rngs::SmallRng::seed_from_u64(0x4e1a);
        let (mut differ, mut max_ulps) = (0usize, 0u64);
        for i in 0..CASES {
            let ta = *b"NnTt".get(r.gen_range(0..4)).unwrap_or(&b'N');
            let tb = *b"NnTt".get(r.gen_range(0..4)).unwrap_or(&b'N');
            let dim = |r: &mut rand::rngs::SmallRng| match r.gen_range(0..6) {
                0 => r.gen_range(0..3),
                1 => r.gen_range(60..100),
                _ => r.gen_range(0..40),
            };
            let (m, n, k): (i32, i32, i32) = (dim(&mut r), dim(&mut r), dim(&mut r));
            let nota = ta.eq_ignore_ascii_case(&b'n');
            let notb = tb.eq_ignore_ascii_case(&b'n');
            let (ar, ac) = if nota { (m, k) } else { (k, m) };
            let (br, bc) = if notb { (k, n) } else { (n, k) };
            let lda = ar.max(1) + r.gen_range(0..3);
            let ldb = br.max(1) + r.gen_range(0..3);
            let ldc = m.max(1) + r.gen_range(0..3);
            let mut fill =
                |len: usize| -> Vec<f64> { (0..len).map(|_| r.gen_range(-2.0..2.0)).collect() };
            let a = fill((lda * ac) as usize + 1);
            let b = fill((ldb * bc) as usize + 1);
            let mut c0 = fill((ldc * n) as usize + 1);
            let pick = |r: &mut rand::rngs::SmallRng| match r.gen_range(0..5) {
                0 => 0.0,
                1 => 1.0,
                _ => r.gen_range(-2.0..2.0),
            };
            let (alpha, beta) = (pick(&mut r), pick(&mut r));
            if beta == 0.0 && m > 0 && n > 0 {
                // beta == 0: C is not read, a NaN in it is dropped.
                c0[0] = f64::NAN;
            }
            let run = |g: Dgemm| {
                let mut c = c0.clone();
                // SAFETY: a valid DGEMM call: every matrix holds ld*cols.
                unsafe {
                    g(
                        &ta,
                        &tb,
                        &m,
                        &n,
                        &k,
                        &alpha,
                        a.as_ptr(),
                        &lda,
                        b.as_ptr(),
                        &ldb,
                        &beta,
                        c.as_mut_ptr(),
                        &ldc,
                        1,
                        1,
                    )
                };
                c
            };
            let (want, got) = (run(blas.dgemm), run(f));
            for e in 0..c0.len() {
                let (ii, jj) = ((e % ldc as usize) as i32, (e / ldc as usize) as i32);
                if ii >= m || jj >= n {
                    assert_eq!(
                        got[e].to_bits(),
                        c0[e].to_bits(),
                        "case {i}: outside C changed"
                    );
                    continue;
                }
                let (iu, ju) = (ii as usize, jj as usize);
                let mag: f64 = (0..k as usize)
                    .map(|l| {
                        let av = if nota {
                            a[iu + l * lda as usize]
                        } else {
                            a[l + iu * lda as usize]
                        };
                        let bv = if notb {
                            b[l + ju * ldb as usize]
                        } else {
                            b[ju + l * ldb as usize]
                        };
                        (av * bv).abs()
                    })
                    .sum();
                let cterm = if beta == 0.0 {
                    0.0
                } else {
                    (beta * c0[e]).abs()
                };
                let bound = 2.0 * gamma(k as usize + 2) * (alpha.abs() * mag + cterm) * 1.01;
                assert!(
                    (got[e] - want[e]).abs() <= bound,
                    "dgemm-relaxed/{} case {i}: C({ii},{jj}) = {} vs reference {} (bound {bound:e})",
                    v.name,
                    got[e],
                    want[e]
                );
                if got[e].to_bits() != want[e].to_bits() {
                    differ += 1;
                    max_ulps = max_ulps.max(ordered(got[e]).abs_diff(ordered(want[e])));
                }
            }
        }
        eprintln!(
            "dgemm-relaxed/{}: {CASES} cases within the bound; {differ} elements differ from the reference, by at most {max_ulps} ulp",
            v.name
        );
        assert!(
            differ > 0,
            "the relaxed variant gave the reference's bits everywhere: not fused?"
        );
    }
    eprintln!("dgemm-relaxed: {ran} variant(s) ran");
}
