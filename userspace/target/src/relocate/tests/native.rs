//! Trampolines built for a buffer mapped near real functions of this
//! process, then called: they must behave exactly like the originals.

use super::*;

/// Pages of this process within ±1 GiB of `near`, mapped read+write for
/// code to be written, then read+execute or read-only (never writable and
/// executable at once).
struct NearPage {
    address: u64,
    len: usize,
}

const PAGE: usize = 4096;

impl NearPage {
    /// One page.
    fn map(near: u64) -> NearPage {
        NearPage::map_len(near, PAGE)
    }

    /// `len` bytes (whole pages).
    fn map_len(near: u64, len: usize) -> NearPage {
        assert_eq!(len % PAGE, 0);
        let base = near & !(PAGE as u64 - 1);
        for k in 1..256u64 {
            for hint in [base.wrapping_add(k << 24), base.wrapping_sub(k << 24)] {
                // SAFETY: an anonymous private mapping without MAP_FIXED: the
                // kernel takes the hint only if that range is free, so no
                // existing mapping is touched.
                let p = unsafe {
                    libc::mmap(
                        hint as *mut libc::c_void,
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
                assert_ne!(p, libc::MAP_FAILED, "mmap");
                let address = p as u64;
                if address.abs_diff(near) < 1 << 30 {
                    return NearPage { address, len };
                }
                // SAFETY: `p` is the mapping just made above, used by nothing.
                assert_eq!(unsafe { libc::munmap(p, len) }, 0);
            }
        }
        panic!("no free range within 1 GiB of {near:#x}");
    }

    /// Copies `bytes` to `offset` (while the pages are still writable).
    fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.len);
        // SAFETY: the range lies in this value's own mapping, still mapped
        // read+write (`protect` has not been called); nothing executes it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (self.address as *mut u8).add(offset),
                bytes.len(),
            )
        };
    }

    /// Sets the protection of the whole pages `offset..offset + len`.
    fn protect(&self, offset: usize, len: usize, prot: libc::c_int) {
        assert!(offset % PAGE == 0 && len % PAGE == 0 && offset + len <= self.len);
        // SAFETY: changes the protection of this value's own pages only.
        let rc = unsafe {
            libc::mprotect(
                (self.address as *mut u8).add(offset) as *mut libc::c_void,
                len,
                prot,
            )
        };
        assert_eq!(rc, 0, "mprotect");
    }

    /// Writes `bytes` at the start and makes the whole mapping read+execute.
    fn install(&self, bytes: &[u8]) {
        self.write(0, bytes);
        self.protect(0, self.len, libc::PROT_READ | libc::PROT_EXEC);
    }
}

impl Drop for NearPage {
    fn drop(&mut self) {
        // SAFETY: unmaps this value's own mapping; the function pointers
        // into it do not outlive the tests that use it.
        unsafe { libc::munmap(self.address as *mut libc::c_void, self.len) };
    }
}

/// The bytes of the live function at `address`.
fn live(address: u64, len: usize) -> Vec<u8> {
    // SAFETY: `address` is the entry of a function of this process whose
    // code is mapped readable for at least `len` bytes (the fixtures are
    // longer; real functions are followed by more text).
    unsafe { std::slice::from_raw_parts(address as *const u8, len) }.to_vec()
}

/// Whole instructions covering at least five bytes, as the patch does.
fn covering(code: &[u8], address: u64) -> (usize, Vec<Instruction>) {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut list = Vec::new();
    while decoder.position() < ADAPT_JMP_LEN as usize {
        let i = decoder.decode();
        assert!(!i.is_invalid());
        list.push(i);
    }
    (decoder.position(), list)
}

/// Relocates the entry of the function at `address` into a page near it.
fn trampoline_of(address: u64) -> (NearPage, Trampoline, Vec<Instruction>) {
    let code = live(address, 32);
    let (len, displaced) = covering(&code, address);
    let page = NearPage::map(address);
    let t = relocate_prologue(&code, address, len, page.address).unwrap();
    page.install(&t.bytes);
    (page, t, displaced)
}

