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
pub const ADAPT_ABI_VERSION: u32 = 4;

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
    (dir << IOC_DIRSHIFT)
        | (ty << IOC_TYPESHIFT)
        | (nr << IOC_NRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
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
    ioc(
        IOC_READ | IOC_WRITE,
        ADAPT_IOC_MAGIC,
        nr,
        core::mem::size_of::<T>(),
    )
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

// ---------------------------------------------------------------------------
// Profiler
// ---------------------------------------------------------------------------

/// Lowest sampling frequency a session may ask for, in Hz.
pub const ADAPT_PROFILE_FREQ_MIN: u32 = 10;
/// Highest sampling frequency a session may ask for, in Hz.
pub const ADAPT_PROFILE_FREQ_MAX: u32 = 10_000;
/// Frequency used when a session asks for 0.
pub const ADAPT_PROFILE_FREQ_DEFAULT: u32 = 1_000;
/// How many profiling sessions may run at once (all callers together).
pub const ADAPT_PROFILE_MAX_SESSIONS: u32 = 32;
/// Most samples one [`ADAPT_IOC_PROFILE_READ`] returns.
pub const ADAPT_PROFILE_READ_MAX: u32 = 16_384;

/// Profile start flag: use the software `cpu-clock` event even when a
/// sampling PMU is present.
pub const ADAPT_PROFILE_F_SOFTWARE: u32 = 1 << 0;
/// Every profile start flag this ABI version defines.
pub const ADAPT_PROFILE_F_ALL: u32 = ADAPT_PROFILE_F_SOFTWARE;

/// Sampling event: hardware CPU cycles.
pub const ADAPT_EVENT_HW_CYCLES: u32 = 1;
/// Sampling event: software `cpu-clock`.
pub const ADAPT_EVENT_SW_CPU_CLOCK: u32 = 2;

/// Session state: sampling.
pub const ADAPT_PROFILE_RUNNING: u32 = 0;
/// Session state: the target process exited; remaining samples can still be
/// read, then the session is gone.
pub const ADAPT_PROFILE_TARGET_EXITED: u32 = 1;

/// Sample flag: the interrupt hit the target in kernel mode; `ip` is the
/// user-mode instruction pointer saved at its kernel entry.
pub const ADAPT_SAMPLE_F_KERNEL: u32 = 1 << 0;

/// Argument of [`ADAPT_IOC_PROFILE_START`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptProfileStart {
    /// In: process id (thread group id) of the target, in the caller's pid
    /// namespace.
    pub pid: u32,
    /// In: samples per second per CPU the target runs on; 0 means
    /// [`ADAPT_PROFILE_FREQ_DEFAULT`]. Otherwise within
    /// [`ADAPT_PROFILE_FREQ_MIN`]..=[`ADAPT_PROFILE_FREQ_MAX`].
    pub freq_hz: u32,
    /// In: `ADAPT_PROFILE_F_*`.
    pub flags: u32,
    /// Out: `ADAPT_EVENT_*` chosen by probing.
    pub event: u32,
    /// Out: session id for STOP and READ.
    pub session: u64,
    /// In: must be zero.
    pub reserved: [u64; 4],
}

/// Argument of [`ADAPT_IOC_PROFILE_STOP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptProfileStop {
    /// In: the session to stop (and forget: unread samples are discarded).
    pub session: u64,
    /// In: must be zero.
    pub flags: u32,
    /// In: must be zero.
    pub reserved0: u32,
    /// In: must be zero.
    pub reserved: [u64; 2],
}

/// One sample, as returned by [`ADAPT_IOC_PROFILE_READ`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptSample {
    /// User-mode instruction pointer.
    pub ip: u64,
    /// `CLOCK_MONOTONIC` time of the sample, in nanoseconds.
    pub time_ns: u64,
    /// Thread id (in the initial pid namespace's numbering of the caller).
    pub tid: u32,
    /// CPU the sample was taken on.
    pub cpu: u16,
    /// `ADAPT_SAMPLE_F_*`.
    pub flags: u16,
}

/// Argument of [`ADAPT_IOC_PROFILE_READ`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptProfileRead {
    /// In: the session to read.
    pub session: u64,
    /// In: user pointer to an array of `capacity` [`AdaptSample`].
    pub samples: u64,
    /// In: entries available at `samples`, at most
    /// [`ADAPT_PROFILE_READ_MAX`].
    pub capacity: u32,
    /// Out: entries written.
    pub count: u32,
    /// Out: samples recorded since the start (read or not).
    pub recorded: u64,
    /// Out: samples dropped since the start because the buffers were full.
    pub dropped: u64,
    /// Out: `ADAPT_PROFILE_RUNNING` or `ADAPT_PROFILE_TARGET_EXITED`.
    pub state: u32,
    /// Out: `ADAPT_EVENT_*` in use.
    pub event: u32,
    /// Out: sampling frequency in use, Hz.
    pub freq_hz: u32,
    /// In: must be zero.
    pub flags: u32,
    /// In: must be zero.
    pub reserved: [u64; 2],
}

