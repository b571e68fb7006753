// SPDX-License-Identifier: GPL-2.0
//! Counted variants pass the verifier, keep the variant's behaviour and
//! count every call, also when counting moves the import table.

use super::*;
use crate::generate::tests::{counters, entry, load};
use adapt_segment::{CType, Contract, CpuFeatures, Function, Param, Scalar};

fn contract() -> Contract {
    Contract {
        returns: CType::value(Scalar::U64, "uint64_t"),
        params: vec![Param {
            name: "x".into(),
            ty: CType::value(Scalar::U64, "uint64_t"),
        }],
    }
}

fn file(code: Vec<u8>, imports: Vec<Import>, entries: Vec<u32>) -> SegmentFile {
    let functions = entries
        .iter()
        .enumerate()
        .map(|(i, _)| Function {
            symbol: format!("f{i}"),
            library: String::new(),
            contract: contract(),
            reference: "test".into(),
        })
        .collect();
    SegmentFile::new(
        Segment {
            name: "t".into(),
            version: 1,
            description: "test".into(),
            build: "test".into(),
            numerics: Default::default(),
            functions,
            variants: vec![Variant {
                name: "v".into(),
                features: CpuFeatures::default(),
                code,
                rodata: Vec::new(),
                rodata_align: 1,
                relocations: Vec::new(),
                entry_offsets: entries,
            }],
        },
        imports,
    )
}

/// Two leaf functions: f0 = x + 1 at 0, f1 = x * 2 at 8.
fn leaf() -> SegmentFile {
    let mut code = vec![0x48, 0x8d, 0x47, 0x01, 0xc3]; // lea rax,[rdi+1]; ret
    code.resize(8, 0x90);
    code.extend([0x48, 0x8d, 0x04, 0x3f, 0xc3]); // lea rax,[rdi+rdi]; ret
    file(code, Vec::new(), vec![0, 8])
}

#[test]
fn a_counted_leaf_variant_is_verified_and_counts() {
    for function in [0, 1] {
        let counted = counted_variant(&leaf(), 0, function).unwrap();
        adapt_segment::verify_with_data(
            &counted.file.segment,
            &counted.file.imports,
            counted.data_len,
        )
        .unwrap();
        let v = &counted.file.segment.variants[0];
        assert_eq!(v.name, "v.counted");
        assert_eq!(counted.file.imports.len(), 1);
        assert_eq!(
            counted.file.segment.functions[0].symbol,
            format!("f{function}")
        );
        // The fallback slot is never used by a counted leaf variant.
        let loaded = load(&counted, 0xdead);
        let f: extern "C" fn(u64) -> u64 = entry(&loaded, &format!("f{function}"));
        for x in 0..100u64 {
            let want = if function == 0 { x + 1 } else { x * 2 };
            assert_eq!(f(x), want);
        }
        assert_eq!(counters(&loaded).calls, 100);
    }
}

#[test]
fn import_slot_operands_follow_a_moved_table() {
    // A variant whose code ends just before a page boundary of its layout:
    // the counter pushes the import table one page further, so the tail
    // jump through slot 0 must be retargeted.
    let len = 4096 - 64; // the trampoline space just fits the first page
    let mut code = vec![0x90u8; len - 6];
    let slot = adapt_segment::import_table::slot_offset(len, 0) as i64;
    let next = len as i64;
    code.extend([0xff, 0x25]);
    code.extend(((slot - next) as i32).to_le_bytes());
    let imports = vec![Import {
        name: FALLBACK.into(),
        library: String::new(),
        contract: contract(),
    }];
    let f = file(code, imports, vec![0]);
    adapt_segment::verify_with_imports(&f.segment, &f.imports).unwrap();
    let counted = counted_variant(&f, 0, 0).unwrap();
    let v = &counted.file.segment.variants[0];
    assert_ne!(
        import_table_offset(v.code.len()),
        import_table_offset(len),
        "the test must move the table"
    );
    adapt_segment::verify_with_data(
        &counted.file.segment,
        &counted.file.imports,
        counted.data_len,
    )
    .unwrap();
    // Runs: the nops, then the tail jump through slot 0 to `plus_one`.
    extern "C" fn plus_one(x: u64) -> u64 {
        x + 1
    }
    let loaded = load(&counted, plus_one as *const () as usize);
    let g: extern "C" fn(u64) -> u64 = entry(&loaded, "f0");
    assert_eq!(g(41), 42);
    assert_eq!(g(1), 2);
    assert_eq!(counters(&loaded).calls, 2);
}
