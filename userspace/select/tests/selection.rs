// SPDX-License-Identifier: GPL-2.0
//! The selection on this host: the system libz.so.1 as the original
//! (by path and by soname), functions of this test executable mapped and
//! run as originals (or refused), decisions consistent with the figures,
//! overrides, and the cache (hits, CPU change, library change).
//!
//! No timing is asserted: only that the decision follows from the figures
//! the same run measured.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use adapt_library_build::builder::library_for_tests;
use adapt_library_build::reference::SystemZlib;
use adapt_segment::Segment;
use adapt_select::{
    select, variant_cache_hash, Budget, Cache, CacheUse, Choice, LoadMethod, Original,
    OriginalSpec, PreparedOriginal, SelectRequest, Selection, DEFAULT_MARGIN,
};

/// The library, built once per test binary.
fn library_dir() -> PathBuf {
    library_for_tests("select")
}

fn segment(name: &str) -> Segment {
    Segment::read_file(&library_dir().join(format!("{name}.seg"))).unwrap_or_else(|e| panic!("{e}"))
}

/// Measurements share two cores with the other tests: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn libz_path() -> String {
    [
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libz.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("the system libz.so.1 (Debian package zlib1g)")
    .to_owned()
}

fn quick<'a>(seg: &'a Segment, cache: CacheUse) -> SelectRequest<'a> {
    let mut r = SelectRequest::new(seg);
    r.budget = Budget::quick();
    r.sizes = vec![64, 4096];
    r.cache = cache;
    r
}

/// The decision follows from the figures of the same run.
fn assert_consistent(s: &Selection) {
    let margin = s.decision.margin;
    let eligible: Vec<_> = s
        .variants
        .iter()
        .filter(|v| v.ineligible.is_none() && v.correct)
        .collect();
    match &s.decision.choice {
        Choice::Variant {
            variant, speedup, ..
        } => {
            let chosen = s
                .variants
                .iter()
                .find(|v| v.variant == *variant)
                .expect("chosen variant listed");
            assert!(chosen.correct, "{s}");
            assert!(*speedup >= 1.0 + margin, "{s}");
            assert!(chosen.worst.unwrap() >= 1.0 - margin, "{s}");
            for v in &eligible {
                assert!(
                    v.speedup.unwrap() <= *speedup,
                    "{} is faster than the chosen one:\n{s}",
                    v.variant
                );
            }
            // Every size has the original and a paired ratio.
            for row in &s.sizes {
                assert!(row.original.is_some(), "{s}");
                let v = row.variants.iter().find(|x| x.variant == *variant).unwrap();
                assert!(v.ratio.is_some_and(|r| r.is_finite() && r > 0.0), "{s}");
            }
        }
        Choice::Nothing { .. } => assert!(eligible.is_empty(), "{s}"),
        Choice::OriginalUnavailable { .. } => panic!("libz must be measurable here:\n{s}"),
    }
}

#[test]
fn crc32_against_the_system_libz_by_path() {
    let _g = serial();
    let seg = segment("crc32");
    let mut req = quick(&seg, CacheUse::Off);
    req.original = Some(OriginalSpec {
        object: libz_path(),
        symbol: "crc32".into(),
        pid: None,
    });
    let s = select(&req).expect("selection");
    println!("{s}");
    assert_eq!(s.original.method, Some(LoadMethod::Dlopen));
    assert!(s.original.path.as_deref().unwrap().contains("libz.so.1"));
    assert!(s.variants.iter().all(|v| v.correct), "{s}");
    assert!(s.variants.iter().any(|v| v.variant == "portable"));
    assert_eq!(s.sizes.len(), 2);
    assert_consistent(&s);
    // The JSON document carries the same decision.
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["decision"]["choice"]["kind"].is_string());
}

