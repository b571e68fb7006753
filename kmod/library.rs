// SPDX-License-Identifier: GPL-2.0

//! The optimization library as held by the module: variants uploaded by
//! adaptctl, laid out in module-owned pages ready to be mapped into targets.
//!
//! The module never trusts a variant to be correct (adaptctl verifies the
//! code); it only makes sure that every length, count and offset it is given
//! stays inside what it was given, so that nothing it does with a variant can
//! touch memory outside it.
//!
//! Layout of a loaded variant (the one adaptctl's loader uses too): code
//! pages first, the tail of the last one filled with `int3`, then the
//! read-only data pages; relocations are resolved for that layout at load.
//!
//! A variant with imports (`nimports > 0`, format version 2) is laid out
//! as `abi::adapt_import_layout` says: its code pages also cover the
//! trampoline space (`int3` here; each injection writes its own trampoline
//! into a copy, see `segment_map::Instance`), then come the import table's
//! pages (per injection, not held here), then the read-only data, which
//! the relocations are resolved for. Such a variant may also declare a
//! per-injection data area (`data_len`): zeroed read+write pages, never
//! executable, which each injection maps after the read-only data
//! (`abi::adapt_data_offset`; see `segment_map::map_at`). No page of it is
//! held here.
//!
//! Lock order: `Library::variants` is a leaf lock.

use crate::abi::{self, AdaptLibraryInfo, AdaptSegmentEntry, AdaptSegmentReloc};
use crate::kvec_ext::swap_remove;
use core::mem::size_of;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use kernel::{
    new_mutex,
    page::{Page, PAGE_SIZE},
    prelude::*,
    sync::{Arc, Mutex},
    types::{AsBytes, FromBytes},
    uaccess::UserSlice,
};

/// Byte that fills code pages after the code: `int3`.
const CODE_FILL: u8 = 0xcc;
/// Largest relocation addend accepted (the segment format's own limit).
const MAX_ADDEND: i32 = 1 << 16;

/// One function a variant implements.
pub(crate) struct Entry {
    pub(crate) offset: u32,
    pub(crate) contract_hash: u64,
}

/// A use of a variant by an injection (or one being made): counted in
/// `Variant::users` while it lives.
pub(crate) struct VariantUse(Arc<Variant>);

impl VariantUse {
    pub(crate) fn variant(&self) -> &Arc<Variant> {
        &self.0
    }
}

