// SPDX-License-Identifier: GPL-2.0

//! Error codes the module returns that 6.12's `kernel::error::code` lacks.

use crate::bindings;
use kernel::error::Error;

fn errno(value: u32) -> Error {
    // Errno constants are small positive numbers.
    Error::from_errno(-(value as i32))
}

/// `EOPNOTSUPP`: the operation does not apply to this target.
pub(crate) fn eopnotsupp() -> Error {
    errno(bindings::EOPNOTSUPP)
}

/// `EDQUOT`: an injection limit of the policy is reached.
pub(crate) fn edquot() -> Error {
    errno(bindings::EDQUOT)
}

/// `EPROTO`: the C contracts of the target and the segment differ.
pub(crate) fn eproto() -> Error {
    errno(bindings::EPROTO)
}

/// `ESTALE`: the target's bytes are not the ones userspace saw.
pub(crate) fn estale() -> Error {
    errno(bindings::ESTALE)
}

/// `EADDRINUSE`: the address range userspace chose for a segment is taken.
pub(crate) fn eaddrinuse() -> Error {
    errno(bindings::EADDRINUSE)
}