#[test]
fn adler32_against_the_system_libz_by_soname() {
    let _g = serial();
    let seg = segment("adler32");
    // No original named: the segment declares libz.so.1.
    let s = select(&quick(&seg, CacheUse::Off)).expect("selection");
    println!("{s}");
    assert!(s.original.unavailable.is_none(), "{s}");
    assert_eq!(s.original.spec.as_ref().unwrap().object, "libz.so.1");
    assert!(s.variants.iter().all(|v| v.correct), "{s}");
    assert_consistent(&s);
}

#[test]
fn dlopened_libz_computes_what_zlib_computes() {
    let _g = serial();
    let z = SystemZlib::open().expect("system zlib");
    for (symbol, reference) in [("crc32", z.crc32), ("adler32", z.adler32)] {
        let p = PreparedOriginal::prepare(&OriginalSpec {
            object: libz_path(),
            symbol: symbol.into(),
            pid: None,
        })
        .expect("read libz");
        assert_eq!(p.file_sha256.len(), 64);
        // The loader the measuring child uses, exercised here directly.
        let o = Original::load_in_child(&p, p.raw_fd()).expect("dlopen libz");
        assert_eq!(o.method, LoadMethod::Dlopen);
        type F = unsafe extern "C" fn(u64, *const u8, u32) -> u64;
        // SAFETY: zlib's crc32/adler32 prototype; `o` outlives the call.
        let f: F = unsafe { std::mem::transmute::<usize, F>(o.entry()) };
        let data = b"adapt measures before it injects";
        // SAFETY: valid buffer.
        let (got, want) = unsafe {
            (
                f(0, data.as_ptr(), data.len() as u32),
                reference(0, data.as_ptr(), data.len() as u32),
            )
        };
        assert_eq!(got, want, "{symbol}");
    }
    let missing = PreparedOriginal::prepare(&OriginalSpec {
        object: libz_path(),
        symbol: "no_such_function".into(),
        pid: None,
    })
    .unwrap_err();
    assert!(
        missing.to_string().contains("no_such_function"),
        "{missing}"
    );
}

// A self-contained leaf of this executable with the crc32 signature that
// is not a CRC: the sum of the bytes plus a constant from .rodata.
std::arch::global_asm!(
    ".pushsection .rodata.adapt_select_test_k,\"a\"",
    ".balign 8",
    "adapt_select_test_k: .quad 0x1000",
    ".popsection",
    ".pushsection .text.adapt_select_test_sum,\"ax\",@progbits",
    ".globl adapt_select_test_sum",
    ".type adapt_select_test_sum,@function",
    "adapt_select_test_sum:",
    "    mov rax, rdi",
    "    add rax, qword ptr [rip + adapt_select_test_k]",
    "    test edx, edx",
    "    je 2f",
    "    mov ecx, edx",
    "1:  movzx r8d, byte ptr [rsi]",
    "    add rax, r8",
    "    inc rsi",
    "    dec rcx",
    "    jne 1b",
    "2:  ret",
    ".size adapt_select_test_sum, .-adapt_select_test_sum",
    ".popsection",
);

extern "C" {
    fn adapt_select_test_sum(init: u64, buf: *const u8, len: u32) -> u64;
}

/// Not a leaf: it calls other code.
#[no_mangle]
#[inline(never)]
pub extern "C" fn adapt_select_test_not_leaf(init: u64, buf: *const u8, len: u32) -> u64 {
    println!("called");
    init.wrapping_add(buf as u64).wrapping_add(u64::from(len))
}

fn this_executable() -> String {
    std::env::current_exe().unwrap().display().to_string()
}

#[test]
fn a_leaf_of_an_executable_runs_from_a_mapping_of_its_file() {
    let _g = serial();
    let p = PreparedOriginal::prepare(&OriginalSpec {
        object: this_executable(),
        symbol: "adapt_select_test_sum".into(),
        pid: None,
    })
    .expect("read this executable");
    let o = Original::load_in_child(&p, p.raw_fd()).expect("map this executable's leaf");
    assert_eq!(o.method, LoadMethod::MappedExecutable);
    // It is a second copy, not the linked function.
    assert_ne!(o.entry(), adapt_select_test_sum as *const () as usize);
    type F = unsafe extern "C" fn(u64, *const u8, u32) -> u64;
    // SAFETY: the asm function's prototype; `o` outlives the call.
    let f: F = unsafe { std::mem::transmute::<usize, F>(o.entry()) };
    let data = [1u8, 2, 3, 250];
    // SAFETY: valid buffer.
    let (mapped, linked) = unsafe {
        (
            f(5, data.as_ptr(), 4),
            adapt_select_test_sum(5, data.as_ptr(), 4),
        )
    };
    assert_eq!(mapped, 5 + 0x1000 + 256);
    assert_eq!(mapped, linked);
}

