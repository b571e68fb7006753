// SPDX-License-Identifier: GPL-2.0
//! The same sources give byte-identical segment files.

mod common;

use adapt_library_build::catalog::catalog;

#[test]
fn two_builds_are_byte_identical() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let pa = common::build_into(a.path());
    let pb = common::build_into(b.path());
    assert_eq!(pa.len(), catalog().len(), "one file per segment");
    assert_eq!(pa.len(), pb.len());
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(x.file_name(), y.file_name());
        let (bx, by) = (
            std::fs::read(x).expect("read"),
            std::fs::read(y).expect("read"),
        );
        assert!(bx == by, "{} differs between builds", x.display());
        // No build path leaks into the files.
        for dir in [
            a.path(),
            b.path(),
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        ] {
            let needle = dir.to_string_lossy();
            assert!(
                !bx.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} leaks {needle}",
                x.display()
            );
        }
    }
}