/// Command number of [`ADAPT_IOC_PROFILE_START`].
pub const ADAPT_NR_PROFILE_START: u32 = 0x10;
/// Command number of [`ADAPT_IOC_PROFILE_STOP`].
pub const ADAPT_NR_PROFILE_STOP: u32 = 0x11;
/// Command number of [`ADAPT_IOC_PROFILE_READ`].
pub const ADAPT_NR_PROFILE_READ: u32 = 0x12;

/// Starts sampling every thread of a process, present and future. Needs
/// `CAP_SYS_PTRACE`; the target must be a user process that is dumpable.
/// Errors: `ESRCH` no such process, `EOPNOTSUPP` kernel thread, `EPERM` not
/// allowed to trace it, `ERANGE` frequency out of bounds, `EBUSY` too many
/// sessions. Argument: [`AdaptProfileStart`].
pub const ADAPT_IOC_PROFILE_START: u32 = iowr::<AdaptProfileStart>(ADAPT_NR_PROFILE_START);
/// Stops a session and frees it. `ENOENT` if there is no such session.
/// Argument: [`AdaptProfileStop`].
pub const ADAPT_IOC_PROFILE_STOP: u32 = iowr::<AdaptProfileStop>(ADAPT_NR_PROFILE_STOP);
/// Moves up to `capacity` samples out of a session. Once the target has
/// exited and every sample was read, the session is freed and later reads
/// get `ENOENT`. Argument: [`AdaptProfileRead`].
pub const ADAPT_IOC_PROFILE_READ: u32 = iowr::<AdaptProfileRead>(ADAPT_NR_PROFILE_READ);

// ---------------------------------------------------------------------------
// Optimization library (segments uploaded into the module)
// ---------------------------------------------------------------------------

/// Version of the segment layout userspace uploads for a variant without
/// imports (leaf code); must equal the segment file format version it was
/// read from.
pub const ADAPT_SEGMENT_FORMAT_VERSION: u32 = 1;
/// Version of the layout of a variant with imports (`nimports > 0`): the
/// segment file format version 2. Its pages are laid out as
/// [`adapt_import_layout`] says.
pub const ADAPT_SEGMENT_FORMAT_VERSION_IMPORTS: u32 = 2;
/// Most imports of one variant (its import table is at most one page).
pub const ADAPT_SEGMENT_MAX_IMPORTS: u32 = 64;
/// Bytes reserved for the trampoline after a variant's code (the segment
/// format's `import_table::TRAMPOLINE_SPACE`; a test pins them equal).
pub const ADAPT_TRAMPOLINE_MAX: usize = 64;
/// Bytes of one import slot (a little-endian 64-bit address).
pub const ADAPT_IMPORT_SLOT_SIZE: usize = 8;
/// Page size the layout is computed with (x86-64).
pub const ADAPT_PAGE_SIZE: usize = 4096;

/// Where the parts of a variant with imports lie, as offsets from the
/// start of its code: the trampoline at the code's end rounded up to 16
/// ([`ADAPT_TRAMPOLINE_MAX`] bytes, `int3` when unused), the import table
/// on the first page boundary after it (its own read-only, non-executable
/// mapping, whole pages), the read-only data on the pages after the
/// table. The segment format's `import_table` module states the same rule
/// for the verifier and adaptctl (a test pins them equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptImportLayout {
    /// Offset of the trampoline.
    pub trampoline_offset: usize,
    /// Offset of the import table = bytes of the read+execute pages.
    pub import_table_offset: usize,
    /// Bytes of the import table's pages.
    pub import_table_pages: usize,
    /// Offset of the read-only data.
    pub rodata_offset: usize,
}

/// The layout of a variant with `code_len` bytes of code and `imports`
/// import slots (see [`AdaptImportLayout`]).
pub const fn adapt_import_layout(code_len: usize, imports: usize) -> AdaptImportLayout {
    const fn page_align(n: usize) -> usize {
        n.div_ceil(ADAPT_PAGE_SIZE) * ADAPT_PAGE_SIZE
    }
    let trampoline_offset = code_len.div_ceil(16) * 16;
    let import_table_offset = page_align(trampoline_offset + ADAPT_TRAMPOLINE_MAX);
    let import_table_pages = page_align(imports * ADAPT_IMPORT_SLOT_SIZE);
    AdaptImportLayout {
        trampoline_offset,
        import_table_offset,
        import_table_pages,
        rodata_offset: import_table_offset + import_table_pages,
    }
}
/// Largest per-injection data area of one variant, in bytes.
pub const ADAPT_SEGMENT_MAX_DATA: u32 = 64 << 10;

