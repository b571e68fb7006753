//! Target programs that make the injector's life hard, for the patch
//! protocol tests (`qemu-tests/tests/protocol.rs`).
//!
//! ```text
//! adapt-hostile MODE [--seconds S]
//! ```
//!
//! Every mode calls the system `libz.so.1`'s `crc32` (dlopen'ed) and checks
//! each result against an independent implementation, prints
//! `ready pid=<pid> crc32=<address>` once it runs, and on SIGTERM (or after
//! S seconds) prints `calls=N wrong=M` and exits 1 if any result was wrong.
//!
//! | mode | what it does |
//! |---|---|
//! | `idle` | calls nothing after the first call; sleeps (a target whose bytes a test may change) |
//! | `sigalrm` | one thread calls `crc32` on 64 KiB buffers while a 10 ms `SIGALRM` interval timer interrupts it; the handler sleeps 5 ms, so half the time the interrupted context (often inside the function) waits in a signal frame |
//! | `remap FILE` | calls `crc32` until `SIGUSR1`; then `dlclose`s libz (unmapping it) and maps FILE shared and writable over the page that held `crc32`; prints `remapped addr=<page>`, then idles |
//! | `clone-vm` | starts a process with `clone(CLONE_VM)` (not a thread: same memory, other thread group) that calls `crc32` too; prints `sharer pid=<pid>` |
//! | `leader-exit` | a worker thread calls `crc32`; the main thread exits alone (as `pthread_exit` does) |
//! | `exec-loop N` | calls `crc32` for a moment, then execs itself, N times (`ready` each time, with `generation=G`); the last generation calls `crc32` until SIGTERM |
//! | `epoll` | besides a `crc32` thread, a thread blocks in `epoll_wait` with no timeout and counts how often it returns `EINTR`; the summary adds `eintr=N` |
//! | `fd-pass` | opens `/dev/adapt` as root, forks a child that drops to uid/gid 65534 and tries every ioctl with the inherited descriptor; prints `ioctl NAME errno=E` per command (no `ready`) |

use adapt_abi as abi;
use adapt_guest_probes::zcrc::{self, Crc32Fn, Rng};
use std::ffi::CString;
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);
static USR1: AtomicBool = AtomicBool::new(false);
static CALLS: AtomicU64 = AtomicU64::new(0);
static WRONG: AtomicU64 = AtomicU64::new(0);
static EINTRS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

extern "C" fn on_usr1(_: libc::c_int) {
    USR1.store(true, Ordering::Relaxed);
}

extern "C" fn on_alarm(_: libc::c_int) {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 5_000_000,
    };
    // SAFETY: nanosleep is async-signal-safe; `ts` is a valid timespec.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

fn handle(sig: libc::c_int, f: extern "C" fn(libc::c_int), restart: bool) {
    // SAFETY: installs a handler that only touches atomics or calls
    // async-signal-safe functions; `sa` is fully initialized.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = f as usize;
        sa.sa_flags = if restart { libc::SA_RESTART } else { 0 };
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// Calls `crc` on a random buffer of up to `max` bytes and checks it.
fn check_once(crc: Crc32Fn, rng: &mut Rng, buf: &mut [u8], max: usize) {
    let len = rng.below(max as u64 + 1) as usize;
    let data = &mut buf[..len];
    rng.fill(data);
    let init = rng.next_u64() & 0xffff_ffff;
    // SAFETY: `data` is valid for `len` bytes; crc32 reads only those.
    let got = unsafe { crc(init, black_box(data.as_ptr()), len as u32) };
    if got != zcrc::reference(init, Some(data)) {
        WRONG.fetch_add(1, Ordering::Relaxed);
        println!("WRONG len={len} init={init:#x} got={got:#x}");
    }
    CALLS.fetch_add(1, Ordering::Relaxed);
}

fn call_loop(crc: Crc32Fn, seed: u64, max: usize, until: &AtomicBool) {
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; max];
    while !STOP.load(Ordering::Relaxed) && !until.load(Ordering::Relaxed) {
        check_once(crc, &mut rng, &mut buf, max);
    }
}

fn summary(extra: &str) -> ! {
    let wrong = WRONG.load(Ordering::Relaxed);
    println!(
        "calls={} wrong={wrong}{extra}",
        CALLS.load(Ordering::Relaxed)
    );
    let _ = std::io::stdout().flush();
    std::process::exit(i32::from(wrong != 0));
}

fn ready(crc: Crc32Fn, extra: &str) {
    println!(
        "ready pid={} crc32={:#x}{extra}",
        std::process::id(),
        crc as usize
    );
    let _ = std::io::stdout().flush();
}

