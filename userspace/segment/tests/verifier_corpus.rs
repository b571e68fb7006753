// SPDX-License-Identifier: GPL-2.0
//! The verifier against hand-crafted bad segments: one or more per rule, each
//! refused with the expected rule, offset and instruction text.

use adapt_segment::{
    verify_segment, CType, Contract, CpuFeature, CpuFeatures, Function, Param, Relocation, Rule,
    Scalar, Segment, Variant, VerifyError,
};

fn segment(
    code: &[u8],
    rodata: &[u8],
    relocations: Vec<Relocation>,
    features: &[CpuFeature],
    entry: u32,
) -> Segment {
    Segment {
        name: "crafted".into(),
        version: 1,
        description: "hand-made test segment".into(),
        build: "by hand".into(),
        numerics: Default::default(),
        functions: vec![Function {
            symbol: "f".into(),
            library: String::new(),
            contract: Contract {
                returns: CType::value(Scalar::U32, "uint32_t"),
                params: vec![Param {
                    name: "p".into(),
                    ty: CType::const_ptr(Scalar::U8, "const uint8_t *"),
                }],
            },
            reference: "none".into(),
        }],
        variants: vec![Variant {
            name: "v".into(),
            features: features.iter().collect::<CpuFeatures>().closure(),
            code: code.to_vec(),
            rodata: rodata.to_vec(),
            rodata_align: 16,
            relocations,
            entry_offsets: vec![entry],
        }],
    }
}

fn simple(code: &[u8]) -> Segment {
    segment(code, &[], vec![], &[], 0)
}

/// Asserts that `seg` is refused, first by `rule` at `offset`, with an
/// instruction text containing `text`.
#[track_caller]
fn refused(seg: &Segment, rule: Rule, offset: u32, text: &str) {
    match verify_segment(seg) {
        Ok(r) => panic!("accepted, expected rule {rule}: {r:?}"),
        Err(VerifyError::Malformed(e)) => panic!("malformed ({e}), expected rule {rule}"),
        Err(VerifyError::Refused(list)) => {
            let first = &list[0];
            assert_eq!(first.rule, rule, "refusals: {list:#?}");
            assert_eq!(first.offset, offset, "refusals: {list:#?}");
            assert!(
                first.instruction.contains(text),
                "instruction {:?} lacks {text:?}",
                first.instruction
            );
            assert_eq!(first.variant, "v");
            let shown = first.to_string();
            assert!(
                shown.contains(rule.name()) && shown.contains(&format!("{offset:#x}")),
                "{shown}"
            );
        }
    }
}

const RET: u8 = 0xc3;

#[test]
fn a_clean_segment_is_accepted() {
    // mov eax, [rip+rodata] ; add eax, [rdi] ; ret
    let code = [0x8b, 0x05, 0, 0, 0, 0, 0x03, 0x07, RET];
    let seg = segment(
        &code,
        &[1, 2, 3, 4],
        vec![Relocation {
            offset: 2,
            rodata_offset: 0,
            addend: -4,
        }],
        &[],
        0,
    );
    let r = verify_segment(&seg).expect("accepted");
    assert_eq!(r[0].instructions, 3);
}

#[test]
fn invalid_encoding() {
    // 0x06 (push es) does not exist in 64-bit mode.
    refused(&simple(&[0x90, 0x06, RET]), Rule::Invalid, 1, "(bytes)");
}

#[test]
fn truncated_instruction() {
    // mov rax, [rdi+disp32] cut after two displacement bytes.
    refused(
        &simple(&[RET, 0x48, 0x8b, 0x87, 0x00, 0x10]),
        Rule::Invalid,
        1,
        "(bytes)",
    );
}

