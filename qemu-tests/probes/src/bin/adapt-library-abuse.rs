//! Feeds the optimization-library ioctls (LIBRARY_LOAD, UNLOAD, LIST) of
//! /dev/adapt valid, hostile and random requests through the raw ioctl and
//! checks the errno the ABI promises: EINVAL for malformed headers, names,
//! offsets and reserved fields, E2BIG one past every size limit, EFAULT for
//! bad pointers, EEXIST (with the existing id) for a duplicate hash, ENOENT
//! for unknown ids, ENOSPC when the library is full. Every refused request
//! must leave the library as it was; at the end the library holds exactly
//! what it held at the start. The guest runner turns any kernel warning into
//! a failed run, and the guest test checks kmemleak afterwards.
//!
//! Usage: adapt-library-abuse [DEVICE]   (default /dev/adapt)

use adapt_abi as abi;
use adapt_guest_probes::check::Checks;
use adapt_guest_probes::raw_ioctl::{ioctl_raw, Outcome};
use adapt_guest_probes::scratch_pages::ScratchPages;
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;

const MAX_CODE: u32 = abi::ADAPT_SEGMENT_MAX_CODE;
const MAX_RODATA: u32 = abi::ADAPT_SEGMENT_MAX_RODATA;
const MAX_RELOCS: u32 = abi::ADAPT_SEGMENT_MAX_RELOCS;
const MAX_ENTRIES: u32 = abi::ADAPT_SEGMENT_MAX_ENTRIES;
/// A kernel (direct map) address: never readable from user mode.
const KERNEL_PTR: u64 = 0xffff_8880_0000_0000;
/// `mov eax, edi; ret`: the identity function on a u32.
const IDENTITY: [u8; 3] = [0x89, 0xf8, 0xc3];

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/dev/adapt".into());
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("adapt-library-abuse: cannot open {path}: {err}");
            return ExitCode::from(2);
        }
    };
    let fd = file.as_raw_fd();
    let mut checks = Checks::default();
    let mut t = Tester {
        fd,
        hashes: 0,
        pages: ScratchPages::new(),
    };

    let (got, initial) = list(fd, abi::ADAPT_LIBRARY_MAX_VARIANTS);
    checks.eq("LIST with room for every variant succeeds", got, Ok(0));
    let initial_ids: Vec<u64> = initial.iter().map(|i| i.id).collect();

    valid_variant(&mut t, &mut checks, initial.len());
    list_requests(&mut t, &mut checks);
    unload_requests(&mut t, &mut checks);
    header_fields(&mut t, &mut checks);
    names(&mut t, &mut checks);
    limits(&mut t, &mut checks);
    offsets(&mut t, &mut checks);
    pointers(&mut t, &mut checks);
    random_requests(&mut t, &mut checks);
    library_full(&mut t, &mut checks);
    concurrency(&mut t, &mut checks);

    let (_, last) = list(fd, abi::ADAPT_LIBRARY_MAX_VARIANTS);
    let last_ids: Vec<u64> = last.iter().map(|i| i.id).collect();
    let mut sorted = (initial_ids.clone(), last_ids.clone());
    sorted.0.sort_unstable();
    sorted.1.sort_unstable();
    checks.eq(
        "the library holds what it held at the start",
        sorted.1,
        sorted.0,
    );
    checks.finish()
}

/// The device, a source of fresh variant hashes, and scratch pages.
struct Tester {
    fd: RawFd,
    hashes: u64,
    pages: ScratchPages,
}

impl Tester {
    /// A hash no other request of this run used.
    fn fresh_hash(&mut self) -> [u8; 32] {
        self.hashes += 1;
        let mut hash = [0xa5u8; 32];
        hash[..8].copy_from_slice(&self.hashes.to_le_bytes());
        hash[8..16].copy_from_slice(&(std::process::id() as u64).to_le_bytes());
        hash
    }

    /// Loads `req`; expects `want`. A request that loads when it should not
    /// is unloaded again, so one failure does not cascade.
    fn expect(
        &mut self,
        checks: &mut Checks,
        name: &str,
        req: &mut abi::AdaptLibraryLoad,
        want: Outcome,
    ) {
        let got = load(self.fd, req);
        if got == Ok(0) && want != Ok(0) {
            discard(self.fd, req.id);
        }
        checks.eq(name, got.map_err(errno_name), want.map_err(errno_name));
    }

    /// Loads `req` (with a fresh hash), expects success, and unloads it.
    fn expect_loads(&mut self, checks: &mut Checks, name: &str, req: &mut abi::AdaptLibraryLoad) {
        req.hash = self.fresh_hash();
        let got = load(self.fd, req);
        checks.eq(name, got.map_err(errno_name), Ok(0));
        if got == Ok(0) {
            checks.eq(
                &format!("{name}: unloads"),
                unload(self.fd, req.id, 0),
                Ok(0),
            );
        }
    }

    /// Loads `upload` altered by `change` with a fresh hash; expects `errno`.
    fn expect_errno(
        &mut self,
        checks: &mut Checks,
        name: &str,
        upload: &Upload,
        errno: i32,
        change: impl FnOnce(&mut abi::AdaptLibraryLoad),
    ) {
        let mut req = upload.request(self.fresh_hash());
        change(&mut req);
        self.expect(checks, name, &mut req, Err(errno));
    }
}

/// Buffers behind one LOAD request.
#[derive(Clone)]
struct Upload {
    code: Vec<u8>,
    rodata: Vec<u8>,
    rodata_align: u32,
    relocs: Vec<abi::AdaptSegmentReloc>,
    entries: Vec<abi::AdaptSegmentEntry>,
}