/// Offset, from the start of a variant's code, of its per-injection data
/// area: the first page after its read-only data, in the layout of a
/// variant with `imports` import slots (see [`adapt_import_layout`]).
pub const fn adapt_data_offset(code_len: usize, rodata_len: usize, imports: usize) -> usize {
    let rodata_pages = rodata_len.div_ceil(ADAPT_PAGE_SIZE) * ADAPT_PAGE_SIZE;
    adapt_import_layout(code_len, imports).rodata_offset + rodata_pages
}

/// Bytes of a segment or variant name: ASCII letters, digits and `._+-`,
/// NUL-padded, at least one NUL (so at most 31 characters).
pub const ADAPT_NAME_LEN: usize = 32;
/// Bytes of a symbol name in an entry: ASCII letters, digits and `._+-`,
/// NUL-padded (at most 63 characters; versioned names such as
/// `crc32@@ZLIB_1.2.0` are given without the version).
pub const ADAPT_SYMBOL_LEN: usize = 64;
/// Largest code of one variant, in bytes.
pub const ADAPT_SEGMENT_MAX_CODE: u32 = 1 << 20;
/// Largest read-only data of one variant, in bytes.
pub const ADAPT_SEGMENT_MAX_RODATA: u32 = 1 << 20;
/// Largest read-only data alignment (one page).
pub const ADAPT_SEGMENT_MAX_RODATA_ALIGN: u32 = 4096;
/// Most relocations of one variant.
pub const ADAPT_SEGMENT_MAX_RELOCS: u32 = 4096;
/// Most entry points (replaced functions) of one variant.
pub const ADAPT_SEGMENT_MAX_ENTRIES: u32 = 16;
/// Most variants loaded at once.
pub const ADAPT_LIBRARY_MAX_VARIANTS: u32 = 256;
/// Most code + read-only data loaded at once, in bytes.
pub const ADAPT_LIBRARY_MAX_BYTES: u64 = 32 << 20;

/// CPU features a variant may require, one bit each, in this order (the
/// names are rustc's `target_feature` names).
pub const ADAPT_CPU_FEATURE_NAMES: [&str; 26] = [
    "sse3",
    "ssse3",
    "sse4.1",
    "sse4.2",
    "popcnt",
    "pclmulqdq",
    "aes",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "bmi1",
    "bmi2",
    "lzcnt",
    "movbe",
    "sha",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512cd",
    "avx512vbmi",
    "avx512vnni",
    "vpclmulqdq",
    "vaes",
    "gfni",
];
/// Every CPU feature bit this ABI version defines.
pub const ADAPT_CPU_FEATURES_ALL: u64 = (1 << ADAPT_CPU_FEATURE_NAMES.len()) - 1;

/// The bit of CPU feature `name`, if the ABI knows it.
pub fn cpu_feature_bit(name: &str) -> Option<u64> {
    ADAPT_CPU_FEATURE_NAMES
        .iter()
        .position(|&n| n == name)
        .map(|i| 1 << i)
}

/// A place in the code that refers to the read-only data: the 32-bit
/// PC-relative field at `offset` becomes
/// `rodata_start + rodata_offset + addend - (code_start + offset)`.
/// `addend` must lie within ±65536.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptSegmentReloc {
    pub offset: u32,
    pub rodata_offset: u32,
    pub addend: i32,
    /// Must be zero.
    pub reserved: u32,
}

/// One function a variant implements.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptSegmentEntry {
    /// Offset of the function in the code.
    pub offset: u32,
    /// Must be zero.
    pub flags: u32,
    /// Hash of the function's C ABI contract, as computed by adaptctl; an
    /// injection must name the same contract.
    pub contract_hash: u64,
    /// The symbol it replaces (UTF-8, NUL-padded).
    pub symbol: [u8; ADAPT_SYMBOL_LEN],
}

impl Default for AdaptSegmentEntry {
    fn default() -> Self {
        Self {
            offset: 0,
            flags: 0,
            contract_hash: 0,
            symbol: [0; ADAPT_SYMBOL_LEN],
        }
    }
}