#[test]
fn system_calls_and_interrupts() {
    refused(&simple(&[0x0f, 0x05, RET]), Rule::SystemCall, 0, "syscall");
    refused(
        &simple(&[0x90, 0x0f, 0x34, RET]),
        Rule::SystemCall,
        1,
        "sysenter",
    );
    refused(&simple(&[0xcd, 0x80, RET]), Rule::SystemCall, 0, "int");
    refused(&simple(&[0xcc, RET]), Rule::SystemCall, 0, "int3");
}

#[test]
fn privileged_instructions() {
    refused(&simple(&[0xf4, RET]), Rule::Privileged, 0, "hlt");
    refused(
        &simple(&[0x0f, 0x22, 0xc0, RET]),
        Rule::Privileged,
        0,
        "cr0",
    );
    refused(&simple(&[0x0f, 0x30, RET]), Rule::Privileged, 0, "wrmsr");
    refused(&simple(&[0xec, RET]), Rule::Privileged, 0, "in");
    refused(&simple(&[0xfa, RET]), Rule::Privileged, 0, "cli");
}

#[test]
fn traps() {
    refused(&simple(&[0x0f, 0x0b, RET]), Rule::Trap, 0, "ud2");
}

#[test]
fn indirect_control_flow() {
    refused(&simple(&[0xff, 0xe0]), Rule::IndirectBranch, 0, "jmp rax");
    refused(
        &simple(&[0xff, 0xd0, RET]),
        Rule::IndirectBranch,
        0,
        "call rax",
    );
    // call qword ptr [rip+0]
    refused(
        &simple(&[0xff, 0x15, 0, 0, 0, 0, RET]),
        Rule::IndirectBranch,
        0,
        "call",
    );
    refused(&simple(&[0x90, 0xcb]), Rule::IndirectBranch, 1, "ret far");
}

#[test]
fn direct_calls_even_inside_the_segment() {
    // call next instruction; ret
    refused(&simple(&[0xe8, 0, 0, 0, 0, RET]), Rule::Call, 0, "call");
}

#[test]
fn branch_outside_the_code() {
    refused(
        &simple(&[0xe9, 100, 0, 0, 0, RET]),
        Rule::BranchTarget,
        0,
        "jmp",
    );
    // je -0x10 (before the start)
    refused(&simple(&[0x74, 0xf0, RET]), Rule::BranchTarget, 0, "je");
}

#[test]
fn branch_into_the_middle_of_an_instruction() {
    // jmp short +1 -> offset 3, inside `mov eax, imm32` at 2..7.
    refused(
        &simple(&[0xeb, 0x01, 0xb8, 0x0f, 0x05, 0x90, 0x90, RET]),
        Rule::BranchTarget,
        0,
        "jmp",
    );
}

#[test]
fn rip_relative_read_outside_the_code() {
    // mov eax, [rip+0x1000]
    refused(
        &simple(&[0x8b, 0x05, 0x00, 0x10, 0, 0, RET]),
        Rule::RipRelative,
        0,
        "mov",
    );
}

#[test]
fn rip_relative_read_past_the_end_of_rodata() {
    // movdqu xmm0, [rip+rodata+8]: 16 bytes, but rodata has 16 bytes only.
    let code = [0xf3, 0x0f, 0x6f, 0x05, 0, 0, 0, 0, RET];
    let seg = segment(
        &code,
        &[0; 16],
        vec![Relocation {
            offset: 4,
            rodata_offset: 8,
            addend: -4,
        }],
        &[],
        0,
    );
    refused(&seg, Rule::RipRelative, 0, "movdqu");
}

#[test]
fn writes_to_the_segment_itself() {
    // mov [rip-6], eax: writes the instruction's own bytes.
    refused(
        &simple(&[0x89, 0x05, 0xfa, 0xff, 0xff, 0xff, RET]),
        Rule::SelfWrite,
        0,
        "mov",
    );
    // add [rip+rodata], eax
    let seg = segment(
        &[0x01, 0x05, 0, 0, 0, 0, RET],
        &[0; 8],
        vec![Relocation {
            offset: 2,
            rodata_offset: 0,
            addend: -4,
        }],
        &[],
        0,
    );
    refused(&seg, Rule::SelfWrite, 0, "add");
}

