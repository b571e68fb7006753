// SPDX-License-Identifier: GPL-2.0
//! The in-process loader: maps a verified variant into this process exactly
//! as the kernel maps it into a target, and hands out its entry points.
//!
//! Layout ([`Layout`]): one reservation, code pages first, read-only data
//! pages after them. The code pages are a mapping of their own, created
//! read+write, filled (tail with `int3`), relocated, then switched to
//! read+execute with `mprotect`: no page is ever writable and executable at
//! once. The read-only data is a second, non-executable mapping, switched to
//! read-only once filled.
//!
//! A variant of a segment with imports ([`InProcessVariant::load_with_imports`])
//! is placed as the module places it ([`ImportLayout`]): code and trampoline
//! space read+execute, the import table read-only on its own pages, holding
//! the addresses the caller gives (a test points `fallback` at the original
//! function itself: a jump to the original's entry with the registers and
//! stack untouched is what the trampoline does), the read-only data after it.

use std::ffi::c_void;
use std::io;
use std::ptr::NonNull;

use crate::cpu::CpuFeatures;
use crate::format::import_table::{ImportLayout, SLOT_SIZE};
use crate::format::{Segment, SegmentFile, Variant};
use crate::reloc::{apply_relocations, Layout, RelocError, CODE_FILL};
use crate::verify::{verify_variant, VerifyError};

/// Why a variant could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// The segment has no variant with that name or index.
    #[error("segment {segment} has no variant {variant}")]
    NoSuchVariant {
        /// Segment name.
        segment: String,
        /// The variant asked for.
        variant: String,
    },
    /// The variant is refused by the verifier.
    #[error("segment {segment}: {source}")]
    Verify {
        /// Segment name.
        segment: String,
        /// The verifier's verdict.
        source: VerifyError,
    },
    /// This CPU lacks features the variant needs.
    #[error(
        "segment {segment} variant {variant} needs CPU features this machine lacks: {missing}"
    )]
    MissingFeatures {
        /// Segment name.
        segment: String,
        /// Variant name.
        variant: String,
        /// What is missing.
        missing: CpuFeatures,
    },
    /// A mapping call failed.
    #[error("segment {segment}: {what}: {source}")]
    Map {
        /// Segment name.
        segment: String,
        /// The call that failed.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Relocations could not be resolved for the layout.
    #[error("segment {segment}: {source}")]
    Reloc {
        /// Segment name.
        segment: String,
        /// What went wrong.
        source: RelocError,
    },
    /// The import addresses given do not match the declared imports.
    #[error("segment {segment} declares {declared} import(s), {given} address(es) given")]
    ImportCount {
        /// Segment name.
        segment: String,
        /// Imports the file declares.
        declared: usize,
        /// Addresses given.
        given: usize,
    },
    /// The segment replaces no function of that name.
    #[error("segment {segment} has no function {symbol}")]
    NoSuchFunction {
        /// Segment name.
        segment: String,
        /// The symbol asked for.
        symbol: String,
    },
}

/// A variant mapped into this process. Unmapped on drop.
///
/// # Invariants
///
/// `base..base + total` is a mapping owned by this value: the code
/// pages are read+execute and hold the relocated code, the import table
/// pages (if any) and the read-only data pages (if any) are read-only and
/// hold the slots and the data; nothing else refers to it.
#[derive(Debug)]
pub struct InProcessVariant {
    base: NonNull<u8>,
    layout: Layout,
    total: usize,
    segment: String,
    variant: String,
    entries: Vec<(String, usize)>,
    /// Offset and bytes of the data area (see [`InProcessVariant::load_with_data`]).
    data: (usize, usize),
}

// SAFETY: the mapping is never written through this handle after `load`
// returns (code read+exec, the rest read-only; the data area is written
// only by the variant's own code, with atomic instructions), so sharing or
// moving the handle across threads is sound.
unsafe impl Send for InProcessVariant {}
// SAFETY: as above: all accesses through `&InProcessVariant` are reads.
unsafe impl Sync for InProcessVariant {}

