// SPDX-License-Identifier: GPL-2.0

//! What 6.12's `KVec` lacks and the module needs.

use kernel::alloc::{Allocator, Vec};

/// Removes the element at `index` by moving the last element into its place
/// (order is not kept). Returns `None` when `index` is out of bounds.
pub(crate) fn swap_remove<T, A: Allocator>(vec: &mut Vec<T, A>, index: usize) -> Option<T> {
    let last = vec.len().checked_sub(1)?;
    if index > last {
        return None;
    }
    let slice = vec.as_mut_slice();
    if index != last {
        // Both indices are < len, checked above; `swap` cannot fail here.
        slice.swap(index, last);
    }
    // SAFETY: `last < len`, so the element there is initialized. We read it
    // out and shrink the length by one, so the vector no longer owns it and
    // it is neither dropped twice nor leaked.
    unsafe {
        let item = core::ptr::read(vec.as_ptr().add(last));
        vec.set_len(last);
        Some(item)
    }
}
