//! Helpers shared by the guest probe programs in `src/bin/`.

pub mod check;
pub mod raw_ioctl;
pub mod scratch_pages;
pub mod zcrc;