#[test]
fn a_function_that_is_not_a_leaf_cannot_run_outside_the_target() {
    let _g = serial();
    assert_eq!(adapt_select_test_not_leaf(0, std::ptr::null(), 0), 0);
    let err = PreparedOriginal::prepare(&OriginalSpec {
        object: this_executable(),
        symbol: "adapt_select_test_not_leaf".into(),
        pid: None,
    })
    .unwrap_err();
    assert!(err.to_string().contains("calls other code"), "{err}");
    assert!(
        err.to_string().contains("measure it in the target"),
        "{err}"
    );

    // The selection says so and names the fastest variant to try in the
    // target instead.
    let seg = segment("crc32");
    let mut req = quick(&seg, CacheUse::Off);
    req.original = Some(OriginalSpec {
        object: this_executable(),
        symbol: "adapt_select_test_not_leaf".into(),
        pid: None,
    });
    req.function = Some("crc32".into());
    let s = select(&req).expect("selection");
    println!("{s}");
    let Choice::OriginalUnavailable { reason, fastest } = &s.decision.choice else {
        panic!("{s}")
    };
    assert!(reason.contains("calls other code"), "{reason}");
    assert!(fastest.is_some());
    assert_eq!(s.decision.variant_to_inject(), fastest.as_deref());
    assert!(
        s.verdict().contains("measure in the target"),
        "{}",
        s.verdict()
    );
}

#[test]
fn an_original_that_computes_something_else_is_never_replaced() {
    let _g = serial();
    let seg = segment("crc32");
    let mut req = quick(&seg, CacheUse::Off);
    req.original = Some(OriginalSpec {
        object: this_executable(),
        symbol: "adapt_select_test_sum".into(),
        pid: None,
    });
    req.function = Some("crc32".into());
    req.forced = Some("portable".into());
    let s = select(&req).expect("selection");
    println!("{s}");
    assert_eq!(s.original.method, Some(LoadMethod::MappedExecutable));
    assert!(s.variants.iter().all(|v| !v.correct), "{s}");
    assert!(
        matches!(&s.decision.choice, Choice::Nothing { reason } if reason.contains("differs")),
        "{s}"
    );
    // Not even when forced.
    assert_eq!(s.decision.variant_to_inject(), None, "{s}");
    assert!(s.to_string().contains("WRONG"));
}

#[test]
fn no_original_means_the_fastest_variant_and_a_warning() {
    let _g = serial();
    let seg = segment("dot_f32");
    let s = select(&quick(&seg, CacheUse::Off)).expect("selection");
    println!("{s}");
    let Choice::OriginalUnavailable { reason, fastest } = &s.decision.choice else {
        panic!("{s}")
    };
    assert!(reason.contains("--object"), "{reason}");
    assert!(fastest.is_some());
    assert!(s.variants.iter().all(|v| v.correct), "{s}");
}

