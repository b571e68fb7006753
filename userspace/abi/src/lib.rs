//! The `/dev/adapt` ioctl ABI.
//!
//! The definitions live in `abi.rs`, which the kernel module includes by path
//! (`#[path = "../userspace/abi/src/abi.rs"] mod abi;`) so the ABI is defined
//! exactly once. This crate root only makes that file a `no_std` crate for
//! userspace.
#![no_std]

mod abi;

pub use abi::*;