/// Argument of [`ADAPT_IOC_LIBRARY_LOAD`]: one variant of one segment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptLibraryLoad {
    /// In: [`ADAPT_SEGMENT_FORMAT_VERSION`].
    pub format_version: u32,
    /// In: must be zero.
    pub flags: u32,
    /// In: segment name, e.g. `crc32`.
    pub segment: [u8; ADAPT_NAME_LEN],
    /// In: variant name, e.g. `pclmul`.
    pub variant: [u8; ADAPT_NAME_LEN],
    /// In: sha256 of the variant as packed by userspace; two uploads with
    /// the same hash are the same variant.
    pub hash: [u8; 32],
    /// In: `ADAPT_CPU_*` feature bits the code needs.
    pub cpu_features: u64,
    /// In: user pointer to the code.
    pub code: u64,
    /// In: user pointer to the read-only data.
    pub rodata: u64,
    /// In: user pointer to `nrelocs` [`AdaptSegmentReloc`].
    pub relocs: u64,
    /// In: user pointer to `nentries` [`AdaptSegmentEntry`].
    pub entries: u64,
    pub code_len: u32,
    pub rodata_len: u32,
    pub rodata_align: u32,
    pub nrelocs: u32,
    pub nentries: u32,
    /// In: import slots of the variant (at most
    /// [`ADAPT_SEGMENT_MAX_IMPORTS`]); non-zero exactly when
    /// `format_version` is [`ADAPT_SEGMENT_FORMAT_VERSION_IMPORTS`]. The
    /// variant is then laid out by [`adapt_import_layout`], and every
    /// injection of it must give the trampoline space's bytes and the
    /// slots' values.
    pub nimports: u32,
    /// In: bytes of the variant's per-injection data area (0: none; at
    /// most [`ADAPT_SEGMENT_MAX_DATA`]; only with imports). Every injection
    /// of the variant gets its own zeroed data pages, read+write and never
    /// executable, mapped right after the read-only data
    /// ([`adapt_data_offset`]); the code reaches them RIP-relative.
    pub data_len: u32,
    /// In: must be zero.
    pub pad: u32,
    /// Out: the library id of the variant (also on `EEXIST`: the id of the
    /// variant already loaded with this hash).
    pub id: u64,
    /// In: must be zero.
    pub reserved: [u64; 4],
}

/// Library unload flag: revert the injections that use the variant first.
pub const ADAPT_LIBRARY_UNLOAD_F_FORCE: u32 = 1 << 0;

/// Argument of [`ADAPT_IOC_LIBRARY_UNLOAD`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptLibraryUnload {
    /// In: library id.
    pub id: u64,
    /// In: `ADAPT_LIBRARY_UNLOAD_F_*`.
    pub flags: u32,
    /// Out: injections using the variant (when refused with `EBUSY`). In:
    /// must be zero.
    pub users: u32,
    /// In: must be zero.
    pub reserved: [u64; 2],
}

/// Library entry flag: quarantined after a fault inside it.
pub const ADAPT_LIBRARY_F_QUARANTINED: u32 = 1 << 0;

/// One loaded variant, as listed by [`ADAPT_IOC_LIBRARY_LIST`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptLibraryInfo {
    pub id: u64,
    pub segment: [u8; ADAPT_NAME_LEN],
    pub variant: [u8; ADAPT_NAME_LEN],
    pub hash: [u8; 32],
    pub cpu_features: u64,
    pub code_len: u32,
    pub rodata_len: u32,
    pub nentries: u32,
    /// Live injections using it.
    pub users: u32,
    /// `ADAPT_LIBRARY_F_*`.
    pub flags: u32,
    /// Import slots of the variant (0: leaf code).
    pub nimports: u32,
}

/// Argument of [`ADAPT_IOC_LIBRARY_LIST`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptLibraryList {
    /// In: user pointer to `capacity` [`AdaptLibraryInfo`].
    pub entries: u64,
    /// In: room at `entries`, at most [`ADAPT_LIBRARY_MAX_VARIANTS`] (may be
    /// 0 to ask for `total`).
    pub capacity: u32,
    /// Out: entries written. In: must be zero.
    pub count: u32,
    /// Out: variants loaded. In: must be zero.
    pub total: u32,
    /// In: must be zero.
    pub flags: u32,
    /// In: must be zero.
    pub reserved: [u64; 2],
}

/// Command number of [`ADAPT_IOC_LIBRARY_LOAD`].
pub const ADAPT_NR_LIBRARY_LOAD: u32 = 0x20;
/// Command number of [`ADAPT_IOC_LIBRARY_UNLOAD`].
pub const ADAPT_NR_LIBRARY_UNLOAD: u32 = 0x21;
/// Command number of [`ADAPT_IOC_LIBRARY_LIST`].
pub const ADAPT_NR_LIBRARY_LIST: u32 = 0x22;

