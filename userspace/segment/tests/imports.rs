// SPDX-License-Identifier: GPL-2.0
//! Segment files with imports (format version 2): round trip, content hash,
//! version rules, what leaf-only readers say, and the import checks.

use adapt_segment::{
    import_table, CType, Contract, CpuFeatures, FormatError, Function, Import, Param, Scalar,
    Segment, SegmentFile, Variant, FALLBACK, FORMAT_VERSION, FORMAT_VERSION_IMPORTS, MAGIC,
};

fn contract() -> Contract {
    Contract {
        returns: CType::value(Scalar::U64, "uLong"),
        params: vec![Param {
            name: "n".into(),
            ty: CType::value(Scalar::U64, "size_t"),
        }],
    }
}

fn segment() -> Segment {
    Segment {
        name: "tramp".into(),
        version: 1,
        description: "calls the original".into(),
        build: "by hand".into(),
        numerics: Default::default(),
        functions: vec![Function {
            symbol: "f".into(),
            library: "libf.so.1".into(),
            contract: contract(),
            reference: "f itself".into(),
        }],
        variants: vec![Variant {
            name: "portable".into(),
            features: CpuFeatures::default(),
            // jmp qword ptr [rip + (0x1000 - 6)]: slot 0.
            code: vec![0xff, 0x25, 0xfa, 0x0f, 0, 0],
            rodata: vec![],
            rodata_align: 1,
            relocations: vec![],
            entry_offsets: vec![0],
        }],
    }
}

fn fallback() -> Import {
    Import {
        name: FALLBACK.into(),
        library: String::new(),
        contract: contract(),
    }
}

fn free() -> Import {
    Import {
        name: "free".into(),
        library: "libc.so.6".into(),
        contract: Contract {
            returns: CType::value(Scalar::Void, "void"),
            params: vec![Param {
                name: "p".into(),
                ty: CType::mut_ptr(Scalar::Void, "void *"),
            }],
        },
    }
}

fn encode(f: &SegmentFile) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(f, &mut out).expect("encodes");
    out
}

#[test]
fn the_slot_rule() {
    // Code of 6 bytes: trampoline at 16, table at the next page.
    assert_eq!(import_table::trampoline_offset(6), 16);
    assert_eq!(import_table::trampoline_offset(16), 16);
    assert_eq!(import_table::import_table_offset(6), 4096);
    assert_eq!(import_table::slot_offset(6, 3), 4096 + 24);
    // The trampoline space never shares the table's page.
    assert_eq!(import_table::import_table_offset(4096 - 64), 4096);
    assert_eq!(import_table::import_table_offset(4096 - 63), 8192);
    let l = import_table::ImportLayout::of(6, 100, 2);
    assert_eq!(
        (l.exec_pages, l.import_table_offset, l.import_table_pages),
        (4096, 4096, 4096)
    );
    assert_eq!((l.rodata_offset, l.total()), (8192, 12288));
}

#[test]
fn a_file_with_imports_round_trips_as_version_2() {
    let file = SegmentFile::new(segment(), vec![fallback(), free()]);
    assert_eq!(file.format_version, FORMAT_VERSION_IMPORTS);
    let bytes = file.to_bytes();
    let back = SegmentFile::from_bytes(&bytes).unwrap();
    assert_eq!(back, file);
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(file.verify().unwrap().len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tramp.seg");
    file.write_file(&path).unwrap();
    assert_eq!(SegmentFile::read_file(&path).unwrap(), file);
}

#[test]
fn leaf_segments_keep_version_1_their_bytes_and_their_hash() {
    let seg = segment();
    let file = SegmentFile::new(seg.clone(), vec![]);
    assert_eq!(file.format_version, FORMAT_VERSION);
    assert_eq!(file.to_bytes(), seg.to_bytes());
    assert_eq!(file.content_hash(), seg.content_hash());
    // A version-1 file has no `imports` key at all.
    let value: ciborium::Value = ciborium::from_reader(&seg.to_bytes()[..]).unwrap();
    let keys: Vec<String> = value
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_text().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["magic", "format_version", "content_hash", "segment"]);
    assert_eq!(SegmentFile::from_bytes(&seg.to_bytes()).unwrap(), file);
}