impl Upload {
    /// `mov eax, edi; ret` with one entry, no read-only data.
    fn identity() -> Self {
        Self {
            code: IDENTITY.to_vec(),
            rodata: Vec::new(),
            rodata_align: 1,
            relocs: Vec::new(),
            entries: vec![entry("adapt_probe_identity", 0)],
        }
    }

    /// 32 bytes of code referring to 16 bytes of read-only data through
    /// one relocation, two entries.
    fn with_rodata() -> Self {
        let mut code = vec![0xc3u8; 32];
        // movdqa xmm0, [rip + disp32] at offset 0; the field is at 4.
        code[..8].copy_from_slice(&[0x66, 0x0f, 0x6f, 0x05, 0, 0, 0, 0]);
        Self {
            code,
            rodata: vec![0x11; 16],
            rodata_align: 16,
            relocs: vec![abi::AdaptSegmentReloc {
                offset: 4,
                rodata_offset: 0,
                addend: -4,
                reserved: 0,
            }],
            entries: vec![entry("adapt_probe_a", 0), entry("adapt_probe_b", 8)],
        }
    }

    /// The request for these buffers, which must outlive it.
    fn request(&self, hash: [u8; 32]) -> abi::AdaptLibraryLoad {
        abi::AdaptLibraryLoad {
            format_version: abi::ADAPT_SEGMENT_FORMAT_VERSION,
            flags: 0,
            segment: name("probe"),
            variant: name("baseline"),
            hash,
            cpu_features: 0,
            code: self.code.as_ptr() as u64,
            rodata: self.rodata.as_ptr() as u64,
            relocs: self.relocs.as_ptr() as u64,
            entries: self.entries.as_ptr() as u64,
            code_len: self.code.len() as u32,
            rodata_len: self.rodata.len() as u32,
            rodata_align: self.rodata_align,
            nrelocs: self.relocs.len() as u32,
            nentries: self.entries.len() as u32,
            nimports: 0,
            data_len: 0,
            pad: 0,
            id: 0,
            reserved: [0; 4],
        }
    }
}

fn name<const N: usize>(s: &str) -> [u8; N] {
    abi::name_field::<N>(s).expect("probe names fit")
}

fn entry(symbol: &str, offset: u32) -> abi::AdaptSegmentEntry {
    abi::AdaptSegmentEntry {
        offset,
        flags: 0,
        contract_hash: 0x0123_4567_89ab_cdef,
        symbol: name(symbol),
    }
}

fn load(fd: RawFd, req: &mut abi::AdaptLibraryLoad) -> Outcome {
    // SAFETY: `req` is a writable AdaptLibraryLoad, the size the command
    // encodes; the kernel only reads through the pointers inside it.
    unsafe { ioctl_raw(fd, abi::ADAPT_IOC_LIBRARY_LOAD, req as *mut _ as usize) }
}

fn unload(fd: RawFd, id: u64, flags: u32) -> Outcome {
    let mut req = abi::AdaptLibraryUnload {
        id,
        flags,
        ..Default::default()
    };
    // SAFETY: `req` is a writable AdaptLibraryUnload.
    unsafe {
        ioctl_raw(
            fd,
            abi::ADAPT_IOC_LIBRARY_UNLOAD,
            &mut req as *mut _ as usize,
        )
    }
}

/// Unloads `id` as cleanup after a check already recorded its verdict (a
/// variant that loaded when it should not have, or one a test is done with).
fn discard(fd: RawFd, id: u64) {
    let _ = unload(fd, id, 0);
}

/// LIST with room for `capacity` entries: the outcome and the entries.
fn list(fd: RawFd, capacity: u32) -> (Outcome, Vec<abi::AdaptLibraryInfo>) {
    let mut infos = vec![abi::AdaptLibraryInfo::default(); capacity as usize];
    let mut req = abi::AdaptLibraryList {
        entries: infos.as_mut_ptr() as u64,
        capacity,
        ..Default::default()
    };
    // SAFETY: `req` is a writable AdaptLibraryList and `infos` has room for
    // `capacity` entries.
    let got = unsafe { ioctl_raw(fd, abi::ADAPT_IOC_LIBRARY_LIST, &mut req as *mut _ as usize) };
    infos.truncate((req.count as usize).min(capacity as usize));
    (got, infos)
}

/// Variants loaded now.
fn total(fd: RawFd) -> u32 {
    let mut req = abi::AdaptLibraryList::default();
    // SAFETY: `req` is a writable AdaptLibraryList; capacity 0 writes no entry.
    let got = unsafe { ioctl_raw(fd, abi::ADAPT_IOC_LIBRARY_LIST, &mut req as *mut _ as usize) };
    if got.is_ok() {
        req.total
    } else {
        u32::MAX
    }
}

fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EINVAL => "EINVAL",
        libc::E2BIG => "E2BIG",
        libc::EFAULT => "EFAULT",
        libc::EEXIST => "EEXIST",
        libc::ENOENT => "ENOENT",
        libc::ENOSPC => "ENOSPC",
        libc::EBUSY => "EBUSY",
        libc::ENOTTY => "ENOTTY",
        libc::ENOMEM => "ENOMEM",
        _ => "other",
    }
}