/// Copies one variant into the module. Every length, count and offset is
/// checked (`EINVAL`; `E2BIG` over a size limit; `ENOSPC` when the library
/// is full); a variant whose hash is already loaded gets `EEXIST` and its id.
/// Argument: [`AdaptLibraryLoad`].
pub const ADAPT_IOC_LIBRARY_LOAD: u32 = iowr::<AdaptLibraryLoad>(ADAPT_NR_LIBRARY_LOAD);
/// Frees a variant; `EBUSY` (with `users`) while injections use it, unless
/// forced. `ENOENT` for an unknown id. Argument: [`AdaptLibraryUnload`].
pub const ADAPT_IOC_LIBRARY_UNLOAD: u32 = iowr::<AdaptLibraryUnload>(ADAPT_NR_LIBRARY_UNLOAD);
/// Lists loaded variants. Argument: [`AdaptLibraryList`].
pub const ADAPT_IOC_LIBRARY_LIST: u32 = iowr::<AdaptLibraryList>(ADAPT_NR_LIBRARY_LIST);

/// The bytes of a NUL-padded name field before the first NUL, if UTF-8.
pub fn name_str(field: &[u8]) -> Option<&str> {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    core::str::from_utf8(&field[..len]).ok()
}

/// Fills a NUL-padded field of any length `N` (names, command names,
/// paths); `None` if `text` is empty or does not fit with at least one NUL
/// after it.
pub fn name_field_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.is_empty() {
        return None;
    }
    name_field(text)
}

/// Fills a NUL-padded name field; `None` if `name` does not fit with at
/// least one NUL after it.
pub fn name_field<const N: usize>(name: &str) -> Option<[u8; N]> {
    if name.len() >= N {
        return None;
    }
    let mut field = [0u8; N];
    field[..name.len()].copy_from_slice(name.as_bytes());
    Some(field)
}

// ---------------------------------------------------------------------------
// Injection
// ---------------------------------------------------------------------------

/// Length of the entry patch: one `jmp rel32`.
pub const ADAPT_JMP_LEN: u32 = 5;
/// Most bytes an injection may replace (the patch plus the rest of the
/// instruction it ends in, filled with `int3`).
pub const ADAPT_PATCH_MAX: usize = 16;

/// Inject flag: the request comes from the automatic loop; quarantined
/// variants are refused.
pub const ADAPT_INJECT_F_AUTO: u32 = 1 << 0;
/// Every inject flag this ABI version defines.
pub const ADAPT_INJECT_F_ALL: u32 = ADAPT_INJECT_F_AUTO;

/// Argument of [`ADAPT_IOC_INJECT`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptInject {
    /// In: target process id.
    pub pid: u32,
    /// In: `ADAPT_INJECT_F_*`.
    pub flags: u32,
    /// In: address of the function entry in the target.
    pub target: u64,
    /// In: library id of the variant.
    pub variant_id: u64,
    /// In: hash of the C ABI contract of the target function, as adaptctl
    /// determined it; must equal the entry's.
    pub contract_hash: u64,
    /// In: index of the entry (function) of the variant to jump to.
    pub entry: u32,
    /// In: bytes replaced at `target`: ends on an instruction boundary,
    /// `ADAPT_JMP_LEN..=ADAPT_PATCH_MAX`.
    pub patch_len: u32,
    /// In: the bytes adaptctl saw at `target` (the first `patch_len`; the
    /// rest must be zero). The module re-reads and compares them.
    pub expected: [u8; ADAPT_PATCH_MAX],
    /// Out: injection id.
    pub id: u64,
    /// In: 0, or (required for a variant with imports) the page-aligned
    /// address to map the variant's code at: the module maps exactly there
    /// or fails (`EADDRINUSE` when the range is taken, `ENOSPC` when a `jmp`
    /// at `target` cannot reach all of it), and adaptctl tries another
    /// free range. Out: address the variant's code was mapped at.
    pub segment_addr: u64,
    /// Out: how long the target's threads were held, in nanoseconds.
    pub pause_ns: u64,
    /// Out: threads of the target brought to the rendezvous.
    pub threads: u32,
    /// Out: rendezvous attempts (more than one when a thread was inside the
    /// bytes being replaced).
    pub attempts: u32,
    /// In: user pointer to `nimports` little-endian u64 values for the
    /// variant's import slots (0 when it has none).
    pub imports: u64,
    /// In: the variant's import count (`AdaptLibraryLoad::nimports`).
    pub nimports: u32,
    /// In: bytes of `trampoline` used (0 for a leaf variant; at most
    /// [`ADAPT_TRAMPOLINE_MAX`]).
    pub trampoline_len: u32,
    /// In: the original bytes the trampoline was relocated from (the first
    /// `patch_len`, the rest zero; all zero without a trampoline). The
    /// module checks, with every thread parked, that they are the live
    /// bytes it replaces.
    pub relocated: [u8; ADAPT_PATCH_MAX],
    /// In: the trampoline: the displaced instructions relocated for
    /// `segment_addr + trampoline_offset` and a `jmp` back, written into
    /// the variant's trampoline space before the code is mapped (the rest
    /// must be zero).
    pub trampoline: [u8; ADAPT_TRAMPOLINE_MAX],
    /// In: must be zero.
    pub reserved: [u64; 4],
}