#[test]
fn undeclared_cpu_features() {
    // pclmulqdq xmm0, xmm1, 0 with no declared features.
    refused(
        &simple(&[0x66, 0x0f, 0x3a, 0x44, 0xc1, 0x00, RET]),
        Rule::UndeclaredFeature,
        0,
        "pclmul",
    );
    // vpaddd ymm0, ymm0, ymm0 (AVX2) with only SSE4.2 declared.
    let seg = segment(
        &[0xc5, 0xfd, 0xfe, 0xc0, RET],
        &[],
        vec![],
        &[CpuFeature::Sse42],
        0,
    );
    refused(&seg, Rule::UndeclaredFeature, 0, "vpaddd");
    // rdtsc is not baseline.
    refused(
        &simple(&[0x0f, 0x31, RET]),
        Rule::UndeclaredFeature,
        0,
        "rdtsc",
    );
    // The same AVX2 instruction is fine once avx2 is declared.
    let ok = segment(
        &[0xc5, 0xfd, 0xfe, 0xc0, RET],
        &[],
        vec![],
        &[CpuFeature::Avx2],
        0,
    );
    assert!(verify_segment(&ok).is_ok());
}

#[test]
fn relocation_not_on_a_displacement() {
    // mov eax, imm32 with a relocation on the immediate.
    let seg = segment(
        &[0xb8, 0, 0, 0, 0, RET],
        &[0; 8],
        vec![Relocation {
            offset: 1,
            rodata_offset: 0,
            addend: -4,
        }],
        &[],
        0,
    );
    refused(&seg, Rule::Relocation, 0, "mov");
}

#[test]
fn entry_point_inside_an_instruction() {
    refused(
        &segment(&[0xb8, 1, 2, 3, 4, RET], &[], vec![], &[], 1),
        Rule::EntryPoint,
        1,
        "(bytes)",
    );
}

#[test]
fn falling_off_the_end() {
    refused(&simple(&[0x90, 0x31, 0xc0]), Rule::FallsOffEnd, 1, "xor");
}

#[test]
fn absolute_and_thread_local_addresses() {
    // mov eax, [0x1000]
    refused(
        &simple(&[0x8b, 0x04, 0x25, 0x00, 0x10, 0, 0, RET]),
        Rule::AbsoluteAddress,
        0,
        "mov",
    );
    // mov rax, fs:[rax]
    refused(
        &simple(&[0x64, 0x48, 0x8b, 0x00, RET]),
        Rule::SegmentOverride,
        0,
        "fs:",
    );
}

#[test]
fn every_refusal_is_listed_not_just_the_first() {
    let seg = simple(&[0x0f, 0x05, 0xf4, 0x0f, 0x0b, RET]);
    let err = verify_segment(&seg).expect_err("refused");
    let rules: Vec<Rule> = err.refusals().iter().map(|r| r.rule).collect();
    assert_eq!(rules, [Rule::SystemCall, Rule::Privileged, Rule::Trap]);
    let offsets: Vec<u32> = err.refusals().iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [0, 2, 3]);
}

#[test]
fn structurally_bad_variants_are_malformed_not_refused() {
    let mut seg = simple(&[RET]);
    seg.variants[0].entry_offsets = vec![5];
    assert!(matches!(
        verify_segment(&seg),
        Err(VerifyError::Malformed(_))
    ));
    let mut seg = simple(&[RET, 0, 0]);
    seg.variants[0].relocations = vec![Relocation {
        offset: 0,
        rodata_offset: 0,
        addend: -4,
    }];
    assert!(
        matches!(verify_segment(&seg), Err(VerifyError::Malformed(_))),
        "relocation field past the code"
    );
}

