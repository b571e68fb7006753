// SPDX-License-Identifier: GPL-2.0
//! `bench-library [SEGMENT...]`: rebuilds the library, then measures every
//! variant of every segment, natively and loaded from its packed bytes as it
//! runs in a target, against the function it replaces (the system
//! libz.so.1 for crc32/adler32) and the best crate, interleaved in one run.
//! Run it with `cargo run --release -p adapt-library-build --bin bench-library`.

use std::hint::black_box;
use std::process::ExitCode;

use adapt_library_build::builder::{
    build_library, default_out_dir, default_sources_dir, BuildOptions,
};
use adapt_library_build::reference::SystemZlib;
use adapt_segment::{CpuFeatures, InProcessVariant, Segment};
use adapt_select::timing::{measure, Budget, Runner};
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
    let only: Vec<String> = std::env::args().skip(1).collect();
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

fn main() -> ExitCode {
    match run() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench-library: {e:#}");
            ExitCode::FAILURE
        }
    }
}
