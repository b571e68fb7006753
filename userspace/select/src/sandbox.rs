// SPDX-License-Identifier: GPL-2.0
//! The unprivileged measuring child: code chosen by a target (its
//! libraries, their constructors, the original function) runs only here,
//! never in the (root) process that decides.
//!
//! [`Sandbox::run`] forks; the child, before it touches any file of the
//! target, in this order:
//!
//! 1. asks for `SIGKILL` when the parent dies (`PR_SET_PDEATHSIG`);
//! 2. closes every file descriptor but the result pipe and the one file
//!    it was given (`close_range`), stdin/stdout/stderr included;
//! 3. resets every signal to its default action (a fault kills it;
//!    `SIGXFSZ` is ignored, so a write to a file fails instead), sets
//!    `RLIMIT_CPU` (the kernel kills it past the limit),
//!    `RLIMIT_FSIZE` 0, `RLIMIT_CORE` 0, `RLIMIT_NOFILE` 64;
//! 4. drops every privilege: the capability bounding set emptied,
//!    `setgroups([])`, `setresgid`/`setresuid` to [`Identity`] (the
//!    target's own ids when they are not root, else 65534 `nobody`), then
//!    *checks* the result: all uids and gids are the new ones, no
//!    supplementary group, and `capget` reports no effective, permitted or
//!    inheritable capability (otherwise it exits without running
//!    anything). The change of ids also makes it non-dumpable, so the
//!    target's user cannot ptrace it;
//! 5. sets `PR_SET_NO_NEW_PRIVS` and installs the *loader* seccomp filter
//!    ([`loader_filter`]): what the dynamic loader needs to map a library
//!    (read-only opens, reads, `mmap`/`mprotect`), nothing that writes a
//!    file, spawns, signals, connects or executes a program;
//! 6. runs the body, which loads the original and, before timing anything,
//!    installs the *timing* filter ([`Lockdown::enter_timing`]): memory
//!    allocation without `PROT_EXEC`, clocks, `write` to the result pipe,
//!    exit. Filters only stack, so the second narrows the first;
//! 7. writes the body's bytes to the pipe and `_exit`s.
//!
//! A kernel without `CONFIG_SECCOMP` ([`seccomp_available`]) gets every
//! step but the filters (`PR_SET_NO_NEW_PRIVS` is still set), and the
//! selection's output says the child ran unfiltered; a kernel with it that
//! refuses the filter ends the child (fail closed).
//!
//! Every forbidden system call fails with `EPERM` rather than killing the
//! child, so a library whose constructor tries something harmless (opening
//! a log for writing) still loads and is measured.
//!
//! The parent reads at most [`Limits::max_output`] bytes, kills the child
//! (`SIGKILL`) when the wall-clock limit passes, reaps it, and returns the
//! bytes only for a child that exited 0; anything else is a
//! [`SandboxError`] naming what happened. The caller then decodes and
//! validates the bytes as hostile (`crate::child`).
//!
//! # Why fork without exec is sound here
//!
//! Everything the child needs is prepared before `fork` (the variants
//! mapped, the inputs filled, the original's file opened, the seccomp
//! programs compiled), so the child runs only code of this crate on
//! memory it inherited. After `fork` only the calling thread exists in the
//! child. `adaptctl` is single-threaded when it measures (its signal
//! handling only sets flags), so no lock can be inherited held; glibc also
//! resets its malloc locks in the child. In a multi-threaded caller (the
//! test harness) a lock held by another thread at the moment of `fork`
//! (the loader's, during a concurrent `dlopen`) could block the child:
//! the wall-clock limit then kills it and the original is "not measured" —
//! never a side effect in the parent. No program execs itself, and no
//! helper binary has to be found and trusted.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The uid and gid the child runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// User id (never 0 when the parent is privileged).
    pub uid: u32,
    /// Group id (never 0 when the parent is privileged).
    pub gid: u32,
}

/// `nobody`/`nogroup` on Debian and most distributions.
pub const NOBODY: u32 = 65534;

impl Identity {
    /// The ids of process `pid` (effective uid and gid from
    /// `/proc/PID/status`) when neither is 0, else [`Identity::nobody`].
    pub fn of_process(pid: u32) -> Identity {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| -> Option<u32> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            // "Uid:\treal\teffective\tsaved\tfs"
            line.split_whitespace().nth(2)?.parse().ok()
        };
        match (field("Uid:"), field("Gid:")) {
            (Some(uid), Some(gid)) if uid != 0 && gid != 0 => Identity { uid, gid },
            _ => Identity::nobody(),
        }
    }

    /// 65534/65534.
    pub fn nobody() -> Identity {
        Identity {
            uid: NOBODY,
            gid: NOBODY,
        }
    }
}

