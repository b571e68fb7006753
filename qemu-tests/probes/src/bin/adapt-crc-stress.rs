//! A multi-threaded workload that calls zlib's `crc32` and checks every
//! result, for the injector tests and benchmarks.
//!
//! ```text
//! adapt-crc-stress [--threads N] [--seconds S] [--target libz|exe]
//!                  [--max-len BYTES] [--fixed-len BYTES] [--control FIFO]
//! ```
//!
//! Each of N threads (default 8) calls `crc32` on random buffers of random
//! lengths (0..=max-len, default 4096; or always `--fixed-len`) at random
//! alignments with random initial values (and now and then a null buffer),
//! and compares every result with an independent implementation (the
//! `crc32fast` crate). `--target libz` (default) calls the system
//! `libz.so.1`'s `crc32`; `--target exe` calls `adapt_probe_crc32`, a plain
//! table CRC with zlib's contract inside this (PIE) executable.
//!
//! It prints `ready <pid>` once the threads run, and stops after S seconds
//! (default: never), on SIGTERM/SIGINT, or on `stop`. It then prints
//! `calls=… bytes=… wrong=… threads=…` and exits 1 if any result was wrong.
//!
//! With `--control FIFO` (created if missing), it reads commands, one a
//! line:
//! - `stats`: prints `stats calls=… bytes=… wrong=… elapsed_ns=…` (totals
//!   so far).
//! - `wx`: W^X self-check of every `[adapt:…]` mapping of this process:
//!   `mprotect` to read+write and to read+write+execute, and a write
//!   through `/proc/self/mem`, must all fail. Prints one `wx mapping=…` line
//!   per mapping and `wx mappings=N violations=M`.
//! - `fork`: forks a child that keeps calling and checking `crc32` on its
//!   own (single thread) until SIGTERM, then prints `child calls=…
//!   wrong=…` and exits 1 if any was wrong. The parent prints `forked
//!   <child pid>`.
//! - `exec`: re-executes this program with the same arguments (same pid; it
//!   prints `ready <pid> generation=G` again).
//! - `stop`: as SIGTERM.

use adapt_guest_probes::zcrc::{self, Crc32Fn, Rng};
use std::ffi::CString;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// zlib's crc32 contract, implemented plainly inside this executable.
///
/// # Safety
///
/// `buf` is null or points to `len` readable bytes.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn adapt_probe_crc32(crc: u64, buf: *const u8, len: u32) -> u64 {
    // SAFETY: forwarded from the caller.
    unsafe { zcrc::table_crc32(crc, buf, len) }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

#[derive(Clone)]
struct Options {
    threads: usize,
    seconds: Option<f64>,
    target: String,
    max_len: usize,
    fixed_len: Option<usize>,
    control: Option<String>,
    generation: u32,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        threads: 8,
        seconds: None,
        target: "libz".into(),
        max_len: 4096,
        fixed_len: None,
        control: None,
        generation: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--threads" => o.threads = value.parse().map_err(|_| bad())?,
            "--seconds" => o.seconds = Some(value.parse().map_err(|_| bad())?),
            "--target" => o.target = value.clone(),
            "--max-len" => o.max_len = value.parse().map_err(|_| bad())?,
            "--fixed-len" => o.fixed_len = Some(value.parse().map_err(|_| bad())?),
            "--control" => o.control = Some(value.clone()),
            "--generation" => o.generation = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.max_len > u32::MAX as usize / 2 || o.fixed_len.is_some_and(|l| l > u32::MAX as usize / 2) {
        return Err("lengths must fit a uInt".into());
    }
    Ok(o)
}

/// Per-thread totals.
#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    bytes: AtomicU64,
    wrong: AtomicU64,
}

