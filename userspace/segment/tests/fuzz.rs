// SPDX-License-Identifier: GPL-2.0
//! The segment-file parser on hostile input: arbitrary bytes, and valid
//! files truncated, extended or with bytes flipped, never panic; whatever
//! `from_bytes` accepts re-encodes to the same bytes, validates, and goes
//! through the verifier without a panic.
//!
//! A few thousand cases run with `cargo test`. For a long run:
//! `ADAPT_FUZZ_CASES=1000000 cargo test --release -p adapt-segment --test fuzz`
//! (about a million cases per property; failures are saved by proptest
//! under `userspace/segment/proptest-regressions/` and replayed first).

use adapt_segment::{
    verify_segment, CType, Contract, CpuFeature, CpuFeatures, Function, Param, Relocation, Scalar,
    Segment, Variant,
};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("ADAPT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn sample() -> Segment {
    let variant = |name: &str, features: &[CpuFeature]| Variant {
        name: name.into(),
        features: features.iter().collect::<CpuFeatures>().closure(),
        // mov eax, [rip+rodata] ; ret
        code: vec![0x8b, 0x05, 0, 0, 0, 0, 0xc3],
        rodata: vec![0x78, 0x56, 0x34, 0x12],
        rodata_align: 4,
        relocations: vec![Relocation {
            offset: 2,
            rodata_offset: 0,
            addend: -4,
        }],
        entry_offsets: vec![0],
    };
    Segment {
        name: "sample".into(),
        version: 1,
        description: "returns 0x12345678".into(),
        build: "fuzz".into(),
        numerics: Default::default(),
        functions: vec![Function {
            symbol: "get".into(),
            library: "libsample.so.1".into(),
            contract: Contract {
                returns: CType::value(Scalar::U32, "uint32_t"),
                params: vec![Param {
                    name: "unused".into(),
                    ty: CType::value(Scalar::U64, "size_t"),
                }],
            },
            reference: "returns 0x12345678".into(),
        }],
        variants: vec![
            variant("avx2", &[CpuFeature::Avx2]),
            variant("portable", &[]),
        ],
    }
}

/// What may be asserted of anything the parser accepted.
fn accepted_is_sound(bytes: &[u8]) {
    if let Ok(seg) = Segment::from_bytes(bytes) {
        assert_eq!(seg.to_bytes(), bytes, "accepted a non-canonical file");
        assert!(seg.validate().is_ok());
        // Verification refuses or accepts; it never panics.
        let _ = verify_segment(&seg);
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Edit::Flip(i, x)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Remove),
    ]
}

fn apply(bytes: &mut Vec<u8>, e: &Edit) {
    let n = bytes.len().max(1);
    match *e {
        Edit::Flip(i, x) => {
            if let Some(b) = bytes.get_mut(i % n) {
                *b ^= x;
            }
        }
        Edit::Truncate(i) => bytes.truncate(i % n),
        Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
        Edit::Remove(i) => {
            if !bytes.is_empty() {
                bytes.remove(i % bytes.len());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        accepted_is_sound(&bytes);
    }

    #[test]
    fn edited_valid_files_never_panic(edits in proptest::collection::vec(edit(), 1..8)) {
        let mut bytes = sample().to_bytes();
        for e in &edits {
            apply(&mut bytes, e);
        }
        accepted_is_sound(&bytes);
    }

    #[test]
    fn a_segment_with_edited_code_is_refused_or_verified_without_panic(
        code in proptest::collection::vec(any::<u8>(), 1..64),
        reloc in 0u32..80,
    ) {
        let mut seg = sample();
        for v in &mut seg.variants {
            v.code = code.clone();
            v.relocations[0].offset = reloc;
        }
        let bytes = seg.to_bytes();
        accepted_is_sound(&bytes);
    }
}