/// Resource limits of the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `RLIMIT_CPU`, seconds.
    pub cpu_seconds: u64,
    /// Killed after this long.
    pub wall: Duration,
    /// Most bytes read back.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_seconds: 60,
            wall: Duration::from_secs(90),
            max_output: 1 << 20,
        }
    }
}

/// How the child failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Setting up (pipe, fork, filters) failed in the parent.
    #[error("cannot start the unprivileged measuring child: {what}: {source}")]
    Start {
        /// The call.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The child exited with a status of its own.
    #[error("the unprivileged measuring child {}", describe_exit(*.code))]
    Exited {
        /// Its exit status.
        code: i32,
    },
    /// A signal ended it.
    #[error(
        "the unprivileged measuring child was killed by signal {signal}{}",
        if *.signal == libc::SIGXCPU || *.signal == libc::SIGKILL { " (CPU-time limit or timeout)" } else { " (it crashed)" }
    )]
    Signaled {
        /// The signal.
        signal: i32,
    },
    /// It ran past the wall-clock limit and was killed.
    #[error("the unprivileged measuring child did not finish within {0:?} and was killed")]
    Timeout(Duration),
    /// It wrote more than allowed.
    #[error("the unprivileged measuring child wrote more than {0} bytes of results; ignored")]
    TooLarge(usize),
}

/// Exit statuses of the child's own failures.
mod code {
    pub const FDS: i32 = 70;
    pub const RLIMIT: i32 = 71;
    pub const DROP: i32 = 72;
    pub const STILL_PRIVILEGED: i32 = 73;
    pub const SECCOMP: i32 = 74;
    pub const PANIC: i32 = 75;
    pub const WRITE: i32 = 76;
}

fn describe_exit(c: i32) -> String {
    let what = match c {
        code::FDS => "could not close inherited file descriptors",
        code::RLIMIT => "could not set its resource limits",
        code::DROP => "could not drop its privileges (setgroups/setresgid/setresuid)",
        code::STILL_PRIVILEGED => {
            "still had a privilege after dropping them (uid, gid, groups or capabilities)"
        }
        code::SECCOMP => "could not install its seccomp filter",
        code::PANIC => "panicked",
        code::WRITE => "could not write its results",
        _ => return format!("exited with status {c} (not the measurement's own)"),
    };
    format!("exited with status {c}: it {what}")
}

/// Handed to the body in the child.
pub struct Lockdown<'a> {
    timing: Option<&'a BpfProgram>,
    /// The one file descriptor the child kept besides the pipe.
    pub file: Option<RawFd>,
}

impl Lockdown<'_> {
    /// Installs the timing filter (see the module documentation). Call it
    /// once the original is loaded, before running it.
    pub fn enter_timing(&self) -> Result<(), String> {
        match self.timing {
            Some(t) => seccompiler::apply_filter(t).map_err(|e| format!("seccomp: {e}")),
            None => Ok(()),
        }
    }
}

/// A prepared child: its identity, limits, filters and the one file it may
/// keep.
pub struct Sandbox {
    identity: Identity,
    limits: Limits,
    file: Option<RawFd>,
    /// The two filters; absent when the kernel has no seccomp.
    filters: Option<(BpfProgram, BpfProgram)>,
}

fn arch() -> TargetArch {
    #[cfg(target_arch = "x86_64")]
    {
        TargetArch::x86_64
    }
    #[cfg(target_arch = "aarch64")]
    {
        TargetArch::aarch64
    }
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    // The arguments are fixed and valid (index < 6): this cannot fail.
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)
        .expect("a fixed, valid seccomp condition")
}

fn rule(conds: Vec<SeccompCondition>) -> SeccompRule {
    // Non-empty condition lists of valid conditions: cannot fail.
    SeccompRule::new(conds).expect("a fixed, valid seccomp rule")
}

