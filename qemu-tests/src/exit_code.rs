//! Exit statuses of `cargo vm exec|demo` that are not the guest command's own.
//!
//! A guest command can exit with any of these too; the runner always prints
//! why it chose one of them, so the two cannot be confused when reading logs.

/// The runner itself failed (a dependency, a build, QEMU would not start).
pub const RUNNER_ERROR: u8 = 1;
/// The console log shows a kernel problem (WARN, BUG, oops, lockdep, …).
pub const KERNEL_PROBLEM: u8 = 101;
/// The guest did not finish within its timeout and was killed.
pub const TIMEOUT: u8 = 124;
/// The guest ended without reporting the command's exit status (it crashed,
/// or the setup before the command, such as `insmod`, failed).
pub const NO_EXIT_STATUS: u8 = 125;