/// A valid variant: loaded, loaded again (EEXIST, same id), listed,
/// unloaded, gone.
fn valid_variant(t: &mut Tester, checks: &mut Checks, before: usize) {
    let upload = Upload::identity();
    let hash = t.fresh_hash();
    let mut req = upload.request(hash);
    checks.eq("valid identity variant loads", load(t.fd, &mut req), Ok(0));
    let id = req.id;
    checks.that("it gets a non-zero id", id != 0, "id 0");
    let mut again = upload.request(hash);
    checks.eq(
        "the same hash again is EEXIST",
        load(t.fd, &mut again).map_err(errno_name),
        Err("EEXIST"),
    );
    checks.eq("EEXIST reports the existing id", again.id, id);

    let mut counted = abi::AdaptLibraryList::default();
    // SAFETY: `counted` is a writable AdaptLibraryList; capacity 0 and a null
    // array: nothing but the struct is written.
    let got = unsafe {
        ioctl_raw(
            t.fd,
            abi::ADAPT_IOC_LIBRARY_LIST,
            &mut counted as *mut _ as usize,
        )
    };
    checks.eq("LIST with capacity 0 succeeds", got, Ok(0));
    checks.eq("LIST with capacity 0 writes no entry", counted.count, 0);
    checks.eq(
        "LIST with capacity 0 counts the new variant",
        counted.total as usize,
        before + 1,
    );

    let (got, infos) = list(t.fd, abi::ADAPT_LIBRARY_MAX_VARIANTS);
    checks.eq("LIST with room succeeds", got, Ok(0));
    checks.eq(
        "LIST with room returns every variant",
        infos.len(),
        before + 1,
    );
    match infos.iter().find(|i| i.id == id) {
        Some(info) => {
            checks.eq(
                "listed segment name",
                abi::name_str(&info.segment),
                Some("probe"),
            );
            checks.eq(
                "listed variant name",
                abi::name_str(&info.variant),
                Some("baseline"),
            );
            checks.eq("listed hash", info.hash, hash);
            checks.eq(
                "listed sizes",
                (info.code_len, info.rodata_len, info.nentries),
                (3, 0, 1),
            );
            checks.eq(
                "listed users and flags",
                (info.users, info.flags, info.nimports),
                (0, 0, 0),
            );
        }
        None => checks.that(
            "the new variant is listed",
            false,
            format!("id {id} missing"),
        ),
    }
    let (got, one) = list(t.fd, 1);
    checks.eq("LIST with room for one succeeds", got, Ok(0));
    checks.eq("LIST with room for one returns one", one.len(), 1);

    checks.eq("unload the variant", unload(t.fd, id, 0), Ok(0));
    let (_, infos) = list(t.fd, abi::ADAPT_LIBRARY_MAX_VARIANTS);
    checks.that(
        "an unloaded variant is no longer listed",
        infos.iter().all(|i| i.id != id),
        format!("id {id} still listed"),
    );
    checks.eq(
        "unload it again is ENOENT",
        unload(t.fd, id, 0).map_err(errno_name),
        Err("ENOENT"),
    );
    let mut reload = upload.request(hash);
    checks.eq(
        "its hash can be loaded again",
        load(t.fd, &mut reload),
        Ok(0),
    );
    checks.that("with a new id", reload.id != id, format!("id {id} reused"));
    discard(t.fd, reload.id);

    let rich = Upload::with_rodata();
    let mut req = rich.request(t.fresh_hash());
    t.expect_loads(
        checks,
        "variant with read-only data, a relocation and two entries loads",
        &mut req,
    );
    let mut req = upload.request([0; 32]);
    req.cpu_features = abi::ADAPT_CPU_FEATURES_ALL;
    t.expect_loads(checks, "every known CPU feature bit is accepted", &mut req);
    let mut req = upload.request([0; 32]);
    req.rodata = 1;
    req.relocs = 1;
    t.expect_loads(
        checks,
        "dangling pointers with zero lengths are not read",
        &mut req,
    );
    let mut req = upload.request([0; 32]);
    req.rodata_align = abi::ADAPT_SEGMENT_MAX_RODATA_ALIGN;
    t.expect_loads(checks, "page-aligned read-only data is accepted", &mut req);
}

fn list_requests(t: &mut Tester, checks: &mut Checks) {
    let fd = t.fd;
    let run = |req: &mut abi::AdaptLibraryList| {
        // SAFETY: `req` is a writable AdaptLibraryList; its `entries` pointer
        // is null, unmapped, read-only or a kernel address in these cases, so
        // the kernel cannot write into memory of ours it should not.
        unsafe { ioctl_raw(fd, abi::ADAPT_IOC_LIBRARY_LIST, req as *mut _ as usize) }
            .map_err(errno_name)
    };
    // Make sure there is at least one entry to write.
    let upload = Upload::identity();
    let mut held = upload.request(t.fresh_hash());
    let loaded = load(fd, &mut held) == Ok(0);
    checks.that("a variant to list is loaded", loaded, "load failed");

    let mut req = abi::AdaptLibraryList {
        flags: 1,
        ..Default::default()
    };
    checks.eq("LIST with non-zero flags", run(&mut req), Err("EINVAL"));
    for word in 0..2 {
        let mut req = abi::AdaptLibraryList::default();
        req.reserved[word] = 1;
        checks.eq(
            &format!("LIST with non-zero reserved[{word}]"),
            run(&mut req),
            Err("EINVAL"),
        );
    }
    for (what, ptr) in [
        ("null", 0),
        ("unmapped", t.pages.unmapped() as u64),
        ("read-only", t.pages.read_only() as u64),
        ("kernel", KERNEL_PTR),
    ] {
        let mut req = abi::AdaptLibraryList {
            entries: ptr,
            capacity: 4,
            ..Default::default()
        };
        checks.eq(
            &format!("LIST into a {what} array"),
            run(&mut req),
            Err("EFAULT"),
        );
    }
    // SAFETY: null is never a valid argument; nothing is written.
    let got = unsafe { ioctl_raw(fd, abi::ADAPT_IOC_LIBRARY_LIST, 0) };
    checks.eq(
        "LIST with a null argument",
        got.map_err(errno_name),
        Err("EFAULT"),
    );
    if loaded {
        discard(fd, held.id);
    }
}

