//! The guest's initramfs: the host's static busybox and `/init` (init.sh),
//! as an uncompressed newc archive cached by its contents.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cache::{cache_dir, CacheKey};
use crate::cpio::NewcWriter;
use crate::progress::say;

/// The `/init` script.
pub const INIT_SCRIPT: &str = include_str!("init.sh");
/// Where busybox-static installs busybox.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Returns the cached initramfs, writing it first when needed.
pub fn ensure() -> Result<PathBuf> {
    let busybox = std::fs::read(HOST_BUSYBOX).with_context(|| {
        format!("cannot read {HOST_BUSYBOX}: install busybox-static (`cargo vm build` does)")
    })?;
    if has_interpreter(&busybox) {
        bail!(
            "{HOST_BUSYBOX} is dynamically linked and cannot run in the initramfs: install busybox-static \
             (apt-get install busybox-static)"
        );
    }
    let archive = build_archive(&busybox);
    let key = CacheKey::new().part("initramfs", &archive);
    let dir = cache_dir()?.join("initramfs");
    let path = dir.join(format!("{}.cpio", key.short()));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_atomically(&path, &archive)?;
    say(format_args!("initramfs: written ({})", path.display()));
    Ok(path)
}

/// The archive: busybox, /init and the mount points init uses.
pub fn build_archive(busybox: &[u8]) -> Vec<u8> {
    let mut w = NewcWriter::new();
    for dir in ["bin", "dev", "proc", "sys", "host", "run-adapt", "tmp"] {
        w.dir(dir, 0o755);
    }
    // The kernel opens /dev/console for init before anything is mounted.
    w.char_dev("dev/console", 0o600, 5, 1);
    w.file("bin/busybox", 0o755, busybox);
    w.file("init", 0o755, INIT_SCRIPT.as_bytes());
    w.finish()
}

fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

/// Whether an ELF64 file asks for a program interpreter (is dynamically
/// linked). Anything that is not a little-endian ELF64 counts as "no".
pub fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a) as usize
        })
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == Some(PT_INTERP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_and_static_binaries_are_told_apart() {
        // The test binary itself is dynamically linked.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(has_interpreter(&me));
        assert!(!has_interpreter(b"#!/bin/sh\n"));
        if let Ok(busybox) = std::fs::read(HOST_BUSYBOX) {
            let file_says_static = std::process::Command::new("file")
                .arg("-L")
                .arg(HOST_BUSYBOX)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("statically linked"));
            if let Ok(is_static) = file_says_static {
                assert_eq!(has_interpreter(&busybox), !is_static);
            }
        }
    }

    #[test]
    fn archive_is_reproducible() {
        assert_eq!(build_archive(b"bb"), build_archive(b"bb"));
        assert_ne!(build_archive(b"bb"), build_archive(b"bc"));
    }
}