impl Default for AdaptInject {
    fn default() -> Self {
        Self {
            pid: 0,
            flags: 0,
            target: 0,
            variant_id: 0,
            contract_hash: 0,
            entry: 0,
            patch_len: 0,
            expected: [0; ADAPT_PATCH_MAX],
            id: 0,
            segment_addr: 0,
            pause_ns: 0,
            threads: 0,
            attempts: 0,
            imports: 0,
            nimports: 0,
            trampoline_len: 0,
            relocated: [0; ADAPT_PATCH_MAX],
            trampoline: [0; ADAPT_TRAMPOLINE_MAX],
            reserved: [0; 4],
        }
    }
}

/// Argument of [`ADAPT_IOC_REVERT`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptRevert {
    /// In: injection id.
    pub id: u64,
    /// In: must be zero.
    pub flags: u32,
    /// Out: rendezvous attempts.
    pub attempts: u32,
    /// Out: how long the target's threads were held, in nanoseconds (0
    /// when the target had already exited or exec'd).
    pub pause_ns: u64,
    /// In: must be zero.
    pub reserved: [u64; 2],
}

/// Injection state: the patch is in place.
pub const ADAPT_INJECTION_LIVE: u32 = 0;
/// Injection state: a revert found something else at the site than the
/// `jmp` adapt wrote (the library was unloaded and something else mapped
/// there, or a debugger, uprobe or JIT rewrote the bytes) and wrote
/// nothing. Not restored; reverting it again forgets it.
pub const ADAPT_INJECTION_STALE: u32 = 1;
/// Listing state: a segment still mapped, inert, after its injection was
/// reverted (a signal frame may still return into it); it goes away when
/// the process exits or execs, and a new injection of the same variant
/// reuses it. Only `pid`, `variant_id`, `segment_addr`, `segment_len`,
/// `segment`, `variant` and the trampoline and import table fields are
/// set.
pub const ADAPT_INJECTION_RETIRED: u32 = 2;

/// One injection, as listed by [`ADAPT_IOC_INJECTION_LIST`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptInjectionInfo {
    pub id: u64,
    pub pid: u32,
    /// `ADAPT_INJECTION_*`.
    pub state: u32,
    pub target: u64,
    pub variant_id: u64,
    pub segment_addr: u64,
    /// Bytes mapped (code and read-only data).
    pub segment_len: u64,
    pub entry: u32,
    pub patch_len: u32,
    /// The original bytes at `target` (the first `patch_len`).
    pub original: [u8; ADAPT_PATCH_MAX],
    /// `CLOCK_MONOTONIC` time of the injection, ns.
    pub injected_ns: u64,
    pub pause_ns: u64,
    pub segment: [u8; ADAPT_NAME_LEN],
    pub variant: [u8; ADAPT_NAME_LEN],
    /// Address of the trampoline (0 without one).
    pub trampoline_addr: u64,
    /// Address of the import table (0 without imports): its `nimports`
    /// slots hold what adaptctl resolved, readable in the target.
    pub import_table_addr: u64,
    /// Bytes of the trampoline.
    pub trampoline_len: u32,
    /// Import slots.
    pub nimports: u32,
    /// Address of the injection's data area (0 without one): read+write,
    /// never executable, private to the target.
    pub data_addr: u64,
    /// Bytes of the data area.
    pub data_len: u32,
    /// Zero.
    pub pad: u32,
}

/// Argument of [`ADAPT_IOC_INJECTION_LIST`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptInjectionList {
    /// In: user pointer to `capacity` [`AdaptInjectionInfo`].
    pub entries: u64,
    /// In: room at `entries`.
    pub capacity: u32,
    /// Out: entries written.
    pub count: u32,
    /// Out: injections matching the filter.
    pub total: u32,
    /// In: only injections into this process (0: all), in the caller's
    /// pid namespace.
    pub pid: u32,
    /// In: `ADAPT_INJECTION_LIST_F_*`.
    pub flags: u32,
    /// Out: retired segments matching the filter.
    pub retired: u32,
    /// In: must be zero.
    pub reserved: u64,
}

/// Injection-list flag: list retired segments too (state
/// [`ADAPT_INJECTION_RETIRED`]).
pub const ADAPT_INJECTION_LIST_F_RETIRED: u32 = 1 << 0;