fn unload_requests(t: &mut Tester, checks: &mut Checks) {
    let fd = t.fd;
    for id in [0, u64::MAX, 1 << 40] {
        checks.eq(
            &format!("UNLOAD of unknown id {id:#x}"),
            unload(fd, id, 0).map_err(errno_name),
            Err("ENOENT"),
        );
    }
    let upload = Upload::identity();
    let mut req = upload.request(t.fresh_hash());
    let loaded = load(fd, &mut req) == Ok(0);
    checks.that("a variant to unload is loaded", loaded, "load failed");
    for flags in [1 << 1, 1 << 31] {
        checks.eq(
            &format!("UNLOAD with unknown flag {flags:#x}"),
            unload(fd, req.id, flags).map_err(errno_name),
            Err("EINVAL"),
        );
    }
    for word in 0..2 {
        let mut bad = abi::AdaptLibraryUnload {
            id: req.id,
            ..Default::default()
        };
        bad.reserved[word] = 1;
        // SAFETY: `bad` is a writable AdaptLibraryUnload.
        let got = unsafe {
            ioctl_raw(
                fd,
                abi::ADAPT_IOC_LIBRARY_UNLOAD,
                &mut bad as *mut _ as usize,
            )
        };
        checks.eq(
            &format!("UNLOAD with non-zero reserved[{word}]"),
            got.map_err(errno_name),
            Err("EINVAL"),
        );
    }
    for (what, arg) in [
        ("null", 0),
        ("unmapped", t.pages.unmapped()),
        ("kernel", KERNEL_PTR as usize),
    ] {
        // SAFETY: the argument is not memory of ours the kernel may write.
        let got = unsafe { ioctl_raw(fd, abi::ADAPT_IOC_LIBRARY_UNLOAD, arg) };
        checks.eq(
            &format!("UNLOAD with a {what} argument"),
            got.map_err(errno_name),
            Err("EFAULT"),
        );
    }
    checks.eq(
        "the variant survived the refused unloads",
        total_has(fd, req.id),
        true,
    );
    checks.eq(
        "UNLOAD with --force of an unused variant",
        unload(fd, req.id, abi::ADAPT_LIBRARY_UNLOAD_F_FORCE),
        Ok(0),
    );
}

fn total_has(fd: RawFd, id: u64) -> bool {
    list(fd, abi::ADAPT_LIBRARY_MAX_VARIANTS)
        .1
        .iter()
        .any(|i| i.id == id)
}

fn header_fields(t: &mut Tester, checks: &mut Checks) {
    let u = Upload::identity();
    for v in [0, abi::ADAPT_SEGMENT_FORMAT_VERSION + 1, u32::MAX] {
        t.expect_errno(
            checks,
            &format!("format_version {v}"),
            &u,
            libc::EINVAL,
            |r| r.format_version = v,
        );
    }
    for f in [1, 1 << 31] {
        t.expect_errno(checks, &format!("flags {f:#x}"), &u, libc::EINVAL, |r| {
            r.flags = f
        });
    }
    t.expect_errno(
        checks,
        "imports in a format 1 upload",
        &u,
        libc::EINVAL,
        |r| r.nimports = 1,
    );
    t.expect_errno(checks, "too many imports", &u, libc::E2BIG, |r| {
        r.format_version = abi::ADAPT_SEGMENT_FORMAT_VERSION_IMPORTS;
        r.nimports = abi::ADAPT_SEGMENT_MAX_IMPORTS + 1
    });
    t.expect_errno(
        checks,
        "a data area without imports",
        &u,
        libc::EINVAL,
        |r| r.data_len = 4096,
    );
    t.expect_errno(checks, "non-zero pad", &u, libc::EINVAL, |r| r.pad = 1);
    t.expect_errno(checks, "too large a data area", &u, libc::E2BIG, |r| {
        r.format_version = abi::ADAPT_SEGMENT_FORMAT_VERSION_IMPORTS;
        r.nimports = 1;
        r.data_len = abi::ADAPT_SEGMENT_MAX_DATA + 1
    });
    for word in 0..4 {
        t.expect_errno(
            checks,
            &format!("non-zero reserved[{word}]"),
            &u,
            libc::EINVAL,
            |r| r.reserved[word] = 1 << 63,
        );
    }
    let first_unknown = 1u64 << abi::ADAPT_CPU_FEATURE_NAMES.len();
    for bits in [first_unknown, 1 << 63, u64::MAX] {
        t.expect_errno(
            checks,
            &format!("unknown CPU feature bits {bits:#x}"),
            &u,
            libc::EINVAL,
            |r| r.cpu_features = bits,
        );
    }
    t.expect_errno(checks, "code_len 0", &u, libc::EINVAL, |r| r.code_len = 0);
    t.expect_errno(checks, "nentries 0", &u, libc::EINVAL, |r| r.nentries = 0);
    for align in [0, 3, 48, 2 * abi::ADAPT_SEGMENT_MAX_RODATA_ALIGN, 1 << 31] {
        t.expect_errno(
            checks,
            &format!("rodata_align {align}"),
            &u,
            libc::EINVAL,
            |r| r.rodata_align = align,
        );
    }
    let rich = Upload::with_rodata();
    t.expect_errno(
        checks,
        "relocations without read-only data",
        &rich,
        libc::EINVAL,
        |r| r.rodata_len = 0,
    );
}