/// Rules shared by both filters.
fn common(pipe: RawFd) -> Vec<(i64, Vec<SeccompRule>)> {
    let no_exec = || {
        rule(vec![cond(
            2,
            SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )])
    };
    vec![
        (
            libc::SYS_write,
            vec![rule(vec![cond(0, SeccompCmpOp::Eq, pipe as u64)])],
        ),
        (libc::SYS_exit, vec![]),
        (libc::SYS_exit_group, vec![]),
        (libc::SYS_brk, vec![]),
        (libc::SYS_munmap, vec![]),
        (libc::SYS_mremap, vec![]),
        (libc::SYS_madvise, vec![]),
        (libc::SYS_futex, vec![]),
        (libc::SYS_clock_gettime, vec![]),
        (libc::SYS_gettimeofday, vec![]),
        (libc::SYS_getrandom, vec![]),
        (libc::SYS_rt_sigreturn, vec![]),
        (libc::SYS_rt_sigprocmask, vec![]),
        (libc::SYS_sched_yield, vec![]),
        (libc::SYS_getpid, vec![]),
        (libc::SYS_gettid, vec![]),
        (libc::SYS_mmap, vec![no_exec()]),
        (libc::SYS_mprotect, vec![no_exec()]),
    ]
}

fn build(rules: Vec<(i64, Vec<SeccompRule>)>) -> Result<BpfProgram, SandboxError> {
    // Two entries for one call are alternatives (OR); an unconditional one
    // (no rule) wins over conditional ones.
    let mut map: std::collections::BTreeMap<i64, Option<Vec<SeccompRule>>> = Default::default();
    for (nr, r) in rules {
        let slot = map.entry(nr).or_insert_with(|| Some(Vec::new()));
        match (slot.as_mut(), r.is_empty()) {
            (_, true) => *slot = None,
            (Some(v), false) => v.extend(r),
            (None, false) => {}
        }
    }
    let map = map
        .into_iter()
        .map(|(nr, r)| (nr, r.unwrap_or_default()))
        .collect();
    let filter = SeccompFilter::new(
        map,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch(),
    )
    .map_err(|e| SandboxError::Start {
        what: "building the seccomp filter",
        source: io::Error::other(e.to_string()),
    })?;
    BpfProgram::try_from(filter).map_err(|e| SandboxError::Start {
        what: "compiling the seccomp filter",
        source: io::Error::other(e.to_string()),
    })
}

/// The loader filter: the timing filter plus what `dlopen` needs.
pub fn loader_filter(pipe: RawFd) -> Result<BpfProgram, SandboxError> {
    let write_flags =
        (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u64;
    let mut rules = common(pipe);
    rules.extend([
        // Read-only opens only.
        (
            libc::SYS_openat,
            vec![rule(vec![cond(2, SeccompCmpOp::MaskedEq(write_flags), 0)])],
        ),
        (libc::SYS_read, vec![]),
        (libc::SYS_pread64, vec![]),
        (libc::SYS_close, vec![]),
        (libc::SYS_fstat, vec![]),
        (libc::SYS_newfstatat, vec![]),
        (libc::SYS_statx, vec![]),
        (libc::SYS_lseek, vec![]),
        (libc::SYS_readlink, vec![]),
        (libc::SYS_getcwd, vec![]),
        (libc::SYS_access, vec![]),
        (libc::SYS_faccessat, vec![]),
        (libc::SYS_faccessat2, vec![]),
        // Installing the timing filter (it can only narrow this one).
        (
            libc::SYS_prctl,
            vec![rule(vec![cond(
                0,
                SeccompCmpOp::Eq,
                libc::PR_SET_NO_NEW_PRIVS as u64,
            )])],
        ),
        (
            libc::SYS_seccomp,
            vec![rule(vec![cond(
                0,
                SeccompCmpOp::Eq,
                u64::from(libc::SECCOMP_SET_MODE_FILTER),
            )])],
        ),
        // The loader maps code: mmap/mprotect with PROT_EXEC, here only.
        (libc::SYS_mmap, vec![]),
        (libc::SYS_mprotect, vec![]),
    ]);
    build(rules)
}

/// The timing filter (see the module documentation).
pub fn timing_filter(pipe: RawFd) -> Result<BpfProgram, SandboxError> {
    build(common(pipe))
}

/// Whether this kernel filters system calls (`CONFIG_SECCOMP`): its
/// `/proc/self/status` then has a `Seccomp:` line. Without it the child
/// still drops every privilege, limits and closes everything, but has no
/// system-call filter; the selection's output says so.
pub fn seccomp_available() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false)
}

/// The result pipe's write end is always this descriptor in the child.
const PIPE_FD: RawFd = 3;
/// The kept file is always this descriptor in the child.
pub const FILE_FD: RawFd = 4;