/// Policy flag: injection is allowed at all.
pub const ADAPT_POLICY_F_ENABLED: u32 = 1 << 0;
/// Policy flag: segments whose numerics are `float-reassociate` (results
/// not bit-identical to the original's) may be injected. The module only
/// holds it (as it holds the segment allow-list); adaptctl enforces it
/// (`adapt_ops::plan`, `adaptctl auto`). Off by default. A module built
/// before this flag existed refuses a policy with it set (`EINVAL`), so it
/// can never be taken as allowed by a tool that does not know it.
pub const ADAPT_POLICY_F_FLOAT_REASSOCIATE: u32 = 1 << 1;
/// Every policy flag this ABI version defines.
pub const ADAPT_POLICY_F_ALL: u32 = ADAPT_POLICY_F_ENABLED | ADAPT_POLICY_F_FLOAT_REASSOCIATE;
/// Default per-process injection limit.
pub const ADAPT_POLICY_DEFAULT_PER_PROCESS: u32 = 16;
/// Default global injection limit.
pub const ADAPT_POLICY_DEFAULT_TOTAL: u32 = 256;
/// Largest global injection limit.
pub const ADAPT_POLICY_MAX_TOTAL: u32 = 4096;

/// Most uids a policy may list.
pub const ADAPT_POLICY_MAX_UIDS: usize = 16;
/// Most command names a policy may list.
pub const ADAPT_POLICY_MAX_COMMS: usize = 16;
/// Bytes of a command name (the kernel's `TASK_COMM_LEN`), NUL-padded.
pub const ADAPT_COMM_LEN: usize = 16;
/// Most executable paths a policy may list.
pub const ADAPT_POLICY_MAX_EXES: usize = 8;
/// Bytes of an executable path, NUL-padded.
pub const ADAPT_PATH_LEN: usize = 256;
/// Most segment names a policy may list.
pub const ADAPT_POLICY_MAX_SEGMENTS: usize = 16;

/// The policy. The module enforces, on every injection and against any
/// caller: the enable switch, the limits, and the targets (uids, command
/// names, executable paths; an empty list allows any). It holds the rest
/// (segments, sampling bounds, regression margin) for adaptctl, which
/// enforces those. Argument of [`ADAPT_IOC_POLICY_GET`] (out) and
/// [`ADAPT_IOC_POLICY_SET`] (in).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptPolicy {
    /// `ADAPT_POLICY_F_*`.
    pub flags: u32,
    /// Most live injections in one process (1..=max_total).
    pub max_per_process: u32,
    /// Most live injections in all processes (1..=ADAPT_POLICY_MAX_TOTAL).
    pub max_total: u32,
    /// Entries used in `uids`.
    pub nuids: u32,
    /// Entries used in `comms`.
    pub ncomms: u32,
    /// Entries used in `exes`.
    pub nexes: u32,
    /// Entries used in `segments`.
    pub nsegments: u32,
    /// Lowest sampling frequency adaptctl may use, Hz.
    pub freq_min_hz: u32,
    /// Highest sampling frequency adaptctl may use, Hz.
    pub freq_max_hz: u32,
    /// An injection is a regression unless it improves by at least this
    /// much, in thousandths (e.g. 50 = 5 %).
    pub regression_margin_permille: u32,
    /// Real uids whose processes may be targeted.
    pub uids: [u32; ADAPT_POLICY_MAX_UIDS],
    /// Command names (`/proc/PID/comm`) that may be targeted.
    pub comms: [[u8; ADAPT_COMM_LEN]; ADAPT_POLICY_MAX_COMMS],
    /// Executable paths (`/proc/PID/exe`) that may be targeted.
    pub exes: [[u8; ADAPT_PATH_LEN]; ADAPT_POLICY_MAX_EXES],
    /// Segment names adaptctl may inject (empty: all).
    pub segments: [[u8; ADAPT_NAME_LEN]; ADAPT_POLICY_MAX_SEGMENTS],
    /// Must be zero.
    pub reserved: [u64; 4],
}

impl Default for AdaptPolicy {
    /// All zero (what `ADAPT_IOC_POLICY_GET` expects as input).
    fn default() -> Self {
        Self {
            flags: 0,
            max_per_process: 0,
            max_total: 0,
            nuids: 0,
            ncomms: 0,
            nexes: 0,
            nsegments: 0,
            freq_min_hz: 0,
            freq_max_hz: 0,
            regression_margin_permille: 0,
            uids: [0; ADAPT_POLICY_MAX_UIDS],
            comms: [[0; ADAPT_COMM_LEN]; ADAPT_POLICY_MAX_COMMS],
            exes: [[0; ADAPT_PATH_LEN]; ADAPT_POLICY_MAX_EXES],
            segments: [[0; ADAPT_NAME_LEN]; ADAPT_POLICY_MAX_SEGMENTS],
            reserved: [0; 4],
        }
    }
}

/// Default regression margin, thousandths.
pub const ADAPT_POLICY_DEFAULT_MARGIN_PERMILLE: u32 = 50;