std::arch::global_asm!(
    ".pushsection .rodata.adapt_relocate_fixtures,\"a\",@progbits",
    ".balign 8",
    "adapt_relocate_table:",
    ".quad 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59",
    ".popsection",
    ".pushsection .text.adapt_relocate_fixtures,\"ax\",@progbits",
    // A RIP-relative load first: mov rax, [rip+table] (7 bytes).
    ".globl adapt_relocate_riprel",
    ".type adapt_relocate_riprel,@function",
    "adapt_relocate_riprel:",
    "mov rax, qword ptr [rip + adapt_relocate_table]",
    "imul rax, rdi",
    "add rax, 12345",
    "ret",
    ".size adapt_relocate_riprel, .-adapt_relocate_riprel",
    // lea of the table, a compare and a short branch past the range.
    ".globl adapt_relocate_lea",
    ".type adapt_relocate_lea,@function",
    "adapt_relocate_lea:",
    "lea rax, [rip + adapt_relocate_table]",
    "cmp rdi, 16",
    "jae 2f",
    "mov rax, qword ptr [rax + rdi*8]",
    "ret",
    "2:",
    "mov rax, rdi",
    "shr rax, 3",
    "ret",
    ".size adapt_relocate_lea, .-adapt_relocate_lea",
    // test; jz rel8 to outside the first five bytes.
    ".globl adapt_relocate_branchy",
    ".type adapt_relocate_branchy,@function",
    "adapt_relocate_branchy:",
    "test rdi, rdi",
    "jz 3f",
    "lea rax, [rdi + rdi*2]",
    "ret",
    "3:",
    "mov eax, 77",
    "ret",
    ".size adapt_relocate_branchy, .-adapt_relocate_branchy",
    // A call rel32 first: the callee returns into the trampoline.
    ".globl adapt_relocate_calls",
    ".type adapt_relocate_calls,@function",
    "adapt_relocate_calls:",
    "call adapt_relocate_branchy",
    "add rax, 1",
    "ret",
    ".size adapt_relocate_calls, .-adapt_relocate_calls",
    ".popsection",
);

extern "C" {
    fn adapt_relocate_riprel(x: u64) -> u64;
    fn adapt_relocate_lea(x: u64) -> u64;
    fn adapt_relocate_branchy(x: u64) -> u64;
    fn adapt_relocate_calls(x: u64) -> u64;
}

/// A Rust function: whatever the compiler made of its entry is relocated.
#[inline(never)]
#[no_mangle]
pub extern "C" fn adapt_relocate_rust(x: u64) -> u64 {
    static MIX: [u64; 4] = [0x9e37_79b9_7f4a_7c15, 3, 0xff51_afd7_ed55_8ccd, 5];
    let m = MIX[(std::hint::black_box(x) & 3) as usize];
    (x ^ m).rotate_left(13).wrapping_mul(m | 1)
}