struct Reservation {
    base: *mut c_void,
    len: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` was returned by mmap and is owned by this
        // guard, which is forgotten once ownership passes to InProcessVariant.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

fn os_err(segment: &str, what: &'static str) -> LoaderError {
    LoaderError::Map {
        segment: segment.to_owned(),
        what,
        source: io::Error::last_os_error(),
    }
}

/// Maps `len` fresh read+write anonymous bytes at `addr`, inside a
/// reservation.
///
/// # Safety
///
/// `addr..addr+len` must lie inside a reservation owned by the caller, with
/// nothing else referring to it.
unsafe fn map_rw_at(addr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: MAP_FIXED replaces pages of the caller's own reservation only
    // (the caller's contract), so no other mapping is clobbered.
    let p = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl InProcessVariant {
    /// Verifies variant `index` of `segment`, checks this CPU has its
    /// features, and maps it.
    pub fn load(segment: &Segment, index: usize) -> Result<InProcessVariant, LoaderError> {
        let name = &segment.name;
        let v = segment
            .variants
            .get(index)
            .ok_or_else(|| LoaderError::NoSuchVariant {
                segment: name.clone(),
                variant: format!("#{index}"),
            })?;
        verify_variant(segment, index).map_err(|source| LoaderError::Verify {
            segment: name.clone(),
            source,
        })?;
        InProcessVariant::map(segment, v, &[], 0)
    }

    /// Verifies variant `index` of a segment with imports (all its
    /// variants, with the imports), checks this CPU has its features, and
    /// maps it with import slot `m` holding `addresses[m]`.
    ///
    /// # Safety
    ///
    /// Each `addresses[m]` must be a function following the contract of
    /// `file.imports[m]` (for [`crate::FALLBACK`]: the replaced function's
    /// own) for as long as the variant's entries are called.
    pub unsafe fn load_with_imports(
        file: &SegmentFile,
        index: usize,
        addresses: &[u64],
    ) -> Result<InProcessVariant, LoaderError> {
        // SAFETY: the caller's contract.
        unsafe { InProcessVariant::load_with_data(file, index, addresses, 0) }
    }

    /// [`InProcessVariant::load_with_imports`] for generated code that
    /// gets a per-injection data area of `data_len` bytes (verified with
    /// [`crate::verify_with_data`]): zeroed read+write pages after the
    /// read-only data, as the module maps them ([`InProcessVariant::data`]).
    ///
    /// # Safety
    ///
    /// As for [`InProcessVariant::load_with_imports`].
    pub unsafe fn load_with_data(
        file: &SegmentFile,
        index: usize,
        addresses: &[u64],
        data_len: u32,
    ) -> Result<InProcessVariant, LoaderError> {
        let segment = &file.segment;
        let name = &segment.name;
        let v = segment
            .variants
            .get(index)
            .ok_or_else(|| LoaderError::NoSuchVariant {
                segment: name.clone(),
                variant: format!("#{index}"),
            })?;
        if addresses.len() != file.imports.len() {
            return Err(LoaderError::ImportCount {
                segment: name.clone(),
                declared: file.imports.len(),
                given: addresses.len(),
            });
        }
        crate::verify_with_data(segment, &file.imports, data_len).map_err(|source| {
            LoaderError::Verify {
                segment: name.clone(),
                source,
            }
        })?;
        InProcessVariant::map(segment, v, addresses, data_len as usize)
    }

    /// The data area's bytes as the code left them (empty without one).
    pub fn data(&self) -> &[u8] {
        let (offset, len) = self.data;
        // SAFETY: the data area lies inside the reservation, mapped
        // read+write and zeroed at load; the variant's code only ever adds
        // to it, and a torn read of a counter is what the caller accepts
        // (counters are read between calls in tests and benchmarks).
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(offset), len) }
    }

    /// Maps a verified variant `v` of `segment`, with an import table
    /// holding `imports` when there are any.
    fn map(
        segment: &Segment,
        v: &Variant,
        imports: &[u64],
        data_len: usize,
    ) -> Result<InProcessVariant, LoaderError> {
        let name = &segment.name;
        let cpu = CpuFeatures::detect();
        if !cpu.is_superset(&v.features) {
            return Err(LoaderError::MissingFeatures {
                segment: name.clone(),
                variant: v.name.clone(),
                missing: cpu.missing(&v.features),
            });
        }

        let (layout, table, total) = if imports.is_empty() {
            let layout = Layout::of(v);
            (layout, None, layout.total())
        } else {
            let il = ImportLayout::of(v.code.len(), v.rodata.len(), imports.len());
            let layout = Layout {
                code_pages: il.exec_pages,
                rodata_offset: il.rodata_offset,
                rodata_pages: il.rodata_pages,
            };
            (
                layout,
                Some((il.import_table_offset, il.import_table_pages)),
                il.total() + crate::page_align(data_len),
            )
        };
        let data = (
            crate::data_area_offset(v.code.len(), v.rodata.len(), imports.len()),
            data_len,
        );
        // SAFETY: a fresh anonymous PROT_NONE mapping at an address of the
        // kernel's choosing touches no existing memory.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(os_err(name, "reserving address space"));
        }
        let guard = Reservation { base, len: total };
        let code_ptr = base.cast::<u8>();
        // `rodata_offset` is within the reservation by construction of Layout.
        let rodata_ptr = code_ptr.wrapping_add(layout.rodata_offset);

        // SAFETY: the code pages are the start of our own reservation.
        unsafe { map_rw_at(code_ptr, layout.code_pages) }.map_err(|source| LoaderError::Map {
            segment: name.clone(),
            what: "mapping code pages read+write",
            source,
        })?;
        // SAFETY: code_ptr..+code_pages was just mapped read+write, and this
        // function holds the only reference to it.
        let code = unsafe { std::slice::from_raw_parts_mut(code_ptr, layout.code_pages) };
        code.fill(CODE_FILL);
        code[..v.code.len()].copy_from_slice(&v.code);
        apply_relocations(
            &mut code[..v.code.len()],
            &v.relocations,
            code_ptr as u64,
            rodata_ptr as u64,
        )
        .map_err(|source| LoaderError::Reloc {
            segment: name.clone(),
            source,
        })?;
        // SAFETY: the range is our own code mapping; from now on it is only
        // read and executed (read+exec, never write+exec).
        if unsafe {
            libc::mprotect(
                code_ptr.cast(),
                layout.code_pages,
                libc::PROT_READ | libc::PROT_EXEC,
            )
        } != 0
        {
            return Err(os_err(name, "making code pages read+execute"));
        }

        if let Some((offset, pages)) = table {
            let table_ptr = code_ptr.wrapping_add(offset);
            // SAFETY: the import table's pages follow the code pages inside
            // our own reservation.
            unsafe { map_rw_at(table_ptr, pages) }.map_err(|source| LoaderError::Map {
                segment: name.clone(),
                what: "mapping the import table read+write",
                source,
            })?;
            // SAFETY: just mapped read+write, only referenced here.
            let slots = unsafe { std::slice::from_raw_parts_mut(table_ptr, pages) };
            for (slot, address) in slots.chunks_exact_mut(SLOT_SIZE).zip(imports) {
                slot.copy_from_slice(&address.to_le_bytes());
            }
            // SAFETY: our own mapping; read-only from now on.
            if unsafe { libc::mprotect(table_ptr.cast(), pages, libc::PROT_READ) } != 0 {
                return Err(os_err(name, "making the import table read-only"));
            }
        }

        if layout.rodata_pages > 0 {
            // SAFETY: the read-only data pages follow the code pages inside
            // our own reservation.
            unsafe { map_rw_at(rodata_ptr, layout.rodata_pages) }.map_err(|source| {
                LoaderError::Map {
                    segment: name.clone(),
                    what: "mapping rodata pages read+write",
                    source,
                }
            })?;
            // SAFETY: just mapped read+write, only referenced here.
            let ro = unsafe { std::slice::from_raw_parts_mut(rodata_ptr, layout.rodata_pages) };
            ro[..v.rodata.len()].copy_from_slice(&v.rodata);
            // SAFETY: our own mapping; read-only from now on.
            if unsafe { libc::mprotect(rodata_ptr.cast(), layout.rodata_pages, libc::PROT_READ) }
                != 0
            {
                return Err(os_err(name, "making rodata pages read-only"));
            }
        }

        if data.1 > 0 {
            // SAFETY: the data area is the end of our own reservation;
            // zeroed, read+write, never executable.
            unsafe { map_rw_at(code_ptr.wrapping_add(data.0), crate::page_align(data.1)) }
                .map_err(|source| LoaderError::Map {
                    segment: name.clone(),
                    what: "mapping the data area read+write",
                    source,
                })?;
        }

        let entries = segment
            .functions
            .iter()
            .zip(&v.entry_offsets)
            .map(|(f, &off)| (f.symbol.clone(), code_ptr as usize + off as usize))
            .collect();
        std::mem::forget(guard);
        Ok(InProcessVariant {
            // mmap never returns a null mapping on success (it is MAP_FAILED
            // on error, checked above), hence the fallback is unreachable.
            base: NonNull::new(code_ptr).unwrap_or(NonNull::dangling()),
            layout,
            total,
            segment: name.clone(),
            variant: v.name.clone(),
            entries,
            data,
        })
    }

    /// Loads the variant named `variant`.
    pub fn load_named(segment: &Segment, variant: &str) -> Result<InProcessVariant, LoaderError> {
        let (i, _) = segment
            .variant(variant)
            .ok_or_else(|| LoaderError::NoSuchVariant {
                segment: segment.name.clone(),
                variant: variant.to_owned(),
            })?;
        InProcessVariant::load(segment, i)
    }

    /// Segment name.
    pub fn segment(&self) -> &str {
        &self.segment
    }

    /// Variant name.
    pub fn variant(&self) -> &str {
        &self.variant
    }

    /// Address of the code.
    pub fn code_address(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// Address of the read-only data.
    pub fn rodata_address(&self) -> usize {
        self.base.as_ptr() as usize + self.layout.rodata_offset
    }

    /// The layout used.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Address of the entry of `symbol`.
    pub fn entry_address(&self, symbol: &str) -> Result<usize, LoaderError> {
        self.entries
            .iter()
            .find(|(s, _)| s == symbol)
            .map(|&(_, a)| a)
            .ok_or_else(|| LoaderError::NoSuchFunction {
                segment: self.segment.clone(),
                symbol: symbol.to_owned(),
            })
    }

    /// The entry of `symbol` as a function pointer of type `F`.
    ///
    /// # Safety
    ///
    /// `F` must be an `unsafe extern "C" fn` type matching the function's
    /// [`crate::Contract`], and the pointer must not be called after `self`
    /// is dropped (the code is unmapped then).
    pub unsafe fn function<F: Copy>(&self, symbol: &str) -> Result<F, LoaderError> {
        const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<usize>()) };
        let addr = self.entry_address(symbol)?;
        // SAFETY: F is pointer-sized (checked at compile time) and, by the
        // caller's contract, a function pointer type; `addr` is the start of
        // an instruction of verified, mapped, executable code.
        Ok(unsafe { std::mem::transmute_copy::<usize, F>(&addr) })
    }
}

impl Drop for InProcessVariant {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the reservation is ours and nothing
        // else refers to it; function pointers handed out may not be called
        // past this point (contract of `function`).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.total) };
    }
}
