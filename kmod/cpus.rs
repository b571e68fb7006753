// SPDX-License-Identifier: GPL-2.0

//! CPU numbering: how many CPU ids exist, and which are online.

use crate::bindings;

/// Upper bound (exclusive) of every CPU id on this system.
pub(crate) fn nr_cpu_ids() -> u32 {
    // SAFETY: Reads a variable that is fixed after boot.
    unsafe { bindings::adapt_nr_cpu_ids() }
}

/// Iterator over the CPUs online when it is advanced.
pub(crate) fn online() -> impl Iterator<Item = u32> {
    let limit = nr_cpu_ids();
    let mut prev: i32 = -1;
    core::iter::from_fn(move || {
        // SAFETY: `cpumask_next` accepts -1 and any valid CPU id as `prev`.
        let next = unsafe { bindings::adapt_next_online_cpu(prev) };
        if next >= limit {
            return None;
        }
        prev = i32::try_from(next).ok()?;
        Some(next)
    })
}
