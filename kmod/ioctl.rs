// SPDX-License-Identifier: GPL-2.0

//! ioctl dispatch: every command's argument is validated here before any
//! state is touched (sizes through the ioctl number, `flags` and `reserved`
//! fields, pointers through the uaccess helpers).

use crate::abi;
use crate::device::Client;
use core::mem::size_of;
use kernel::{
    prelude::*,
    types::{AsBytes, FromBytes},
    uaccess::UserSlice,
};

// SAFETY: `AdaptVersion` is `#[repr(C)]`, made only of integers and an array
// of bytes, and has no padding (the userspace layout test pins its size to
// the sum of its fields): every bit pattern is valid and every byte is
// initialized.
unsafe impl FromBytes for abi::AdaptVersion {}
// SAFETY: See `FromBytes` above.
unsafe impl AsBytes for abi::AdaptVersion {}

/// Handles one ioctl on an open `/dev/adapt`.
///
/// A foreign type or an unknown command number is `ENOTTY`; a known number
/// with another argument size or direction is `EINVAL`.
pub(crate) fn dispatch(client: &Client, cmd: u32, arg: usize) -> Result<isize> {
    if abi::ioc_type(cmd) != abi::ADAPT_IOC_MAGIC {
        return Err(ENOTTY);
    }
    match abi::ioc_nr(cmd) {
        abi::ADAPT_NR_VERSION => {
            expect_cmd(cmd, abi::ADAPT_IOC_VERSION)?;
            version(client, arg)
        }
        _ => Err(ENOTTY),
    }
}

fn expect_cmd(cmd: u32, expected: u32) -> Result {
    if cmd == expected {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

fn version(client: &Client, arg: usize) -> Result<isize> {
    let (mut reader, mut writer) =
        UserSlice::new(arg, size_of::<abi::AdaptVersion>()).reader_writer();
    let request: abi::AdaptVersion = reader.read()?;
    if request.flags != 0 || request.reserved != [0; 4] {
        return Err(EINVAL);
    }

    let mut reply = abi::AdaptVersion {
        abi_version: abi::ADAPT_ABI_VERSION,
        capabilities: client.shared.capabilities,
        ..Default::default()
    };
    // Copy at most all but the last byte, so the string stays NUL-terminated.
    let room = reply.module_version.len().saturating_sub(1);
    for (dst, src) in reply
        .module_version
        .iter_mut()
        .zip(crate::MODULE_VERSION.bytes().take(room))
    {
        *dst = src;
    }
    writer.write(&reply)?;
    Ok(0)
}