/// Command number of [`ADAPT_IOC_INJECT`].
pub const ADAPT_NR_INJECT: u32 = 0x30;
/// Command number of [`ADAPT_IOC_REVERT`].
pub const ADAPT_NR_REVERT: u32 = 0x31;
/// Command number of [`ADAPT_IOC_INJECTION_LIST`].
pub const ADAPT_NR_INJECTION_LIST: u32 = 0x32;
/// Command number of [`ADAPT_IOC_POLICY_GET`].
pub const ADAPT_NR_POLICY_GET: u32 = 0x40;
/// Command number of [`ADAPT_IOC_POLICY_SET`].
pub const ADAPT_NR_POLICY_SET: u32 = 0x41;

/// Maps a loaded variant into a process within ±2 GiB of `target` (read +
/// execute, never writable; read-only data separately, not executable) and
/// redirects `target` to the variant's entry with a `jmp rel32`, with every
/// thread of the process held at a known point, where every check is made
/// again. Errors: `ESRCH`, `EOPNOTSUPP` (also a 32-bit target), `EPERM`
/// (target, as for profiling); `EACCES` (policy disabled or target not
/// allowed, or a quarantined variant for an automatic request); `EDQUOT`
/// (injection limit); `ENOENT` (unknown variant); `EINVAL` (bad request,
/// entry index, patch length); `ENODEV` (this CPU lacks a feature the
/// variant needs); `EPROTO` (contract mismatch); `EFAULT` (target address
/// not in one private, executable, never-writable file mapping);
/// `ENOEXEC` (anonymous executable memory); `ESTALE` (the bytes at
/// `target` are not `expected`, or the site changed while the threads were
/// being parked); `ETXTBSY` (the live bytes differ from the file's: a
/// uprobe, breakpoint or another patcher is there); `EEXIST` (`target` is
/// already patched); `ENOSPC` (no free address range near `target`, or too
/// many retired segments in the process); `EBUSY` (a thread stayed inside
/// the bytes to replace, or did not reach the rendezvous in time);
/// `EDEADLK` (a thread is stopped, traced or frozen: resume it); `EUSERS`
/// (a process outside the thread group shares the address space:
/// `clone(CLONE_VM)` or a vfork child); `EINTR` (the caller was
/// interrupted, or a target thread was killed); `EAGAIN` (threads kept
/// appearing). A variant with imports (ABI 3) is mapped in three parts
/// made of module pages written before they are mapped: code + trampoline
/// (read+execute), the import table (read-only, not executable, its own
/// mapping) and the read-only data; it needs `segment_addr` (`EINVAL`
/// without it, when it is not page-aligned, when `nimports` is not the
/// variant's, a slot is not a user address, or the trampoline is longer
/// than [`ADAPT_TRAMPOLINE_MAX`] or was not relocated from `expected`;
/// `EADDRINUSE` when the range is taken, `ENOSPC` when out of reach), and
/// `ESTALE` also when the trampoline's original bytes are not the live ones
/// under the park. Argument: [`AdaptInject`].
pub const ADAPT_IOC_INJECT: u32 = iowr::<AdaptInject>(ADAPT_NR_INJECT);
/// Restores the original bytes with the threads held again, after checking
/// that the site is still the same file at the same offset holding exactly
/// the `jmp` adapt wrote; the segment stays mapped, inert, until the
/// process exits or execs ([`ADAPT_INJECTION_RETIRED`]). `ENOENT` for an
/// unknown id (or one already reverted); `ESTALE` when the site changed
/// (nothing written; the injection is listed as [`ADAPT_INJECTION_STALE`],
/// and reverting it again forgets it); `EBUSY` (also while a thread's
/// instruction pointer, or the restart address of the system call it is
/// in, lies inside the injection's trampoline: the trampoline is part of
/// the segment), `EDEADLK`, `EUSERS`, `EINTR` as for inject.
/// Argument: [`AdaptRevert`].
pub const ADAPT_IOC_REVERT: u32 = iowr::<AdaptRevert>(ADAPT_NR_REVERT);
/// Lists live injections. Argument: [`AdaptInjectionList`].
pub const ADAPT_IOC_INJECTION_LIST: u32 = iowr::<AdaptInjectionList>(ADAPT_NR_INJECTION_LIST);
/// Reads the policy. Argument: [`AdaptPolicy`] (all fields zero on input).
/// A target outside the policy's uids, command names or executables is
/// refused by INJECT with `EACCES`.
pub const ADAPT_IOC_POLICY_GET: u32 = iowr::<AdaptPolicy>(ADAPT_NR_POLICY_GET);
/// Replaces the policy (`EINVAL` for unknown flags, limits or counts out of
/// range, unterminated names, frequency bounds outside the profiler's;
/// live injections above a new limit stay). Argument: [`AdaptPolicy`].
pub const ADAPT_IOC_POLICY_SET: u32 = iowr::<AdaptPolicy>(ADAPT_NR_POLICY_SET);
