// SPDX-License-Identifier: GPL-2.0
//! Shared by the test binaries: the library built once per binary, guarded
//! buffers, and variant iteration with visible skips.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use adapt_library_build::builder::{
    build_library, default_sources_dir, library_for_tests, BuildOptions,
};
use adapt_segment::{CpuFeatures, InProcessVariant, Segment};

/// Builds the whole library into `dir`.
pub fn build_into(dir: &Path) -> Vec<PathBuf> {
    let opts = BuildOptions {
        out_dir: dir.to_path_buf(),
        sources_dir: default_sources_dir(),
        work_dir: dir.join(".objects"),
        only: Vec::new(),
    };
    build_library(&opts)
        .expect("library builds")
        .into_iter()
        .map(|b| b.path)
        .collect()
}

/// The library, built once per test binary under the target directory.
pub fn library_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let bin = std::env::current_exe().expect("current exe");
        let stem = bin
            .file_stem()
            .expect("exe name")
            .to_string_lossy()
            .into_owned();
        library_for_tests(&stem)
    })
}

/// Loads segment `name` from the test library.
pub fn segment(name: &str) -> Segment {
    let p = library_dir().join(format!("{name}.seg"));
    Segment::read_file(&p).unwrap_or_else(|e| panic!("{e}"))
}

/// Counts of variants run and skipped.
#[derive(Default, Debug)]
pub struct Tally {
    pub ran: Vec<String>,
    pub skipped: Vec<String>,
}

/// Loads every variant this CPU can run; the others are reported on stderr
/// and counted as skipped.
pub fn loaded_variants(seg: &Segment, tally: &mut Tally) -> Vec<InProcessVariant> {
    let cpu = CpuFeatures::detect();
    let mut out = Vec::new();
    for (i, v) in seg.variants.iter().enumerate() {
        if !cpu.is_superset(&v.features) {
            eprintln!(
                "SKIPPED: segment {} variant {}: this CPU lacks {}",
                seg.name,
                v.name,
                cpu.missing(&v.features)
            );
            tally.skipped.push(format!("{}/{}", seg.name, v.name));
            continue;
        }
        out.push(
            InProcessVariant::load(seg, i)
                .unwrap_or_else(|e| panic!("loading {}/{}: {e}", seg.name, v.name)),
        );
        tally.ran.push(format!("{}/{}", seg.name, v.name));
    }
    eprintln!(
        "segment {}: {} variant(s) ran, {} skipped: {:?}",
        seg.name,
        tally.ran.len(),
        tally.skipped.len(),
        tally.skipped
    );
    out
}

/// An anonymous mapping whose last page is inaccessible, so a buffer placed
/// to end at `guard()` faults on any read past its end.
pub struct Guarded {
    base: *mut u8,
    len: usize,
    usable: usize,
}

impl Guarded {
    /// `usable` bytes (rounded up to pages) followed by a PROT_NONE page.
    pub fn new(usable: usize) -> Guarded {
        let usable = usable.div_ceil(4096) * 4096;
        let len = usable + 4096;
        // SAFETY: fresh anonymous mapping.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        // SAFETY: the last page of our own mapping.
        let r =
            unsafe { libc::mprotect(base.cast::<u8>().add(usable).cast(), 4096, libc::PROT_NONE) };
        assert_eq!(r, 0);
        Guarded {
            base: base.cast(),
            len,
            usable,
        }
    }

    /// The accessible bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the first `usable` bytes are mapped read+write and owned.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.usable) }
    }

    /// Accessible length.
    pub fn usable(&self) -> usize {
        self.usable
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// One test input: a range of the guarded buffer.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub start: usize,
    pub len: usize,
}

/// At least `count` byte ranges over a buffer of `usable` bytes: every length
/// 0..=64 at 16 alignments, ranges ending exactly at the guard page (so any
/// over-read faults) and crossing page boundaries, random lengths up to
/// 64 KiB at random offsets, and a few above 1 MiB. `usable` must exceed
/// 2 MiB + 4 KiB.
pub fn byte_cases(rng: &mut impl rand::Rng, usable: usize, count: usize) -> Vec<Case> {
    assert!(usable > (2 << 20) + 4096);
    let mut v = Vec::new();
    for len in 0..=64 {
        for off in 0..16 {
            v.push(Case {
                start: 4096 + off,
                len,
            });
        }
        // Ending at the guard page.
        v.push(Case {
            start: usable - len,
            len,
        });
    }
    for _ in 0..200 {
        // Crossing a page boundary inside the buffer.
        let len = rng.gen_range(1..8192);
        let page = rng.gen_range(2..(usable / 4096 - 3)) * 4096;
        let start = page - rng.gen_range(1..len.min(4095) + 1);
        v.push(Case { start, len });
        // Ending at the guard page.
        v.push(Case {
            start: usable - len,
            len,
        });
    }
    for len in [(1 << 20) + 1, (1 << 20) + 255, (2 << 20) - 3, 2 << 20] {
        v.push(Case {
            start: usable - len,
            len,
        });
        v.push(Case { start: 7, len });
    }
    while v.len() < count {
        let len = match rng.gen_range(0..10) {
            0..=4 => rng.gen_range(0..512),
            5..=8 => rng.gen_range(512..8192),
            _ => rng.gen_range(8192..65536),
        };
        let start = rng.gen_range(0..usable - len);
        v.push(Case { start, len });
    }
    v
}
