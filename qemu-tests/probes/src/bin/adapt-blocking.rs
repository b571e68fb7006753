//! A target whose function blocks inside its first bytes:
//! `adapt_probe_blocking_read(fd, buf, len)` is `read(2)` written as
//! `xor eax, eax; syscall; nop; ret`, so the `syscall` lies in the 5 bytes
//! an injection displaces. Once a segment that tail-jumps to `fallback` is
//! injected, a thread calling it blocks with its instruction pointer (and
//! restart address) inside the trampoline: the rendezvous must not retire
//! that trampoline under it (issue 12).
//!
//! adapt-blocking reads commands from stdin, one a line: `call` starts a
//! thread that reads one byte from an internal pipe through
//! `adapt_probe_blocking_read` (it blocks until `release`) and prints
//! `returned=N`; `release` writes one byte into the pipe. It prints `ready`
//! at start and exits at the end of its input.

use std::io::{BufRead, Write};

std::arch::global_asm!(
    ".globl adapt_probe_blocking_read",
    ".type adapt_probe_blocking_read,@function",
    ".p2align 4",
    "adapt_probe_blocking_read:",
    "xor eax, eax",
    "syscall",
    "nop",
    "ret",
    ".size adapt_probe_blocking_read, .-adapt_probe_blocking_read",
);

extern "C" {
    /// `read(fd, buf, len)` through the system call in its entry.
    fn adapt_probe_blocking_read(fd: i32, buf: *mut u8, len: usize) -> isize;
}

fn main() {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        eprintln!("pipe failed");
        std::process::exit(1);
    }
    let (rd, wr) = (fds[0], fds[1]);
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut threads = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "call" => threads.push(std::thread::spawn(move || {
                let mut byte = 0u8;
                // SAFETY: one writable byte; `rd` stays open for the life
                // of the process.
                let n = unsafe { adapt_probe_blocking_read(rd, &mut byte, 1) };
                println!("returned={n}");
                let _ = std::io::stdout().flush();
            })),
            "release" => {
                // SAFETY: writes one byte from a valid buffer into the pipe.
                let _ = unsafe { libc::write(wr, [1u8].as_ptr().cast(), 1) };
            }
            _ => {}
        }
    }
    for t in threads {
        let _ = t.join();
    }
}
