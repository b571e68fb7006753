// SPDX-License-Identifier: GPL-2.0
//! Segment files: round trip, content hash, and rejection of truncated,
//! oversized, garbage, tampered and structurally wrong files.

use adapt_segment::{
    limits, CType, Contract, CpuFeature, CpuFeatures, FormatError, Function, Library, Numerics,
    Param, Relocation, Scalar, Segment, SegmentFile, Variant, FORMAT_VERSION,
    FORMAT_VERSION_IMPORTS, MAGIC,
};

fn variant(name: &str, features: &[CpuFeature]) -> Variant {
    Variant {
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
    }
}

fn sample() -> Segment {
    Segment {
        name: "sample".into(),
        version: 3,
        description: "returns 0x12345678".into(),
        build: "by hand".into(),
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
            variant("sse4.1", &[CpuFeature::Sse41]),
            variant("portable", &[]),
        ],
    }
}

fn encode_file(f: &SegmentFile) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(f, &mut out).expect("encodes");
    out
}

fn file_of(seg: &Segment) -> SegmentFile {
    SegmentFile {
        magic: MAGIC.into(),
        format_version: FORMAT_VERSION,
        content_hash: seg.content_hash().to_vec(),
        segment: seg.clone(),
        imports: vec![],
    }
}

#[test]
fn round_trip_is_exact() {
    let s = sample();
    let bytes = s.to_bytes();
    let back = Segment::from_bytes(&bytes).expect("decodes");
    assert_eq!(back, s);
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.content_hash(), s.content_hash());
}

#[test]
fn content_hash_covers_every_field() {
    let s = sample();
    let mut t = s.clone();
    t.variants[1].code[6] = 0xc2;
    assert_ne!(s.content_hash(), t.content_hash());
    let mut u = s.clone();
    u.functions[0].contract.params[0].name = "other".into();
    assert_ne!(s.content_hash(), u.content_hash());
    assert_eq!(s.content_hash_hex().len(), 64);
}

