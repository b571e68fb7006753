// SPDX-License-Identifier: GPL-2.0
//! What a root adaptctl reads from its targets, fed hostile input: ELF
//! files (the selection's reader, the injector's reader through
//! `adapt-target`, the profiler's symbolizer) and `/proc/PID/maps` text.
//! Nothing may panic; malformed files get an error that names the file.
//! Plus crafted ELF files: truncated, overlapping sections, a symbol
//! table claiming millions of entries.
//!
//! A few thousand cases run with `cargo test`. For a long run:
//! `ADAPT_FUZZ_CASES=1000000 cargo test --release -p adapt-select --test hostile`.

use std::path::Path;

use adapt_elf::{ElfFacts, FunctionsByAddress, ProcessMaps, SymbolFilter};
use adapt_select::{OriginalSpec, PreparedOriginal};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("ADAPT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// A small real ELF shared library: the system libz, else this test.
fn seed() -> Vec<u8> {
    for p in [
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libz.so.1",
    ] {
        if let Ok(d) = std::fs::read(p) {
            return d;
        }
    }
    std::fs::read(std::env::current_exe().unwrap()).unwrap()
}

fn seed_cached() -> &'static [u8] {
    static S: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    S.get_or_init(seed)
}

/// Every reader of ELF files, on `data`: no panic.
fn read_all_ways(data: &[u8]) {
    if let Ok(info) = ElfFacts::parse(data, SymbolFilter::All) {
        for f in info.functions.iter().take(64) {
            let _ = info.bytes_in(data, f.vaddr, f.size);
            let _ = info.load_of(f.vaddr);
        }
        let _ = info.functions_named("crc32");
        let _ = FunctionsByAddress::new(info);
    }
}

/// Edits at offsets biased to the headers (ELF, program and section
/// headers sit in the first and last few KiB).
fn edits() -> impl Strategy<Value = Vec<(usize, u8, bool)>> {
    proptest::collection::vec((any::<usize>(), 1u8..=255, any::<bool>()), 1..16)
}

fn apply(data: &mut [u8], edits: &[(usize, u8, bool)]) {
    let n = data.len();
    for &(i, x, head) in edits {
        let at = if head {
            i % 4096.min(n)
        } else {
            n - 1 - i % 4096.min(n)
        };
        data[at] ^= x;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_never_panic_an_elf_reader(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        read_all_ways(&data);
        let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
        elf.extend_from_slice(&data);
        read_all_ways(&elf);
    }

    #[test]
    fn edited_real_elf_files_never_panic(e in edits(), cut in any::<usize>(), truncate in any::<bool>()) {
        let mut data = seed_cached().to_vec();
        apply(&mut data, &e);
        if truncate {
            data.truncate(cut % data.len());
        }
        read_all_ways(&data);
    }

    #[test]
    fn arbitrary_maps_text_never_panics(text in "(([0-9a-f]{1,16}-[0-9a-f]{1,16} [rwxsp-]{0,5} [0-9a-f]{0,9} [0-9a-f:]{0,6} [0-9]{0,12} *[ -~]{0,40})|[ -~]{0,80})(\n[ -~]{0,80}){0,4}") {
        let maps = ProcessMaps::parse(1, &text);
        for m in &maps.mappings {
            let _ = maps.find(m.start);
            let _ = m.short_name();
            let _ = m.is_file();
        }
        let _ = maps.find(u64::MAX);
    }

    #[test]
    fn well_formed_maps_lines_parse_exactly(
        start in 0u64..(1 << 47), len in 1u64..(1 << 30), offset in any::<u32>(),
        inode in any::<u32>(), name in "(/[a-z0-9._]{1,12}){1,4}( \\(deleted\\))?",
    ) {
        let end = start + len;
        let line = format!("{start:x}-{end:x} r-xp {offset:08x} fd:01 {inode}    {name}\n");
        let maps = ProcessMaps::parse(7, &line);
        prop_assert_eq!(maps.mappings.len(), 1);
        let m = &maps.mappings[0];
        prop_assert_eq!((m.start, m.end, m.offset, m.inode), (start, end, u64::from(offset), u64::from(inode)));
        prop_assert_eq!(&m.name, &name);
        prop_assert!(m.executable && !m.writable);
    }
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p.display().to_string()
}

fn prepare(path: &str) -> Result<PreparedOriginal, adapt_select::OriginalError> {
    PreparedOriginal::prepare(&OriginalSpec {
        object: path.to_owned(),
        symbol: "crc32".into(),
        pid: None,
    })
}

fn u16_at(d: &[u8], o: usize) -> usize {
    u16::from_le_bytes([d[o], d[o + 1]]) as usize
}
fn u64_at(d: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(d[o..o + 8].try_into().unwrap())
}
fn put_u64(d: &mut [u8], o: usize, v: u64) {
    d[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn malformed_elf_targets_get_a_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = seed();

    // Truncated: in the headers, and in the middle.
    for cut in [0, 10, 63, 64, 200, good.len() / 2] {
        let p = write(dir.path(), &format!("trunc{cut}"), &good[..cut]);
        let e = prepare(&p).unwrap_err().to_string();
        assert!(e.contains(&p), "{e}");
    }

    // Every section made to overlap the first one.
    let mut overlap = good.clone();
    let shoff = u64_at(&overlap, 0x28) as usize;
    let shentsize = u16_at(&overlap, 0x3a);
    let shnum = u16_at(&overlap, 0x3c);
    if shoff > 0 && shoff + shentsize * shnum <= overlap.len() {
        let first = shoff + shentsize;
        let (off, size) = (
            u64_at(&overlap, first + 0x18),
            u64_at(&overlap, first + 0x20),
        );
        for i in 2..shnum {
            let s = shoff + i * shentsize;
            put_u64(&mut overlap, s + 0x18, off);
            put_u64(&mut overlap, s + 0x20, size);
        }
        let p = write(dir.path(), "overlap", &overlap);
        // Either refused with the file's name, or parsed without a panic.
        if let Err(e) = prepare(&p) {
            assert!(e.to_string().contains(&p), "{e}");
        }
    }

    // A symbol table claiming a huge count (sh_size of every SHT_SYMTAB
    // and SHT_DYNSYM section set to 2^40).
    let mut huge = good.clone();
    if shoff > 0 && shoff + shentsize * shnum <= huge.len() {
        for i in 0..shnum {
            let s = shoff + i * shentsize;
            let ty = u32::from_le_bytes(huge[s + 4..s + 8].try_into().unwrap());
            if ty == 2 || ty == 11 {
                put_u64(&mut huge, s + 0x20, 1 << 40);
            }
        }
        let p = write(dir.path(), "huge", &huge);
        let e = prepare(&p).unwrap_err().to_string();
        assert!(e.contains(&p), "{e}");
    }

    // Not ELF at all, and a directory.
    let p = write(dir.path(), "text", b"#!/bin/sh\necho hi\n");
    assert!(prepare(&p).unwrap_err().to_string().contains(&p));
    let d = dir.path().display().to_string();
    assert!(prepare(&d)
        .unwrap_err()
        .to_string()
        .contains("not a regular file"));
}
