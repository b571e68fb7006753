//! Random but well-formed-looking ioctls on /dev/adapt from several threads
//! at once: every command number the ABI defines, its argument filled with
//! random field values (mostly zero, sometimes small, sometimes anything;
//! pids of this process, of init, or random; pointers into a scratch page,
//! unmapped or null). Nothing may go wrong in the kernel (the guest runner
//! fails the run on any warning, lockdep or kmemleak report); every errno is
//! allowed. Prints `calls=N threads=T` and the errno histogram.
//!
//! Usage: adapt-ioctl-fuzz [CALLS] [THREADS]   (default 100000 calls, 4 threads)

use adapt_abi as abi;
use adapt_guest_probes::raw_ioctl::ioctl_raw;
use adapt_guest_probes::scratch_pages::ScratchPages;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::sync::Mutex;

const COMMANDS: [u32; 12] = [
    abi::ADAPT_IOC_VERSION,
    abi::ADAPT_IOC_PROFILE_START,
    abi::ADAPT_IOC_PROFILE_STOP,
    abi::ADAPT_IOC_PROFILE_READ,
    abi::ADAPT_IOC_LIBRARY_LOAD,
    abi::ADAPT_IOC_LIBRARY_UNLOAD,
    abi::ADAPT_IOC_LIBRARY_LIST,
    abi::ADAPT_IOC_INJECT,
    abi::ADAPT_IOC_REVERT,
    abi::ADAPT_IOC_INJECTION_LIST,
    abi::ADAPT_IOC_POLICY_GET,
    abi::ADAPT_IOC_POLICY_SET,
];

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// A random value for one 8-byte field.
fn field(rng: &mut u64, page: &ScratchPages) -> u64 {
    *rng = xorshift(*rng);
    match *rng % 16 {
        0..=7 => 0,
        8..=9 => *rng >> 60,
        10 => u64::from(std::process::id()),
        11 => 1,
        12 => (page.rw() + ((*rng >> 20) as usize % 2048)) as u64,
        13 => page.unmapped() as u64,
        _ => *rng,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let threads: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4).max(1);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/adapt")
        .unwrap_or_else(|e| {
            eprintln!("adapt-ioctl-fuzz: cannot open /dev/adapt: {e}");
            std::process::exit(2)
        });
    let fd = file.as_raw_fd();
    let histogram: Mutex<BTreeMap<i32, u64>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for t in 0..threads {
            let histogram = &histogram;
            s.spawn(move || {
                let page = ScratchPages::new();
                let mut arg = [0u64; 512];
                let mut rng =
                    0x9e37_79b9_7f4a_7c15_u64 ^ (t + 1).wrapping_mul(0x1234_5678_9abc_def1);
                let mut local: BTreeMap<i32, u64> = BTreeMap::new();
                for _ in 0..calls / threads {
                    rng = xorshift(rng);
                    let cmd = COMMANDS[(rng % COMMANDS.len() as u64) as usize];
                    let words = (abi::ioc_size(cmd) / 8).min(arg.len());
                    for w in arg.iter_mut().take(words) {
                        *w = field(&mut rng, &page);
                    }
                    // SAFETY: `arg` is larger than every command's argument
                    // (the policy, ~3 KiB, is the largest); pointers inside
                    // it are null, unmapped or into our scratch page, and
                    // the kernel only writes the command's own struct.
                    let got = unsafe { ioctl_raw(fd, cmd, arg.as_mut_ptr() as usize) };
                    *local.entry(got.err().unwrap_or(0)).or_default() += 1;
                    if cmd == abi::ADAPT_IOC_INJECT && got.is_ok() {
                        // Undo what a lucky call did: revert its id (the
                        // eighth 8-byte word of AdaptInject).
                        let mut revert = abi::AdaptRevert {
                            id: arg[7],
                            ..Default::default()
                        };
                        // SAFETY: a valid AdaptRevert.
                        let _ = unsafe {
                            ioctl_raw(fd, abi::ADAPT_IOC_REVERT, &mut revert as *mut _ as usize)
                        };
                    }
                }
                let mut h = histogram.lock().unwrap_or_else(|e| e.into_inner());
                for (k, v) in local {
                    *h.entry(k).or_default() += v;
                }
            });
        }
    });
    let h = histogram.into_inner().unwrap_or_else(|e| e.into_inner());
    println!("calls={} threads={threads}", h.values().sum::<u64>());
    for (errno, n) in h {
        println!("errno {errno}: {n}");
    }
}
