// SPDX-License-Identifier: GPL-2.0
//! The in-process loader: relocated code runs, mappings are never writable
//! and executable, refused or unsupported variants are not mapped.

use adapt_segment::{
    CType, Contract, CpuFeature, CpuFeatures, Function, InProcessVariant, LoaderError, Relocation,
    Scalar, Segment, Variant,
};

fn segment(
    code: Vec<u8>,
    rodata: Vec<u8>,
    relocations: Vec<Relocation>,
    features: CpuFeatures,
) -> Segment {
    Segment {
        name: "t".into(),
        version: 1,
        description: String::new(),
        build: String::new(),
        numerics: Default::default(),
        functions: vec![Function {
            symbol: "get".into(),
            library: String::new(),
            contract: Contract {
                returns: CType::value(Scalar::U32, "uint32_t"),
                params: vec![],
            },
            reference: String::new(),
        }],
        variants: vec![Variant {
            name: "v".into(),
            features,
            code,
            rodata,
            rodata_align: 16,
            relocations,
            entry_offsets: vec![0],
        }],
    }
}

/// The permissions of the mapping holding `addr`, from /proc/self/maps.
fn perms_of(addr: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    for line in maps.lines() {
        let mut it = line.split_whitespace();
        let range = it.next().expect("range");
        let perms = it.next().expect("perms");
        let (a, b) = range.split_once('-').expect("a-b");
        let (a, b) = (
            usize::from_str_radix(a, 16).expect("hex"),
            usize::from_str_radix(b, 16).expect("hex"),
        );
        if (a..b).contains(&addr) {
            return perms.to_owned();
        }
    }
    panic!("{addr:#x} is not mapped");
}

#[test]
fn relocated_code_reads_its_rodata_and_mappings_are_w_xor_x() {
    // mov eax, [rip+rodata+4] ; ret
    let code = vec![0x8b, 0x05, 0, 0, 0, 0, 0xc3];
    let rodata = vec![0, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde];
    let seg = segment(
        code,
        rodata,
        vec![Relocation {
            offset: 2,
            rodata_offset: 4,
            addend: -4,
        }],
        CpuFeatures::empty(),
    );
    let lv = InProcessVariant::load(&seg, 0).expect("loads");
    // SAFETY: the code returns a u32 and takes nothing.
    let f: unsafe extern "C" fn() -> u32 = unsafe { lv.function("get").expect("entry") };
    // SAFETY: verified code reading its own rodata.
    assert_eq!(unsafe { f() }, 0xdead_beef);
    assert_eq!(perms_of(lv.code_address()), "r-xp");
    assert_eq!(perms_of(lv.rodata_address()), "r--p");
    assert_eq!(lv.entry_address("get").expect("entry"), lv.code_address());
    assert!(matches!(
        lv.entry_address("other"),
        Err(LoaderError::NoSuchFunction { .. })
    ));
    let code = lv.code_address();
    drop(lv);
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    let still = maps.lines().any(|l| l.starts_with(&format!("{code:x}-")));
    assert!(!still, "unmapped on drop");
}

#[test]
fn refused_code_is_not_mapped() {
    let seg = segment(vec![0x0f, 0x05, 0xc3], vec![], vec![], CpuFeatures::empty());
    match InProcessVariant::load(&seg, 0) {
        Err(LoaderError::Verify { source, .. }) => {
            assert_eq!(source.refusals()[0].rule, adapt_segment::Rule::SystemCall)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn variants_this_cpu_cannot_run_are_not_mapped() {
    let missing = CpuFeatures::detect().missing(&CpuFeatures::all());
    let Some(f) = missing.iter().next() else {
        eprintln!("SKIPPED: this CPU has every feature adapt knows; nothing to refuse");
        return;
    };
    let features: CpuFeatures = [f].iter().collect::<CpuFeatures>().closure();
    let seg = segment(vec![0xc3], vec![], vec![], features);
    assert!(matches!(
        InProcessVariant::load(&seg, 0),
        Err(LoaderError::MissingFeatures { .. })
    ));
    let _ = CpuFeature::ALL;
}

#[test]
fn unknown_variants_are_reported() {
    let seg = segment(vec![0xc3], vec![], vec![], CpuFeatures::empty());
    assert!(matches!(
        InProcessVariant::load(&seg, 3),
        Err(LoaderError::NoSuchVariant { .. })
    ));
    assert!(matches!(
        InProcessVariant::load_named(&seg, "nope"),
        Err(LoaderError::NoSuchVariant { .. })
    ));
}
