//! A target that counts its own calls, for `adaptctl calls` (issue 12 §2).
//!
//! ```text
//! adapt-call-counter --threads N --control FIFO [--target libz|exe-branch|exe-riprel]
//! ```
//!
//! `--target` picks the function called: the system zlib's `crc32_z`
//! (default), or one of two functions of this (PIE) executable with the
//! same contract whose entries the relocator must handle:
//! `adapt_probe_crc_branch` starts with `test rdx, rdx; jz <short>` (a
//! short branch in the 5 patched bytes), `adapt_probe_crc_riprel` with
//! `mov rax, [rip + d]` (a RIP-relative load of a zero it XORs into
//! `crc`); both then jump to a plain table CRC.
//!
//! N threads (default 8) wait for a command on the control FIFO (created
//! if missing), one a line:
//! - `run K`: every thread calls the target function `(crc, buf, len)`
//!   exactly K times, with `len` taken in turn from a fixed list spanning
//!   many log2 buckets (0, 1, 3, 64, 100, 1000, 4096, 70000), checks every
//!   result against an independent CRC-32, and the program prints, once all
//!   threads are done, `done calls=… wrong=… hist=B:C,…` (`B` the log2
//!   bucket of `len` as `adaptctl calls` numbers them: 0 for 0, else
//!   1 + floor(log2 len); `C` the calls with it).
//! - `stop`: prints `calls=… wrong=…` and exits (1 if any result was
//!   wrong).
//!
//! It prints `ready <pid>` when the threads wait. Between commands no
//! thread calls `crc32_z`, so an injection made while it waits sees exactly
//! the calls of the next `run`.

use adapt_guest_probes::zcrc::{self, Rng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Barrier, Mutex};

const LENGTHS: [usize; 8] = [0, 1, 3, 64, 100, 1000, 4096, 70000];

/// The table CRC the executable's functions end in (zlib's `crc32_z`
/// contract).
///
/// # Safety
///
/// `buf` is null or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn adapt_probe_crc_body(crc: u64, buf: *const u8, len: usize) -> u64 {
    // SAFETY: forwarded from the caller; lengths here fit a u32.
    unsafe { zcrc::table_crc32(crc, buf, len as u32) }
}

/// What `adapt_probe_crc_riprel` loads RIP-relative and XORs into `crc`
/// (zero: a relocation that read anything else gives wrong results).
#[no_mangle]
pub static ADAPT_PROBE_CRC_MASK: u64 = 0;

// Two entries the relocator must rewrite: a short conditional branch
// inside the patched bytes, and a RIP-relative load as the first
// instruction. `len == 0` returns `crc` as zlib does for a real buffer.
std::arch::global_asm!(
    ".globl adapt_probe_crc_branch",
    ".type adapt_probe_crc_branch,@function",
    "adapt_probe_crc_branch:",
    "test rdx, rdx",
    "jz 2f",
    "jmp {body}",
    "2:",
    "mov rax, rdi",
    "ret",
    ".size adapt_probe_crc_branch, . - adapt_probe_crc_branch",
    ".globl adapt_probe_crc_riprel",
    ".type adapt_probe_crc_riprel,@function",
    "adapt_probe_crc_riprel:",
    "mov rax, qword ptr [rip + {mask}]",
    "xor rdi, rax",
    "jmp {body}",
    ".size adapt_probe_crc_riprel, . - adapt_probe_crc_riprel",
    body = sym adapt_probe_crc_body,
    mask = sym ADAPT_PROBE_CRC_MASK,
);

extern "C" {
    fn adapt_probe_crc_branch(crc: u64, buf: *const u8, len: usize) -> u64;
    fn adapt_probe_crc_riprel(crc: u64, buf: *const u8, len: usize) -> u64;
}

type CrcZ = unsafe extern "C" fn(u64, *const u8, usize) -> u64;

/// zlib's `crc32_z` through the probes' `u32`-length wrapper.
unsafe extern "C" fn libz(crc: u64, buf: *const u8, len: usize) -> u64 {
    static F: std::sync::OnceLock<zcrc::Crc32Fn> = std::sync::OnceLock::new();
    let f = F.get_or_init(|| zcrc::libz_crc32_z().expect("libz crc32_z"));
    // SAFETY: forwarded; lengths here fit a u32.
    unsafe { f(crc, buf, len as u32) }
}

fn bucket(v: u64) -> u32 {
    if v == 0 {
        0
    } else {
        64 - v.leading_zeros()
    }
}

