// SPDX-License-Identifier: GPL-2.0
//! The test-only library: its deliberately slow crc32 must still be exactly
//! zlib's crc32, since `adaptctl auto` tests inject it into real programs.

use adapt_library_build::builder::{build_testing_library, default_sources_dir, BuildOptions};
use adapt_library_build::reference::SystemZlib;
use adapt_segment::{verify_segment, InProcessVariant, Segment, SegmentFile, FALLBACK};

type ZFn = unsafe extern "C" fn(u64, *const u8, u32) -> u64;
type ZFnZ = unsafe extern "C" fn(u64, *const u8, usize) -> u64;

#[test]
fn the_slow_crc32_is_verified_and_exact() {
    let dir = tempfile::tempdir().unwrap();
    let built = build_testing_library(&BuildOptions {
        out_dir: dir.path().to_path_buf(),
        sources_dir: default_sources_dir(),
        work_dir: dir.path().join(".objects"),
        only: Vec::new(),
    })
    .unwrap();
    let slow = built
        .iter()
        .find(|b| b.segment.name == "crc32-slow")
        .unwrap();
    let segment = Segment::read_file(&slow.path).unwrap();
    assert_eq!(segment.name, "crc32-slow");
    // The segments calling the original through `fallback` are files of
    // format version 2, verified with their imports.
    for (name, imports) in [
        ("crc32-fallback", 1),
        ("crc32-unresolved", 2),
        ("blocking-fallback", 1),
    ] {
        let b = built.iter().find(|b| b.segment.name == name).unwrap();
        let file = SegmentFile::read_file(&b.path).unwrap();
        assert_eq!(file.imports.len(), imports, "{name}");
        assert_eq!(file.imports[0].name, FALLBACK, "{name}");
        file.verify().unwrap();
        assert!(
            Segment::read_file(&b.path).is_err(),
            "{name}: imports are never read by mistake"
        );
    }
    verify_segment(&segment).unwrap();

    let zlib = SystemZlib::open().unwrap();
    let loaded = InProcessVariant::load(&segment, 0).unwrap();
    // SAFETY: the catalog gives these entries zlib's prototypes.
    let (f, fz): (ZFn, ZFnZ) = unsafe {
        (
            loaded.function("crc32").unwrap(),
            loaded.function("crc32_z").unwrap(),
        )
    };
    let data: Vec<u8> = (0..70_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (start, len) in [(0, 0), (0, 1), (3, 17), (1, 4096), (7, 65_536), (0, 70_000)] {
        let p = data[start..].as_ptr();
        for init in [0u64, 1, 0xffff_ffff, 0x1234_5678_9abc_def0] {
            // SAFETY: `p..p+len` lies inside `data`.
            unsafe {
                assert_eq!(
                    f(init, p, len as u32),
                    (zlib.crc32)(init, p, len as u32),
                    "{start}+{len}"
                );
                assert_eq!(
                    fz(init, p, len),
                    (zlib.crc32_z)(init, p, len),
                    "{start}+{len}"
                );
            }
        }
    }
    // SAFETY: zlib's contract: a null buffer gives 0.
    assert_eq!(unsafe { f(5, std::ptr::null(), 3) }, 0);
}
