// SPDX-License-Identifier: GPL-2.0
//! `bench-library [SEGMENT...]`: rebuilds the library, then measures every
//! variant of every segment, natively and loaded from its packed bytes as it
//! runs in a target, against the function it replaces (the system
//! libz.so.1 for crc32/adler32) and the best crate, interleaved in one run.
//! Run it with `cargo run --release -p adapt-library-build --bin bench-library`.
//!
//! The BLAS segments are measured against the netlib reference BLAS they
//! replace and single-threaded OpenBLAS (see [`blas_tables`]), in GFLOP/s
//! with paired ratios.

use std::hint::black_box;
use std::process::ExitCode;

use adapt_library_build::blas::Blas;
use adapt_library_build::builder::Built;
use adapt_library_build::builder::{
    build_library, default_out_dir, default_sources_dir, BuildOptions,
};
use adapt_library_build::reference::SystemZlib;
use adapt_segment::{CpuFeatures, InProcessVariant, Segment, SegmentFile};
use adapt_select::timing::{measure, paired_ratio, Budget, Runner};
use anyhow::{Context, Result};

const SIZES: [usize; 4] = [64, 4096, 65536, 1 << 20];

/// 4 ms batches, 11 interleaved rounds per size.
const BUDGET: Budget = Budget {
    batch: std::time::Duration::from_millis(4),
    rounds: 11,
};

/// A column of a table: its name and what it times.
type Candidate<'a> = (String, Runner<'a>);

fn candidate<'a>(name: impl Into<String>, run: impl FnMut(u64) + 'a) -> Candidate<'a> {
    (name.into(), Box::new(run))
}

type ZFnZ = unsafe extern "C" fn(u64, *const u8, usize) -> u64;
type C32c = unsafe extern "C" fn(u32, *const u8, usize) -> u32;
type Dot = unsafe extern "C" fn(*const f32, *const f32, usize) -> f32;
type Axpy = unsafe extern "C" fn(f32, *const f32, *mut f32, usize);
type Sha = unsafe extern "C" fn(*mut u32, *const u8, usize);

/// The variants this CPU runs, loaded, best first.
fn load_all(seg: &Segment) -> Result<Vec<InProcessVariant>> {
    let cpu = CpuFeatures::detect();
    let mut out = Vec::new();
    for (i, v) in seg.variants.iter().enumerate() {
        if cpu.is_superset(&v.features) {
            out.push(InProcessVariant::load(seg, i)?);
        } else {
            println!(
                "  (variant {}/{} skipped: CPU lacks {})",
                seg.name,
                v.name,
                cpu.missing(&v.features)
            );
        }
    }
    Ok(out)
}