fn names(t: &mut Tester, checks: &mut Checks) {
    let u = Upload::identity();
    let unterminated = [b'a'; abi::ADAPT_NAME_LEN];
    let mut after_nul = name::<{ abi::ADAPT_NAME_LEN }>("ab");
    after_nul[5] = b'c';
    let mut not_utf8 = [0u8; abi::ADAPT_NAME_LEN];
    not_utf8[..2].copy_from_slice(&[0xff, 0xfe]);
    let empty = [0u8; abi::ADAPT_NAME_LEN];
    for (what, field) in [
        ("unterminated", unterminated),
        ("bytes after the NUL", after_nul),
        ("not UTF-8", not_utf8),
        ("empty", empty),
    ] {
        t.expect_errno(
            checks,
            &format!("segment name {what}"),
            &u,
            libc::EINVAL,
            |r| r.segment = field,
        );
        t.expect_errno(
            checks,
            &format!("variant name {what}"),
            &u,
            libc::EINVAL,
            |r| r.variant = field,
        );
    }
    let mut longest = [b'a'; abi::ADAPT_NAME_LEN];
    longest[abi::ADAPT_NAME_LEN - 1] = 0;
    let mut req = u.request([0; 32]);
    req.segment = longest;
    req.variant = longest;
    t.expect_loads(checks, "31-byte names are accepted", &mut req);

    let mut symbols = Vec::new();
    symbols.push(("unterminated", [b'f'; abi::ADAPT_SYMBOL_LEN]));
    let mut s = [0u8; abi::ADAPT_SYMBOL_LEN];
    s[0] = 0xff;
    symbols.push(("not UTF-8", s));
    symbols.push(("empty", [0u8; abi::ADAPT_SYMBOL_LEN]));
    let mut s = name::<{ abi::ADAPT_SYMBOL_LEN }>("f");
    s[10] = b'g';
    symbols.push(("bytes after the NUL", s));
    for (what, symbol) in symbols {
        let mut bad = u.clone();
        bad.entries[0].symbol = symbol;
        t.expect_errno(
            checks,
            &format!("entry symbol {what}"),
            &bad,
            libc::EINVAL,
            |_| {},
        );
    }
}

fn limits(t: &mut Tester, checks: &mut Checks) {
    let u = Upload::identity();
    for (what, value) in [("one past the limit", 1u32), ("u32::MAX", 0)] {
        let over = |limit: u32| if value == 0 { u32::MAX } else { limit + value };
        t.expect_errno(checks, &format!("code_len {what}"), &u, libc::E2BIG, |r| {
            r.code_len = over(MAX_CODE)
        });
        t.expect_errno(
            checks,
            &format!("rodata_len {what}"),
            &u,
            libc::E2BIG,
            |r| r.rodata_len = over(MAX_RODATA),
        );
        t.expect_errno(checks, &format!("nrelocs {what}"), &u, libc::E2BIG, |r| {
            r.nrelocs = over(MAX_RELOCS)
        });
        t.expect_errno(checks, &format!("nentries {what}"), &u, libc::E2BIG, |r| {
            r.nentries = over(MAX_ENTRIES)
        });
    }
    // Exactly at each limit: accepted.
    let mut big = Upload::identity();
    big.code = vec![0xc3; MAX_CODE as usize];
    let mut req = big.request([0; 32]);
    t.expect_loads(checks, "code of exactly the limit loads", &mut req);
    let mut big = Upload::identity();
    big.rodata = vec![0; MAX_RODATA as usize];
    let mut req = big.request([0; 32]);
    t.expect_loads(
        checks,
        "read-only data of exactly the limit loads",
        &mut req,
    );
    let mut many = Upload::identity();
    many.code = vec![0x90; 4 * MAX_RELOCS as usize];
    many.rodata = vec![0; 4];
    many.relocs = (0..MAX_RELOCS)
        .map(|i| abi::AdaptSegmentReloc {
            offset: 4 * i,
            rodata_offset: 0,
            addend: -4,
            reserved: 0,
        })
        .collect();
    let mut req = many.request([0; 32]);
    t.expect_loads(checks, "exactly the most relocations load", &mut req);
    let mut entries = Upload::identity();
    entries.code = vec![0xc3; MAX_ENTRIES as usize];
    entries.entries = (0..MAX_ENTRIES)
        .map(|i| entry(&format!("adapt_probe_{i}"), i))
        .collect();
    let mut req = entries.request([0; 32]);
    t.expect_loads(checks, "exactly the most entries load", &mut req);
}

/// Breaks one relocation, given the code and read-only data lengths.
type RelocChange = fn(&mut abi::AdaptSegmentReloc, u32, u32);
/// Breaks one entry, given the code length.
type EntryChange = fn(&mut abi::AdaptSegmentEntry, u32);

