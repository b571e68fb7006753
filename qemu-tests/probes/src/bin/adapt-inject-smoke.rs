//! The smallest end-to-end check of the injector, independent of adaptctl:
//! uploads a two-instruction variant (`mov eax, 42; ret`), injects it over
//! this program's own function `adapt_smoke_target` (`mov eax, 7; ret`)
//! while a second thread keeps calling it, checks the function now returns
//! 42, that the segment is mapped without write permission, reverts, and
//! checks 7 and the original bytes again. Repeats `ROUNDS` times.
//!
//! `adapt-inject-smoke fault`: injects a variant that traps (`ud2`) into a
//! child process that keeps calling the function; the child must die of
//! SIGILL and the module must then report the variant quarantined and
//! refuse it to automatic requests.
//!
//! Usage: adapt-inject-smoke [ROUNDS|fault]   (default 20 rounds)

use adapt_abi as abi;
use adapt_guest_probes::check::Checks;
use adapt_guest_probes::raw_ioctl::ioctl_raw;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

std::arch::global_asm!(
    ".globl adapt_smoke_target",
    ".type adapt_smoke_target, @function",
    ".p2align 4",
    "adapt_smoke_target:",
    "mov eax, 7",
    "ret",
    "int3",
    "int3",
    ".size adapt_smoke_target, . - adapt_smoke_target",
);

extern "C" {
    fn adapt_smoke_target() -> u32;
}

const REPLACEMENT: [u8; 6] = [0xb8, 42, 0, 0, 0, 0xc3];
const CONTRACT: u64 = 0x5eed_0000_0000_0042;

fn call_target() -> u32 {
    // SAFETY: `adapt_smoke_target` is a leaf function returning in eax,
    // whichever implementation is in place.
    unsafe { std::hint::black_box(adapt_smoke_target()) }
}

fn load_variant(fd: i32, name: &str, code: &[u8], hash: u8) -> Result<u64, i32> {
    let mut entry = abi::AdaptSegmentEntry {
        contract_hash: CONTRACT,
        ..Default::default()
    };
    entry.symbol = abi::name_field("adapt_smoke_target").unwrap();
    let mut load = abi::AdaptLibraryLoad {
        format_version: abi::ADAPT_SEGMENT_FORMAT_VERSION,
        segment: abi::name_field("smoke").unwrap(),
        variant: abi::name_field(name).unwrap(),
        hash: [hash; 32],
        code: code.as_ptr() as u64,
        code_len: code.len() as u32,
        rodata_align: 1,
        entries: &entry as *const _ as u64,
        nentries: 1,
        ..Default::default()
    };
    // SAFETY: `load` and everything it points to are valid for the call.
    match unsafe {
        ioctl_raw(
            fd,
            abi::ADAPT_IOC_LIBRARY_LOAD,
            &mut load as *mut _ as usize,
        )
    } {
        Ok(_) | Err(libc::EEXIST) => Ok(load.id),
        Err(e) => Err(e),
    }
}

fn inject_request(pid: u32, variant_id: u64, flags: u32) -> abi::AdaptInject {
    let site = adapt_smoke_target as *const () as u64;
    let mut expected = [0u8; abi::ADAPT_PATCH_MAX];
    // SAFETY: the function's first 5 bytes are readable text.
    unsafe { std::ptr::copy_nonoverlapping(site as *const u8, expected.as_mut_ptr(), 5) };
    abi::AdaptInject {
        pid,
        flags,
        target: site,
        variant_id,
        contract_hash: CONTRACT,
        entry: 0,
        patch_len: 5,
        expected,
        ..Default::default()
    }
}