impl Sandbox {
    /// A child running as `identity` under `limits`, keeping `file` (as
    /// descriptor [`FILE_FD`]).
    pub fn new(
        identity: Identity,
        limits: Limits,
        file: Option<RawFd>,
    ) -> Result<Sandbox, SandboxError> {
        Ok(Sandbox {
            identity,
            limits,
            file,
            filters: if seccomp_available() {
                Some((loader_filter(PIPE_FD)?, timing_filter(PIPE_FD)?))
            } else {
                None
            },
        })
    }

    /// Whether the child runs under the seccomp filters.
    pub fn filtered(&self) -> bool {
        self.filters.is_some()
    }

    /// Runs `body` in the child (see the module documentation) and returns
    /// what it produced.
    pub fn run<F>(&self, body: F) -> Result<Vec<u8>, SandboxError>
    where
        F: FnOnce(&Lockdown<'_>) -> Vec<u8>,
    {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into the array given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(SandboxError::Start {
                what: "pipe2",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: both descriptors were just created and are owned here.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let parent = std::process::id();
        // SAFETY: see "Why fork without exec is sound here": the child only
        // runs `child_main`, which never returns.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(SandboxError::Start {
                what: "fork",
                source: io::Error::last_os_error(),
            });
        }
        if pid == 0 {
            self.child_main(parent, write_end.as_raw_fd(), body);
        }
        drop(write_end);
        self.collect(pid, read_end)
    }

    /// The child. Never returns.
    fn child_main<F>(&self, parent: u32, pipe: RawFd, body: F) -> !
    where
        F: FnOnce(&Lockdown<'_>) -> Vec<u8>,
    {
        let exit = |c: i32| -> ! {
            // SAFETY: _exit ends the process without running the parent's
            // atexit handlers or destructors (they belong to the parent).
            unsafe { libc::_exit(c) }
        };
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } as u32 != parent {
            exit(code::FDS);
        }
        if setup_fds(pipe, self.file).is_err() {
            exit(code::FDS);
        }
        // The parent's handlers (Rust's stack-overflow handler for SIGSEGV
        // and SIGBUS, adaptctl's SIGTERM flag) would re-arm themselves with
        // rt_sigaction, which the filters refuse: a fault would then loop
        // instead of ending the child. Default dispositions: a fault kills.
        for sig in 1..32 {
            // SAFETY: SIG_DFL for a signal number; SIGKILL and SIGSTOP
            // fail harmlessly.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
        // Writing past RLIMIT_FSIZE (0) then fails with EFBIG instead of
        // killing the child: a constructor that appends to a log (possible
        // where the kernel has no seccomp) does not cost the measurement.
        // SAFETY: SIG_IGN for SIGXFSZ.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
        if set_limits(self.limits.cpu_seconds).is_err() {
            exit(code::RLIMIT);
        }
        match drop_privileges(self.identity) {
            Ok(()) => {}
            Err(DropError::Call) => exit(code::DROP),
            Err(DropError::Remains) => exit(code::STILL_PRIVILEGED),
        }
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            exit(code::DROP);
        }
        // A kernel with seccomp must apply it: refusing is fatal.
        if let Some((loader, _)) = &self.filters {
            if seccompiler::apply_filter(loader).is_err() {
                exit(code::SECCOMP);
            }
        }
        let lockdown = Lockdown {
            timing: self.filters.as_ref().map(|(_, t)| t),
            file: self.file.map(|_| FILE_FD),
        };
        let out = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&lockdown))) {
            Ok(out) => out,
            Err(_) => exit(code::PANIC),
        };
        let mut rest: &[u8] = &out;
        while !rest.is_empty() {
            // SAFETY: writes from a live slice to the pipe.
            let n = unsafe { libc::write(PIPE_FD, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                exit(code::WRITE);
            }
            rest = &rest[n as usize..];
        }
        exit(0)
    }

    /// The parent: read, wait, kill on timeout.
    fn collect(&self, pid: libc::pid_t, read_end: OwnedFd) -> Result<Vec<u8>, SandboxError> {
        let deadline = Instant::now() + self.limits.wall;
        let kill = || {
            // SAFETY: pid is our unreaped child: the id cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap(pid);
        };
        let mut out = Vec::new();
        let mut file = std::fs::File::from(read_end);
        let mut buf = [0u8; 16384];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                kill();
                return Err(SandboxError::Timeout(self.limits.wall));
            }
            let mut pfd = libc::pollfd {
                fd: file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(1000) as libc::c_int;
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                kill();
                return Err(SandboxError::Start {
                    what: "poll",
                    source: e,
                });
            }
            if r == 0 {
                continue;
            }
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if out.len() + n > self.limits.max_output {
                        kill();
                        return Err(SandboxError::TooLarge(self.limits.max_output));
                    }
                    out.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    kill();
                    return Err(SandboxError::Start {
                        what: "reading the results",
                        source: e,
                    });
                }
            }
        }
        // EOF: the child closed the pipe (exited, or a descendant holds
        // nothing: it cannot fork). Wait for it, still bounded.
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid status pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                if libc::WIFEXITED(status) {
                    return match libc::WEXITSTATUS(status) {
                        0 => Ok(out),
                        code => Err(SandboxError::Exited { code }),
                    };
                }
                return Err(SandboxError::Signaled {
                    signal: libc::WTERMSIG(status),
                });
            }
            if r < 0 {
                return Err(SandboxError::Start {
                    what: "waitpid",
                    source: io::Error::last_os_error(),
                });
            }
            if Instant::now() >= deadline {
                kill();
                return Err(SandboxError::Timeout(self.limits.wall));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waitpid on our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

/// Moves the pipe to [`PIPE_FD`] and the file to [`FILE_FD`], closes
/// everything else.
fn setup_fds(pipe: RawFd, file: Option<RawFd>) -> Result<(), ()> {
    // Park both above every low number first so the dup2s cannot clobber
    // each other.
    let park = |fd: RawFd| -> Result<RawFd, ()> {
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor this process holds.
        let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
        if n < 0 {
            Err(())
        } else {
            Ok(n)
        }
    };
    let p = park(pipe)?;
    let f = file.map(park).transpose()?;
    let place = |from: RawFd, to: RawFd| -> Result<(), ()> {
        // SAFETY: dup2 between descriptors this process holds; the copy
        // has no CLOEXEC (there is no exec anyway).
        if unsafe { libc::dup2(from, to) } == to {
            Ok(())
        } else {
            Err(())
        }
    };
    place(p, PIPE_FD)?;
    let mut keep_to = PIPE_FD;
    if let Some(f) = f {
        place(f, FILE_FD)?;
        keep_to = FILE_FD;
    }
    // SAFETY: close_range(2) on descriptor ranges; nothing of this process
    // uses the closed ones afterwards (the child only uses PIPE_FD and
    // FILE_FD).
    let close = |lo: u32, hi: u32| unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0) };
    if close(0, (PIPE_FD - 1) as u32) != 0 || close((keep_to + 1) as u32, u32::MAX) != 0 {
        return Err(());
    }
    Ok(())
}

