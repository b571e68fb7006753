// SPDX-License-Identifier: GPL-2.0
//! The generated code passes the verifier, and counts what it should when
//! run: it is loaded into this process with the loader's layout and called
//! with a fallback that records its arguments.

use super::*;
use crate::data::{bucket_of, Counters, BUCKETS};
use adapt_segment::InProcessVariant;

#[test]
fn every_counting_segment_passes_the_verifier() {
    for arg in [None, Some(0), Some(1), Some(2), Some(3), Some(4), Some(5)] {
        let seg = counting_segment(arg).unwrap();
        let reports =
            adapt_segment::verify_with_data(&seg.file.segment, &seg.file.imports, seg.data_len)
                .unwrap_or_else(|e| panic!("arg {arg:?}: {e}"));
        assert_eq!(reports.len(), 1);
        // Without the data area the same code is refused: its writes are
        // the verifier's business, not taken on trust.
        let refused = adapt_segment::verify_with_imports(&seg.file.segment, &seg.file.imports);
        assert!(
            refused.is_err(),
            "arg {arg:?}: accepted without a data area"
        );
    }
}

#[test]
fn arguments_beyond_the_registers_are_refused() {
    assert!(matches!(
        counting_segment(Some(6)),
        Err(GenerateError::Argument(6))
    ));
}

/// `seg` loaded into this process as the module maps it (code, import
/// table with slot 0 = `fallback`, data area), its entry as a function.
pub(crate) fn load(seg: &crate::CountingSegment, fallback: usize) -> InProcessVariant {
    // SAFETY: every `fallback` the tests pass has the contract the code
    // expects (the caller's function type), and outlives the variant.
    unsafe { InProcessVariant::load_with_data(&seg.file, 0, &[fallback as u64], seg.data_len) }
        .unwrap()
}

/// The entry of `v` (one function) as a function of type `F`.
pub(crate) fn entry<F: Copy>(v: &InProcessVariant, symbol: &str) -> F {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<usize>());
    let addr = v.entry_address(symbol).unwrap();
    // SAFETY: `F` is a function pointer type matching the entry (the
    // callers' annotations) and `addr` verified code mapped read+execute.
    unsafe { std::mem::transmute_copy(&addr) }
}

pub(crate) fn counters(v: &InProcessVariant) -> Counters {
    Counters::parse(v.data()).unwrap()
}

/// The "original": returns a mix of its six arguments, so a counter that
/// disturbed any of them would change the result.
extern "C" fn original(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) -> u64 {
    a ^ b.rotate_left(7)
        ^ c.rotate_left(13)
        ^ d.rotate_left(19)
        ^ e.rotate_left(29)
        ^ f.rotate_left(37)
}

type Six = extern "C" fn(u64, u64, u64, u64, u64, u64) -> u64;

#[test]
fn counts_calls_and_the_histogram_and_passes_every_argument_through() {
    let values: Vec<u64> = (0..64)
        .map(|b| if b == 0 { 0 } else { 1u64 << (b - 1) })
        .chain([3, 5, 1000, 4095, 4096, u64::MAX, (1 << 63) + 5])
        .collect();
    for arg in 0..=MAX_ARG {
        let seg = counting_segment(Some(arg)).unwrap();
        let v = load(&seg, original as *const () as usize);
        let counted: Six = entry(&v, FUNCTION_SYMBOL);
        let mut expected = vec![0u64; BUCKETS];
        for (k, &v) in values.iter().enumerate() {
            let mut args = [k as u64, 11, 22, 33, 44, 55];
            args[usize::from(arg)] = v;
            let got = counted(args[0], args[1], args[2], args[3], args[4], args[5]);
            assert_eq!(
                got,
                original(args[0], args[1], args[2], args[3], args[4], args[5])
            );
            expected[bucket_of(v)] += 1;
        }
        let c = counters(&v);
        assert_eq!(c.calls, values.len() as u64, "arg {arg}");
        assert_eq!(c.histogram, expected, "arg {arg}");
    }
}

#[test]
fn counting_is_exact_under_threads() {
    let seg = counting_segment(None).unwrap();
    let v = load(&seg, original as *const () as usize);
    let counted: Six = entry(&v, FUNCTION_SYMBOL);
    let threads = 8;
    let per = 20_000u64;
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in 0..per {
                    std::hint::black_box(counted(i, t, 0, 0, 0, 0));
                }
            });
        }
    });
    let c = counters(&v);
    assert_eq!(c.calls, threads * per);
    assert!(c.histogram.iter().all(|&n| n == 0));
}
