// SPDX-License-Identifier: GPL-2.0
//! The Fortran BLAS segments measured natively against Debian's reference
//! BLAS (`libblas3`): their code imports `fallback`, which the measuring
//! child points at the original it loaded; the exact segments come out
//! bit-identical (0 ulp), the relaxed dgemm within its bound with a finite
//! max ulp, measured beside the exact one and never chosen unless allowed.
//!
//! No timing is asserted.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use adapt_library_build::builder::library_for_tests;
use adapt_segment::{Numerics, SegmentFile};
use adapt_select::{select, Budget, CacheUse, Choice, LoadMethod, OriginalSpec, SelectRequest};

const REFERENCE: &str = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3";

fn library_dir() -> PathBuf {
    library_for_tests("select-blas")
}

fn file(name: &str) -> SegmentFile {
    SegmentFile::read_file(&library_dir().join(format!("{name}.seg")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn reference_present() -> bool {
    if Path::new(REFERENCE).exists() {
        return true;
    }
    eprintln!("SKIPPED: no reference BLAS at {REFERENCE} (apt-get install libblas3)");
    false
}

fn request<'a>(f: &'a SegmentFile, symbol: &str) -> SelectRequest<'a> {
    let mut r = SelectRequest::new(&f.segment);
    r.imports = f.imports.clone();
    r.budget = Budget {
        batch: std::time::Duration::from_millis(1),
        rounds: 3,
    };
    r.sizes = vec![16, 64];
    r.cache = CacheUse::Off;
    r.original = Some(OriginalSpec {
        object: REFERENCE.into(),
        symbol: symbol.into(),
        pid: None,
    });
    r
}

#[test]
fn dgemm_exact_and_relaxed_side_by_side_against_the_reference() {
    if !reference_present() {
        return;
    }
    let _g = serial();
    let exact = file("dgemm");
    let relaxed = file("dgemm-relaxed");
    assert_eq!(relaxed.segment.numerics, Numerics::FloatReassociate);
    let mut req = request(&exact, "dgemm_");
    req.companions = vec![&relaxed];
    let s = select(&req).expect("selection");
    println!("{s}");
    assert_eq!(s.original.method, Some(LoadMethod::Dlopen), "{s}");
    assert!(s.shape.is_blas());
    let text = s.to_string();
    assert!(
        text.contains("GFLOP/s") && text.contains("max ulp"),
        "{text}"
    );
    let (mut n_exact, mut n_relaxed) = (0, 0);
    for v in &s.variants {
        assert!(v.correct, "{} wrong:\n{s}", v.variant);
        if v.numerics.is_exact() {
            n_exact += 1;
            assert_eq!(v.max_ulp, Some(0), "{} not bit-identical:\n{s}", v.variant);
        } else {
            n_relaxed += 1;
            assert!(v.variant.starts_with("dgemm-relaxed:"), "{s}");
            assert!(
                v.max_ulp.is_some(),
                "{} has no finite max ulp:\n{s}",
                v.variant
            );
            assert!(
                v.ineligible
                    .as_deref()
                    .is_some_and(|w| w.contains("not allowed")),
                "{s}"
            );
        }
    }
    assert!(n_exact >= 1, "{s}");
    // The relaxed variants need FMA; skip that half on a CPU without it.
    if n_relaxed == 0 {
        assert!(!s.skipped.is_empty(), "{s}");
    }
    if let Choice::Variant { variant, .. } = &s.decision.choice {
        assert!(!variant.contains("relaxed"), "{s}");
    }
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["variants"][0]["max_ulp"].is_u64(), "{json}");
}

#[test]
fn sgemm_dgemv_dsyrk_are_bit_identical_to_the_reference() {
    if !reference_present() {
        return;
    }
    let _g = serial();
    for (name, symbol) in [
        ("sgemm", "sgemm_"),
        ("dgemv", "dgemv_"),
        ("dsyrk", "dsyrk_"),
    ] {
        let f = file(name);
        let s = select(&request(&f, symbol)).expect("selection");
        println!("{s}");
        assert_eq!(s.original.method, Some(LoadMethod::Dlopen), "{s}");
        assert!(!s.variants.is_empty());
        for v in &s.variants {
            assert!(v.correct, "{name} {} wrong:\n{s}", v.variant);
            assert_eq!(v.max_ulp, Some(0), "{name} {}:\n{s}", v.variant);
        }
    }
}

#[test]
fn without_a_runnable_original_an_importing_segment_is_refused() {
    let _g = serial();
    let f = file("dgemm");
    let mut req = request(&f, "dgemm_");
    req.original = Some(OriginalSpec {
        object: "/nonexistent/libblas.so.3".into(),
        symbol: "dgemm_".into(),
        pid: None,
    });
    let e = select(&req).unwrap_err().to_string();
    assert!(e.contains("fallback"), "{e}");
}