#[test]
fn segment_registers_and_flags_stay_untouched() {
    // mov fs, eax
    refused(&simple(&[0x8e, 0xe0, RET]), Rule::ProcessState, 0, "mov fs");
    // pop gs
    refused(&simple(&[0x0f, 0xa9, RET]), Rule::ProcessState, 0, "pop gs");
    // popfq
    refused(&simple(&[0x9d, RET]), Rule::ProcessState, 0, "popf");
    // Reading them is harmless: mov eax, fs
    assert!(verify_segment(&simple(&[0x8c, 0xe0, RET])).is_ok());
}

// ---------------------------------------------------------------------------
// Segments with imports (format version 2): calls and tail jumps through the
// declared slots of the import table, and the stack alignment at each.

mod imports {
    use super::*;
    use adapt_segment::{import_table, verify_with_imports, Import, SegmentFile, FALLBACK};

    /// A piece of code; slot references are resolved once the code's length
    /// (hence the import table's place) is known.
    enum Op {
        Bytes(&'static [u8]),
        /// `call qword ptr [rip+d]` to the table's start plus this many bytes.
        CallSlot(i64),
        /// `jmp qword ptr [rip+d]` likewise.
        JmpSlot(i64),
        /// `mov rax, qword ptr [rip+d]` likewise.
        ReadSlot(i64),
    }
    use Op::*;

    fn len(op: &Op) -> usize {
        match op {
            Bytes(b) => b.len(),
            CallSlot(_) | JmpSlot(_) => 6,
            ReadSlot(_) => 7,
        }
    }

    fn assemble(ops: &[Op]) -> Vec<u8> {
        let total: usize = ops.iter().map(len).sum();
        let table = import_table::import_table_offset(total) as i64;
        let mut code = Vec::new();
        for op in ops {
            let end = (code.len() + len(op)) as i64;
            let (opcode, at): (&[u8], i64) = match op {
                Bytes(b) => {
                    code.extend_from_slice(b);
                    continue;
                }
                CallSlot(at) => (&[0xff, 0x15], *at),
                JmpSlot(at) => (&[0xff, 0x25], *at),
                ReadSlot(at) => (&[0x48, 0x8b, 0x05], *at),
            };
            code.extend_from_slice(opcode);
            let d = i32::try_from(table + at - end).expect("small code");
            code.extend_from_slice(&d.to_le_bytes());
        }
        assert_eq!(code.len(), total);
        code
    }

    fn contract() -> Contract {
        Contract {
            returns: CType::value(Scalar::U32, "uint32_t"),
            params: vec![Param {
                name: "p".into(),
                ty: CType::const_ptr(Scalar::U8, "const uint8_t *"),
            }],
        }
    }

    /// `fallback` (slot 0) and `memset` (slot 1).
    fn imports() -> Vec<Import> {
        vec![
            Import {
                name: FALLBACK.into(),
                library: String::new(),
                contract: contract(),
            },
            Import {
                name: "memset".into(),
                library: "libc.so.6".into(),
                contract: Contract {
                    returns: CType::mut_ptr(Scalar::Void, "void *"),
                    params: vec![
                        Param {
                            name: "s".into(),
                            ty: CType::mut_ptr(Scalar::Void, "void *"),
                        },
                        Param {
                            name: "c".into(),
                            ty: CType::value(Scalar::I32, "int"),
                        },
                        Param {
                            name: "n".into(),
                            ty: CType::value(Scalar::U64, "size_t"),
                        },
                    ],
                },
            },
        ]
    }

    fn with(ops: &[Op]) -> Segment {
        simple(&assemble(ops))
    }

    #[track_caller]
    fn accepted(ops: &[Op]) {
        let seg = with(ops);
        if let Err(e) = verify_with_imports(&seg, &imports()) {
            panic!("refused: {e}\n{:#?}", e.refusals());
        }
        // Through the file too.
        let file = SegmentFile::new(seg, imports());
        assert!(file.verify().is_ok());
    }