#[test]
fn truncated_files_are_refused() {
    let bytes = sample().to_bytes();
    for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
        match Segment::from_bytes(&bytes[..cut]) {
            Err(FormatError::Decode(_)) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn oversized_files_are_refused_before_decoding() {
    let big = vec![0u8; limits::MAX_FILE_SIZE as usize + 1];
    assert!(matches!(
        Segment::from_bytes(&big),
        Err(FormatError::TooLarge { .. })
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("big.seg");
    std::fs::File::create(&p)
        .and_then(|f| f.set_len(limits::MAX_FILE_SIZE + 1))
        .expect("sparse file");
    let e = Segment::read_file(&p).expect_err("refused");
    assert!(
        matches!(e.format_error(), Some(FormatError::TooLarge { .. })),
        "{e}"
    );
    assert!(
        e.to_string().contains("big.seg"),
        "error names the file: {e}"
    );
}

#[test]
fn garbage_is_refused() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [1usize, 7, 64, 4096] {
        let g: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(
            matches!(Segment::from_bytes(&g), Err(FormatError::Decode(_))),
            "len {len}"
        );
    }
    // Valid CBOR of the wrong shape.
    let mut other = Vec::new();
    ciborium::into_writer(&vec![1u32, 2, 3], &mut other).expect("encodes");
    assert!(matches!(
        Segment::from_bytes(&other),
        Err(FormatError::Decode(_))
    ));
}

#[test]
fn hostile_lengths_do_not_allocate_or_crash() {
    // A map claiming 2^63 entries, an array claiming 2^60, a byte string
    // claiming 2^62 bytes.
    for bytes in [
        vec![0xbb, 0x80, 0, 0, 0, 0, 0, 0, 0],
        vec![0x9b, 0x10, 0, 0, 0, 0, 0, 0, 0],
        vec![0x5b, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3],
    ] {
        assert!(matches!(
            Segment::from_bytes(&bytes),
            Err(FormatError::Decode(_))
        ));
    }
}

#[test]
fn wrong_magic_and_version_are_refused() {
    let s = sample();
    let mut f = file_of(&s);
    f.format_version = FORMAT_VERSION_IMPORTS + 1;
    let err = Segment::from_bytes(&encode_file(&f)).unwrap_err();
    assert_eq!(
        err,
        FormatError::UnsupportedVersion {
            found: FORMAT_VERSION_IMPORTS + 1
        }
    );
    assert!(err.to_string().contains("versions 1 and 2"), "{err}");
    // Version 2 is the version of segments with imports: a file without
    // any is refused (it would have two encodings).
    let mut f = file_of(&s);
    f.format_version = FORMAT_VERSION_IMPORTS;
    let err = Segment::from_bytes(&encode_file(&f)).unwrap_err();
    assert!(
        matches!(&err, FormatError::Invalid { why, .. } if why.contains("without imports")),
        "{err}"
    );
    let mut f = file_of(&s);
    f.magic = "adapt-segmenT".into();
    assert!(matches!(
        Segment::from_bytes(&encode_file(&f)),
        Err(FormatError::BadMagic { .. })
    ));
}

#[test]
fn tampered_content_fails_the_hash() {
    let s = sample();
    let mut bytes = s.to_bytes();
    // The rodata value 0x12345678 appears once; change one byte of it.
    let at = bytes
        .windows(4)
        .position(|w| w == [0x78, 0x56, 0x34, 0x12])
        .expect("rodata in file");
    bytes[at] ^= 1;
    assert!(matches!(
        Segment::from_bytes(&bytes),
        Err(FormatError::HashMismatch { .. })
    ));
}

#[test]
fn non_canonical_encodings_are_refused() {
    let mut bytes = sample().to_bytes();
    bytes.push(0);
    assert_eq!(Segment::from_bytes(&bytes), Err(FormatError::NonCanonical));
}

#[test]
fn structural_errors_name_what_is_wrong() {
    let check = |f: &dyn Fn(&mut Segment), needle: &str| {
        let mut s = sample();
        f(&mut s);
        let e = Segment::from_bytes(&encode_file(&file_of(&s))).expect_err("refused");
        assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
    };
    check(&|s| s.variants[0].entry_offsets = vec![7], "entry 0");
    check(
        &|s| s.variants[0].entry_offsets = vec![0, 0],
        "entry_offsets",
    );
    check(&|s| s.variants[1].relocations[0].offset = 4, "relocation 0");
    check(
        &|s| s.variants[1].relocations[0].rodata_offset = 5,
        "rodata offset",
    );
    check(
        &|s| {
            s.variants[0].relocations.push(Relocation {
                offset: 1,
                rodata_offset: 0,
                addend: 0,
            })
        },
        "relocation 1",
    );
    check(&|s| s.variants[0].rodata_align = 3, "rodata_align");
    check(&|s| s.variants[0].code.clear(), "code");
    check(
        &|s| s.variants[0].code = vec![0xc3; limits::MAX_CODE + 1],
        "code size",
    );
    check(&|s| s.variants[2].name = "avx2".into(), "appears twice");
    check(
        &|s| s.variants[0].features = [CpuFeature::Avx2].iter().collect(),
        "does not list what it implies",
    );
    check(
        &|s| s.functions[0].symbol = "not a symbol".into(),
        "C identifier",
    );
    check(&|s| s.name = "Bad/Name".into(), "segment name");
    check(&|s| s.functions.clear(), "functions");
    check(&|s| s.variants.clear(), "variants");
}

#[test]
fn best_variant_is_the_first_supported() {
    let s = sample();
    let all: CpuFeatures = [CpuFeature::Avx2].iter().collect::<CpuFeatures>().closure();
    assert_eq!(
        s.best_variant(&all).map(|(_, v)| v.name.as_str()),
        Some("avx2")
    );
    let sse: CpuFeatures = [CpuFeature::Sse42]
        .iter()
        .collect::<CpuFeatures>()
        .closure();
    assert_eq!(
        s.best_variant(&sse).map(|(_, v)| v.name.as_str()),
        Some("sse4.1")
    );
    assert_eq!(
        s.best_variant(&CpuFeatures::empty())
            .map(|(_, v)| v.name.as_str()),
        Some("portable")
    );
    let names: Vec<&str> = s
        .supported_variants(&sse)
        .map(|(_, v)| v.name.as_str())
        .collect();
    assert_eq!(names, ["sse4.1", "portable"]);
}

#[test]
fn describe_serializes_for_json_and_display() {
    let s = sample();
    let sse: CpuFeatures = [CpuFeature::Sse42]
        .iter()
        .collect::<CpuFeatures>()
        .closure();
    let d = s.describe(&sse);
    assert_eq!(d.best_variant.as_deref(), Some("sse4.1"));
    assert!(!d.variants[0].supported);
    assert!(d.variants[0].missing.contains(&"avx2".to_owned()));
    let json = serde_json::to_value(&d).expect("json");
    assert_eq!(
        json["functions"][0]["declaration"],
        "uint32_t get(size_t unused)"
    );
    assert_eq!(json["content_hash"], s.content_hash_hex());
    let text = d.to_string();
    assert!(
        text.contains("segment sample") && text.contains("(missing avx,avx2)"),
        "{text}"
    );
}

#[test]
fn library_lists_finds_and_reports_bad_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = Library::open(dir.path()).expect("opens");
    let s = sample();
    s.write_file(&lib.path_for("sample")).expect("writes");
    std::fs::write(lib.path_for("broken"), b"not cbor").expect("writes");
    std::fs::write(dir.path().join("notes.txt"), b"ignored").expect("writes");
    let paths = lib.segment_paths().expect("lists");
    assert_eq!(paths.len(), 2);
    let all = lib.load_all().expect("lists");
    assert!(all
        .iter()
        .any(|(p, r)| p.ends_with("broken.seg") && r.is_err()));
    assert!(all
        .iter()
        .any(|(p, r)| p.ends_with("sample.seg") && r.as_ref().is_ok_and(|x| *x == s)));
    assert_eq!(lib.find("sample").expect("found").1, s);
    assert!(lib.find("absent").is_err());
    assert!(Library::open(dir.path().join("notes.txt")).is_err());
}

/// A segment replacing a function of doubles (what a relaxed BLAS segment
/// replaces), marked as `numerics`.
fn float_sample(numerics: Numerics) -> Segment {
    let mut s = sample();
    s.numerics = numerics;
    s.functions[0].contract.params[0].ty = CType::const_ptr(Scalar::F64, "const double *");
    s
}

#[test]
fn exact_segments_are_encoded_as_before_the_numerics_field() {
    // The segment map holds exactly the fields it had before `numerics`
    // existed: every exact file keeps its bytes and content hash.
    let s = float_sample(Numerics::Exact);
    let value: ciborium::Value = ciborium::from_reader(&s.canonical_bytes()[..]).expect("cbor");
    let keys: Vec<String> = value
        .as_map()
        .expect("a map")
        .iter()
        .map(|(k, _)| k.as_text().expect("text key").to_owned())
        .collect();
    assert_eq!(
        keys,
        [
            "name",
            "version",
            "description",
            "build",
            "functions",
            "variants"
        ]
    );
    assert!(!s.to_bytes().windows(8).any(|w| w == b"numerics"));
    assert_eq!(
        Segment::from_bytes(&s.to_bytes()).unwrap().numerics,
        Numerics::Exact
    );
}

#[test]
fn float_reassociate_round_trips_and_changes_the_hash() {
    let exact = float_sample(Numerics::Exact);
    let relaxed = float_sample(Numerics::FloatReassociate);
    let bytes = relaxed.to_bytes();
    assert!(bytes.windows(17).any(|w| w == b"float-reassociate"));
    let back = Segment::from_bytes(&bytes).expect("decodes");
    assert_eq!(back.numerics, Numerics::FloatReassociate);
    assert_eq!(back, relaxed);
    assert_ne!(exact.content_hash(), relaxed.content_hash());
    assert_eq!(Numerics::FloatReassociate.to_string(), "float-reassociate");
}

#[test]
fn unknown_numerics_are_refused() {
    let s = float_sample(Numerics::FloatReassociate);
    let bytes = s.to_bytes();
    // Same length, so every CBOR length stays right: only the value is
    // unknown.
    let at = bytes
        .windows(17)
        .position(|w| w == b"float-reassociate")
        .expect("the value is in the file");
    let mut bad = bytes.clone();
    bad[at..at + 17].copy_from_slice(b"float-whatsoever!");
    match Segment::from_bytes(&bad) {
        Err(FormatError::Decode(msg)) => assert!(msg.contains("float-whatsoever!"), "{msg}"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn float_reassociate_needs_a_floating_point_function() {
    let mut s = sample();
    s.numerics = Numerics::FloatReassociate;
    let err = s.validate().unwrap_err();
    assert!(
        err.to_string().contains("numerics") && err.to_string().contains("floating-point"),
        "{err}"
    );
    assert!(float_sample(Numerics::FloatReassociate).validate().is_ok());
}

#[test]
fn describe_shows_the_numerics() {
    let cpu = CpuFeatures::default();
    let exact = sample().describe(&cpu);
    assert_eq!(exact.numerics, "exact");
    assert!(exact.to_string().contains("numerics exact"), "{exact}");
    let relaxed = float_sample(Numerics::FloatReassociate).describe(&cpu);
    let json = serde_json::to_value(&relaxed).expect("json");
    assert_eq!(json["numerics"], "float-reassociate");
    let text = relaxed.to_string();
    assert!(
        text.contains("numerics float-reassociate (NOT bit-identical")
            && text.contains("allow_float_reassociate"),
        "{text}"
    );
}
