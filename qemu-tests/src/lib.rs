//! adapt's guest runner: builds (and caches) the guest kernel, the module, the
//! userspace binaries and the test fixtures, then boots throw-away QEMU guests
//! that run one command each with the host's root visible read-only.
//!
//! The `vm` binary (`cargo vm …`) is a thin CLI over this library; guest
//! integration tests use [`Guest`] directly:
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use std::time::Duration;
//! let out = adapt_qemu_tests::Guest::new()?
//!     .smp(2)
//!     .timeout(Duration::from_secs(300))
//!     .run(&["sh", "-c", "adaptctl status --json"])?;
//! assert_eq!(out.status, 0, "{}", out.report());
//! assert!(out.kernel_problem.is_none(), "{}", out.report());
//! # Ok(())
//! # }
//! ```

pub mod artifacts;
pub mod cache;
pub mod cli;
pub mod console;
pub mod cpio;
pub mod deps;
pub mod exit_code;
pub mod guest;
pub mod initramfs;
pub mod kconfig;
pub mod kernel;
pub mod kmod;
pub mod lock;
pub mod marker;
pub mod package;
pub mod pipeline;
pub mod progress;
pub mod qemu;
pub mod rundir;
pub mod stage2;
pub mod userspace;
pub mod workspace;

pub use artifacts::Artifacts;
pub use guest::{Accel, Guest, GuestOutput};