#[test]
fn the_hash_covers_the_imports() {
    let a = SegmentFile::new(segment(), vec![fallback()]);
    let b = SegmentFile::new(segment(), vec![fallback(), free()]);
    assert_ne!(a.content_hash(), b.content_hash());
    assert_ne!(a.content_hash(), segment().content_hash());
    // Tampering with an import is caught.
    let mut t = b.clone();
    t.imports[1].library = "libevil.so".into();
    assert!(matches!(
        SegmentFile::from_bytes(&encode(&t)),
        Err(FormatError::HashMismatch { .. })
    ));
}

#[test]
fn leaf_readers_refuse_segments_with_imports_by_name() {
    let bytes = SegmentFile::new(segment(), vec![fallback(), free()]).to_bytes();
    let err = Segment::from_bytes(&bytes).unwrap_err();
    assert_eq!(
        err,
        FormatError::HasImports {
            segment: "tramp".into(),
            imports: vec!["fallback".into(), "free".into()],
        }
    );
    assert!(err.to_string().contains("imports fallback, free"), "{err}");
}

#[test]
fn versions_and_imports_must_agree() {
    // Version 1 with imports.
    let mut f = SegmentFile::new(segment(), vec![fallback()]);
    f.format_version = FORMAT_VERSION;
    let err = SegmentFile::from_bytes(&encode(&f)).unwrap_err();
    assert!(
        matches!(&err, FormatError::Invalid { why, .. } if why.contains("cannot declare imports")),
        "{err}"
    );
    // Version 2 without.
    let mut f = SegmentFile::new(segment(), vec![]);
    f.format_version = FORMAT_VERSION_IMPORTS;
    assert!(matches!(
        SegmentFile::from_bytes(&encode(&f)),
        Err(FormatError::Invalid { .. })
    ));
    // An empty `imports` key is not canonical (version 1 has none).
    #[derive(serde::Serialize)]
    struct WithEmpty {
        magic: String,
        format_version: u32,
        #[serde(with = "serde_bytes")]
        content_hash: Vec<u8>,
        segment: Segment,
        imports: Vec<Import>,
    }
    let s = segment();
    let mut bytes = Vec::new();
    ciborium::into_writer(
        &WithEmpty {
            magic: MAGIC.into(),
            format_version: FORMAT_VERSION,
            content_hash: s.content_hash().to_vec(),
            segment: s,
            imports: vec![],
        },
        &mut bytes,
    )
    .unwrap();
    assert_eq!(
        SegmentFile::from_bytes(&bytes),
        Err(FormatError::NonCanonical)
    );
}

#[track_caller]
fn invalid(imports: Vec<Import>, needle: &str) {
    let file = SegmentFile::new(segment(), imports);
    let err = SegmentFile::from_bytes(&file.to_bytes()).unwrap_err();
    assert!(
        matches!(
            &err,
            FormatError::Invalid { .. } | FormatError::Limit { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(needle), "{err}");
    assert!(file.verify().is_err());
}

#[test]
fn imports_are_checked() {
    invalid(vec![fallback(), fallback()], "appears twice");
    let mut bad = free();
    bad.name = "mem set".into();
    invalid(vec![bad], "not a C identifier");
    let mut lib = fallback();
    lib.library = "libf.so.1".into();
    invalid(vec![lib], "has no library");
    let mut other = fallback();
    other.contract.params.clear();
    invalid(vec![other], "uLong f(size_t n)");
    let many: Vec<Import> = (0..65)
        .map(|i| Import {
            name: format!("f{i}"),
            ..free()
        })
        .collect();
    invalid(many, "imports: 65 is more than the limit of 64");
}