    #[track_caller]
    fn refused_with(ops: &[Op], rule: Rule, offset: u32, text: &str) -> String {
        let seg = with(ops);
        match verify_with_imports(&seg, &imports()) {
            Ok(r) => panic!("accepted, expected rule {rule}: {r:?}"),
            Err(VerifyError::Malformed(e)) => panic!("malformed ({e}), expected rule {rule}"),
            Err(VerifyError::Refused(list)) => {
                let first = &list[0];
                assert_eq!(first.rule, rule, "refusals: {list:#?}");
                assert_eq!(first.offset, offset, "refusals: {list:#?}");
                assert!(
                    first.instruction.contains(text),
                    "instruction {:?} lacks {text:?}",
                    first.instruction
                );
                first.detail.clone()
            }
        }
    }

    const SLOT0: i64 = 0;
    const SLOT1: i64 = 8;

    #[test]
    fn a_tail_jump_to_fallback_verifies() {
        accepted(&[JmpSlot(SLOT0)]);
        // The same segment without the import declared: refused as before.
        let seg = with(&[JmpSlot(SLOT0)]);
        let err = verify_segment(&seg).unwrap_err();
        assert_eq!(err.refusals()[0].rule, Rule::IndirectBranch);
        assert_eq!(err.refusals()[0].detail, "indirect jump");
    }

    #[test]
    fn aligned_calls_verify() {
        // sub rsp,8; call [fallback]; add rsp,8; ret
        accepted(&[
            Bytes(&[0x48, 0x83, 0xec, 0x08]),
            CallSlot(SLOT0),
            Bytes(&[0x48, 0x83, 0xc4, 0x08, RET]),
        ]);
        // push rbx; call [memset]; pop rbx; ret
        accepted(&[Bytes(&[0x53]), CallSlot(SLOT1), Bytes(&[0x5b, RET])]);
        // push rbp; mov rbp,rsp; and rsp,-16; call [memset]; mov rsp,rbp; pop rbp; ret
        accepted(&[
            Bytes(&[0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xe4, 0xf0]),
            CallSlot(SLOT1),
            Bytes(&[0x48, 0x89, 0xec, 0x5d, RET]),
        ]);
        // push rbp; mov rbp,rsp; push rbx; and rsp,-32; call [memset];
        // lea rsp,[rbp-8]; pop rbx; pop rbp; ret
        accepted(&[
            Bytes(&[0x55, 0x48, 0x89, 0xe5, 0x53, 0x48, 0x83, 0xe4, 0xe0]),
            CallSlot(SLOT1),
            Bytes(&[0x48, 0x8d, 0x65, 0xf8, 0x5b, 0x5d, RET]),
        ]);
        // push rbp; mov rbp,rsp; sub rsp,0x20; call [fallback]; leave; ret
        accepted(&[
            Bytes(&[0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x20]),
            CallSlot(SLOT0),
            Bytes(&[0xc9, RET]),
        ]);
        // test rdi,rdi; jz +9 (to ret); sub rsp,8; call [fallback]; add rsp,8... ret:
        // the paths join at the ret with the same depth.
        accepted(&[
            Bytes(&[0x48, 0x85, 0xff, 0x74, 0x0e]),
            Bytes(&[0x48, 0x83, 0xec, 0x08]),
            CallSlot(SLOT0),
            Bytes(&[0x48, 0x83, 0xc4, 0x08]),
            Bytes(&[RET]),
        ]);
        // A fast path that returns, a slow path that tail-jumps to fallback:
        // test rdi,rdi; jnz +1; ret; jmp [fallback]
        accepted(&[Bytes(&[0x48, 0x85, 0xff, 0x75, 0x01, RET]), JmpSlot(SLOT0)]);
    }

    #[test]
    fn a_call_through_a_slot_that_is_not_declared() {
        let why = refused_with(
            &[Bytes(&[0x53]), CallSlot(16), Bytes(&[0x5b, RET])],
            Rule::IndirectBranch,
            1,
            "call",
        );
        assert!(why.contains("not a declared import slot"), "{why}");
        // Below the table: the trampoline space is not a slot either.
        refused_with(&[JmpSlot(-8)], Rule::IndirectBranch, 0, "jmp");
    }

