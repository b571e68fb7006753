// SPDX-License-Identifier: GPL-2.0
//! Differential tests: every variant of every segment, mapped from its
//! packed bytes by the in-process loader exactly as it will run in a target,
//! against an independent reference on at least 10,000 random cases.

mod common;

use adapt_library_build::reference::SystemZlib;
use adapt_select::driver::gamma32;
use common::{byte_cases, loaded_variants, segment, Guarded, Tally};
use rand::{Rng, RngCore, SeedableRng};

const CASES: usize = 10_000;

type ZFn = unsafe extern "C" fn(u64, *const u8, u32) -> u64;
type ZFnZ = unsafe extern "C" fn(u64, *const u8, usize) -> u64;

fn rng(seed: u64) -> rand::rngs::SmallRng {
    rand::rngs::SmallRng::seed_from_u64(seed)
}

fn random_buffer(r: &mut impl RngCore) -> Guarded {
    let mut g = Guarded::new((2 << 20) + 8192);
    r.fill_bytes(g.bytes());
    g
}

/// Random initial values, biased towards edge cases (0, all ones, values
/// with high bits that the functions must ignore or handle).
fn initial(r: &mut impl Rng) -> u64 {
    match r.gen_range(0..8) {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => u64::from(u32::MAX),
        4 => r.gen::<u64>(),
        _ => u64::from(r.gen::<u32>()),
    }
}

/// Checks a zlib-style pair (`f`, `f_z`) of every variant against zlib's.
fn zlib_pair(name: &str, zlib: ZFn, zlib_z: ZFnZ, null_result: u64) {
    let seg = segment(name);
    let mut tally = Tally::default();
    let loaded = loaded_variants(&seg, &mut tally);
    assert!(!loaded.is_empty(), "no variant of {name} can run here");
    let mut r = rng(0x5eed_0000 + name.len() as u64);
    let mut g = random_buffer(&mut r);
    let cases = byte_cases(&mut r, g.usable(), CASES);
    let buf = g.bytes().as_ptr();
    for lv in &loaded {
        // SAFETY: the contracts of the catalog: zlib's prototypes.
        let (f, fz): (ZFn, ZFnZ) = unsafe {
            (
                lv.function(name).expect("entry"),
                lv.function(&format!("{name}_z")).expect("entry"),
            )
        };
        for (i, c) in cases.iter().enumerate() {
            let init = initial(&mut r);
            // SAFETY: the range lies in the guarded buffer.
            let p = unsafe { buf.add(c.start) };
            // SAFETY: valid buffer for all four calls.
            let (want, got, want_z, got_z) = unsafe {
                (
                    zlib(init, p, c.len as u32),
                    f(init, p, c.len as u32),
                    zlib_z(init, p, c.len),
                    fz(init, p, c.len),
                )
            };
            assert_eq!(
                got,
                want,
                "{name}/{} case {i} {c:?} init {init:#x}",
                lv.variant()
            );
            assert_eq!(
                got_z,
                want_z,
                "{name}_z/{} case {i} {c:?} init {init:#x}",
                lv.variant()
            );
        }
        for len in [0usize, 1, 7, 100] {
            let init = initial(&mut r);
            // SAFETY: a null buffer must not be read.
            let (a, b) = unsafe {
                (
                    f(init, std::ptr::null(), len as u32),
                    fz(init, std::ptr::null(), len),
                )
            };
            assert_eq!(
                (a, b),
                (null_result, null_result),
                "{name}/{} null buffer len {len}",
                lv.variant()
            );
        }
    }
}

#[test]
fn crc32_matches_system_zlib() {
    let z = SystemZlib::open().expect("system zlib");
    eprintln!("reference: system zlib {}", z.version);
    zlib_pair("crc32", z.crc32, z.crc32_z, 0);
}

#[test]
fn adler32_matches_system_zlib() {
    let z = SystemZlib::open().expect("system zlib");
    zlib_pair("adler32", z.adler32, z.adler32_z, 1);
}