#[test]
fn an_override_is_injected_and_reported_against_the_rule() {
    let _g = serial();
    let seg = segment("crc32");
    let mut req = quick(&seg, CacheUse::Off);
    req.forced = Some("portable".into());
    let s = select(&req).expect("selection");
    println!("{s}");
    assert_eq!(s.decision.variant_to_inject(), Some("portable"));
    let f = s.decision.forced.as_ref().unwrap();
    let summary = s.variants.iter().find(|v| v.variant == "portable").unwrap();
    assert_eq!(f.speedup, summary.speedup);
    assert_eq!(f.measured_slower, summary.speedup.unwrap() < 1.0);
    assert_eq!(f.rule_says, summary.ineligible);
    assert!(
        s.verdict().starts_with("override: portable"),
        "{}",
        s.verdict()
    );
    if f.measured_slower {
        assert!(s.verdict().contains("SLOWER"));
        assert!(s.verdict().contains("would not inject it"));
    }
    // An unknown variant is an error, not a silent fallback.
    req.forced = Some("no-such-variant".into());
    assert!(select(&req)
        .unwrap_err()
        .to_string()
        .contains("no variant no-such-variant"));
}

#[test]
fn the_cache_is_reused_and_invalidated_by_cpu_and_library_changes() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let seg = segment("crc32");
    let mut req = quick(&seg, CacheUse::Use(dir.path().to_path_buf()));
    req.only = vec!["portable".into()];

    let first = select(&req).expect("first");
    assert_eq!((first.cache.hits, first.cache.measured), (0, 2), "{first}");
    assert_eq!(Cache::open(dir.path()).len(), 2);

    let again = select(&req).expect("again");
    assert_eq!((again.cache.hits, again.cache.measured), (2, 0), "{again}");
    assert!(again
        .sizes
        .iter()
        .all(|r| r.variants.iter().all(|v| v.cached)));
    assert_eq!(again.sizes, {
        let mut s = first.sizes.clone();
        s.iter_mut()
            .for_each(|r| r.variants.iter_mut().for_each(|v| v.cached = true));
        s
    });
    assert_eq!(again.decision, first.decision);

    // Another CPU model: measured again, and the stale entries replaced.
    let mut other_cpu = req.clone();
    other_cpu.cpu.model = format!("{} (another host)", req.cpu.model);
    let moved = select(&other_cpu).expect("other cpu");
    assert_eq!((moved.cache.hits, moved.cache.measured), (0, 2));
    assert_eq!(Cache::open(dir.path()).len(), 2);
    // ... and the original CPU's figures are gone with it.
    let back = select(&req).expect("back");
    assert_eq!(back.cache.measured, 2);

    // Other features on the same model: measured again.
    let mut other_features = req.clone();
    other_features.cpu.features = "x86-64 baseline".into();
    assert_eq!(select(&other_features).expect("features").cache.measured, 2);
    assert_eq!(
        select(&other_features).expect("features again").cache.hits,
        2
    );

    // A rebuilt library (another variant hash): measured again.
    let mut rebuilt = seg.clone();
    let (i, _) = rebuilt.variant("portable").unwrap();
    let before = variant_cache_hash(&rebuilt, i).unwrap();
    // One more (unreachable) ret after the code: a different build of the
    // same functions (the entries do not move).
    rebuilt.variants[i].code.push(0xc3);
    assert_ne!(variant_cache_hash(&rebuilt, i).unwrap(), before);
    let mut req2 = quick(&rebuilt, CacheUse::Use(dir.path().to_path_buf()));
    req2.only = vec!["portable".into()];
    req2.cpu = other_features.cpu.clone();
    let r = select(&req2).expect("rebuilt");
    assert_eq!((r.cache.hits, r.cache.measured), (0, 2), "{r}");

    // Refresh measures even when cached.
    req2.cache = CacheUse::Refresh(dir.path().to_path_buf());
    assert_eq!(select(&req2).expect("refresh").cache.measured, 2);

    // A corrupt file is an empty cache, and is rewritten.
    std::fs::write(dir.path().join(adapt_select::CACHE_FILE), b"{ not json").unwrap();
    assert!(Cache::open(dir.path()).is_empty());
    req2.cache = CacheUse::Use(dir.path().to_path_buf());
    assert_eq!(select(&req2).expect("after corruption").cache.measured, 2);
    assert_eq!(Cache::open(dir.path()).len(), 2);
}

#[test]
fn default_margin_is_five_percent() {
    assert_eq!(DEFAULT_MARGIN, 0.05);
}
