// SPDX-License-Identifier: GPL-2.0
//! The ioctl ABI of `/dev/adapt`, shared by the kernel module and userspace.
//!
//! Rules every command follows:
//! - The ioctl number encodes direction, type ([`ADAPT_IOC_MAGIC`]), number and
//!   the exact size of its argument struct, as `_IOWR` does in C. A known
//!   number with another size or direction is `EINVAL`; an unknown number or a
//!   foreign type is `ENOTTY`.
//! - Argument structs are `#[repr(C)]`, have no implicit padding, and carry
//!   `flags` and `reserved` fields that must be zero on input (`EINVAL`
//!   otherwise), so later versions can give them meaning.
//! - A bad or null argument pointer is `EFAULT`.
//!
//! This file must stay free of dependencies: it is compiled both inside the
//! kernel (no `std`, no `alloc`) and by the userspace crate `adapt-abi`.

/// Version of this ABI. Bumped on every incompatible change.
pub const ADAPT_ABI_VERSION: u32 = 1;

/// Name of the misc device; the node is `/dev/adapt`.
pub const ADAPT_DEVICE_NAME: &str = "adapt";

/// ioctl type byte of every adapt command.
pub const ADAPT_IOC_MAGIC: u32 = 0xAD;

/// Bytes reserved for the module version string (UTF-8, NUL-padded).
pub const ADAPT_MODULE_VERSION_LEN: usize = 32;

/// Capability bit: a hardware cycles event that can sample (raise an
/// overflow interrupt) is available, so the profiler uses the PMU.
pub const ADAPT_CAP_SAMPLING_HW_CYCLES: u64 = 1 << 0;
/// Capability bit: the software `cpu-clock` event can sample (hrtimer based).
pub const ADAPT_CAP_SAMPLING_SW_CLOCK: u64 = 1 << 1;
/// Every capability bit this ABI version defines.
pub const ADAPT_CAP_ALL: u64 = ADAPT_CAP_SAMPLING_HW_CYCLES | ADAPT_CAP_SAMPLING_SW_CLOCK;

// The generic Linux ioctl number layout (include/uapi/asm-generic/ioctl.h),
// which x86 uses.
const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_DIRBITS: u32 = 2;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;

/// Direction bit: no data.
pub const IOC_NONE: u32 = 0;
/// Direction bit: userspace writes, the kernel reads.
pub const IOC_WRITE: u32 = 1;
/// Direction bit: the kernel writes, userspace reads.
pub const IOC_READ: u32 = 2;

/// Builds an ioctl number; `size` must fit in 14 bits (checked at compile
/// time for every command below).
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    assert!(size < (1 << IOC_SIZEBITS));
    assert!(dir < (1 << IOC_DIRBITS));
    (dir << IOC_DIRSHIFT) | (ty << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT) | ((size as u32) << IOC_SIZESHIFT)
}

/// Direction bits of an ioctl number.
pub const fn ioc_dir(cmd: u32) -> u32 {
    (cmd >> IOC_DIRSHIFT) & ((1 << IOC_DIRBITS) - 1)
}

/// Type byte of an ioctl number.
pub const fn ioc_type(cmd: u32) -> u32 {
    (cmd >> IOC_TYPESHIFT) & ((1 << IOC_TYPEBITS) - 1)
}

/// Command number of an ioctl number.
pub const fn ioc_nr(cmd: u32) -> u32 {
    (cmd >> IOC_NRSHIFT) & ((1 << IOC_NRBITS) - 1)
}

/// Argument size encoded in an ioctl number.
pub const fn ioc_size(cmd: u32) -> usize {
    ((cmd >> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1)) as usize
}

const fn iowr<T>(nr: u32) -> u32 {
    ioc(IOC_READ | IOC_WRITE, ADAPT_IOC_MAGIC, nr, core::mem::size_of::<T>())
}

/// Argument of [`ADAPT_IOC_VERSION`].
///
/// The caller zeroes the struct; the module fills the output fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptVersion {
    /// In: must be zero.
    pub flags: u32,
    /// Out: [`ADAPT_ABI_VERSION`] as compiled into the module.
    pub abi_version: u32,
    /// Out: `ADAPT_CAP_*` bits describing this machine.
    pub capabilities: u64,
    /// Out: the module's version, UTF-8, NUL-padded.
    pub module_version: [u8; ADAPT_MODULE_VERSION_LEN],
    /// In: must be zero. Out: zero.
    pub reserved: [u64; 4],
}

/// Command number of [`ADAPT_IOC_VERSION`].
pub const ADAPT_NR_VERSION: u32 = 0x00;

/// Reports the ABI version, the module version and the capabilities of this
/// machine. Argument: [`AdaptVersion`].
pub const ADAPT_IOC_VERSION: u32 = iowr::<AdaptVersion>(ADAPT_NR_VERSION);

impl AdaptVersion {
    /// The module version as a string: the bytes before the first NUL, or
    /// `None` when they are not UTF-8.
    pub fn module_version_str(&self) -> Option<&str> {
        let len = self
            .module_version
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.module_version.len());
        core::str::from_utf8(&self.module_version[..len]).ok()
    }
}