fn wait_stop(deadline: Option<Instant>) {
    while !STOP.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<f64>().ok());
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
    handle(libc::SIGTERM, on_stop, true);
    handle(libc::SIGINT, on_stop, true);
    let never = AtomicBool::new(false);
    if mode == "fd-pass" {
        fd_pass();
    }
    let crc = zcrc::libz_crc32().unwrap_or_else(|e| {
        eprintln!("adapt-hostile: {e}");
        std::process::exit(2)
    });
    match mode {
        "idle" => {
            let mut rng = Rng::new(1);
            check_once(crc, &mut rng, &mut [0u8; 64], 64);
            ready(crc, "");
            wait_stop(deadline);
            summary("");
        }
        "sigalrm" => {
            handle(libc::SIGALRM, on_alarm, true);
            let every = libc::timeval {
                tv_sec: 0,
                tv_usec: 10_000,
            };
            let timer = libc::itimerval {
                it_interval: every,
                it_value: every,
            };
            ready(crc, "");
            // SAFETY: a valid itimerval; ITIMER_REAL delivers SIGALRM.
            unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) };
            let stopper = std::thread::spawn(move || {
                wait_stop(deadline);
                STOP.store(true, Ordering::Relaxed);
            });
            call_loop(crc, 7, 64 * 1024, &never);
            let _ = stopper.join();
            summary("");
        }
        "remap" => remap(crc, args.get(1).map(String::as_str), deadline),
        "clone-vm" => clone_vm(crc, deadline),
        "leader-exit" => {
            ready(crc, "");
            std::thread::spawn(move || {
                let never = AtomicBool::new(false);
                let worker = std::thread::spawn(move || call_loop(crc, 3, 4096, &never));
                wait_stop(deadline);
                STOP.store(true, Ordering::Relaxed);
                let _ = worker.join();
                summary("");
            });
            // SAFETY: ends the main thread only (the raw exit system call,
            // as pthread_exit does in the kernel, without unwinding through
            // Rust frames); the process lives on in the threads above, which
            // end it with exit().
            unsafe { libc::syscall(libc::SYS_exit, 0) };
            unreachable!("SYS_exit returned");
        }
        "exec-loop" => {
            let left: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
            let generation: u32 = std::env::var("ADAPT_HOSTILE_GEN")
                .ok()
                .and_then(|g| g.parse().ok())
                .unwrap_or(0);
            ready(crc, &format!(" generation={generation}"));
            let until = AtomicBool::new(false);
            std::thread::scope(|s| {
                s.spawn(|| call_loop(crc, u64::from(generation) + 11, 4096, &until));
                std::thread::sleep(Duration::from_millis(150));
                until.store(true, Ordering::Relaxed);
            });
            if generation + 1 >= left || STOP.load(Ordering::Relaxed) {
                println!("last generation={generation}");
                let _ = std::io::stdout().flush();
                let never = AtomicBool::new(false);
                call_loop(crc, 17, 4096, &never);
                summary(&format!(" generation={generation}"));
            }
            if WRONG.load(Ordering::Relaxed) != 0 {
                summary(&format!(" generation={generation}"));
            }
            let exe = std::fs::read_link("/proc/self/exe").expect("own executable");
            let exe = CString::new(exe.as_os_str().as_encoded_bytes()).expect("path");
            let argv0 = CString::new("adapt-hostile").unwrap();
            let a1 = CString::new("exec-loop").unwrap();
            let a2 = CString::new(left.to_string()).unwrap();
            let env = CString::new(format!("ADAPT_HOSTILE_GEN={}", generation + 1)).unwrap();
            let argv = [argv0.as_ptr(), a1.as_ptr(), a2.as_ptr(), std::ptr::null()];
            let envp = [env.as_ptr(), std::ptr::null()];
            // SAFETY: NUL-terminated argument and environment arrays of
            // valid C strings, alive across the call.
            unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            eprintln!(
                "adapt-hostile: execve failed: {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(2);
        }
        "epoll" => {
            ready(crc, "");
            std::thread::spawn(|| {
                // SAFETY: plain epoll calls on descriptors owned here.
                unsafe {
                    let ep = libc::epoll_create1(0);
                    let mut events: [libc::epoll_event; 1] = std::mem::zeroed();
                    loop {
                        let n = libc::epoll_wait(ep, events.as_mut_ptr(), 1, -1);
                        if n < 0
                            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
                        {
                            EINTRS.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
            let worker =
                std::thread::spawn(move || call_loop(crc, 5, 4096, &AtomicBool::new(false)));
            wait_stop(deadline);
            STOP.store(true, Ordering::Relaxed);
            let _ = worker.join();
            summary(&format!(" eintr={}", EINTRS.load(Ordering::Relaxed)));
        }
        other => {
            eprintln!("adapt-hostile: unknown mode {other:?} (see the source's table)");
            std::process::exit(2);
        }
    }
}

fn remap(crc: Crc32Fn, file: Option<&str>, deadline: Option<Instant>) -> ! {
    let file = file.unwrap_or_else(|| {
        eprintln!("adapt-hostile: remap needs a FILE");
        std::process::exit(2)
    });
    handle(libc::SIGUSR1, on_usr1, true);
    ready(crc, "");
    call_loop(crc, 9, 4096, &USR1);
    if STOP.load(Ordering::Relaxed) {
        summary("");
    }
    let page = (crc as usize) & !4095;
    let lib = CString::new("libz.so.1").unwrap();
    // SAFETY: dlopen/dlclose pairs on libz: the handle from this dlopen and
    // the one zcrc kept are both closed, so libz is unmapped. Nothing calls
    // `crc` after this point.
    unsafe {
        let handle = libc::dlopen(lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        libc::dlclose(handle);
        libc::dlclose(handle);
    }
    let path = CString::new(file).unwrap();
    // SAFETY: maps a file we opened read-write, shared, at a page this
    // process no longer uses (libz was just unmapped; MAP_FIXED_NOREPLACE
    // fails rather than clobber anything).
    let addr = unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDWR);
        if fd < 0 {
            eprintln!(
                "adapt-hostile: open {file}: {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(2);
        }
        libc::mmap(
            page as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
            fd,
            0,
        )
    };
    if addr as usize != page {
        println!(
            "remap failed addr={addr:?} error={} (libz still mapped?)",
            std::io::Error::last_os_error()
        );
    } else {
        println!("remapped addr={page:#x}");
    }
    let _ = std::io::stdout().flush();
    wait_stop(deadline);
    summary("");
}

fn clone_vm(crc: Crc32Fn, deadline: Option<Instant>) -> ! {
    extern "C" fn sharer(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the function pointer passed by `clone_vm`.
        let crc: Crc32Fn = unsafe { std::mem::transmute::<*mut libc::c_void, Crc32Fn>(arg) };
        let mut rng = Rng::new(99);
        let mut buf = [0u8; 1024];
        // Shares our memory: uses only the atomics and its own stack.
        while !STOP.load(Ordering::Relaxed) {
            check_once(crc, &mut rng, &mut buf, 1024);
        }
        0
    }
    let mut stack = vec![0u8; 1 << 20];
    // SAFETY: the child runs `sharer` on `stack` (kept alive below, top of
    // the allocation, 16-byte aligned) in our address space; it touches
    // only atomics and its own frame.
    let child = unsafe {
        let top = stack.as_mut_ptr().add(stack.len()) as usize & !15;
        libc::clone(
            sharer,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::SIGCHLD,
            crc as *mut libc::c_void,
        )
    };
    if child < 0 {
        eprintln!("adapt-hostile: clone: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    ready(crc, &format!(" sharer={child}"));
    let never = AtomicBool::new(false);
    let worker = std::thread::spawn(move || call_loop(crc, 13, 4096, &never));
    wait_stop(deadline);
    STOP.store(true, Ordering::Relaxed);
    let _ = worker.join();
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    drop(stack);
    summary("");
}

/// The inherited descriptor in an unprivileged child: every command but
/// VERSION must be refused with EPERM.
fn fd_pass() -> ! {
    let path = CString::new("/dev/adapt").unwrap();
    // SAFETY: plain open of the device node.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR) };
    if fd < 0 {
        eprintln!(
            "adapt-hostile: open /dev/adapt: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(2);
    }
    // SAFETY: fork in a single-threaded process; the child only makes
    // system calls and prints.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: drops every privilege of this child process.
        let dropped = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setgid(65534) == 0
                && libc::setuid(65534) == 0
        };
        if !dropped {
            println!("drop failed: {}", std::io::Error::last_os_error());
            std::process::exit(2);
        }
        let mut policy = abi::AdaptPolicy::default();
        let mut version = abi::AdaptVersion::default();
        let mut load = abi::AdaptLibraryLoad::default();
        let mut revert = abi::AdaptRevert {
            id: 1,
            ..Default::default()
        };
        let mut list = abi::AdaptInjectionList::default();
        let mut start = abi::AdaptProfileStart {
            pid: 1,
            ..Default::default()
        };
        let mut libs = abi::AdaptLibraryList::default();
        let mut inject = abi::AdaptInject {
            pid: 1,
            ..Default::default()
        };
        fn call<T>(fd: libc::c_int, name: &str, cmd: u32, arg: &mut T) {
            // SAFETY: `arg` is the argument type of `cmd` (see abi.rs).
            let ret = unsafe { libc::ioctl(fd, cmd as _, arg as *mut T) };
            let errno = if ret < 0 {
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
            } else {
                0
            };
            println!("ioctl {name} errno={errno}");
        }
        call(fd, "version", abi::ADAPT_IOC_VERSION, &mut version);
        call(fd, "policy-get", abi::ADAPT_IOC_POLICY_GET, &mut policy);
        call(
            fd,
            "policy-set",
            abi::ADAPT_IOC_POLICY_SET,
            &mut abi::AdaptPolicy::default(),
        );
        call(fd, "library-load", abi::ADAPT_IOC_LIBRARY_LOAD, &mut load);
        call(fd, "library-list", abi::ADAPT_IOC_LIBRARY_LIST, &mut libs);
        call(fd, "inject", abi::ADAPT_IOC_INJECT, &mut inject);
        call(fd, "revert", abi::ADAPT_IOC_REVERT, &mut revert);
        call(
            fd,
            "injection-list",
            abi::ADAPT_IOC_INJECTION_LIST,
            &mut list,
        );
        call(
            fd,
            "profile-start",
            abi::ADAPT_IOC_PROFILE_START,
            &mut start,
        );
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    std::process::exit(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        3
    });
}