fn target_fn(name: &str) -> Result<Crc32Fn, String> {
    match name {
        "libz" => zcrc::libz_crc32(),
        "exe" => Ok(adapt_probe_crc32 as Crc32Fn),
        "libz-z" => zcrc::libz_crc32_z(),
        other => Err(format!("unknown --target {other} (libz, libz-z or exe)")),
    }
}

/// One checked call; returns whether it was right.
fn checked_call(
    f: Crc32Fn,
    rng: &mut Rng,
    buf: &[u8],
    max_len: usize,
    fixed_len: Option<usize>,
    report: &mut dyn FnMut(String),
) -> (bool, u64) {
    let crc = if rng.below(4) == 0 { 0 } else { rng.next_u64() };
    let null = fixed_len.is_none() && rng.below(256) == 0;
    let len = fixed_len.unwrap_or_else(|| match rng.below(8) {
        0 => rng.below(16) as usize,
        _ => rng.below(max_len as u64 + 1) as usize,
    });
    let start = if fixed_len.is_some() {
        0
    } else {
        rng.below(64) as usize
    };
    let data = &buf[start..start + len];
    let (ptr, expect) = if null {
        (std::ptr::null(), zcrc::reference(crc, None))
    } else {
        (data.as_ptr(), zcrc::reference(crc, Some(data)))
    };
    // Through black_box: a real call of the function's entry every time.
    let f = black_box(f);
    // SAFETY: `ptr` is null or `len` readable bytes of `buf`; `len` fits a
    // u32 (checked by parse).
    let got = unsafe { f(crc, ptr, len as u32) };
    if got != expect {
        report(format!(
            "WRONG crc32(crc={crc:#x}, buf={}, len={len}) = {got:#x}, want {expect:#x}",
            if null {
                "NULL".to_owned()
            } else {
                format!("+{start}")
            }
        ));
        return (false, len as u64);
    }
    (true, len as u64)
}

fn worker(
    f: Crc32Fn,
    seed: u64,
    o: Options,
    counters: Arc<Vec<Counters>>,
    index: usize,
    stop: Arc<AtomicBool>,
) {
    let mut rng = Rng::new(seed);
    let len = o.fixed_len.unwrap_or(o.max_len);
    let mut buf = vec![0u8; len + 64];
    rng.fill(&mut buf);
    let mine = &counters[index];
    let mut reported = 0;
    let mut report = |line: String| {
        if reported < 5 {
            reported += 1;
            println!("{line}");
        }
    };
    while !stop.load(Ordering::Relaxed) && !STOP.load(Ordering::Relaxed) {
        let (ok, bytes) = checked_call(f, &mut rng, &buf, o.max_len, o.fixed_len, &mut report);
        mine.calls.fetch_add(1, Ordering::Relaxed);
        mine.bytes.fetch_add(bytes, Ordering::Relaxed);
        if !ok {
            mine.wrong.fetch_add(1, Ordering::Relaxed);
        }
        // Keep the data changing.
        let i = rng.below(buf.len() as u64) as usize;
        buf[i] = rng.next_u64() as u8;
    }
}

