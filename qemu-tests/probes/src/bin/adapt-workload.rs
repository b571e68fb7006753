//! CPU-bound workloads whose time split is known by construction, for the
//! profiler tests and benchmarks.
//!
//! `adapt-workload split [--seconds S] [--threads N] [--late-threads M]
//! [--late-after-ms T]`: every worker thread loops over three functions doing
//! 7, 2 and 1 units of the same work: `adapt_work_hot` ≈ 70 %,
//! `adapt_work_warm` ≈ 20 %, `adapt_work_cool` ≈ 10 % of the CPU time. After
//! T ms, M more threads start running `adapt_work_late` only.
//!
//! `adapt-workload spin [--seconds S]`: one thread in `adapt_work_hot`;
//! prints the units done per second at the end (for overhead benchmarks).
//!
//! Both print `ready <pid>` once the workers run, `rate <units/s>` every
//! second, and exit after S seconds.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One unit of work: ~a few hundred thousand cycles of integer mixing.
#[inline(always)]
fn unit(seed: u64) -> u64 {
    let mut x = seed;
    for i in 0..20_000u64 {
        x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ i;
    }
    x
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn adapt_work_hot(units: u64) -> u64 {
    (0..units).fold(1, |acc, _| unit(black_box(acc ^ 0x1111)))
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn adapt_work_warm(units: u64) -> u64 {
    (0..units).fold(2, |acc, _| unit(black_box(acc ^ 0x2222)))
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn adapt_work_cool(units: u64) -> u64 {
    (0..units).fold(3, |acc, _| unit(black_box(acc ^ 0x3333)))
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn adapt_work_late(units: u64) -> u64 {
    (0..units).fold(4, |acc, _| unit(black_box(acc ^ 0x4444)))
}

struct Options {
    mode: String,
    seconds: f64,
    threads: usize,
    late_threads: usize,
    late_after_ms: u64,
}

fn parse() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mode = args
        .next()
        .ok_or("usage: adapt-workload split|spin [options]")?;
    let mut o = Options {
        mode,
        seconds: 5.0,
        threads: 1,
        late_threads: 0,
        late_after_ms: 1000,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--seconds" => o.seconds = value.parse().map_err(|_| bad())?,
            "--threads" => o.threads = value.parse().map_err(|_| bad())?,
            "--late-threads" => o.late_threads = value.parse().map_err(|_| bad())?,
            "--late-after-ms" => o.late_after_ms = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("adapt-workload: {msg}");
            std::process::exit(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let spawn = |f: fn(&AtomicBool, &AtomicU64)| {
        let (stop, done) = (stop.clone(), done.clone());
        std::thread::spawn(move || f(&stop, &done))
    };
    let mut workers = Vec::new();
    match o.mode.as_str() {
        "split" => {
            for _ in 0..o.threads {
                workers.push(spawn(split_worker));
            }
        }
        "spin" => workers.push(spawn(spin_worker)),
        other => {
            eprintln!("adapt-workload: unknown mode {other} (split or spin)");
            std::process::exit(2);
        }
    }
    println!("ready {}", std::process::id());
    let start = Instant::now();
    if o.late_threads > 0 {
        std::thread::sleep(Duration::from_millis(o.late_after_ms));
        for _ in 0..o.late_threads {
            workers.push(spawn(late_worker));
        }
        println!("late threads started");
    }
    let total = Duration::from_secs_f64(o.seconds);
    // One throughput line per second, for benchmarks that compare phases.
    let mut last = (Instant::now(), done.load(Ordering::Relaxed));
    while start.elapsed() < total {
        std::thread::sleep(Duration::from_secs(1).min(total.saturating_sub(start.elapsed())));
        let now = (Instant::now(), done.load(Ordering::Relaxed));
        let secs = now.0.duration_since(last.0).as_secs_f64();
        if secs >= 0.5 {
            println!("rate {:.1} units/s", (now.1 - last.1) as f64 / secs);
        }
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let units = done.load(Ordering::Relaxed);
    println!(
        "done {} units in {:.3} s: {:.1} units/s",
        units,
        start.elapsed().as_secs_f64(),
        units as f64 / start.elapsed().as_secs_f64()
    );
}

fn split_worker(stop: &AtomicBool, done: &AtomicU64) {
    while !stop.load(Ordering::Relaxed) {
        black_box(adapt_work_hot(7));
        black_box(adapt_work_warm(2));
        black_box(adapt_work_cool(1));
        done.fetch_add(10, Ordering::Relaxed);
    }
}

fn spin_worker(stop: &AtomicBool, done: &AtomicU64) {
    while !stop.load(Ordering::Relaxed) {
        black_box(adapt_work_hot(1));
        done.fetch_add(1, Ordering::Relaxed);
    }
}

fn late_worker(stop: &AtomicBool, done: &AtomicU64) {
    while !stop.load(Ordering::Relaxed) {
        black_box(adapt_work_late(1));
        done.fetch_add(1, Ordering::Relaxed);
    }
}