#[test]
fn crc32c_matches_crc32c_crate() {
    type F = unsafe extern "C" fn(u32, *const u8, usize) -> u32;
    let seg = segment("crc32c");
    let mut tally = Tally::default();
    let loaded = loaded_variants(&seg, &mut tally);
    assert!(!loaded.is_empty());
    let mut r = rng(0xc3c);
    let mut g = random_buffer(&mut r);
    let cases = byte_cases(&mut r, g.usable(), CASES);
    let bytes = g.bytes();
    for lv in &loaded {
        // SAFETY: the catalog's contract for crc32c.
        let f: F = unsafe { lv.function("crc32c").expect("entry") };
        for (i, c) in cases.iter().enumerate() {
            let init = initial(&mut r) as u32;
            let data = &bytes[c.start..c.start + c.len];
            let want = crc32c::crc32c_append(init, data);
            // SAFETY: valid buffer.
            let got = unsafe { f(init, data.as_ptr(), data.len()) };
            assert_eq!(
                got,
                want,
                "crc32c/{} case {i} {c:?} init {init:#x}",
                lv.variant()
            );
        }
        // Check value of the standard: CRC-32C("123456789") = 0xE3069283.
        // SAFETY: valid buffer.
        assert_eq!(unsafe { f(0, b"123456789".as_ptr(), 9) }, 0xe306_9283);
        // SAFETY: a null buffer must not be read.
        assert_eq!(unsafe { f(0x1234_5678, std::ptr::null(), 10) }, 0x1234_5678);
    }
}

/// f32 ranges derived from byte cases: 4-byte aligned starts (as C floats
/// are), lengths in floats, ranges that ended at the guard page still do.
fn float_cases(r: &mut impl Rng, usable: usize) -> Vec<(usize, usize)> {
    byte_cases(r, usable, CASES)
        .into_iter()
        .map(|c| {
            let n = c.len / 4;
            let start = if c.start + c.len == usable {
                usable - 4 * n
            } else {
                c.start & !3
            };
            (start / 4, n)
        })
        .collect()
}

/// Random floats of varied magnitude (2^-10..2^10) and sign, none subnormal.
fn fill_floats(r: &mut impl Rng, g: &mut Guarded) -> &'static mut [f32] {
    let bytes = g.bytes();
    // SAFETY: the mapping is page-aligned, so 4-byte aligned, and lives until
    // the end of the test (the Guarded outlives every use in each test).
    let f: &'static mut [f32] = unsafe {
        std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<f32>(), bytes.len() / 4)
    };
    for x in f.iter_mut() {
        let m: f32 = r.gen_range(0.5..2.0);
        let e: i32 = r.gen_range(-10..=10);
        *x = if r.gen() { m } else { -m } * 2f32.powi(e);
    }
    f
}

#[test]
fn dot_f32_within_the_error_bound_of_any_summation_order() {
    type F = unsafe extern "C" fn(*const f32, *const f32, usize) -> f32;
    let seg = segment("dot_f32");
    let mut tally = Tally::default();
    let loaded = loaded_variants(&seg, &mut tally);
    assert!(!loaded.is_empty());
    let mut r = rng(0xd07);
    let mut ga = Guarded::new((2 << 20) + 8192);
    let mut gb = Guarded::new((2 << 20) + 8192);
    let a = fill_floats(&mut r, &mut ga);
    let b = fill_floats(&mut r, &mut gb);
    let cases = float_cases(&mut r, ga.usable());
    for lv in &loaded {
        // SAFETY: the catalog's contract for dot_f32.
        let f: F = unsafe { lv.function("dot_f32").expect("entry") };
        for (i, &(s, n)) in cases.iter().enumerate() {
            let (x, y) = (&a[s..s + n], &b[s..s + n]);
            // SAFETY: both ranges are readable.
            let got = unsafe { f(x.as_ptr(), y.as_ptr(), n) };
            let exact: f64 = x
                .iter()
                .zip(y)
                .map(|(&p, &q)| f64::from(p) * f64::from(q))
                .sum();
            let mag: f64 = x
                .iter()
                .zip(y)
                .map(|(&p, &q)| (f64::from(p) * f64::from(q)).abs())
                .sum();
            // The f64 reference itself is within n*2^-53*mag.
            let bound = (gamma32(n) + n as f64 * 2f64.powi(-52)) * mag;
            let err = (f64::from(got) - exact).abs();
            assert!(
                err <= bound,
                "dot_f32/{} case {i} n {n}: got {got}, exact {exact}, error {err} > bound {bound}",
                lv.variant()
            );
            if n == 0 {
                assert_eq!(got.to_bits(), 0f32.to_bits(), "dot of nothing is +0");
            }
            if n == 1 {
                assert_eq!(got, x[0] * y[0], "one product is exactly rounded");
            }
        }
        // SAFETY: n = 0 reads nothing, so null pointers are fine.
        assert_eq!(unsafe { f(std::ptr::null(), std::ptr::null(), 0) }, 0.0);
    }
}