fn totals(counters: &[Counters]) -> (u64, u64, u64) {
    counters.iter().fold((0, 0, 0), |(c, b, w), x| {
        (
            c + x.calls.load(Ordering::Relaxed),
            b + x.bytes.load(Ordering::Relaxed),
            w + x.wrong.load(Ordering::Relaxed),
        )
    })
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("adapt-crc-stress: {msg}");
            std::process::exit(2);
        }
    };
    let f = match target_fn(&o.target) {
        Ok(f) => f,
        Err(msg) => {
            eprintln!("adapt-crc-stress: {msg}");
            std::process::exit(2);
        }
    };
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_stop_signal as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_stop_signal as *const () as libc::sighandler_t,
        );
    }
    let counters: Arc<Vec<Counters>> =
        Arc::new((0..o.threads).map(|_| Counters::default()).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..o.threads)
        .map(|i| {
            let (o, counters, stop) = (o.clone(), counters.clone(), stop.clone());
            let seed =
                u64::from(std::process::id()) << 20 ^ i as u64 ^ u64::from(o.generation) << 40;
            std::thread::spawn(move || worker(f, seed, o, counters, i, stop))
        })
        .collect();
    let start = Instant::now();
    if o.generation == 0 {
        println!("ready {}", std::process::id());
    } else {
        println!("ready {} generation={}", std::process::id(), o.generation);
    }
    let _ = std::io::stdout().flush();

    let deadline = o.seconds.map(|s| start + Duration::from_secs_f64(s));
    match &o.control {
        Some(path) => control_loop(path, &o, f, &counters, start, deadline),
        None => {
            while !STOP.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let (calls, bytes, wrong) = totals(&counters);
    println!(
        "calls={calls} bytes={bytes} wrong={wrong} threads={} seconds={:.3}",
        o.threads,
        start.elapsed().as_secs_f64()
    );
    std::process::exit(if wrong == 0 && calls > 0 { 0 } else { 1 });
}

/// Reads commands from the FIFO until `stop`, a signal or the deadline.
fn control_loop(
    path: &str,
    o: &Options,
    f: Crc32Fn,
    counters: &[Counters],
    start: Instant,
    deadline: Option<Instant>,
) {
    let c_path = match CString::new(path) {
        Ok(p) => p,
        Err(_) => return,
    };
    // SAFETY: `c_path` is a valid C string; EEXIST is fine.
    unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    // O_RDWR keeps a writer open ourselves, so the FIFO never reports EOF
    // between two `echo cmd > fifo`.
    let fifo = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("adapt-crc-stress: cannot open control FIFO {path}: {e}");
            STOP.store(true, Ordering::Relaxed);
            return;
        }
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&fifo);
    let mut lines = BufReader::new(fifo);
    loop {
        if STOP.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 50) };
        if ready <= 0 {
            continue;
        }
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap_or(0) == 0 {
            continue;
        }
        match line.trim() {
            "stats" => {
                let (calls, bytes, wrong) = totals(counters);
                println!(
                    "stats calls={calls} bytes={bytes} wrong={wrong} elapsed_ns={}",
                    start.elapsed().as_nanos()
                );
            }
            "wx" => wx_probe(),
            "fork" => fork_child(f, o),
            "exec" => reexec(o),
            "stop" => return,
            "" => {}
            other => println!("unknown command {other:?}"),
        }
        let _ = std::io::stdout().flush();
    }
}

/// W^X self-check of every `[adapt:…]` mapping (see the module
/// documentation).
fn wx_probe() {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem");
    let (mut mappings, mut violations) = (0, 0);
    for line in maps.lines().filter(|l| l.contains("[adapt:")) {
        mappings += 1;
        let mut fields = line.split_whitespace();
        let (range, perms) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        let name = line.rsplit(' ').next().unwrap_or("");
        let Some((start, end)) = range.split_once('-').and_then(|(a, b)| {
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        }) else {
            continue;
        };
        let len = (end - start) as usize;
        let original = if perms.contains('x') {
            libc::PROT_READ | libc::PROT_EXEC
        } else {
            libc::PROT_READ
        };
        let mut try_prot = |prot: i32| -> String {
            // SAFETY: mprotect on a mapping of this process; if it is
            // (wrongly) allowed, the original protection is put back at once
            // and the violation reported.
            let ret = unsafe { libc::mprotect(start as *mut libc::c_void, len, prot) };
            if ret == 0 {
                // SAFETY: as above.
                unsafe { libc::mprotect(start as *mut libc::c_void, len, original) };
                violations += 1;
                "ALLOWED".to_owned()
            } else {
                format!("refused({})", std::io::Error::last_os_error())
            }
        };
        let rw = try_prot(libc::PROT_READ | libc::PROT_WRITE);
        let rwx = try_prot(libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC);
        let write = match &mem {
            Ok(mem) => {
                let mut byte = [0u8];
                match mem.read_at(&mut byte, start) {
                    Ok(_) => match mem.write_at(&byte, start) {
                        Ok(0) => "refused(0 bytes)".to_owned(),
                        Ok(_) => {
                            violations += 1;
                            "ALLOWED".to_owned()
                        }
                        Err(e) => format!("refused({e})"),
                    },
                    Err(e) => format!("unreadable({e})"),
                }
            }
            Err(e) => format!("no-proc-mem({e})"),
        };
        if perms.as_bytes().get(1) == Some(&b'w') {
            violations += 1;
        }
        println!("wx mapping={name} perms={perms} mprotect_rw={rw} mprotect_rwx={rwx} procmem_write={write}");
    }
    println!("wx mappings={mappings} violations={violations}");
}

