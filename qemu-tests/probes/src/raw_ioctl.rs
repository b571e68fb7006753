//! ioctl(2) with arbitrary numbers and pointers, returning the raw outcome.

use std::os::fd::RawFd;

/// What one ioctl returned: `Ok(value)` or `Err(errno)`.
pub type Outcome = Result<i32, i32>;

/// Issues `ioctl(fd, cmd, arg)` with `arg` passed through unchecked, so tests
/// can hand the kernel null, misaligned, unmapped and kernel pointers.
///
/// # Safety
///
/// The kernel may write through `arg` as far as `cmd` says: the caller must
/// make sure that any memory of this process `arg` points into may be
/// overwritten by that many bytes (or is not writable at all).
pub unsafe fn ioctl_raw(fd: RawFd, cmd: u32, arg: usize) -> Outcome {
    // SAFETY: Forwarded to the caller (see `# Safety`).
    let ret = unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) };
    if ret < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(ret)
    }
}

/// Human name of the errno values the ABI promises.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::ENOTTY => "ENOTTY",
        libc::EINVAL => "EINVAL",
        libc::EFAULT => "EFAULT",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        _ => "other",
    }
}