fn offsets(t: &mut Tester, checks: &mut Checks) {
    let u = Upload::with_rodata();
    let code_len = u.code.len() as u32;
    let rodata_len = u.rodata.len() as u32;
    let reloc_cases: [(&str, RelocChange); 8] = [
        (
            "relocation field crossing the end of the code",
            |r, c, _| r.offset = c - 3,
        ),
        ("relocation at the end of the code", |r, c, _| r.offset = c),
        ("relocation at u32::MAX", |r, _, _| r.offset = u32::MAX),
        ("relocation target past the read-only data", |r, _, d| {
            r.rodata_offset = d + 1
        }),
        ("relocation target at u32::MAX", |r, _, _| {
            r.rodata_offset = u32::MAX
        }),
        ("relocation with non-zero reserved", |r, _, _| {
            r.reserved = 1
        }),
        ("relocation addend i32::MIN", |r, _, _| r.addend = i32::MIN),
        ("relocation addend 2^20", |r, _, _| r.addend = 1 << 20),
    ];
    for (what, change) in reloc_cases {
        let mut bad = u.clone();
        change(&mut bad.relocs[0], code_len, rodata_len);
        t.expect_errno(checks, what, &bad, libc::EINVAL, |_| {});
    }
    let entry_cases: [(&str, EntryChange); 4] = [
        ("entry at the end of the code", |e, c| e.offset = c),
        ("entry at u32::MAX", |e, _| e.offset = u32::MAX),
        ("entry with non-zero flags", |e, _| e.flags = 1),
        ("entry with flags u32::MAX", |e, _| e.flags = u32::MAX),
    ];
    for (what, change) in entry_cases {
        let mut bad = u.clone();
        change(&mut bad.entries[1], code_len);
        t.expect_errno(checks, what, &bad, libc::EINVAL, |_| {});
    }
    // A relocation pointing at the end of the read-only data is in bounds.
    let mut edge = u.clone();
    edge.relocs[0].rodata_offset = rodata_len;
    let mut req = edge.request([0; 32]);
    t.expect_loads(
        checks,
        "relocation targeting the end of the read-only data loads",
        &mut req,
    );
    // More entries/relocations claimed than the arrays hold: the kernel
    // reads past them into our scratch page, then the hole.
    let before = total(t.fd);
    let tail = t.pages.unmapped() - std::mem::size_of::<abi::AdaptSegmentEntry>();
    t.expect_errno(
        checks,
        "entries array running into an unmapped page",
        &u,
        libc::EFAULT,
        |r| {
            r.entries = tail as u64;
            r.nentries = 2;
        },
    );
    checks.eq(
        "refused loads leave the library unchanged",
        total(t.fd),
        before,
    );
}

fn pointers(t: &mut Tester, checks: &mut Checks) {
    let u = Upload::with_rodata();
    let unmapped = t.pages.unmapped() as u64;
    let at_hole = t.pages.unmapped() as u64 - 2;
    for (what, ptr) in [
        ("null", 0),
        ("unmapped", unmapped),
        ("kernel", KERNEL_PTR),
        ("non-canonical", 0x0000_8000_0000_0000),
    ] {
        t.expect_errno(
            checks,
            &format!("{what} code pointer"),
            &u,
            libc::EFAULT,
            |r| r.code = ptr,
        );
        t.expect_errno(
            checks,
            &format!("{what} rodata pointer"),
            &u,
            libc::EFAULT,
            |r| r.rodata = ptr,
        );
        t.expect_errno(
            checks,
            &format!("{what} relocation pointer"),
            &u,
            libc::EFAULT,
            |r| r.relocs = ptr,
        );
        t.expect_errno(
            checks,
            &format!("{what} entry pointer"),
            &u,
            libc::EFAULT,
            |r| r.entries = ptr,
        );
    }
    t.expect_errno(
        checks,
        "code running into an unmapped page",
        &u,
        libc::EFAULT,
        |r| r.code = at_hole,
    );
    t.expect_errno(
        checks,
        "rodata running into an unmapped page",
        &u,
        libc::EFAULT,
        |r| r.rodata = at_hole,
    );

    // The request itself at bad addresses.
    for (what, arg) in [
        ("null", 0usize),
        ("unmapped", t.pages.unmapped()),
        ("kernel", KERNEL_PTR as usize),
    ] {
        // SAFETY: the argument is not memory of ours the kernel may write.
        let got = unsafe { ioctl_raw(t.fd, abi::ADAPT_IOC_LIBRARY_LOAD, arg) };
        checks.eq(
            &format!("LOAD with a {what} argument"),
            got.map_err(errno_name),
            Err("EFAULT"),
        );
    }
    // A valid request in read-only memory: the kernel can read it but not
    // write the id back. The load must fail as a whole.
    let before = total(t.fd);
    let ro = ReadOnlyPage::holding(&u.request(t.fresh_hash()));
    // SAFETY: the page is read-only: the kernel cannot write into it.
    let got = unsafe { ioctl_raw(t.fd, abi::ADAPT_IOC_LIBRARY_LOAD, ro.addr()) };
    checks.eq(
        "LOAD whose reply cannot be written",
        got.map_err(errno_name),
        Err("EFAULT"),
    );
    let after = total(t.fd);
    checks.eq(
        "a LOAD that failed with EFAULT loaded nothing",
        after,
        before,
    );
    if after != before {
        // Clean up what the kernel kept.
        // SAFETY: reading our own read-only page.
        let req: abi::AdaptLibraryLoad = unsafe { std::ptr::read(ro.addr() as *const _) };
        for info in list(t.fd, abi::ADAPT_LIBRARY_MAX_VARIANTS).1 {
            if info.hash == req.hash {
                discard(t.fd, info.id);
            }
        }
    }
}