    #[test]
    fn a_slot_address_off_by_one() {
        let why = refused_with(
            &[Bytes(&[0x53]), CallSlot(SLOT1 + 1), Bytes(&[0x5b, RET])],
            Rule::IndirectBranch,
            1,
            "call",
        );
        assert!(why.contains("not a declared import slot"), "{why}");
        refused_with(&[JmpSlot(SLOT0 - 1)], Rule::IndirectBranch, 0, "jmp");
    }

    #[test]
    fn call_rax_stays_refused() {
        // push rbx; call rax; pop rbx; ret
        let why = refused_with(
            &[Bytes(&[0x53, 0xff, 0xd0, 0x5b, RET])],
            Rule::IndirectBranch,
            1,
            "call rax",
        );
        assert!(why.contains("import slot"), "{why}");
        // jmp qword ptr [rdi]: memory, but not RIP-relative.
        refused_with(&[Bytes(&[0xff, 0x27])], Rule::IndirectBranch, 0, "jmp");
        // A direct call stays refused too.
        refused_with(
            &[Bytes(&[0x53, 0xe8, 0, 0, 0, 0, 0x5b, RET])],
            Rule::Call,
            1,
            "call",
        );
    }

    #[test]
    fn a_misaligned_call() {
        // call [fallback] right at entry: rsp % 16 == 8.
        let why = refused_with(
            &[CallSlot(SLOT0), Bytes(&[RET])],
            Rule::StackAlignment,
            0,
            "call",
        );
        assert!(why.contains("rsp % 16 is 8"), "{why}");
        // push rbx; push rbp; call [memset]: 16 bytes pushed, misaligned.
        refused_with(
            &[
                Bytes(&[0x53, 0x55]),
                CallSlot(SLOT1),
                Bytes(&[0x5d, 0x5b, RET]),
            ],
            Rule::StackAlignment,
            2,
            "call",
        );
    }

    #[test]
    fn tail_jumps_and_returns_need_the_entry_stack() {
        // push rbx; jmp [fallback]
        refused_with(
            &[Bytes(&[0x53]), JmpSlot(SLOT0)],
            Rule::StackAlignment,
            1,
            "jmp",
        );
        // push rbx; ret
        refused_with(&[Bytes(&[0x53, RET])], Rule::StackAlignment, 1, "ret");
    }

    #[test]
    fn stack_depth_the_analysis_cannot_follow() {
        // test rdi,rdi; jz +1; push rbx; (join) sub rsp,8; call; ...
        let why = refused_with(
            &[
                Bytes(&[0x48, 0x85, 0xff, 0x74, 0x01, 0x53]),
                Bytes(&[0x48, 0x83, 0xec, 0x08]),
                CallSlot(SLOT0),
                Bytes(&[RET]),
            ],
            Rule::StackDepth,
            6,
            "sub",
        );
        assert!(why.contains("paths join"), "{why}");
        // mov rsp, rax
        refused_with(
            &[Bytes(&[0x48, 0x89, 0xc4]), JmpSlot(SLOT0)],
            Rule::StackDepth,
            0,
            "mov rsp",
        );
        // pop rax at entry: reads the return address, above the entry's rsp.
        refused_with(
            &[Bytes(&[0x58]), JmpSlot(SLOT0)],
            Rule::StackDepth,
            0,
            "pop",
        );
        // and rsp, -8 does not align to 16.
        refused_with(
            &[Bytes(&[0x48, 0x83, 0xe4, 0xf8]), JmpSlot(SLOT0)],
            Rule::StackDepth,
            0,
            "and rsp",
        );
        // push rbp; mov rbp,rsp; and rsp,-32; sub rsp,0x20000; call; ...:
        // a realigned frame is still bounded (it could step over the
        // stack's guard page).
        let why = refused_with(
            &[
                Bytes(&[0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xe4, 0xe0]),
                Bytes(&[0x48, 0x81, 0xec, 0x00, 0x00, 0x02, 0x00]),
                CallSlot(SLOT0),
                Bytes(&[0x48, 0x89, 0xec, 0x5d, RET]),
            ],
            Rule::StackDepth,
            8,
            "sub",
        );
        assert!(why.contains("more than the 65536"), "{why}");
        // push rbp; mov rbp,rsp; and rsp,-16; loop: sub rsp,0x1000;
        // test rdi,rdi; jnz loop; call; ...: a stack-probe loop grows the
        // realigned frame without bound, so its paths never agree.
        let why = refused_with(
            &[
                Bytes(&[0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xe4, 0xf0]),
                Bytes(&[0x48, 0x81, 0xec, 0x00, 0x10, 0x00, 0x00]),
                Bytes(&[0x48, 0x85, 0xff, 0x75, 0xf4]),
                CallSlot(SLOT0),
                Bytes(&[0x48, 0x89, 0xec, 0x5d, RET]),
            ],
            Rule::StackDepth,
            8,
            "sub",
        );
        assert!(why.contains("paths join"), "{why}");
    }