/// One table: for each size, the candidates `make(size)` returns, with the
/// ratios of `best` (a column name) to `crate_col` and `zlib_col`.
fn table<'a>(
    title: &str,
    best: &str,
    crate_col: &str,
    zlib_col: Option<&str>,
    mut make: impl FnMut(usize) -> Vec<Candidate<'a>>,
) {
    println!("\n{title} (MB/s; median of interleaved batches)");
    let mut header_done = false;
    for &size in &SIZES {
        let (names, mut runners): (Vec<String>, Vec<Runner<'a>>) = make(size).into_iter().unzip();
        let tp: Vec<f64> = measure(&mut runners, size as u64, BUDGET)
            .iter()
            .map(|series| series.figure().bytes_per_sec)
            .collect();
        if !header_done {
            print!("{:>8}", "size");
            for n in &names {
                print!(" {n:>16}");
            }
            print!(" {:>14}", format!("best/{crate_col}"));
            if zlib_col.is_some() {
                print!(" {:>10}", "best/zlib");
            }
            println!();
            header_done = true;
        }
        print!("{size:>8}");
        for t in &tp {
            print!(" {:>16.0}", t / 1e6);
        }
        let col = |n: &str| names.iter().position(|x| *x == n).map(|i| tp[i]);
        let b = col(best).unwrap_or(f64::NAN);
        print!(" {:>14.2}", b / col(crate_col).unwrap_or(f64::NAN));
        if let Some(z) = zlib_col {
            print!(" {:>10.2}", b / col(z).unwrap_or(f64::NAN));
        }
        println!();
    }
}

fn run() -> Result<ExitCode> {
    let mut only: Vec<String> = std::env::args().skip(1).collect();
    // The relaxed dgemm is always measured side by side with the exact one.
    for (one, other) in [("dgemm", "dgemm-relaxed"), ("dgemm-relaxed", "dgemm")] {
        if only.iter().any(|o| o == one) && !only.iter().any(|o| o == other) {
            only.push(other.to_owned());
        }
    }
    let out_dir = default_out_dir();
    let built = build_library(&BuildOptions {
        work_dir: out_dir.join(".objects"),
        out_dir,
        sources_dir: default_sources_dir(),
        only: only.clone(),
    })?;
    let seg = |name: &str| {
        built
            .iter()
            .find(|b| b.segment.name == name)
            .map(|b| b.segment.clone())
    };
    let cpu = CpuFeatures::detect();
    println!("CPU features: {cpu}");
    blas_tables(&built, &cpu)?;
    let zlib = SystemZlib::open()
        .map_err(anyhow::Error::msg)
        .context("system zlib")?;
    println!(
        "system zlib {}; crates crc32fast 1, simd-adler32 0.3, crc32c 0.6, sha2 0.10",
        zlib.version
    );
    println!("\"seg:X\" is variant X mapped from its segment file; \"best\" is the variant best_variant() picks here");

    let mut data = vec![0u8; (1 << 20) + 64];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let buf = &data[..];

    if let Some(s) = seg("crc32") {
        let lv = load_all(&s)?;
        let best = format!(
            "seg:{}",
            s.best_variant(&cpu)
                .map(|(_, v)| v.name.as_str())
                .unwrap_or("?")
        );
        table(
            "crc32 (zlib crc32_z)",
            &best,
            "crc32fast",
            Some("zlib"),
            |n| {
                let d = &buf[..n];
                let mut c = vec![
                    candidate("zlib", move |it| {
                        for _ in 0..it {
                            // SAFETY: zlib's prototype; valid buffer.
                            black_box(unsafe { (zlib.crc32_z)(0, black_box(d.as_ptr()), d.len()) });
                        }
                    }),
                    candidate("crc32fast", move |it| {
                        for _ in 0..it {
                            black_box(crc32fast::hash(black_box(d)));
                        }
                    }),
                ];
                for v in &lv {
                    // SAFETY: the catalog's contract.
                    let f: ZFnZ = unsafe { v.function("crc32_z").expect("entry") };
                    c.push(candidate(format!("seg:{}", v.variant()), move |it| {
                        for _ in 0..it {
                            // SAFETY: valid buffer.
                            black_box(unsafe { f(0, black_box(d.as_ptr()), d.len()) });
                        }
                    }));
                }
                c
            },
        );
    }

    if let Some(s) = seg("adler32") {
        let lv = load_all(&s)?;
        let best = format!(
            "seg:{}",
            s.best_variant(&cpu)
                .map(|(_, v)| v.name.as_str())
                .unwrap_or("?")
        );
        table(
            "adler32 (zlib adler32_z)",
            &best,
            "simd-adler32",
            Some("zlib"),
            |n| {
                let d = &buf[..n];
                let mut c = vec![
                    candidate("zlib", move |it| {
                        for _ in 0..it {
                            // SAFETY: zlib's prototype; valid buffer.
                            black_box(unsafe {
                                (zlib.adler32_z)(1, black_box(d.as_ptr()), d.len())
                            });
                        }
                    }),
                    candidate("simd-adler32", move |it| {
                        for _ in 0..it {
                            black_box(simd_adler32::adler32(black_box(&d)));
                        }
                    }),
                ];
                for v in &lv {
                    // SAFETY: the catalog's contract.
                    let f: ZFnZ = unsafe { v.function("adler32_z").expect("entry") };
                    c.push(candidate(format!("seg:{}", v.variant()), move |it| {
                        for _ in 0..it {
                            // SAFETY: valid buffer.
                            black_box(unsafe { f(1, black_box(d.as_ptr()), d.len()) });
                        }
                    }));
                }
                c
            },
        );
    }

    if let Some(s) = seg("crc32c") {
        let lv = load_all(&s)?;
        let best = format!(
            "seg:{}",
            s.best_variant(&cpu)
                .map(|(_, v)| v.name.as_str())
                .unwrap_or("?")
        );
        table("crc32c", &best, "crc32c-crate", None, |n| {
            let d = &buf[..n];
            let mut c = vec![candidate("crc32c-crate", move |it| {
                for _ in 0..it {
                    black_box(crc32c::crc32c(black_box(d)));
                }
            })];
            for v in &lv {
                // SAFETY: the catalog's contract.
                let f: C32c = unsafe { v.function("crc32c").expect("entry") };
                c.push(candidate(format!("seg:{}", v.variant()), move |it| {
                    for _ in 0..it {
                        // SAFETY: valid buffer.
                        black_box(unsafe { f(0, black_box(d.as_ptr()), d.len()) });
                    }
                }));
            }
            c
        });
    }

    if let Some(s) = seg("sha256") {
        use sha2::digest::generic_array::GenericArray;
        let lv = load_all(&s)?;
        let best = format!(
            "seg:{}",
            s.best_variant(&cpu)
                .map(|(_, v)| v.name.as_str())
                .unwrap_or("?")
        );
        let blocks: Vec<GenericArray<u8, _>> = buf[..1 << 20]
            .chunks_exact(64)
            .map(|c| *GenericArray::from_slice(c))
            .collect();
        let blocks = &blocks;
        table(
            "sha256 (compression, size = input bytes)",
            &best,
            "sha2",
            None,
            |n| {
                let b = &blocks[..n / 64];
                let d = &buf[..n];
                let mut c = vec![candidate("sha2", move |it| {
                    let mut st = [0u32; 8];
                    for _ in 0..it {
                        sha2::compress256(black_box(&mut st), black_box(b));
                    }
                    black_box(st);
                })];
                for v in &lv {
                    // SAFETY: the catalog's contract.
                    let f: Sha = unsafe { v.function("sha256_transform").expect("entry") };
                    c.push(candidate(format!("seg:{}", v.variant()), move |it| {
                        let mut st = [0u32; 8];
                        for _ in 0..it {
                            // SAFETY: 8-word state, n/64 blocks.
                            unsafe {
                                f(
                                    black_box(st.as_mut_ptr()),
                                    black_box(d.as_ptr()),
                                    d.len() / 64,
                                )
                            };
                        }
                        black_box(st);
                    }));
                }
                c
            },
        );
    }

    let fa: Vec<f32> = (0..(1 << 18))
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let fb: Vec<f32> = (0..(1 << 18))
        .map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let (fa, fb) = (&fa, &fb);

    if let Some(s) = seg("dot_f32") {
        let lv = load_all(&s)?;
        let best = format!(
            "seg:{}",
            s.best_variant(&cpu)
                .map(|(_, v)| v.name.as_str())
                .unwrap_or("?")
        );
        table(
            "dot_f32 (size = bytes of each input, n = size/4)",
            &best,
            "plain-loop",
            None,
            |size| {
                let n = size / 4;
                let (a, b) = (&fa[..n], &fb[..n]);
                let mut c = vec![candidate("plain-loop", move |it| {
                    for _ in 0..it {
                        let (a, b) = (black_box(a), black_box(b));
                        black_box(a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>());
                    }
                })];
                for v in &lv {
                    // SAFETY: the catalog's contract.
                    let f: Dot = unsafe { v.function("dot_f32").expect("entry") };
                    c.push(candidate(format!("seg:{}", v.variant()), move |it| {
                        for _ in 0..it {
                            // SAFETY: n floats each.
                            black_box(unsafe {
                                f(black_box(a.as_ptr()), black_box(b.as_ptr()), n)
                            });
                        }
                    }));
                }
                c
            },
        );
    }

    if let Some(s) = seg("axpy_f32") {
        let lv = load_all(&s)?;
        let best = format!(
            "seg:{}",
            s.best_variant(&cpu)
                .map(|(_, v)| v.name.as_str())
                .unwrap_or("?")
        );
        table(
            "axpy_f32 (size = bytes of x, n = size/4)",
            &best,
            "plain-loop",
            None,
            |size| {
                let n = size / 4;
                let x = &fa[..n];
                let mut y = fb[..n].to_vec();
                let mut c = vec![candidate("plain-loop", move |it| {
                    for _ in 0..it {
                        let a = black_box(1e-7f32);
                        for (yi, xi) in y.iter_mut().zip(black_box(x)) {
                            *yi += a * xi;
                        }
                    }
                    black_box(&y);
                })];
                for v in &lv {
                    // SAFETY: the catalog's contract.
                    let f: Axpy = unsafe { v.function("axpy_f32").expect("entry") };
                    let mut y = fb[..n].to_vec();
                    c.push(candidate(format!("seg:{}", v.variant()), move |it| {
                        for _ in 0..it {
                            // SAFETY: n floats each, disjoint.
                            unsafe {
                                f(
                                    black_box(1e-7),
                                    black_box(x.as_ptr()),
                                    black_box(y.as_mut_ptr()),
                                    n,
                                )
                            };
                        }
                        black_box(&y);
                    }));
                }
                c
            },
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The variants of a segment with a `fallback` import this CPU runs,
/// loaded with `fallback` at `original`, best first.
fn load_with_fallback(b: &Built, original: u64) -> Result<Vec<InProcessVariant>> {
    let file = SegmentFile::read_file(&b.path)?;
    let cpu = CpuFeatures::detect();
    let mut out = Vec::new();
    for (i, v) in file.segment.variants.iter().enumerate() {
        if cpu.is_superset(&v.features) {
            // SAFETY: `original` is the replaced function itself, in the
            // reference library, which stays open while the variants run.
            out.push(unsafe { InProcessVariant::load_with_imports(&file, i, &[original]) }?);
        } else {
            println!(
                "  (variant {}/{} skipped: CPU lacks {})",
                file.segment.name,
                v.name,
                cpu.missing(&v.features)
            );
        }
    }
    Ok(out)
}

/// Square sizes of the BLAS tables.
const BLAS_SIZES: [usize; 4] = [64, 256, 512, 1024];

/// Budget of a BLAS size: one call of the reference at 1024 takes about a
/// second, so fewer, longer rounds there.
fn blas_budget(n: usize) -> Budget {
    Budget {
        batch: std::time::Duration::from_millis(if n >= 512 { 200 } else { 20 }),
        rounds: if n >= 512 { 5 } else { 11 },
    }
}

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

/// One BLAS table: for each size, `make(n)` gives the candidates (the
/// reference first, named "reference", OpenBLAS "openblas" when open) and
/// the flops of one call; prints GFLOP/s and the best variant's paired
/// ratios to both.
fn blas_table<'a>(
    title: &str,
    best: &str,
    mut make: impl FnMut(usize) -> (Vec<Candidate<'a>>, u64),
) {
    println!("\n{title} (GFLOP/s; median of interleaved batches; ratios paired per round)");
    let mut header_done = false;
    for &n in &BLAS_SIZES {
        let (cands, flops) = make(n);
        let (names, mut runners): (Vec<String>, Vec<Runner<'a>>) = cands.into_iter().unzip();
        let series = measure(&mut runners, flops, blas_budget(n));
        if !header_done {
            print!("{:>6}", "n");
            for name in &names {
                print!(" {name:>14}");
            }
            println!(
                " {:>16} {:>16}",
                format!("{best}/ref"),
                format!("{best}/openblas")
            );
            header_done = true;
        }
        print!("{n:>6}");
        for s in &series {
            print!(" {:>14.2}", s.figure().bytes_per_sec / 1e9);
        }
        let col = |want: &str| names.iter().position(|x| x == want).map(|i| &series[i]);
        let ratio = |other: &str| match (col(best), col(other)) {
            (Some(a), Some(b)) => format!("{:.2}", paired_ratio(a, b)),
            _ => "-".to_owned(),
        };
        println!(" {:>16} {:>16}", ratio("reference"), ratio("openblas"));
    }
}

/// An element type of the BLAS benchmarks.
trait BenchElem: Copy + Default + 'static {
    fn from_f64(x: f64) -> Self;
    /// The bits as an integer ordered like the values (distance = ulps).
    fn ordered(self) -> i64;
}

impl BenchElem for f64 {
    fn from_f64(x: f64) -> f64 {
        x
    }
    fn ordered(self) -> i64 {
        let b = self.to_bits() as i64;
        if b < 0 {
            i64::MIN - b
        } else {
            b
        }
    }
}

impl BenchElem for f32 {
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
    fn ordered(self) -> i64 {
        let b = i64::from(self.to_bits() as i32);
        if b < 0 {
            i64::from(i32::MIN) - b
        } else {
            b
        }
    }
}

/// Fortran xGEMM of element `T`.
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

/// The xGEMM table of `seg`: `'N','N'`, square, alpha 1, beta 0 (what
/// numpy's `a @ b` asks of `cblas_xgemm`, which calls `xgemm_` with the
/// operands swapped).
fn gemm_table<T: BenchElem>(
    seg: &Built,
    relaxed: Option<&Built>,
    symbol: &str,
    cpu: &CpuFeatures,
    reference: (&Blas, Gemm<T>),
    openblas: Option<Gemm<T>>,
) -> Result<()> {
    let csym = std::ffi::CString::new(symbol)?;
    let original = reference.0.address(&csym).map_err(anyhow::Error::msg)?;
    let lv = load_with_fallback(seg, original)?;
    let rlx = match relaxed {
        Some(r) => load_with_fallback(r, original)?,
        None => Vec::new(),
    };
    let notes = std::cell::RefCell::new(Vec::new());
    let rf = reference.1;
    let best = format!(
        "seg:{}",
        seg.segment
            .best_variant(cpu)
            .map(|(_, v)| v.name.as_str())
            .unwrap_or("?")
    );
    blas_table(
        &format!("{symbol} ('N','N', square, alpha 1, beta 0: numpy's a @ b)"),
        &best,
        |n| {
            let a: Vec<T> = values(n * n, 1).into_iter().map(T::from_f64).collect();
            let b: Vec<T> = values(n * n, 2).into_iter().map(T::from_f64).collect();
            let ni = n as i32;
            let gemm = std::rc::Rc::new(move |f: Gemm<T>, c: &mut Vec<T>| {
                let (one, zero) = (T::from_f64(1.0), T::from_f64(0.0));
                // SAFETY: n×n column-major matrices with leading dimension n.
                unsafe {
                    f(
                        &b'N',
                        &b'N',
                        &ni,
                        &ni,
                        &ni,
                        &one,
                        a.as_ptr(),
                        &ni,
                        b.as_ptr(),
                        &ni,
                        &zero,
                        c.as_mut_ptr(),
                        &ni,
                        1,
                        1,
                    )
                }
            });
            // The bit-identity the tests assert, seen once more here.
            let mut want = vec![T::default(); n * n];
            gemm(rf, &mut want);
            let mut cands = Vec::new();
            let mut add = |name: String, f: Gemm<T>| {
                let g = gemm.clone();
                let mut c = vec![T::default(); n * n];
                cands.push(candidate(name, move |it| {
                    for _ in 0..it {
                        g(f, black_box(&mut c));
                    }
                }));
            };
            // Largest distance of each candidate's result from the
            // reference's, in ulps, on this size's inputs.
            let max_ulps = |f: Gemm<T>| {
                let mut got = vec![T::default(); n * n];
                gemm(f, &mut got);
                got.iter()
                    .zip(&want)
                    .map(|(x, y)| x.ordered().abs_diff(y.ordered()))
                    .max()
                    .unwrap_or(0)
            };
            let mut ulps = Vec::new();
            add("reference".into(), rf);
            if let Some(o) = openblas {
                ulps.push(("openblas".to_owned(), max_ulps(o)));
                add("openblas".into(), o);
            }
            for v in &lv {
                // SAFETY: the catalog's contract: Fortran xGEMM.
                let f: Gemm<T> = unsafe { v.function(symbol).expect("entry") };
                let d = max_ulps(f);
                assert!(
                    d == 0,
                    "{symbol} {}: n={n} differs from the reference ({d} ulp)",
                    v.variant()
                );
                ulps.push((format!("seg:{}", v.variant()), d));
                add(format!("seg:{}", v.variant()), f);
            }
            for v in &rlx {
                // SAFETY: the catalog's contract: Fortran xGEMM.
                let f: Gemm<T> = unsafe { v.function(symbol).expect("entry") };
                ulps.push((format!("rlx:{}", v.variant()), max_ulps(f)));
                add(format!("rlx:{}", v.variant()), f);
            }
            notes.borrow_mut().push(format!(
                "  n={n:<5} {}",
                ulps.iter()
                    .map(|(name, d)| format!("{name} {d}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            (cands, 2 * (n as u64).pow(3))
        },
    );
    println!(
        "max difference from the reference in ulps, same inputs (seg: exact, must be 0; \
         rlx: segment {}, numerics float-reassociate, NOT bit-identical):",
        relaxed.map_or("no relaxed segment", |r| r.segment.name.as_str())
    );
    for note in notes.borrow().iter() {
        println!("{note}");
    }
    Ok(())
}

/// The dgemv table: `trans` as given, square, alpha 1, beta 0, unit
/// increments (numpy's `a @ v` on a C-ordered `a` is `'T'`).
fn dgemv_table(
    seg: &Built,
    trans: u8,
    cpu: &CpuFeatures,
    reference: &Blas,
    openblas: Option<adapt_library_build::blas::Dgemv>,
) -> Result<()> {
    type G = adapt_library_build::blas::Dgemv;
    let lv = load_with_fallback(
        seg,
        reference.address(c"dgemv_").map_err(anyhow::Error::msg)?,
    )?;
    let rf = reference.dgemv;
    let best = format!(
        "seg:{}",
        seg.segment
            .best_variant(cpu)
            .map(|(_, v)| v.name.as_str())
            .unwrap_or("?")
    );
    blas_table(
        &format!(
            "dgemv_ ('{}', square, alpha 1, beta 0, unit increments)",
            trans as char
        ),
        &best,
        |n| {
            let a = values(n * n, 3);
            let x = values(n, 4);
            let ni = n as i32;
            let gemv = std::rc::Rc::new(move |f: G, y: &mut Vec<f64>| {
                let (one, zero, inc) = (1.0f64, 0.0f64, 1i32);
                // SAFETY: an n×n matrix with leading dimension n, vectors of n.
                unsafe {
                    f(
                        &trans,
                        &ni,
                        &ni,
                        &one,
                        a.as_ptr(),
                        &ni,
                        x.as_ptr(),
                        &inc,
                        &zero,
                        y.as_mut_ptr(),
                        &inc,
                        1,
                    )
                }
            });
            let mut want = vec![0.0; n];
            gemv(rf, &mut want);
            let mut cands = Vec::new();
            let mut add = |name: String, f: G| {
                let g = gemv.clone();
                let mut y = vec![0.0; n];
                cands.push(candidate(name, move |it| {
                    for _ in 0..it {
                        g(f, black_box(&mut y));
                    }
                }));
            };
            add("reference".into(), rf);
            if let Some(o) = openblas {
                add("openblas".into(), o);
            }
            for v in &lv {
                // SAFETY: the catalog's contract: Fortran DGEMV.
                let f: G = unsafe { v.function("dgemv_").expect("entry") };
                let mut got = vec![0.0; n];
                gemv(f, &mut got);
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same,
                    "dgemv {}: n={n} differs from the reference",
                    v.variant()
                );
                add(format!("seg:{}", v.variant()), f);
            }
            (cands, 2 * (n as u64).pow(2))
        },
    );
    Ok(())
}

/// The dsyrk table: `('L', 'N')`, n×n A (k = n), alpha 1, beta 0 (what
/// numpy's `a.T @ a` on a C-ordered `a` asks of `cblas_dsyrk`).
fn dsyrk_table(
    seg: &Built,
    cpu: &CpuFeatures,
    reference: &Blas,
    openblas: Option<adapt_library_build::blas::Dsyrk>,
) -> Result<()> {
    type G = adapt_library_build::blas::Dsyrk;
    let lv = load_with_fallback(
        seg,
        reference.address(c"dsyrk_").map_err(anyhow::Error::msg)?,
    )?;
    let rf = reference.dsyrk;
    let best = format!(
        "seg:{}",
        seg.segment
            .best_variant(cpu)
            .map(|(_, v)| v.name.as_str())
            .unwrap_or("?")
    );
    blas_table(
        "dsyrk_ ('L','N', n×n A, k = n, alpha 1, beta 0: numpy's a.T @ a)",
        &best,
        |n| {
            let a = values(n * n, 5);
            let ni = n as i32;
            let syrk = std::rc::Rc::new(move |f: G, c: &mut Vec<f64>| {
                let (one, zero) = (1.0f64, 0.0f64);
                // SAFETY: n×n matrices with leading dimension n.
                unsafe {
                    f(
                        &b'L',
                        &b'N',
                        &ni,
                        &ni,
                        &one,
                        a.as_ptr(),
                        &ni,
                        &zero,
                        c.as_mut_ptr(),
                        &ni,
                        1,
                        1,
                    )
                }
            });
            let mut want = vec![0.0; n * n];
            syrk(rf, &mut want);
            let mut cands = Vec::new();
            let mut add = |name: String, f: G| {
                let g = syrk.clone();
                let mut c = vec![0.0; n * n];
                cands.push(candidate(name, move |it| {
                    for _ in 0..it {
                        g(f, black_box(&mut c));
                    }
                }));
            };
            add("reference".into(), rf);
            if let Some(o) = openblas {
                add("openblas".into(), o);
            }
            for v in &lv {
                // SAFETY: the catalog's contract: Fortran DSYRK.
                let f: G = unsafe { v.function("dsyrk_").expect("entry") };
                let mut got = vec![0.0; n * n];
                syrk(f, &mut got);
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same,
                    "dsyrk {}: n={n} differs from the reference",
                    v.variant()
                );
                add(format!("seg:{}", v.variant()), f);
            }
            // n(n+1)/2 elements of k = n multiply-adds.
            (cands, (n as u64) * (n as u64 + 1) * n as u64)
        },
    );
    Ok(())
}

/// The BLAS segments against the reference and single-threaded OpenBLAS.
fn blas_tables(built: &[Built], cpu: &CpuFeatures) -> Result<()> {
    let find = |name: &str| built.iter().find(|b| b.segment.name == name);
    let blas = ["dgemm", "sgemm", "dgemv", "dsyrk"];
    if !blas.iter().any(|n| find(n).is_some()) {
        return Ok(());
    }
    let reference = Blas::reference().map_err(anyhow::Error::msg)?;
    // OpenBLAS reads its environment once, when it is loaded: opened here,
    // before any other thread, with OPENBLAS_NUM_THREADS=1 and its own
    // core detection.
    let openblas = match Blas::openblas_single_thread() {
        Ok(o) => {
            println!(
                "OpenBLAS {} (1 thread; OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset): core {}",
                o.path,
                o.openblas_corename().unwrap_or_else(|| "?".into())
            );
            Some(o)
        }
        Err(e) => {
            println!("OpenBLAS not measured: {e}");
            None
        }
    };
    println!("reference BLAS {}", reference.path);
    if let Some(seg) = find("dgemm") {
        // The relaxed (float-reassociate) dgemm side by side with the exact.
        gemm_table::<f64>(
            seg,
            find("dgemm-relaxed"),
            "dgemm_",
            cpu,
            (&reference, reference.dgemm),
            openblas.as_ref().map(|o| o.dgemm),
        )?;
    }
    if let Some(seg) = find("sgemm") {
        gemm_table::<f32>(
            seg,
            None,
            "sgemm_",
            cpu,
            (&reference, reference.sgemm),
            openblas.as_ref().map(|o| o.sgemm),
        )?;
    }
    if let Some(seg) = find("dgemv") {
        for trans in [b'T', b'N'] {
            dgemv_table(
                seg,
                trans,
                cpu,
                &reference,
                openblas.as_ref().map(|o| o.dgemv),
            )?;
        }
    }
    if let Some(seg) = find("dsyrk") {
        dsyrk_table(seg, cpu, &reference, openblas.as_ref().map(|o| o.dsyrk))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench-library: {e:#}");
            ExitCode::FAILURE
        }
    }
}