/// What the threads share: the current command and the totals.
struct Shared {
    /// Calls each thread makes in this round (0: stop).
    per_thread: Mutex<u64>,
    calls: Mutex<u64>,
    wrong: Mutex<u64>,
    hist: Mutex<BTreeMap<u32, u64>>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut threads = 8usize;
    let mut control = None;
    let mut target = "libz".to_owned();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--threads" => threads = value.parse().expect("--threads N"),
            "--control" => control = Some(value),
            "--target" => target = value,
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    let control = control.expect("--control FIFO");
    let path = std::ffi::CString::new(control.clone()).expect("a path");
    // SAFETY: a valid C string; an existing FIFO is fine (EEXIST).
    unsafe { libc::mkfifo(path.as_ptr(), 0o600) };
    let crc32_z: CrcZ = match target.as_str() {
        "libz" => libz,
        "exe-branch" => adapt_probe_crc_branch,
        "exe-riprel" => adapt_probe_crc_riprel,
        other => panic!("unknown --target {other}"),
    };
    // Resolved (dlopen) before the threads wait: no lazy work while counted.
    // SAFETY: a null buffer of length 0 is allowed by the contract.
    unsafe { crc32_z(0, std::ptr::null(), 0) };

    let shared = Arc::new(Shared {
        per_thread: Mutex::new(0),
        calls: Mutex::new(0),
        wrong: Mutex::new(0),
        hist: Mutex::new(BTreeMap::new()),
    });
    // Every round: all threads and main meet at `start`, run, meet at `end`.
    let start = Arc::new(Barrier::new(threads + 1));
    let end = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::new();
    for t in 0..threads {
        let (shared, start, end) = (shared.clone(), start.clone(), end.clone());
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng::new(t as u64 + 1);
            let mut buf = vec![0u8; LENGTHS[LENGTHS.len() - 1] + 64];
            rng.fill(&mut buf);
            loop {
                start.wait();
                let k = *shared.per_thread.lock().unwrap();
                if k == 0 {
                    end.wait();
                    return;
                }
                let (mut wrong, mut hist) = (0u64, BTreeMap::<u32, u64>::new());
                for n in 0..k {
                    let len = LENGTHS[((n + t as u64) % LENGTHS.len() as u64) as usize];
                    let off = rng.below(64) as usize;
                    let data = &buf[off..off + len];
                    let crc = rng.next_u64() & 0xffff_ffff;
                    // SAFETY: `data` is `len` readable bytes.
                    let got = unsafe { crc32_z(crc, data.as_ptr(), len) };
                    if got != zcrc::reference(crc, Some(data)) {
                        wrong += 1;
                    }
                    *hist.entry(bucket(len as u64)).or_default() += 1;
                }
                *shared.calls.lock().unwrap() += k;
                *shared.wrong.lock().unwrap() += wrong;
                let mut all = shared.hist.lock().unwrap();
                for (b, c) in hist {
                    *all.entry(b).or_default() += c;
                }
                drop(all);
                end.wait();
            }
        }));
    }
    println!("ready {}", std::process::id());
    std::io::stdout().flush().ok();

    loop {
        let file = std::fs::File::open(&control).expect("open the control FIFO");
        for line in BufReader::new(file).lines() {
            let line = line.unwrap_or_default();
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("run"), Some(k)) => {
                    let k: u64 = k.parse().expect("run K");
                    *shared.per_thread.lock().unwrap() = k.max(1);
                    shared.hist.lock().unwrap().clear();
                    let before = *shared.calls.lock().unwrap();
                    start.wait();
                    end.wait();
                    let calls = *shared.calls.lock().unwrap() - before;
                    let hist: Vec<String> = shared
                        .hist
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(b, c)| format!("{b}:{c}"))
                        .collect();
                    println!(
                        "done calls={calls} wrong={} hist={}",
                        shared.wrong.lock().unwrap(),
                        hist.join(",")
                    );
                    std::io::stdout().flush().ok();
                }
                (Some("stop"), _) => {
                    *shared.per_thread.lock().unwrap() = 0;
                    start.wait();
                    end.wait();
                    for h in handles {
                        h.join().expect("thread");
                    }
                    let wrong = *shared.wrong.lock().unwrap();
                    println!("calls={} wrong={wrong}", shared.calls.lock().unwrap());
                    std::process::exit(i32::from(wrong != 0));
                }
                _ => {}
            }
        }
    }
}
