// SPDX-License-Identifier: GPL-2.0
//! The selection cache returns exactly the figures that were measured: a
//! cached decision must be the decision the measurement made, and a test
//! that compares measured with read-back figures must not fail by chance.

use adapt_select::{Cache, CacheEntry, CpuIdentity, Figure, FigureKey, OriginalKey, SizeClass};
use proptest::prelude::*;

fn key(size: usize) -> FigureKey {
    FigureKey {
        segment: "crc32".into(),
        function: "crc32".into(),
        variant: "portable".into(),
        variant_hash: "ab".repeat(32),
        cpu: CpuIdentity {
            model: "test cpu".into(),
            features: "sse2".into(),
        },
        original: OriginalKey {
            path: "/usr/lib/x86_64-linux-gnu/libz.so.1".into(),
            symbol: "crc32".into(),
            file_sha256: "cd".repeat(32),
        },
        size: SizeClass::of(size),
    }
}

fn figure(v: [f64; 5]) -> Figure {
    Figure {
        bytes_per_sec: v[0],
        p25: v[1],
        p75: v[2],
        min: v[3],
        max: v[4],
        rounds: 21,
        calls_per_batch: 1234,
    }
}

/// Any f64 bit pattern, weighted towards the awkward ones: subnormals,
/// the extremes, values whose shortest decimal form is 17 digits long.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (1u64..(1 << 52)).prop_map(f64::from_bits),
        (0.0f64..1e10),
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(f64::EPSILON),
        Just(5e-324),
        Just(-0.0),
        Just(3848689744.576951),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
    ]
}

/// Bit-exact, except that every NaN equals every NaN (JSON keeps no
/// payload).
fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn entry(size: usize, v: [f64; 5], o: [f64; 5], ratio: f64) -> CacheEntry {
    CacheEntry {
        key: key(size),
        variant: figure(v),
        original: figure(o),
        ratio,
        correct: true,
        measured_unix: 1_795_482_529,
    }
}

fn figures(e: &CacheEntry) -> Vec<f64> {
    let f = |x: &Figure| [x.bytes_per_sec, x.p25, x.p75, x.min, x.max];
    let mut all = f(&e.variant).to_vec();
    all.extend(f(&e.original));
    all.push(e.ratio);
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_figure_reads_back_bit_for_bit(
        v in prop::array::uniform5(any_f64()),
        o in prop::array::uniform5(any_f64()),
        ratio in any_f64(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let written = entry(4096, v, o, ratio);
        let mut cache = Cache::open(dir.path());
        cache.insert(written.clone());
        cache.save().unwrap();

        let read = Cache::open(dir.path());
        prop_assert_eq!(read.len(), 1, "the entry did not survive the file");
        let back = read.lookup(&written.key).expect("the same key finds it");
        for (w, r) in figures(&written).into_iter().zip(figures(back)) {
            prop_assert!(same(w, r), "wrote {:e} ({:#x}), read {:e} ({:#x})", w, w.to_bits(), r, r.to_bits());
        }
    }
}

/// The figure that made CI fail by chance: serde_json's default parser read
/// `3848689744.576951` back one unit in the last place off.
#[test]
fn the_figure_that_failed_ci_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let x = 3848689744.576951_f64;
    let mut cache = Cache::open(dir.path());
    cache.insert(entry(64, [x; 5], [x; 5], x));
    cache.save().unwrap();
    let read = Cache::open(dir.path());
    let back = read.lookup(&key(64)).unwrap();
    assert!(
        figures(back).iter().all(|r| r.to_bits() == x.to_bits()),
        "{back:?}"
    );
}

/// Non-finite figures (a batch that took no measurable time) are kept as
/// such, instead of turning the whole file unreadable.
#[test]
fn non_finite_figures_do_not_cost_the_other_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = Cache::open(dir.path());
    cache.insert(entry(64, [1.0; 5], [2.0; 5], 0.5));
    cache.insert(entry(
        4096,
        [f64::INFINITY; 5],
        [f64::NAN; 5],
        f64::NEG_INFINITY,
    ));
    cache.save().unwrap();
    let text = std::fs::read_to_string(dir.path().join(adapt_select::CACHE_FILE)).unwrap();
    assert!(
        text.contains("\"inf\"") && text.contains("\"nan\"") && text.contains("\"-inf\""),
        "{text}"
    );
    let read = Cache::open(dir.path());
    assert_eq!(read.len(), 2);
    assert_eq!(read.lookup(&key(64)).unwrap().ratio, 0.5);
    let odd = read.lookup(&key(4096)).unwrap();
    assert_eq!(odd.variant.p25, f64::INFINITY);
    assert!(odd.original.max.is_nan());
    assert_eq!(odd.ratio, f64::NEG_INFINITY);
}
