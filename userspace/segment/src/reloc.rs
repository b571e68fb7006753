// SPDX-License-Identifier: GPL-2.0
//! Placing a variant in memory and resolving its relocations for that place.

use crate::format::{Relocation, Variant};

/// Page size of x86-64 Linux.
pub const PAGE_SIZE: usize = 4096;

/// Rounds `n` up to a whole number of pages.
pub const fn page_align(n: usize) -> usize {
    n.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

/// Where code and read-only data go relative to each other in the standard
/// layout used by the in-process loader (and suggested to the kernel): code
/// pages first (the tail of the last one filled with `int3`), then the
/// read-only data pages right after them. Any other placement within ±2 GiB
/// is equally valid once the relocations are resolved for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Bytes of code pages (the code size rounded up to pages).
    pub code_pages: usize,
    /// Offset of the read-only data from the start of the code.
    pub rodata_offset: usize,
    /// Bytes of read-only data pages (zero when there is no read-only data).
    pub rodata_pages: usize,
}

impl Layout {
    /// The standard layout of `v`.
    pub fn of(v: &Variant) -> Layout {
        let code_pages = page_align(v.code.len());
        Layout {
            code_pages,
            rodata_offset: code_pages,
            rodata_pages: page_align(v.rodata.len()),
        }
    }

    /// Bytes of the whole reservation.
    pub fn total(&self) -> usize {
        self.code_pages + self.rodata_pages
    }
}

/// Byte used to fill code pages after the code (`int3`: traps if reached).
pub const CODE_FILL: u8 = 0xcc;

/// Why relocations could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelocError {
    /// A relocation's field does not lie inside the code.
    #[error("relocation {index}: field at {offset:#x} is outside the code ({code_len:#x} bytes)")]
    FieldOutside {
        /// Index of the relocation.
        index: usize,
        /// Its offset.
        offset: u32,
        /// Code size.
        code_len: usize,
    },
    /// The read-only data is too far from the code for a 32-bit displacement.
    #[error("relocation {index} at {offset:#x}: displacement {value:#x} does not fit 32 bits (rodata too far from code)")]
    OutOfRange {
        /// Index of the relocation.
        index: usize,
        /// Its offset.
        offset: u32,
        /// The displacement that did not fit.
        value: i128,
    },
}

/// Resolves `relocations` in `code`, for code placed at `code_addr` and
/// read-only data at `rodata_addr`.
pub fn apply_relocations(
    code: &mut [u8],
    relocations: &[Relocation],
    code_addr: u64,
    rodata_addr: u64,
) -> Result<(), RelocError> {
    for (index, r) in relocations.iter().enumerate() {
        let at = r.offset as usize;
        let Some(field) = at.checked_add(4).and_then(|end| code.get_mut(at..end)) else {
            return Err(RelocError::FieldOutside {
                index,
                offset: r.offset,
                code_len: code.len(),
            });
        };
        let value = i128::from(rodata_addr) + i128::from(r.rodata_offset) + i128::from(r.addend)
            - (i128::from(code_addr) + i128::from(r.offset));
        let v = i32::try_from(value).map_err(|_| RelocError::OutOfRange {
            index,
            offset: r.offset,
            value,
        })?;
        field.copy_from_slice(&v.to_le_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_pc_relative_fields() {
        let mut code = vec![0u8; 16];
        let relocs = [Relocation {
            offset: 3,
            rodata_offset: 0x20,
            addend: -4,
        }];
        apply_relocations(&mut code, &relocs, 0x1000, 0x3000).expect("in range");
        let v = i32::from_le_bytes(code[3..7].try_into().expect("4 bytes"));
        assert_eq!(v, 0x3000 + 0x20 - 4 - (0x1000 + 3));
    }

    #[test]
    fn refuses_far_rodata_and_fields_outside() {
        let mut code = vec![0u8; 8];
        let far = [Relocation {
            offset: 0,
            rodata_offset: 0,
            addend: 0,
        }];
        assert!(matches!(
            apply_relocations(&mut code, &far, 0, 1 << 32),
            Err(RelocError::OutOfRange { index: 0, .. })
        ));
        let outside = [Relocation {
            offset: 5,
            rodata_offset: 0,
            addend: 0,
        }];
        assert!(matches!(
            apply_relocations(&mut code, &outside, 0, 0),
            Err(RelocError::FieldOutside { .. })
        ));
    }
}