/// Random requests: every field random, then valid headers with random
/// lengths, pointers and array contents. Only clean refusals or successful
/// loads (which are unloaded again) may come back.
fn random_requests(t: &mut Tester, checks: &mut Checks) {
    let before = total(t.fd);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ std::process::id() as u64);
    let scratch_len = 64 * 1024;
    let mut scratch = vec![0u8; scratch_len];
    let mut unexpected = Vec::new();

    // 1. Every byte random.
    for _ in 0..5_000 {
        let mut req = abi::AdaptLibraryLoad::default();
        // SAFETY: AdaptLibraryLoad is plain integers and byte arrays: any
        // bytes are a valid value.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                &mut req as *mut _ as *mut u8,
                std::mem::size_of::<abi::AdaptLibraryLoad>(),
            )
        };
        bytes.iter_mut().for_each(|b| *b = rng.next() as u8);
        if rng.next() % 2 == 0 {
            req.format_version = abi::ADAPT_SEGMENT_FORMAT_VERSION;
        }
        let got = load(t.fd, &mut req);
        match got {
            Err(libc::EINVAL) | Err(libc::E2BIG) | Err(libc::EFAULT) => {}
            Ok(_) => {
                discard(t.fd, req.id);
            }
            other => unexpected.push(format!("all-random: {other:?}")),
        }
    }

    // 2. Valid header, random everything else.
    let unmapped = t.pages.unmapped() as u64;
    let ptr_for = |rng: &mut Rng, base: usize, len: usize| -> u64 {
        match rng.next() % 8 {
            0 => 0,
            1 => KERNEL_PTR + rng.next() % 4096,
            2 => unmapped + rng.next() % 4096,
            3 => rng.next(),
            _ => (base + (rng.next() as usize % len)) as u64,
        }
    };
    let len_for = |rng: &mut Rng, limit: u32| -> u32 {
        match rng.next() % 8 {
            0 => 0,
            1 => limit + (rng.next() % 3) as u32,
            2 => rng.next() as u32,
            _ => (rng.next() % 256) as u32,
        }
    };
    let mut loaded = 0;
    for _ in 0..5_000 {
        scratch.iter_mut().for_each(|b| *b = rng.next() as u8);
        let base = scratch.as_mut_ptr() as usize;
        let code_len = len_for(&mut rng, MAX_CODE);
        let rodata_len = len_for(&mut rng, MAX_RODATA);
        // Structured arrays at the start of the scratch buffer, with offsets
        // near the edges of the code and data, half of the time.
        let nrelocs = len_for(&mut rng, MAX_RELOCS) % 64;
        let nentries = 1 + len_for(&mut rng, MAX_ENTRIES) % 17;
        let structured = rng.next() % 2 == 0;
        let relocs_at = base;
        let entries_at = base + 64 * std::mem::size_of::<abi::AdaptSegmentReloc>();
        if structured {
            for i in 0..nrelocs as usize {
                let r = abi::AdaptSegmentReloc {
                    offset: (rng.next() % (u64::from(code_len) + 8)) as u32,
                    rodata_offset: (rng.next() % (u64::from(rodata_len) + 8)) as u32,
                    addend: (rng.next() % 16) as i32 - 8,
                    reserved: (rng.next() % 16 == 0) as u32,
                };
                // SAFETY: the relocation array (64 × 16 bytes) lies inside
                // the scratch buffer.
                unsafe {
                    std::ptr::write_unaligned((relocs_at as *mut abi::AdaptSegmentReloc).add(i), r)
                };
            }
            for i in 0..nentries as usize {
                let mut e = entry(
                    "adapt_probe_random",
                    (rng.next() % (u64::from(code_len) + 4)) as u32,
                );
                e.flags = (rng.next() % 16 == 0) as u32;
                // SAFETY: the entry array (17 × 80 bytes) follows the
                // relocations inside the scratch buffer.
                unsafe {
                    std::ptr::write_unaligned((entries_at as *mut abi::AdaptSegmentEntry).add(i), e)
                };
            }
        }
        let code_ptr = ptr_for(&mut rng, base, scratch_len);
        let mut req = abi::AdaptLibraryLoad {
            format_version: abi::ADAPT_SEGMENT_FORMAT_VERSION,
            segment: name("random"),
            variant: name("random"),
            hash: t.fresh_hash(),
            cpu_features: rng.next() & abi::ADAPT_CPU_FEATURES_ALL,
            code: code_ptr,
            rodata: ptr_for(&mut rng, base, scratch_len),
            relocs: if structured {
                relocs_at as u64
            } else {
                ptr_for(&mut rng, base, scratch_len)
            },
            entries: if structured {
                entries_at as u64
            } else {
                ptr_for(&mut rng, base, scratch_len)
            },
            code_len,
            rodata_len,
            rodata_align: 1 << (rng.next() % 14),
            nrelocs,
            nentries,
            ..Default::default()
        };
        match load(t.fd, &mut req) {
            Ok(_) => {
                loaded += 1;
                if unload(t.fd, req.id, 0).is_err() {
                    unexpected.push(format!("random variant {} would not unload", req.id));
                }
            }
            Err(libc::EINVAL) | Err(libc::E2BIG) | Err(libc::EFAULT) => {}
            other => unexpected.push(format!("structured: {other:?}")),
        }
    }
    println!("note  {loaded} random structured requests were valid and loaded");
    checks.that(
        "10000 random LOAD requests fail only with EINVAL/E2BIG/EFAULT or load",
        unexpected.is_empty(),
        format!("{:?}", &unexpected[..unexpected.len().min(5)]),
    );
    checks.eq(
        "random requests leave the library unchanged",
        total(t.fd),
        before,
    );
}