impl Drop for VariantUse {
    fn drop(&mut self) {
        self.0.users.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One loaded variant.
pub(crate) struct Variant {
    pub(crate) id: u64,
    pub(crate) segment: [u8; abi::ADAPT_NAME_LEN],
    pub(crate) variant: [u8; abi::ADAPT_NAME_LEN],
    pub(crate) hash: [u8; 32],
    pub(crate) cpu_features: u64,
    pub(crate) code_len: u32,
    pub(crate) rodata_len: u32,
    /// Pages holding the code (the first `code_pages`), then the read-only
    /// data.
    pub(crate) pages: KVec<Page>,
    pub(crate) code_pages: usize,
    /// Pages of the import table between the code and the read-only data
    /// when mapped (0 without imports; the pages themselves are made per
    /// injection).
    pub(crate) table_pages: usize,
    /// Import slots (0: leaf code).
    pub(crate) nimports: u32,
    /// Pages of the per-injection data area mapped after the read-only
    /// data (0: none; only with imports).
    pub(crate) data_pages: usize,
    pub(crate) entries: KVec<Entry>,
    /// Live injections using this variant.
    pub(crate) users: AtomicU32,
    /// Set when a target faulted inside this variant.
    pub(crate) quarantined: AtomicBool,
}

impl Variant {
    fn info(&self) -> AdaptLibraryInfo {
        AdaptLibraryInfo {
            id: self.id,
            segment: self.segment,
            variant: self.variant,
            hash: self.hash,
            cpu_features: self.cpu_features,
            code_len: self.code_len,
            rodata_len: self.rodata_len,
            // At most ADAPT_SEGMENT_MAX_ENTRIES (checked at load).
            nentries: self.entries.len() as u32,
            users: self.users.load(Ordering::Relaxed),
            flags: if self.quarantined.load(Ordering::Relaxed) {
                abi::ADAPT_LIBRARY_F_QUARANTINED
            } else {
                0
            },
            nimports: self.nimports,
        }
    }

    /// Bytes a mapping of the variant takes in a target (code, import
    /// table, read-only data, data area).
    pub(crate) fn mapped_len(&self) -> u64 {
        ((self.pages.len() + self.table_pages + self.data_pages) * PAGE_SIZE) as u64
    }

    /// Code offset of the trampoline space (variants with imports).
    pub(crate) fn trampoline_offset(&self) -> usize {
        abi::adapt_import_layout(self.code_len as usize, self.nimports as usize).trampoline_offset
    }

    fn total_bytes(&self) -> u64 {
        u64::from(self.code_len) + u64::from(self.rodata_len)
    }
}

/// Every loaded variant.
#[pin_data]
pub(crate) struct Library {
    #[pin]
    variants: Mutex<KVec<Arc<Variant>>>,
    next_id: AtomicU64,
}

/// Outcome of a load.
#[derive(Clone, Copy)]
pub(crate) enum Loaded {
    New(u64),
    /// A variant with the same hash was already loaded.
    Existing(u64),
}

impl Library {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            variants <- new_mutex!(KVec::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Validates and copies one variant described by `request` (whose
    /// pointers are user pointers).
    pub(crate) fn load(&self, request: &abi::AdaptLibraryLoad) -> Result<Loaded> {
        check_header(request)?;
        if let Some(id) = self.find_hash(&request.hash) {
            return Ok(Loaded::Existing(id));
        }
        {
            let variants = self.variants.lock();
            let bytes: u64 = variants.iter().map(|v| v.total_bytes()).sum();
            if variants.len() >= abi::ADAPT_LIBRARY_MAX_VARIANTS as usize
                || bytes + u64::from(request.code_len) + u64::from(request.rodata_len)
                    > abi::ADAPT_LIBRARY_MAX_BYTES
            {
                return Err(ENOSPC);
            }
        }

        let code = read_user_bytes(request.code, request.code_len)?;
        let rodata = read_user_bytes(request.rodata, request.rodata_len)?;
        let relocs: KVVec<AdaptSegmentReloc> = read_user_array(request.relocs, request.nrelocs)?;
        let raw_entries: KVVec<AdaptSegmentEntry> = read_user_array(request.entries, request.nentries)?;

        // Without imports: code pages, then the read-only data. With
        // imports: the code pages cover the trampoline space too, and the
        // import table's pages lie between them and the read-only data.
        let (code_pages, table_pages) = if request.nimports == 0 {
            (pages_for(code.len()), 0)
        } else {
            let layout = abi::adapt_import_layout(code.len(), request.nimports as usize);
            (
                layout.import_table_offset / PAGE_SIZE,
                layout.import_table_pages / PAGE_SIZE,
            )
        };
        let image_len = (code_pages + pages_for(rodata.len())) * PAGE_SIZE;
        let mut image = KVVec::from_elem(0u8, image_len, GFP_KERNEL)?;
        fill_image(&mut image, &code, code_pages, table_pages, &rodata, &relocs)?;

        let mut entries = KVec::with_capacity(raw_entries.len(), GFP_KERNEL)?;
        for e in raw_entries.iter() {
            if e.flags != 0 || e.offset >= request.code_len || !valid_name(&e.symbol) {
                return Err(EINVAL);
            }
            entries.push(
                Entry {
                    offset: e.offset,
                    contract_hash: e.contract_hash,
                },
                GFP_KERNEL,
            )?;
        }

        let pages = copy_to_pages(&image)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let variant = Arc::new(
            Variant {
                id,
                segment: request.segment,
                variant: request.variant,
                hash: request.hash,
                cpu_features: request.cpu_features,
                code_len: request.code_len,
                rodata_len: request.rodata_len,
                pages,
                code_pages,
                table_pages,
                nimports: request.nimports,
                data_pages: pages_for(request.data_len as usize),
                entries,
                users: AtomicU32::new(0),
                quarantined: AtomicBool::new(false),
            },
            GFP_KERNEL,
        )?;

        let mut variants = self.variants.lock();
        // Re-check under the lock: another loader may have raced us.
        if let Some(existing) = variants.iter().find(|v| v.hash == request.hash) {
            return Ok(Loaded::Existing(existing.id));
        }
        // The count and byte limits too: loads run concurrently.
        let bytes: u64 = variants.iter().map(|v| v.total_bytes()).sum();
        if variants.len() >= abi::ADAPT_LIBRARY_MAX_VARIANTS as usize
            || bytes + variant.total_bytes() > abi::ADAPT_LIBRARY_MAX_BYTES
        {
            return Err(ENOSPC);
        }
        variants.push(variant, GFP_KERNEL)?;
        Ok(Loaded::New(id))
    }

    /// Marks the variants the fault watch queued as quarantined.
    pub(crate) fn apply_quarantines(&self) {
        let variants = self.variants.lock();
        crate::fault_watch::drain(|id| {
            if let Some(v) = variants.iter().find(|v| v.id == id) {
                if !v.quarantined.swap(true, Ordering::AcqRel) {
                    pr_info!("variant {} quarantined: a target faulted inside it\n", id);
                }
            }
        });
    }

    /// The variant with library id `id`, counted as used (under the
    /// library's lock, so that an unload sees the use) until the returned
    /// value is dropped.
    pub(crate) fn acquire(&self, id: u64) -> Option<VariantUse> {
        let variants = self.variants.lock();
        let variant = variants.iter().find(|v| v.id == id)?.clone();
        variant.users.fetch_add(1, Ordering::AcqRel);
        Some(VariantUse(variant))
    }

    fn find_hash(&self, hash: &[u8; 32]) -> Option<u64> {
        self.variants.lock().iter().find(|v| &v.hash == hash).map(|v| v.id)
    }

    /// Removes variant `id`. While injections use it: `Err((EBUSY, users))`
    /// (`ADAPT_LIBRARY_UNLOAD_F_FORCE` reverts them first, in the ioctl).
    pub(crate) fn unload(&self, id: u64) -> core::result::Result<(), (Error, u32)> {
        let removed = {
            let mut variants = self.variants.lock();
            let index = variants.iter().position(|v| v.id == id).ok_or((ENOENT, 0))?;
            let users = variants.get(index).map_or(0, |v| v.users.load(Ordering::Relaxed));
            if users != 0 {
                return Err((EBUSY, users));
            }
            swap_remove(&mut variants, index)
        };
        drop(removed);
        Ok(())
    }

    /// Descriptions of up to `max` variants, and how many there are.
    pub(crate) fn list(&self, max: usize) -> Result<(KVec<AdaptLibraryInfo>, usize)> {
        self.apply_quarantines();
        let variants = self.variants.lock();
        let mut out = KVec::with_capacity(max.min(variants.len()), GFP_KERNEL)?;
        for v in variants.iter().take(max) {
            out.push(v.info(), GFP_KERNEL)?;
        }
        Ok((out, variants.len()))
    }
}

fn check_header(r: &abi::AdaptLibraryLoad) -> Result {
    let format = if r.nimports == 0 {
        abi::ADAPT_SEGMENT_FORMAT_VERSION
    } else {
        abi::ADAPT_SEGMENT_FORMAT_VERSION_IMPORTS
    };
    if r.format_version != format
        || r.flags != 0
        || r.reserved != [0; 4]
        || r.pad != 0
        || (r.data_len != 0 && r.nimports == 0)
        || r.cpu_features & !abi::ADAPT_CPU_FEATURES_ALL != 0
        || !valid_name(&r.segment)
        || !valid_name(&r.variant)
    {
        return Err(EINVAL);
    }
    if r.code_len > abi::ADAPT_SEGMENT_MAX_CODE
        || r.rodata_len > abi::ADAPT_SEGMENT_MAX_RODATA
        || r.nrelocs > abi::ADAPT_SEGMENT_MAX_RELOCS
        || r.nentries > abi::ADAPT_SEGMENT_MAX_ENTRIES
        || r.nimports > abi::ADAPT_SEGMENT_MAX_IMPORTS
        || r.data_len > abi::ADAPT_SEGMENT_MAX_DATA
    {
        return Err(E2BIG);
    }
    if r.code_len == 0
        || r.nentries == 0
        || !r.rodata_align.is_power_of_two()
        || r.rodata_align > abi::ADAPT_SEGMENT_MAX_RODATA_ALIGN
        || (r.rodata_len == 0 && r.nrelocs != 0)
    {
        return Err(EINVAL);
    }
    Ok(())
}

/// A name field: non-empty, NUL-terminated, zero after the NUL, and made of
/// ASCII letters, digits and `._+-`.
pub(crate) fn valid_name(field: &[u8]) -> bool {
    let Some(len) = field.iter().position(|&b| b == 0) else {
        return false;
    };
    let (name, rest) = field.split_at(len);
    len > 0
        && rest.iter().all(|&b| b == 0)
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
}

fn pages_for(len: usize) -> usize {
    len.div_ceil(PAGE_SIZE)
}

fn read_user_bytes(ptr: u64, len: u32) -> Result<KVVec<u8>> {
    let len = len as usize;
    let mut buf = KVVec::from_elem(0u8, len, GFP_KERNEL)?;
    if len > 0 {
        let ptr = usize::try_from(ptr).map_err(|_| EFAULT)?;
        UserSlice::new(ptr, len).reader().read_slice(buf.as_mut_slice())?;
    }
    Ok(buf)
}

pub(crate) fn read_user_array<T: FromBytes + AsBytes + Default + Clone>(ptr: u64, count: u32) -> Result<KVVec<T>> {
    let count = count as usize;
    let mut out = KVVec::from_elem(T::default(), count, GFP_KERNEL)?;
    if count > 0 {
        let ptr = usize::try_from(ptr).map_err(|_| EFAULT)?;
        let bytes = count.checked_mul(size_of::<T>()).ok_or(EINVAL)?;
        // SAFETY: `T` is plain bytes (`FromBytes + AsBytes`): any bytes
        // written into its storage form valid values, and the slice covers
        // exactly the `count` initialized elements.
        let raw = unsafe { core::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), bytes) };
        UserSlice::new(ptr, bytes).reader().read_slice(raw)?;
    }
    Ok(out)
}

/// Lays out `code` and `rodata` in `image` (already sized to whole pages and
/// zeroed) and resolves the relocations for the mapped layout, where
/// `table_pages` pages of import table lie between the two.
fn fill_image(
    image: &mut [u8],
    code: &[u8],
    code_pages: usize,
    table_pages: usize,
    rodata: &[u8],
    relocs: &[AdaptSegmentReloc],
) -> Result {
    let (code_area, rodata_area) = image.split_at_mut(code_pages * PAGE_SIZE);
    let rodata_start = (code_pages + table_pages) * PAGE_SIZE;
    for (i, dst) in code_area.iter_mut().enumerate() {
        *dst = code.get(i).copied().unwrap_or(CODE_FILL);
    }
    for (dst, src) in rodata_area.iter_mut().zip(rodata.iter()) {
        *dst = *src;
    }
    for r in relocs {
        if r.reserved != 0 || r.addend.unsigned_abs() > MAX_ADDEND.unsigned_abs() {
            return Err(EINVAL);
        }
        let field = r.offset as usize;
        let field_end = field.checked_add(4).ok_or(EINVAL)?;
        if field_end > code.len() || r.rodata_offset as usize > rodata.len() {
            return Err(EINVAL);
        }
        // Target minus the field's address, both relative to the code start;
        // every term is below 2^22, so the i64 arithmetic is exact.
        let target = rodata_start as i64 + i64::from(r.rodata_offset) + i64::from(r.addend);
        let value = i32::try_from(target - field as i64).map_err(|_| EINVAL)?;
        let slot = code_area.get_mut(field..field_end).ok_or(EINVAL)?;
        for (dst, src) in slot.iter_mut().zip(value.to_le_bytes()) {
            *dst = src;
        }
    }
    Ok(())
}

fn copy_to_pages(image: &[u8]) -> Result<KVec<Page>> {
    let mut pages = KVec::with_capacity(pages_for(image.len()), GFP_KERNEL)?;
    for chunk in image.chunks(PAGE_SIZE) {
        let page = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
        // SAFETY: `chunk` is at most one page long and valid for reads; the
        // page is freshly allocated and not yet shared with anyone.
        unsafe { page.write_raw(chunk.as_ptr(), 0, chunk.len())? };
        pages.push(page, GFP_KERNEL)?;
    }
    Ok(pages)
}