fn fault_mode(fd: i32) -> ExitCode {
    let mut checks = Checks::default();
    let variant = match load_variant(fd, "trap", &[0x0f, 0x0b], 0x7a) {
        Ok(id) => id,
        Err(e) => {
            checks.eq("load the trapping variant", Err::<u64, i32>(e), Ok(0));
            return checks.finish();
        }
    };
    // SAFETY: the child only calls async-signal-safe code before it dies.
    let child = unsafe { libc::fork() };
    if child == 0 {
        loop {
            call_target();
            // SAFETY: plain sleep.
            unsafe { libc::usleep(1000) };
        }
    }
    let mut request = inject_request(child as u32, variant, 0);
    // SAFETY: `request` is valid for the call.
    let got = unsafe { ioctl_raw(fd, abi::ADAPT_IOC_INJECT, &mut request as *mut _ as usize) };
    checks.eq("inject the trapping variant into the child", got, Ok(0));
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    checks.that(
        "the child died of SIGILL",
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGILL,
        format!("status {status:#x}"),
    );
    let mut infos = vec![abi::AdaptLibraryInfo::default(); 64];
    let mut list = abi::AdaptLibraryList {
        entries: infos.as_mut_ptr() as u64,
        capacity: 64,
        ..Default::default()
    };
    // SAFETY: `list` points at room for 64 entries.
    let got = unsafe {
        ioctl_raw(
            fd,
            abi::ADAPT_IOC_LIBRARY_LIST,
            &mut list as *mut _ as usize,
        )
    };
    let info = infos
        .iter()
        .take(list.count as usize)
        .find(|i| i.id == variant)
        .copied();
    checks.that(
        "the variant is quarantined",
        got == Ok(0) && info.is_some_and(|i| i.flags & abi::ADAPT_LIBRARY_F_QUARANTINED != 0),
        format!("{got:?} {info:?}"),
    );
    let mut auto = inject_request(std::process::id(), variant, abi::ADAPT_INJECT_F_AUTO);
    // SAFETY: `auto` is valid for the call.
    let got = unsafe { ioctl_raw(fd, abi::ADAPT_IOC_INJECT, &mut auto as *mut _ as usize) };
    checks.eq(
        "automatic injection of it is refused",
        got,
        Err(libc::EACCES),
    );
    checks.finish()
}

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let dev = match OpenOptions::new().read(true).write(true).open("/dev/adapt") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("adapt-inject-smoke: /dev/adapt: {e}");
            return ExitCode::from(2);
        }
    };
    let fd = dev.as_raw_fd();
    if arg.as_deref() == Some("fault") {
        return fault_mode(fd);
    }
    let rounds: u32 = arg.and_then(|a| a.parse().ok()).unwrap_or(20);
    let mut checks = Checks::default();

    let mut entry = abi::AdaptSegmentEntry {
        contract_hash: CONTRACT,
        ..Default::default()
    };
    entry.symbol = abi::name_field("adapt_smoke_target").unwrap();
    let mut load = abi::AdaptLibraryLoad {
        format_version: abi::ADAPT_SEGMENT_FORMAT_VERSION,
        segment: abi::name_field("smoke").unwrap(),
        variant: abi::name_field("const42").unwrap(),
        hash: [0x42; 32],
        code: REPLACEMENT.as_ptr() as u64,
        code_len: REPLACEMENT.len() as u32,
        rodata_align: 1,
        entries: &entry as *const _ as u64,
        nentries: 1,
        ..Default::default()
    };
    // SAFETY: `load` and everything it points to are valid for the call.
    let got = unsafe {
        ioctl_raw(
            fd,
            abi::ADAPT_IOC_LIBRARY_LOAD,
            &mut load as *mut _ as usize,
        )
    };
    checks.that(
        "load the variant",
        matches!(got, Ok(0) | Err(libc::EEXIST)),
        format!("{got:?}"),
    );
    let variant_id = load.id;

    let site = adapt_smoke_target as *const () as u64;
    let mut original = [0u8; abi::ADAPT_PATCH_MAX];
    // SAFETY: the function's first 6 bytes are readable text.
    unsafe { std::ptr::copy_nonoverlapping(site as *const u8, original.as_mut_ptr(), 6) };
    let mut expected = [0u8; abi::ADAPT_PATCH_MAX];
    expected[..5].copy_from_slice(&original[..5]);
    checks.eq("target returns 7 before", call_target(), 7);

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let odd = Arc::new(AtomicU64::new(0));
    let caller = {
        let (stop, calls, odd) = (stop.clone(), calls.clone(), odd.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let v = call_target();
                if v != 7 && v != 42 {
                    odd.fetch_add(1, Ordering::Relaxed);
                }
                calls.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let mut max_pause = 0;
    for round in 0..rounds {
        let mut inject = abi::AdaptInject {
            pid: std::process::id(),
            target: site,
            variant_id,
            contract_hash: CONTRACT,
            entry: 0,
            patch_len: 5,
            expected,
            ..Default::default()
        };
        // SAFETY: `inject` is valid for the call.
        let got = unsafe { ioctl_raw(fd, abi::ADAPT_IOC_INJECT, &mut inject as *mut _ as usize) };
        if got != Ok(0) {
            checks.eq(&format!("round {round}: inject"), got, Ok(0));
            break;
        }
        max_pause = max_pause.max(inject.pause_ns);
        let now = call_target();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let line = maps
            .lines()
            .find(|l| l.contains("[adapt:smoke-const42]"))
            .unwrap_or("")
            .to_owned();
        if round == 0 {
            checks.eq("injected function returns 42", now, 42);
            checks.that(
                "segment is mapped r-x, not writable",
                line.contains(" r-xs "),
                &line,
            );
            // SAFETY: mprotect on our own segment mapping; it must fail.
            let seg = inject.segment_addr as *mut libc::c_void;
            let rc = unsafe { libc::mprotect(seg, 4096, libc::PROT_READ | libc::PROT_WRITE) };
            checks.that("mprotect(PROT_WRITE) on the segment fails", rc != 0, rc);
            let mut list = abi::AdaptInjectionList {
                entries: 0,
                capacity: 0,
                pid: std::process::id(),
                ..Default::default()
            };
            // SAFETY: `list` is valid; capacity 0 writes no entries.
            let got = unsafe {
                ioctl_raw(
                    fd,
                    abi::ADAPT_IOC_INJECTION_LIST,
                    &mut list as *mut _ as usize,
                )
            };
            checks.that(
                "the injection is listed",
                got == Ok(0) && list.total == 1,
                format!("{got:?} {list:?}"),
            );
        } else if now != 42 {
            checks.eq(&format!("round {round}: injected result"), now, 42);
            break;
        }
        let mut revert = abi::AdaptRevert {
            id: inject.id,
            ..Default::default()
        };
        // SAFETY: `revert` is valid for the call.
        let got = unsafe { ioctl_raw(fd, abi::ADAPT_IOC_REVERT, &mut revert as *mut _ as usize) };
        if got != Ok(0) || call_target() != 7 {
            checks.eq(
                &format!("round {round}: revert"),
                (got, call_target()),
                (Ok(0), 7),
            );
            break;
        }
        max_pause = max_pause.max(revert.pause_ns);
        if round == 0 {
            // SAFETY: `revert` is valid; the id was just reverted.
            let again = unsafe {
                ioctl_raw(
                    fd,
                    abi::ADAPT_IOC_REVERT,
                    &mut abi::AdaptRevert {
                        id: inject.id,
                        ..Default::default()
                    } as *mut _ as usize,
                )
            };
            checks.eq("double revert is ENOENT", again, Err(libc::ENOENT));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = caller.join();

    let mut now = [0u8; 6];
    // SAFETY: the function's first 6 bytes are readable text.
    unsafe { std::ptr::copy_nonoverlapping(site as *const u8, now.as_mut_ptr(), 6) };
    checks.eq(
        "original bytes are back",
        now,
        original[..6].try_into().unwrap(),
    );
    checks.eq("reverted function returns 7", call_target(), 7);
    checks.eq(
        "the calling thread never saw another value",
        odd.load(Ordering::Relaxed),
        0,
    );
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    // A reverted segment stays mapped, inert, until exit (a signal frame
    // may return into it), and every round reused the same one.
    let left = maps.lines().filter(|l| l.contains("[adapt:")).count();
    checks.that(
        "one retired segment stays mapped, reused by every round",
        (1..=2).contains(&left),
        format!("{left} adapt mappings"),
    );
    checks.that(
        "the retired segment is not writable",
        maps.lines()
            .filter(|l| l.contains("[adapt:"))
            .all(|l| !l.split_whitespace().nth(1).unwrap_or("").contains('w')),
        "writable",
    );
    println!(
        "rounds={rounds} concurrent_calls={} max_pause_us={:.1}",
        calls.load(Ordering::Relaxed),
        max_pause as f64 / 1000.0
    );
    checks.finish()
}
