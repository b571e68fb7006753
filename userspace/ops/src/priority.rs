//! The control path's scheduling priority.
//!
//! An injection or a revert is a short burst of work (resolve the symbol,
//! plan, ask the module) that a busy target otherwise competes with for
//! the CPU: beside 8 busy threads on 2 CPUs a command running at the
//! default niceness gets about a fifth of one CPU. The commands that change
//! a target raise their own priority for their run ([`raise`]); the target
//! loses nothing it would not lose anyway while the module holds its
//! threads, and the command's children (the unprivileged measuring child)
//! inherit the niceness, so their timing loops are preempted less.

use std::io;

/// The niceness `adaptctl` gives its control path by default (`--nice`).
pub const CONTROL_NICENESS: i32 = -10;

/// What [`raise`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raised {
    /// The calling thread now runs at this niceness.
    To(i32),
    /// The thread already ran at this niceness or better: left alone.
    AlreadyAt(i32),
}

/// Sets the calling thread's niceness to `niceness` (−20 … 19) unless it
/// already runs at that niceness or a better (lower) one. Threads and
/// processes started afterwards inherit it. Fails with `EPERM` without
/// `CAP_SYS_NICE` when `niceness` is below the current one.
pub fn raise(niceness: i32) -> io::Result<Raised> {
    let niceness = niceness.clamp(-20, 19);
    let current = current()?;
    if current <= niceness {
        return Ok(Raised::AlreadyAt(current));
    }
    // SAFETY: setpriority takes plain integers; `who` 0 is the calling
    // thread (Linux niceness is per thread).
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, niceness) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Raised::To(niceness))
}

/// Sets the calling thread's niceness back to `niceness`, a value it ran at
/// before [`raise`] (lowering one's own priority needs no privilege).
pub fn restore(niceness: i32) -> io::Result<()> {
    // SAFETY: as in `raise`.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, niceness.clamp(-20, 19)) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The niceness a command line asks for before it is parsed: the value of
/// its first `--nice N` or `--nice=N`, else `$ADAPT_NICE`, else
/// [`CONTROL_NICENESS`]. A value that does not parse counts as the default
/// (the real parser then refuses the command line).
pub fn requested(args: &[std::ffi::OsString], env: Option<&std::ffi::OsStr>) -> i32 {
    let parse = |v: &std::ffi::OsStr| v.to_str()?.trim().parse::<i32>().ok();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == "--nice" {
            return args
                .next()
                .and_then(|v| parse(v))
                .unwrap_or(CONTROL_NICENESS);
        }
        if let Some(v) = arg.to_str().and_then(|a| a.strip_prefix("--nice=")) {
            return parse(v.as_ref()).unwrap_or(CONTROL_NICENESS);
        }
    }
    env.and_then(parse).unwrap_or(CONTROL_NICENESS)
}

/// The calling thread's niceness.
pub fn current() -> io::Result<i32> {
    // getpriority returns the niceness, which may legitimately be -1:
    // errno tells an error apart.
    // SAFETY: __errno_location returns this thread's errno slot, valid for
    // the thread's lifetime; getpriority takes plain integers.
    unsafe {
        *libc::__errno_location() = 0;
        let value = libc::getpriority(libc::PRIO_PROCESS, 0);
        if value == -1 && *libc::__errno_location() != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requested_niceness_is_read_like_the_parser_reads_it() {
        let args = |a: &[&str]| {
            a.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        let env = |v: &str| Some(std::ffi::OsString::from(v));
        assert_eq!(
            requested(&args(&["inject", "--pid", "3"]), None),
            CONTROL_NICENESS
        );
        assert_eq!(
            requested(&args(&["--nice", "-3", "inject"]), env("5").as_deref()),
            -3
        );
        assert_eq!(requested(&args(&["inject", "--nice=0"]), None), 0);
        assert_eq!(requested(&args(&["inject"]), env("-7").as_deref()), -7);
        assert_eq!(
            requested(&args(&["inject", "--nice", "x"]), None),
            CONTROL_NICENESS
        );
        assert_eq!(
            requested(&args(&["calls", "--", "--nice", "1"]), None),
            CONTROL_NICENESS
        );
    }

    #[test]
    fn raises_only_toward_a_better_priority_and_only_the_calling_thread() {
        // Niceness is per thread on Linux: a thread of its own keeps the
        // test runner's other threads as they were.
        let outer = current().unwrap();
        std::thread::spawn(|| {
            let before = current().unwrap();
            // A worse niceness than the thread's is never applied.
            assert_eq!(raise(19).unwrap(), Raised::AlreadyAt(before));
            assert_eq!(current().unwrap(), before);
            if before > -20 {
                match raise(before - 1) {
                    Ok(raised) => {
                        assert_eq!(raised, Raised::To(before - 1));
                        assert_eq!(current().unwrap(), before - 1);
                    }
                    // Without CAP_SYS_NICE (or RLIMIT_NICE) a better
                    // priority is refused, and nothing changes.
                    Err(err) => {
                        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
                        assert_eq!(current().unwrap(), before);
                    }
                }
            }
        })
        .join()
        .unwrap();
        assert_eq!(current().unwrap(), outer);
    }
}