static CHILD_STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_child_stop(_: libc::c_int) {
    CHILD_STOP.store(true, Ordering::Relaxed);
}

/// Forks a single-threaded checker (see the module documentation).
fn fork_child(f: Crc32Fn, o: &Options) {
    let len = o.fixed_len.unwrap_or(o.max_len);
    let mut buf = vec![0u8; len + 64];
    let mut rng = Rng::new(u64::from(std::process::id()) ^ 0xc41d);
    rng.fill(&mut buf);
    let _ = std::io::stdout().flush();
    // SAFETY: the child only runs code that needs no lock another thread
    // of the parent could have held at the fork: arithmetic on memory
    // allocated before, signal(), write(2) and _exit().
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        if pid < 0 {
            println!("fork failed: {}", std::io::Error::last_os_error());
        } else {
            println!("forked {pid}");
        }
        return;
    }
    // SAFETY: async-signal-safe handler (an atomic store).
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_child_stop as *const () as libc::sighandler_t,
        )
    };
    let (mut calls, mut wrong) = (0u64, 0u64);
    let mut nothing = |_line: String| {};
    while !CHILD_STOP.load(Ordering::Relaxed) {
        let (ok, _) = checked_call(f, &mut rng, &buf, o.max_len, o.fixed_len, &mut nothing);
        calls += 1;
        wrong += u64::from(!ok);
    }
    let line = format!("child calls={calls} wrong={wrong}\n");
    // SAFETY: write(2) of a valid buffer to stdout, then _exit: no stdio
    // lock, no atexit handlers of the parent's threads.
    unsafe {
        libc::write(1, line.as_ptr().cast(), line.len());
        libc::_exit(if wrong == 0 && calls > 0 { 0 } else { 1 });
    }
}

/// Re-executes this program with the same options, one generation later.
fn reexec(o: &Options) {
    let exe = match std::fs::read_link("/proc/self/exe") {
        Ok(p) => p,
        Err(e) => {
            println!("exec failed: {e}");
            return;
        }
    };
    let mut args: Vec<String> = vec![
        "adapt-crc-stress".into(),
        "--threads".into(),
        o.threads.to_string(),
        "--target".into(),
        o.target.clone(),
        "--max-len".into(),
        o.max_len.to_string(),
        "--generation".into(),
        (o.generation + 1).to_string(),
    ];
    if let Some(l) = o.fixed_len {
        args.extend(["--fixed-len".into(), l.to_string()]);
    }
    if let Some(c) = &o.control {
        args.extend(["--control".into(), c.clone()]);
    }
    println!("exec generation={}", o.generation + 1);
    let _ = std::io::stdout().flush();
    let Ok(path) = CString::new(exe.as_os_str().as_bytes()) else {
        return;
    };
    let c_args: Vec<CString> = args
        .iter()
        .filter_map(|a| CString::new(a.as_str()).ok())
        .collect();
    let mut argv: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: `path` and every argv entry are valid C strings that outlive
    // the call, and argv is NULL-terminated.
    unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
    println!("exec failed: {}", std::io::Error::last_os_error());
}