#[test]
fn axpy_f32_matches_fused_or_plain_loop_exactly() {
    type F = unsafe extern "C" fn(f32, *const f32, *mut f32, usize);
    let seg = segment("axpy_f32");
    let mut tally = Tally::default();
    let loaded = loaded_variants(&seg, &mut tally);
    assert!(!loaded.is_empty());
    let mut r = rng(0xa4b);
    let mut gx = Guarded::new((2 << 20) + 8192);
    let mut gy = Guarded::new((2 << 20) + 8192);
    let mut gy0 = Guarded::new((2 << 20) + 8192);
    let x = fill_floats(&mut r, &mut gx);
    let y0 = fill_floats(&mut r, &mut gy0);
    let y = fill_floats(&mut r, &mut gy);
    let cases = float_cases(&mut r, gx.usable());
    for lv in &loaded {
        let fused = lv.variant() != "portable";
        // SAFETY: the catalog's contract for axpy_f32.
        let f: F = unsafe { lv.function("axpy_f32").expect("entry") };
        for (i, &(s, n)) in cases.iter().enumerate() {
            let a: f32 = r.gen_range(-4.0..4.0);
            // Guard the floats around the range: they must not change.
            let lo = s.saturating_sub(3);
            let hi = (s + n + 3).min(y.len());
            y[lo..hi].copy_from_slice(&y0[lo..hi]);
            // SAFETY: x and y ranges are valid and disjoint.
            unsafe { f(a, x[s..].as_ptr(), y[s..].as_mut_ptr(), n) };
            for j in lo..hi {
                let want = if j < s || j >= s + n {
                    y0[j]
                } else if fused {
                    x[j].mul_add(a, y0[j])
                } else {
                    a * x[j] + y0[j]
                };
                assert_eq!(
                    y[j].to_bits(),
                    want.to_bits(),
                    "axpy_f32/{} case {i} n {n} element {}",
                    lv.variant(),
                    j - s
                );
            }
        }
        // SAFETY: n = 0 touches nothing, so null pointers are fine.
        unsafe { f(1.0, std::ptr::null(), std::ptr::null_mut(), 0) };
    }
}

#[test]
fn sha256_transform_matches_sha2_compress256() {
    use sha2::digest::generic_array::GenericArray;
    type F = unsafe extern "C" fn(*mut u32, *const u8, usize);
    let seg = segment("sha256");
    let mut tally = Tally::default();
    let loaded = loaded_variants(&seg, &mut tally);
    assert!(!loaded.is_empty());
    let mut r = rng(0x5a256);
    let mut g = random_buffer(&mut r);
    let usable = g.usable();
    let bytes = g.bytes();
    let mut cases: Vec<(usize, usize)> = Vec::new();
    for nb in 0..=64usize {
        cases.push((usable - 64 * nb, nb));
        cases.push((r.gen_range(0..64), nb));
    }
    for nb in [(1 << 20) / 64 + 1, 20_000] {
        cases.push((usable - 64 * nb, nb));
        cases.push((3, nb));
    }
    while cases.len() < CASES {
        let nb = if r.gen_range(0..10) == 0 {
            r.gen_range(65..1024)
        } else {
            r.gen_range(0..65)
        };
        cases.push((r.gen_range(0..usable - 64 * nb), nb));
    }
    for lv in &loaded {
        // SAFETY: the catalog's contract for sha256_transform.
        let f: F = unsafe { lv.function("sha256_transform").expect("entry") };
        for (i, &(s, nb)) in cases.iter().enumerate() {
            let init: [u32; 8] = r.gen();
            let data = &bytes[s..s + 64 * nb];
            let mut want = init;
            let blocks: Vec<GenericArray<u8, _>> = data
                .chunks_exact(64)
                .map(|c| *GenericArray::from_slice(c))
                .collect();
            sha2::compress256(&mut want, &blocks);
            let mut got = init;
            // SAFETY: state is 8 words, data nb blocks.
            unsafe { f(got.as_mut_ptr(), data.as_ptr(), nb) };
            assert_eq!(
                got,
                want,
                "sha256/{} case {i} start {s} blocks {nb}",
                lv.variant()
            );
        }
        // Known answer: SHA-256("abc"), one padded block (FIPS 180-4 example).
        let mut block = [0u8; 64];
        block[..3].copy_from_slice(b"abc");
        block[3] = 0x80;
        block[63] = 24;
        let mut st: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        // SAFETY: one block.
        unsafe { f(st.as_mut_ptr(), block.as_ptr(), 1) };
        assert_eq!(
            st,
            [
                0xba7816bf, 0x8f01cfea, 0x414140de, 0x5dae2223, 0xb00361a3, 0x96177a9c, 0xb410ff61,
                0xf20015ad
            ]
        );
    }
}