fn set_limits(cpu_seconds: u64) -> Result<(), ()> {
    let set = |res, soft: u64, hard: u64| {
        let l = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: a valid rlimit structure.
        if unsafe { libc::setrlimit(res, &l) } == 0 {
            Ok(())
        } else {
            Err(())
        }
    };
    set(libc::RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)?;
    set(libc::RLIMIT_FSIZE, 0, 0)?;
    set(libc::RLIMIT_CORE, 0, 0)?;
    set(libc::RLIMIT_NOFILE, 64, 64)?;
    Ok(())
}

enum DropError {
    Call,
    Remains,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// Whether the calling process holds any capability (effective, permitted
/// or inheritable), by `capget`.
pub fn has_capabilities() -> io::Result<bool> {
    let mut h = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: capget with a v3 header and two data structures, as the ABI
    // requires.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(d.iter()
        .any(|c| c.effective != 0 || c.permitted != 0 || c.inheritable != 0))
}

fn drop_privileges(id: Identity) -> Result<(), DropError> {
    // SAFETY: geteuid has no preconditions.
    let privileged = unsafe { libc::geteuid() } == 0 || has_capabilities().unwrap_or(true);
    if privileged {
        // Empty the bounding set while CAP_SETPCAP is still held.
        for cap in 0..64 {
            // SAFETY: prctl with integer arguments; EINVAL past the last
            // capability is expected and ignored.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        }
        // SAFETY: plain system calls with integer arguments (and a null
        // list of zero groups).
        let ok = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(id.gid, id.gid, id.gid) == 0
                && libc::setresuid(id.uid, id.uid, id.uid) == 0
        };
        if !ok {
            return Err(DropError::Call);
        }
    }
    // Check rather than trust.
    let (mut r, mut e, mut s) = (0, 0, 0);
    let (mut rg, mut eg, mut sg) = (0, 0, 0);
    // SAFETY: valid out-pointers.
    let got = unsafe {
        libc::getresuid(&mut r, &mut e, &mut s) == 0
            && libc::getresgid(&mut rg, &mut eg, &mut sg) == 0
    };
    // SAFETY: getgroups(0, NULL) returns the count only.
    let groups = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let ids_ok = if privileged {
        [r, e, s] == [id.uid; 3] && [rg, eg, sg] == [id.gid; 3] && groups == 0
    } else {
        // Already unprivileged (a test run as a user): nothing to change.
        e != 0
    };
    if !got || !ids_ok || has_capabilities().unwrap_or(true) {
        return Err(DropError::Remains);
    }
    Ok(())
}