/// ENOSPC at the variant count and at the byte limit, and nothing is lost
/// when the library is full.
fn library_full(t: &mut Tester, checks: &mut Checks) {
    let (_, present) = list(t.fd, abi::ADAPT_LIBRARY_MAX_VARIANTS);
    let u = Upload::identity();
    let mut ids = Vec::new();
    let room = abi::ADAPT_LIBRARY_MAX_VARIANTS as usize - present.len();
    let mut last = Ok(0);
    let mut first_hash = None;
    for _ in 0..room {
        let hash = t.fresh_hash();
        let mut req = u.request(hash);
        last = load(t.fd, &mut req);
        if last.is_err() {
            break;
        }
        first_hash.get_or_insert(hash);
        ids.push(req.id);
    }
    checks.eq(
        "the library takes variants up to its count limit",
        (ids.len(), last),
        (room, Ok(0)),
    );
    let mut req = u.request(t.fresh_hash());
    t.expect(
        checks,
        "one variant past the count limit is ENOSPC",
        &mut req,
        Err(libc::ENOSPC),
    );
    if let Some(hash) = first_hash {
        let mut dup = u.request(hash);
        let got = load(t.fd, &mut dup);
        checks.eq(
            "a full library still answers a duplicate with EEXIST",
            got.map_err(errno_name),
            Err("EEXIST"),
        );
        checks.eq("with the id of the variant loaded first", dup.id, ids[0]);
    }
    let unloaded = ids
        .iter()
        .filter(|&&id| unload(t.fd, id, 0) == Ok(0))
        .count();
    checks.eq(
        "every variant of the full library unloads",
        unloaded,
        ids.len(),
    );

    // The byte limit, with 1 MiB variants.
    let (_, present) = list(t.fd, abi::ADAPT_LIBRARY_MAX_VARIANTS);
    let used: u64 = present
        .iter()
        .map(|i| u64::from(i.code_len) + u64::from(i.rodata_len))
        .sum();
    let mut big = Upload::identity();
    big.code = vec![0xc3; MAX_CODE as usize];
    let room = ((abi::ADAPT_LIBRARY_MAX_BYTES - used) / u64::from(MAX_CODE)) as usize;
    let mut ids = Vec::new();
    let mut last = Ok(0);
    for _ in 0..room {
        let mut req = big.request(t.fresh_hash());
        last = load(t.fd, &mut req);
        if last.is_err() {
            break;
        }
        ids.push(req.id);
    }
    checks.eq(
        "the library takes 1 MiB variants up to its byte limit",
        (ids.len(), last),
        (room, Ok(0)),
    );
    let mut req = big.request(t.fresh_hash());
    t.expect(
        checks,
        "one 1 MiB variant past the byte limit is ENOSPC",
        &mut req,
        Err(libc::ENOSPC),
    );
    let unloaded = ids
        .iter()
        .filter(|&&id| unload(t.fd, id, 0) == Ok(0))
        .count();
    checks.eq("every 1 MiB variant unloads", unloaded, ids.len());
}

/// Two threads loading the same hash at once get one id; loads, lists and
/// unloads racing each other all succeed.
fn concurrency(t: &mut Tester, checks: &mut Checks) {
    let fd = t.fd;
    let mut same_id = true;
    let mut one_new = true;
    for _ in 0..50 {
        let hash = t.fresh_hash();
        let results: Vec<(Outcome, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(move || {
                        let u = Upload::identity();
                        let mut req = u.request(hash);
                        (load(fd, &mut req), req.id)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("loader thread"))
                .collect()
        });
        let news = results.iter().filter(|(o, _)| *o == Ok(0)).count();
        let dups = results
            .iter()
            .filter(|(o, _)| *o == Err(libc::EEXIST))
            .count();
        one_new &= news == 1 && dups == 1;
        same_id &= results[0].1 == results[1].1;
        discard(fd, results[0].1);
    }
    checks.that(
        "racing loads of one hash: one loads, the other gets EEXIST",
        one_new,
        "both loaded or both failed",
    );
    checks.that(
        "racing loads of one hash get the same id",
        same_id,
        "ids differ",
    );

    let before = total(fd);
    let base_hash = t.fresh_hash();
    let failures: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2u8)
            .map(|thread| {
                s.spawn(move || {
                    let u = Upload::identity();
                    let mut failures = 0;
                    for i in 0..300u32 {
                        let mut hash = base_hash;
                        hash[16] = thread;
                        hash[17..21].copy_from_slice(&i.to_le_bytes());
                        let mut req = u.request(hash);
                        failures += usize::from(load(fd, &mut req) != Ok(0));
                        failures += usize::from(list(fd, 8).0 != Ok(0));
                        failures += usize::from(unload(fd, req.id, 0) != Ok(0));
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("storm thread"))
            .sum()
    });
    checks.eq(
        "600 racing load/list/unload rounds all succeed",
        failures,
        0,
    );
    checks.eq("and leave the library as it was", total(fd), before);
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A page holding one value, made read-only.
struct ReadOnlyPage {
    addr: usize,
}

impl ReadOnlyPage {
    fn holding<T: Copy>(value: &T) -> Self {
        assert!(std::mem::size_of::<T>() <= ScratchPages::SIZE);
        // SAFETY: a fresh anonymous mapping touches no existing memory.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ScratchPages::SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED, "mmap read-only page");
        // SAFETY: the page is ours, writable, page-aligned and large enough
        // for `T`; then it is made read-only.
        unsafe {
            std::ptr::write(addr as *mut T, *value);
            assert_eq!(libc::mprotect(addr, ScratchPages::SIZE, libc::PROT_READ), 0);
        }
        Self {
            addr: addr as usize,
        }
    }

    fn addr(&self) -> usize {
        self.addr
    }
}
