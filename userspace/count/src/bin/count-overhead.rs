// SPDX-License-Identifier: GPL-2.0
//! What counting costs per call: the same small function called directly
//! and through the counting segment (loaded in this process exactly as the
//! module maps it: `lock inc` on its data area, then the tail jump through
//! its import slot), side by side in one run, on 1 and on N threads (all
//! threads increment the same counter: the contended case).
//!
//! ```text
//! count-overhead [--threads N] [--calls M]
//! ```
//!
//! Prints one line per thread count: ns per call direct, counted, and the
//! difference (the best of 5 rounds each, interleaved).

use adapt_count::counting_segment;
use adapt_count::generate::FUNCTION_SYMBOL;
use adapt_segment::InProcessVariant;
use std::hint::black_box;
use std::time::Instant;

/// The counted function: a little arithmetic, never inlined.
#[inline(never)]
extern "C" fn original(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ x
}

type F = extern "C" fn(u64) -> u64;

/// ns per call of `f` on `threads` threads, `calls` calls each.
fn per_call(f: F, threads: u64, calls: u64) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut acc = t;
                for i in 0..calls {
                    acc = acc.wrapping_add(f(black_box(i ^ acc)));
                }
                black_box(acc);
            });
        }
    });
    start.elapsed().as_nanos() as f64 / calls as f64
}

fn main() {
    let mut threads = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
    let mut calls = 20_000_000u64;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < args.len() {
        match args[i].as_str() {
            "--threads" => threads = args[i + 1].parse().expect("--threads N"),
            "--calls" => calls = args[i + 1].parse().expect("--calls M"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    let seg = counting_segment(None).expect("the counting segment");
    // SAFETY: `original` has the contract the counter passes through (one
    // integer argument, one integer result) and lives as long as `v`.
    let v = unsafe {
        InProcessVariant::load_with_data(
            &seg.file,
            0,
            &[original as *const () as u64],
            seg.data_len,
        )
    }
    .expect("load the counting segment");
    let addr = v.entry_address(FUNCTION_SYMBOL).expect("its entry");
    // SAFETY: the entry of verified code mapped read+execute that ends in a
    // tail jump to `original`, so it has `original`'s type.
    let counted: F = unsafe { std::mem::transmute::<usize, F>(addr) };
    println!("count-overhead: {calls} calls per thread, best of 5 rounds");
    for n in [1, threads] {
        let (mut direct, mut through) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            direct = direct.min(per_call(original, n, calls));
            through = through.min(per_call(counted, n, calls));
        }
        println!(
            "threads={n} direct_ns={direct:.2} counted_ns={through:.2} overhead_ns={:.2}",
            through - direct
        );
    }
    let c = adapt_count::Counters::parse(v.data()).expect("counters");
    println!("counted_calls={}", c.calls);
}