/// Tests that fork do so one at a time (the test binary is threaded).
#[cfg(test)]
pub(crate) fn tests_serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Limits {
        Limits {
            cpu_seconds: 5,
            wall: Duration::from_secs(10),
            max_output: 4096,
        }
    }

    fn status_field(status: &str, name: &str) -> String {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn the_child_has_no_privilege_left() {
        let _g = tests_serial();
        // Read /proc/self/status before the timing filter, report it.
        let sb = Sandbox::new(Identity::nobody(), quick(), None).unwrap();
        let out = sb
            .run(|_| {
                let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                let opened_for_write = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open("/tmp/adapt-sandbox-should-not-exist")
                    .is_ok();
                format!(
                    "{}|{}|{}|{}|{}|{}",
                    status_field(&s, "Uid:"),
                    status_field(&s, "Groups:"),
                    status_field(&s, "CapEff:"),
                    status_field(&s, "NoNewPrivs:"),
                    status_field(&s, "Seccomp:"),
                    opened_for_write
                )
                .into_bytes()
            })
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let f: Vec<&str> = text.split('|').collect();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(
                f[0].split_whitespace().collect::<Vec<_>>(),
                ["65534"; 4],
                "{text}"
            );
            assert_eq!(f[1], "", "{text}");
        }
        assert_eq!(f[2], "0000000000000000", "{text}");
        assert_eq!(f[3], "1", "{text}");
        assert_eq!(f[4], "2", "{text}");
        assert_eq!(f[5], "false", "a file opened for writing: {text}");
        assert!(!std::path::Path::new("/tmp/adapt-sandbox-should-not-exist").exists());
    }

    #[test]
    fn crashes_hangs_and_floods_are_errors_not_results() {
        let _g = tests_serial();
        // Wall limit: long enough that a child which does finish is never
        // cut short on a loaded machine (500 ms was, at load 9), short
        // enough for the hang below.
        let sb = Sandbox::new(
            Identity::nobody(),
            Limits {
                wall: Duration::from_secs(3),
                ..quick()
            },
            None,
        )
        .unwrap();
        let e = sb
            .run(|_| {
                // SAFETY: a fresh PROT_NONE mapping; reading it faults,
                // which is the point (a crashing original).
                unsafe {
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_NONE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    );
                    vec![std::ptr::read_volatile(p.cast::<u8>())]
                }
            })
            .unwrap_err();
        assert!(
            matches!(e, SandboxError::Signaled { signal } if signal == libc::SIGSEGV),
            "{e}"
        );
        let t = Instant::now();
        let e = sb
            .run(|_| loop {
                std::hint::spin_loop();
            })
            .unwrap_err();
        assert!(matches!(e, SandboxError::Timeout(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(15));
        let e = sb.run(|_| vec![0u8; 100_000]).unwrap_err();
        assert!(matches!(e, SandboxError::TooLarge(4096)), "{e}");
        let e = sb.run(|_| panic!("boom")).unwrap_err();
        assert!(matches!(e, SandboxError::Exited { code: 75 }), "{e}");
        assert!(e.to_string().contains("panicked"), "{e}");
    }

    #[test]
    fn the_timing_filter_forbids_new_code_and_files() {
        let _g = tests_serial();
        let sb = Sandbox::new(Identity::nobody(), quick(), None).unwrap();
        let out = sb
            .run(|l| {
                l.enter_timing().unwrap();
                // SAFETY: an anonymous mapping request; refused by the filter.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_READ | libc::PROT_EXEC,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
                let open = std::fs::File::open("/etc/hostname").is_ok();
                let v = vec![1u8; 1 << 20]; // allocation still works
                format!("{}|{}|{}", p == libc::MAP_FAILED, open, v.len()).into_bytes()
            })
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "true|false|1048576");
    }
}