fn inputs() -> impl Iterator<Item = u64> {
    (0..64u64)
        .chain([u64::MAX, 1 << 63, 0x8000, 15, 16, 17])
        .chain((0..2000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

#[test]
fn trampolines_of_fixtures_behave_like_the_originals() {
    type F = unsafe extern "C" fn(u64) -> u64;
    /// Whether the displaced instructions hold the case the fixture is for.
    type Holds = fn(&[Instruction]) -> bool;
    let fixtures: [(&str, F, Holds); 4] = [
        ("riprel", adapt_relocate_riprel, |d| {
            d[0].is_ip_rel_memory_operand() && d[0].mnemonic() == Mnemonic::Mov
        }),
        ("lea", adapt_relocate_lea, |d| {
            d[0].is_ip_rel_memory_operand() && d[0].mnemonic() == Mnemonic::Lea
        }),
        ("branchy", adapt_relocate_branchy, |d| {
            d.len() == 2 && d[1].code() == Code::Je_rel8_64
        }),
        ("calls", adapt_relocate_calls, |d| {
            d[0].code() == Code::Call_rel32_64
        }),
    ];
    for (name, original, case_is_there) in fixtures {
        let (_page, t, displaced) = trampoline_of(original as usize as u64);
        assert!(case_is_there(&displaced), "{name}: {:?}", t.displaced);
        // SAFETY: the trampoline was built for this page's address from the
        // function's own entry bytes and installed read+execute; it follows
        // the function's C ABI, which touches no memory but its table.
        let relocated: F = unsafe { std::mem::transmute::<usize, F>(t.address as usize) };
        for x in inputs() {
            // SAFETY: both are the fixture's code (see above).
            let (a, b) = unsafe { (original(x), relocated(x)) };
            assert_eq!(a, b, "{name}({x:#x})");
        }
    }
}

#[test]
fn the_trampoline_of_a_compiled_function_behaves_like_it() {
    let original: extern "C" fn(u64) -> u64 = adapt_relocate_rust;
    let (_page, t, _) = trampoline_of(original as usize as u64);
    // SAFETY: built from the function's own entry for this page, installed
    // read+execute; same C ABI.
    let relocated: extern "C" fn(u64) -> u64 =
        unsafe { std::mem::transmute::<usize, extern "C" fn(u64) -> u64>(t.address as usize) };
    for x in inputs() {
        assert_eq!(original(x), relocated(x), "{x:#x} ({:?})", t.displaced);
    }
}

#[test]
fn libz_crc32_through_its_trampoline() {
    let name = std::ffi::CString::new("libz.so.1").unwrap();
    // SAFETY: dlopen of a system library by name; the handle is leaked so
    // the library stays mapped for the test.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen libz.so.1");
    let sym = std::ffi::CString::new("crc32").unwrap();
    // SAFETY: `handle` is a live dlopen handle and `sym` a C string.
    let crc32 = unsafe { libc::dlsym(handle, sym.as_ptr()) } as u64;
    assert_ne!(crc32, 0);
    type Crc = unsafe extern "C" fn(libc::c_ulong, *const u8, libc::c_uint) -> libc::c_ulong;
    // SAFETY: zlib's crc32 has this C signature.
    let original: Crc = unsafe { std::mem::transmute::<usize, Crc>(crc32 as usize) };
    let (_page, t, _) = trampoline_of(crc32);
    // SAFETY: the trampoline of crc32, installed read+execute: same ABI.
    let relocated: Crc = unsafe { std::mem::transmute::<usize, Crc>(t.address as usize) };
    let data: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(131) >> 3) as u8)
        .collect();
    for len in [0usize, 1, 7, 64, 1000, 4096] {
        // SAFETY: `data` holds at least `len` bytes.
        let (a, b) = unsafe {
            (
                original(1, data.as_ptr(), len as u32),
                relocated(1, data.as_ptr(), len as u32),
            )
        };
        assert_eq!(a, b, "len {len}");
    }
}

#[test]
fn libc_strlen_through_its_trampoline() {
    let sym = std::ffi::CString::new("strlen").unwrap();
    // SAFETY: a lookup of a C string in the global scope.
    let strlen = unsafe { libc::dlsym(libc::RTLD_DEFAULT, sym.as_ptr()) } as u64;
    assert_ne!(strlen, 0);
    let (_page, t, _) = trampoline_of(strlen);
    type Len = unsafe extern "C" fn(*const libc::c_char) -> usize;
    // SAFETY: the trampoline of strlen (the implementation glibc chose for
    // this CPU), installed read+execute: same ABI.
    let relocated: Len = unsafe { std::mem::transmute::<usize, Len>(t.address as usize) };
    for n in [0usize, 1, 15, 16, 31, 32, 33, 100, 4095] {
        let s = std::ffi::CString::new(vec![b'x'; n]).unwrap();
        // SAFETY: `s` is a NUL-terminated string.
        assert_eq!(unsafe { relocated(s.as_ptr()) }, n, "{:?}", t.displaced);
    }
}

/// The entries of real library functions of this machine (Debian's libz and
/// libc, as loaded in this process): each is relocated for a place 64 MiB
/// away and checked instruction by instruction.
#[test]
fn real_prologues_from_the_system_libraries() {
    let libz = std::ffi::CString::new("libz.so.1").unwrap();
    // SAFETY: dlopen of a system library by name; the handle is leaked so
    // the library stays mapped for the test.
    let handle = unsafe { libc::dlopen(libz.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    assert!(!handle.is_null(), "dlopen libz.so.1");
    let names = [
        "crc32",
        "crc32_z",
        "adler32",
        "adler32_z",
        "compress2",
        "uncompress",
        "deflate",
        "deflateInit_",
        "deflateEnd",
        "inflate",
        "inflateInit_",
        "inflateEnd",
        "zlibVersion",
        "memcpy",
        "memmove",
        "memset",
        "memcmp",
        "strlen",
        "strcmp",
        "strchr",
        "malloc",
        "free",
        "calloc",
        "realloc",
        "qsort",
        "bsearch",
        "snprintf",
        "getenv",
        "pthread_mutex_lock",
        "fwrite",
    ];
    let mut relocated = Vec::new();
    for name in names {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: a lookup of a C string in the global scope.
        let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) } as u64;
        assert_ne!(address, 0, "{name}");
        let code = live(address, 32);
        let (len, _) = covering(&code, address);
        for new_address in [address + (64 << 20), address - (64 << 20)] {
            match relocate_prologue(&code, address, len, new_address) {
                Ok(t) => super::assert_equivalent(&code, len, &t),
                Err(e) => panic!("{name} at {address:#x}: {e}"),
            }
        }
        relocated.push(name);
    }
    assert_eq!(relocated.len(), names.len());
}

/// The entries of the reference BLAS (Debian's libblas3, the library the
/// BLAS segments replace live) relocated the same way: its level-1/2/3
/// routines and `xerbla_`/`lsame_`. Skipped, saying so, when the reference
/// BLAS is not installed (`cargo vm`'s dependency step installs it).
#[test]
fn real_prologues_from_the_reference_blas() {
    let path = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3";
    if !std::path::Path::new(path).exists() {
        eprintln!("skipped: {path} is not installed (apt-get install libblas3)");
        return;
    }
    let lib = std::ffi::CString::new(path).unwrap();
    // SAFETY: dlopen of the system reference BLAS by path; the handle is
    // leaked so the library stays mapped for the test.
    let handle = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen {path}");
    let names = [
        "dgemm_",
        "sgemm_",
        "dsyrk_",
        "dgemv_",
        "sgemv_",
        "daxpy_",
        "ddot_",
        "dscal_",
        "dtrsm_",
        "dger_",
        "xerbla_",
        "lsame_",
        "cblas_dgemm",
        "cblas_dgemv",
    ];
    for name in names {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: a lookup of a C string in a live dlopen handle.
        let address = unsafe { libc::dlsym(handle, c.as_ptr()) } as u64;
        assert_ne!(address, 0, "{name}");
        let code = live(address, 32);
        let (len, _) = covering(&code, address);
        for new_address in [address + (64 << 20), address - (64 << 20)] {
            match relocate_prologue(&code, address, len, new_address) {
                Ok(t) => super::assert_equivalent(&code, len, &t),
                Err(e) => panic!("{name} at {address:#x}: {e}"),
            }
        }
    }
}

/// A segment importing `fallback`, laid out as the module will map it (code
/// and trampoline read+execute, the import table read-only on its own page,
/// slot 0 holding the trampoline's address), verified, then run: a
/// trampoline-only variant must give exactly the original's results, and a
/// variant calling the fallback must see them.
#[test]
fn a_segment_calls_the_original_through_its_import_table() {
    use adapt_segment::import_table::{slot_offset, ImportLayout};
    use adapt_segment::{
        verify_with_imports, CType, Contract, CpuFeatures, Function, Import, Param, Scalar,
        Segment, Variant, FALLBACK,
    };

    /// `rip`-relative displacement from the end of an instruction at
    /// `end` to slot 0 of a variant of `len` bytes.
    fn to_slot0(len: usize, end: usize) -> [u8; 4] {
        i32::try_from(slot_offset(len, 0) as i64 - end as i64)
            .unwrap()
            .to_le_bytes()
    }
    // jmp qword ptr [rip+slot0]
    let mut tail = vec![0xff, 0x25];
    tail.extend(to_slot0(6, 6));
    // sub rsp,8; call qword ptr [rip+slot0]; add rsp,8; add rax,1; ret
    let mut call = vec![0x48, 0x83, 0xec, 0x08, 0xff, 0x15];
    call.extend(to_slot0(19, 10));
    call.extend([0x48, 0x83, 0xc4, 0x08, 0x48, 0x83, 0xc0, 0x01, 0xc3]);
    assert_eq!(call.len(), 19);

    let contract = Contract {
        returns: CType::value(Scalar::U64, "uint64_t"),
        params: vec![Param {
            name: "x".into(),
            ty: CType::value(Scalar::U64, "uint64_t"),
        }],
    };
    let variant = |name: &str, code: &[u8]| Variant {
        name: name.into(),
        features: CpuFeatures::default(),
        code: code.to_vec(),
        rodata: vec![],
        rodata_align: 1,
        relocations: vec![],
        entry_offsets: vec![0],
    };
    let segment = Segment {
        name: "fallback-test".into(),
        version: 1,
        description: "calls the original".into(),
        build: "by hand".into(),
        numerics: Default::default(),
        functions: vec![Function {
            symbol: "adapt_relocate_lea".into(),
            library: String::new(),
            contract: contract.clone(),
            reference: "adapt_relocate_lea".into(),
        }],
        variants: vec![variant("tail", &tail), variant("call", &call)],
    };
    let imports = [Import {
        name: FALLBACK.into(),
        library: String::new(),
        contract,
    }];
    verify_with_imports(&segment, &imports).unwrap();

    let original_fn: unsafe extern "C" fn(u64) -> u64 = adapt_relocate_lea;
    let original = original_fn as usize as u64;
    let entry = live(original, 32);
    let (len, _) = covering(&entry, original);
    for (v, plus) in segment.variants.iter().zip([0u64, 1]) {
        let layout = ImportLayout::of(v.code.len(), v.rodata.len(), imports.len());
        let map = NearPage::map_len(original, layout.total());
        let trampoline = relocate_prologue(
            &entry,
            original,
            len,
            map.address + layout.trampoline_offset as u64,
        )
        .unwrap();
        map.write(0, &vec![0xcc; layout.exec_pages]);
        map.write(0, &v.code);
        map.write(layout.trampoline_offset, &trampoline.bytes);
        map.write(
            layout.import_table_offset,
            &trampoline.address.to_le_bytes(),
        );
        map.protect(0, layout.exec_pages, libc::PROT_READ | libc::PROT_EXEC);
        map.protect(
            layout.import_table_offset,
            layout.import_table_pages,
            libc::PROT_READ,
        );
        type F = unsafe extern "C" fn(u64) -> u64;
        // SAFETY: verified code placed as its format says, its slot holding
        // the trampoline of `adapt_relocate_lea`, all read+execute or
        // read-only now; it follows the original's C ABI.
        let injected: F = unsafe {
            std::mem::transmute::<usize, F>((map.address + u64::from(v.entry_offsets[0])) as usize)
        };
        for x in inputs() {
            // SAFETY: both follow the fixture's C ABI (see above).
            let (a, b) = unsafe { (original_fn(x), injected(x)) };
            assert_eq!(a.wrapping_add(plus), b, "variant {} ({x:#x})", v.name);
        }
    }
}