    #[test]
    fn the_table_is_not_data() {
        // mov rax, [slot 0]; ret: reading a slot is not calling it.
        refused_with(
            &[ReadSlot(SLOT0), Bytes(&[RET])],
            Rule::RipRelative,
            0,
            "mov",
        );
    }

    #[test]
    fn a_relocated_slot_operand_is_refused() {
        let mut seg = with(&[JmpSlot(SLOT0)]);
        seg.variants[0].rodata = vec![0; 8];
        seg.variants[0].relocations = vec![Relocation {
            offset: 2,
            rodata_offset: 0,
            addend: -4,
        }];
        // Relocations point into the read-only data, never at a slot: the
        // relocated operand is no slot any more.
        let err = verify_with_imports(&seg, &imports()).unwrap_err();
        assert_eq!(err.refusals()[0].rule, Rule::IndirectBranch, "{err}");
        assert!(err.refusals()[0]
            .detail
            .contains("not a declared import slot"));
    }

    #[test]
    fn the_table_follows_each_variant_s_own_code() {
        // Two variants of different lengths, each addressing its own table.
        let short = assemble(&[JmpSlot(SLOT0)]);
        let mut long_ops = vec![Bytes(&[0x90; 64][..])];
        long_ops.push(JmpSlot(SLOT0));
        let long = assemble(&long_ops);
        let mut seg = simple(&short);
        let mut v = seg.variants[0].clone();
        v.name = "long".into();
        v.code = long.clone();
        seg.variants.push(v);
        assert!(verify_with_imports(&seg, &imports()).is_ok());
        // Both tables are at 0x1000 while code and trampoline space fit a
        // page; past that the table moves to the next page boundary.
        let mut big_ops: Vec<Op> = (0..300).map(|_| Bytes(&[0x90; 16][..])).collect();
        big_ops.push(JmpSlot(SLOT0));
        let big = assemble(&big_ops);
        assert_eq!(
            import_table::import_table_offset(big.len()),
            2 * 4096,
            "4800 bytes of code and the trampoline space take two pages"
        );
        seg.variants[1].code = big;
        assert!(verify_with_imports(&seg, &imports()).is_ok());
        // The short variant's jump, copied into a long variant, misses.
        let mut wrong = short.clone();
        wrong.splice(0..0, [0x90; 4800]);
        seg.variants[1].code = wrong;
        let err = verify_with_imports(&seg, &imports()).unwrap_err();
        assert_eq!(err.refusals()[0].variant, "long");
        assert_eq!(err.refusals()[0].rule, Rule::IndirectBranch);
    }
}
