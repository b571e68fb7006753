//! Feeds /dev/adapt every kind of malformed ioctl and checks the errno the
//! ABI promises: unknown → ENOTTY, wrong size/direction or non-zero
//! reserved fields → EINVAL, bad pointers → EFAULT, and a valid request
//! still answered correctly from a misaligned buffer. Then a burst of random
//! commands, which must only ever fail cleanly (the guest runner turns any
//! kernel warning into a failed run).
//!
//! Usage: adapt-ioctl-abuse [DEVICE]   (default /dev/adapt)

use adapt_abi as abi;
use adapt_guest_probes::check::Checks;
use adapt_guest_probes::raw_ioctl::{errno_name, ioctl_raw, Outcome};
use adapt_guest_probes::scratch_pages::ScratchPages;
use std::fs::OpenOptions;
use std::mem::size_of;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

const VERSION_SIZE: usize = size_of::<abi::AdaptVersion>();

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/dev/adapt".into());
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("adapt-ioctl-abuse: cannot open {path}: {err}");
            return ExitCode::from(2);
        }
    };
    let fd = file.as_raw_fd();
    let mut checks = Checks::default();
    let page = ScratchPages::new();

    // A valid request.
    let mut version = abi::AdaptVersion::default();
    // SAFETY: `version` is a writable AdaptVersion, the size the command encodes.
    let got = unsafe { ioctl_raw(fd, abi::ADAPT_IOC_VERSION, &mut version as *mut _ as usize) };
    checks.eq("valid VERSION succeeds", got, Ok(0));
    checks.eq(
        "VERSION reports this ABI",
        version.abi_version,
        abi::ADAPT_ABI_VERSION,
    );
    checks.eq("VERSION leaves reserved zero", version.reserved, [0; 4]);
    checks.that(
        "VERSION reports a module version",
        version.module_version_str().is_some_and(|v| !v.is_empty()),
        format!("{:?}", version.module_version),
    );
    checks.eq(
        "VERSION reports only known capability bits",
        version.capabilities & !abi::ADAPT_CAP_ALL,
        0,
    );

    // Unknown commands.
    let unknown_nr = abi::ioc(
        abi::IOC_READ | abi::IOC_WRITE,
        abi::ADAPT_IOC_MAGIC,
        0x7f,
        VERSION_SIZE,
    );
    expect_errno(
        &mut checks,
        "unknown command number",
        fd,
        unknown_nr,
        page.rw(),
        libc::ENOTTY,
    );
    let foreign = abi::ioc(abi::IOC_READ | abi::IOC_WRITE, b'f' as u32, 0, VERSION_SIZE);
    expect_errno(
        &mut checks,
        "foreign ioctl type",
        fd,
        foreign,
        page.rw(),
        libc::ENOTTY,
    );
    expect_errno(
        &mut checks,
        "ioctl number 0",
        fd,
        0,
        page.rw(),
        libc::ENOTTY,
    );
    expect_errno(
        &mut checks,
        "ioctl number ~0",
        fd,
        u32::MAX,
        page.rw(),
        libc::ENOTTY,
    );

    // The VERSION number with the wrong size or direction.
    let rw = abi::IOC_READ | abi::IOC_WRITE;
    for (name, dir, size) in [
        ("oversized VERSION (81 bytes)", rw, VERSION_SIZE + 1),
        ("oversized VERSION (4 KiB)", rw, 4096),
        ("oversized VERSION (max size)", rw, (1 << 14) - 1),
        ("undersized VERSION (8 bytes)", rw, 8),
        ("zero-sized VERSION", rw, 0),
        ("VERSION as _IOR", abi::IOC_READ, VERSION_SIZE),
        ("VERSION as _IOW", abi::IOC_WRITE, VERSION_SIZE),
        ("VERSION as _IO", abi::IOC_NONE, VERSION_SIZE),
    ] {
        let cmd = abi::ioc(dir, abi::ADAPT_IOC_MAGIC, abi::ADAPT_NR_VERSION, size);
        expect_errno(&mut checks, name, fd, cmd, page.rw(), libc::EINVAL);
    }

    // Bad pointers.
    let cmd = abi::ADAPT_IOC_VERSION;
    expect_errno(&mut checks, "null pointer", fd, cmd, 0, libc::EFAULT);
    expect_errno(&mut checks, "pointer 0x1", fd, cmd, 1, libc::EFAULT);
    expect_errno(
        &mut checks,
        "kernel pointer",
        fd,
        cmd,
        0xffff_8880_0000_0000,
        libc::EFAULT,
    );
    expect_errno(
        &mut checks,
        "non-canonical pointer",
        fd,
        cmd,
        0x0000_8000_0000_0000,
        libc::EFAULT,
    );
    expect_errno(
        &mut checks,
        "unmapped page",
        fd,
        cmd,
        page.unmapped(),
        libc::EFAULT,
    );
    expect_errno(
        &mut checks,
        "struct running into an unmapped page",
        fd,
        cmd,
        page.unmapped() - VERSION_SIZE / 2,
        libc::EFAULT,
    );
    expect_errno(
        &mut checks,
        "read-only buffer",
        fd,
        cmd,
        page.read_only(),
        libc::EFAULT,
    );

    // Reserved input fields must be zero.
    let mut bad = abi::AdaptVersion {
        flags: 1,
        ..Default::default()
    };
    // SAFETY: `bad` is a writable AdaptVersion.
    let got = unsafe { ioctl_raw(fd, cmd, &mut bad as *mut _ as usize) };
    checks.eq("non-zero flags", got.map_err(errno_name), Err("EINVAL"));
    checks.eq("refused request writes nothing back", bad.abi_version, 0);
    for word in 0..4 {
        let mut bad = abi::AdaptVersion::default();
        bad.reserved[word] = 1 << 63;
        // SAFETY: `bad` is a writable AdaptVersion.
        let got = unsafe { ioctl_raw(fd, cmd, &mut bad as *mut _ as usize) };
        checks.eq(
            &format!("non-zero reserved[{word}]"),
            got.map_err(errno_name),
            Err("EINVAL"),
        );
    }

    // A misaligned but otherwise valid buffer works like an aligned one.
    let misaligned = page.rw() + 1;
    // SAFETY: the page is ours, writable, and has room for the struct after
    // the first byte.
    unsafe { std::ptr::write_bytes(misaligned as *mut u8, 0, VERSION_SIZE) };
    // SAFETY: as above.
    let got = unsafe { ioctl_raw(fd, cmd, misaligned) };
    checks.eq("misaligned buffer succeeds", got, Ok(0));
    // SAFETY: the kernel wrote a whole AdaptVersion there; read it unaligned.
    let reply: abi::AdaptVersion = unsafe { std::ptr::read_unaligned(misaligned as *const _) };
    checks.eq("misaligned buffer gets the same reply", reply, version);

    // Random commands of our type with random arguments into our own page:
    // only the three promised errnos or success may come back.
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut unexpected = Vec::new();
    for _ in 0..20_000 {
        rng = xorshift(rng);
        let dir = (rng & 3) as u32;
        let nr = ((rng >> 2) & 0xff) as u32;
        let size = ((rng >> 10) as usize) & ((1 << 14) - 1);
        let cmd = abi::ioc(dir, abi::ADAPT_IOC_MAGIC, nr, size);
        let arg = match (rng >> 40) % 4 {
            0 => 0,
            1 => page.unmapped(),
            _ => page.rw() + ((rng >> 48) as usize % 64),
        };
        // Zero the page so a command that reads it sees valid reserved fields.
        // SAFETY: the page is ours and writable.
        unsafe { std::ptr::write_bytes(page.rw() as *mut u8, 0, ScratchPages::SIZE) };
        // SAFETY: `arg` is null, unmapped, or inside our writable page; the
        // kernel writes at most the commands' struct sizes (< 1 page).
        let got = unsafe { ioctl_raw(fd, cmd, arg) };
        if !matches!(
            got,
            Ok(0) | Err(libc::ENOTTY) | Err(libc::EINVAL) | Err(libc::EFAULT)
        ) {
            unexpected.push((cmd, arg, got));
        }
    }
    checks.that(
        "20000 random commands fail only with ENOTTY/EINVAL/EFAULT",
        unexpected.is_empty(),
        format!("{:x?}", &unexpected[..unexpected.len().min(5)]),
    );

    checks.finish()
}

fn expect_errno(checks: &mut Checks, name: &str, fd: i32, cmd: u32, arg: usize, errno: i32) {
    // SAFETY: every `arg` used by the callers is null, unmapped, read-only, a
    // kernel or non-canonical address, or inside the writable scratch page.
    let got: Outcome = unsafe { ioctl_raw(fd, cmd, arg) };
    checks.eq(name, got.map_err(errno_name), Err(errno_name(errno)));
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}
