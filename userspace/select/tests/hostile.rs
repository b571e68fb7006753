// SPDX-License-Identifier: GPL-2.0
//! The selection fed crafted ELF files: truncated, overlapping sections, a
//! symbol table claiming millions of entries. Malformed files get an error
//! that names the file. (The property tests of the ELF and maps readers
//! themselves are adapt-elf's `tests/hostile.rs`.)

use std::path::Path;

use adapt_select::{OriginalSpec, PreparedOriginal};

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
