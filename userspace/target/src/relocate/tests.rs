//! Relocator tests: a table of prologues (accepted ones checked by decoding
//! the trampoline, refused ones by their typed reason) and trampolines run
//! natively in this process.

use super::*;
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};

/// The original function's address in the table tests.
const AT: u64 = 0x5555_0000_1000;
/// Where the trampolines go: 256 MiB above, and 1 GiB below.
const UP: u64 = AT + 0x1000_0000;
const DOWN: u64 = AT - 0x4000_0000;

fn decode_all(bytes: &[u8], ip: u64) -> Vec<Instruction> {
    Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE)
        .into_iter()
        .collect()
}

/// What an instruction means, independent of where it is encoded: the
/// mnemonic, the absolute branch target, the absolute RIP-relative address,
/// and the other operands' text.
fn meaning(i: &Instruction) -> (Mnemonic, Option<u64>, Option<u64>) {
    let near = (0..i.op_count()).any(|k| {
        matches!(
            i.op_kind(k),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        )
    });
    (
        i.mnemonic(),
        near.then(|| i.near_branch_target()),
        i.is_ip_rel_memory_operand()
            .then(|| i.ip_rel_memory_address()),
    )
}

/// Decodes the trampoline and checks it means what the displaced bytes
/// meant, then jumps back to the first byte after them. Branches that the
/// encoder had to lengthen (`jrcxz`, `loop`) appear as a short branch over a
/// near `jmp` to the original target: only the targets outside the
/// trampoline are compared for those.
#[track_caller]
pub(super) fn assert_equivalent(code: &[u8], len: usize, t: &Trampoline) {
    let at = t.original_address;
    assert_eq!(t.original, &code[..len]);
    assert_eq!(t.resumes_at, at + len as u64);
    assert!(t.bytes.len() <= TRAMPOLINE_MAX);
    let original = decode_all(&code[..len], at);
    let new = decode_all(&t.bytes, t.address);
    assert!(new.iter().all(|i| !i.is_invalid()), "{:02x?}", t.bytes);
    let last = new.last().unwrap();
    assert_eq!(last.code(), Code::Jmp_rel32_64, "ends with jmp rel32");
    assert_eq!(last.near_branch_target(), at + len as u64);
    let inside = |target: u64| target >= t.address && target < t.address + t.bytes.len() as u64;
    let outside_targets = |list: &[Instruction]| -> Vec<(Option<u64>, Option<u64>)> {
        list.iter()
            .map(meaning)
            .filter(|(_, b, _)| !b.is_some_and(inside))
            .map(|(_, b, r)| (b, r))
            .collect()
    };
    if original.len() + 1 == new.len() {
        // One for one: the same instructions with the same absolute targets.
        for (o, n) in original.iter().zip(&new) {
            assert_eq!(meaning(o), meaning(n), "{o} vs {n}");
        }
    } else {
        assert_eq!(
            outside_targets(&original),
            outside_targets(&new[..new.len() - 1])
        );
    }
}

enum Expect {
    Ok,
    Err(fn(&RelocateError) -> bool),
}

struct Case {
    name: &'static str,
    code: &'static [u8],
    len: usize,
    /// Where the trampoline is placed.
    to: &'static [u64],
    expect: Expect,
}

const BOTH: &[u64] = &[UP, DOWN];

const CASES: &[Case] = &[
    Case {
        name: "push rbp; mov rbp,rsp; sub rsp,0x10",
        code: &[0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10],
        len: 8,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "push rbx; push r12; sub rsp,0x18",
        code: &[0x53, 0x41, 0x54, 0x48, 0x83, 0xec, 0x18],
        len: 7,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "endbr64; push rbp",
        code: &[0xf3, 0x0f, 0x1e, 0xfa, 0x55],
        len: 5,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "lea rax,[rip+0x1234]",
        code: &[0x48, 0x8d, 0x05, 0x34, 0x12, 0x00, 0x00],
        len: 7,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "mov rax,[rip-0x2000]",
        code: &[0x48, 0x8b, 0x05, 0x00, 0xe0, 0xff, 0xff],
        len: 7,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "cmp byte ptr [rip+0x100],0 (displacement then immediate)",
        code: &[0x80, 0x3d, 0x00, 0x01, 0x00, 0x00, 0x00],
        len: 7,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "cmp rdi,0x10; ja +0x20 (jcc rel8 to outside)",
        code: &[0x48, 0x83, 0xff, 0x10, 0x77, 0x20],
        len: 6,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "test rdi,rdi; jz +0x10",
        code: &[0x48, 0x85, 0xff, 0x74, 0x10],
        len: 5,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "mov rax,rdi; jrcxz +0x10 (no near form)",
        code: &[0x48, 0x89, 0xf8, 0xe3, 0x10],
        len: 5,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "call rel32",
        code: &[0xe8, 0x00, 0x01, 0x00, 0x00],
        len: 5,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "zlib crc32: mov edx,edx; jmp rel32",
        code: &[0x89, 0xd2, 0xe9, 0x69, 0xe8, 0xff, 0xff],
        len: 7,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "mov eax,edi; jmp [rip+0x100] (GOT tail call, last)",
        code: &[0x89, 0xf8, 0xff, 0x25, 0x00, 0x01, 0x00, 0x00],
        len: 8,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "nop x4; ret (ret last)",
        code: &[0x90, 0x90, 0x90, 0x90, 0xc3],
        len: 5,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "longer bytes than the range: only the range is used",
        code: &[0x55, 0x48, 0x89, 0xe5, 0x41, 0x57, 0xff, 0xff],
        len: 6,
        to: BOTH,
        expect: Expect::Ok,
    },
    Case {
        name: "back-edge: xor; add; dec; jnz to offset 2",
        code: &[0x31, 0xc0, 0x01, 0xf8, 0xff, 0xcf, 0x75, 0xfa],
        len: 8,
        to: BOTH,
        expect: Expect::Err(|e| {
            matches!(e, RelocateError::BranchIntoRange { at, target, .. }
                if *at == AT + 6 && *target == AT + 2)
        }),
    },
    Case {
        name: "branch to the entry itself",
        code: &[0x90, 0x90, 0x90, 0x75, 0xfb],
        len: 5,
        to: BOTH,
        expect: Expect::Err(
            |e| matches!(e, RelocateError::BranchIntoRange { target, .. } if *target == AT),
        ),
    },
    Case {
        name: "forward branch inside the range: je +2; nop x4",
        code: &[0x74, 0x02, 0x90, 0x90, 0x90, 0x90],
        len: 6,
        to: BOTH,
        expect: Expect::Err(
            |e| matches!(e, RelocateError::BranchIntoRange { target, .. } if *target == AT + 4),
        ),
    },
    Case {
        name: "ret followed by displaced bytes",
        code: &[0xc3, 0x90, 0x90, 0x90, 0x90],
        len: 5,
        to: BOTH,
        expect: Expect::Err(
            |e| matches!(e, RelocateError::FlowEndsEarly { at, remaining: 4, .. } if *at == AT),
        ),
    },
    Case {
        name: "jmp rax followed by displaced bytes",
        code: &[0xff, 0xe0, 0x90, 0x90, 0x90],
        len: 5,
        to: BOTH,
        expect: Expect::Err(|e| matches!(e, RelocateError::FlowEndsEarly { remaining: 3, .. })),
    },
    Case {
        name: "jmp [rip+x] followed by displaced bytes",
        code: &[0xff, 0x25, 0x00, 0x01, 0x00, 0x00, 0x90],
        len: 7,
        to: BOTH,
        expect: Expect::Err(|e| matches!(e, RelocateError::FlowEndsEarly { remaining: 1, .. })),
    },
    Case {
        name: "rip-relative operand 2 GiB away",
        code: &[0x48, 0x8b, 0x05, 0x00, 0x00, 0xf0, 0x7f],
        len: 7,
        to: &[DOWN],
        expect: Expect::Err(|e| {
            matches!(
                e,
                RelocateError::OutOfRange {
                    what: "RIP-relative operand",
                    ..
                }
            )
        }),
    },
    Case {
        name: "branch target 2 GiB away",
        code: &[0xe9, 0x00, 0x00, 0xf0, 0x7f],
        len: 5,
        to: &[DOWN],
        expect: Expect::Err(|e| {
            matches!(
                e,
                RelocateError::OutOfRange {
                    what: "branch target",
                    ..
                }
            )
        }),
    },
    Case {
        name: "undecodable (push es in 64-bit mode)",
        code: &[0x90, 0x06, 0x90, 0x90, 0x90],
        len: 5,
        to: BOTH,
        expect: Expect::Err(|e| matches!(e, RelocateError::Undecodable { offset: 1, .. })),
    },
    Case {
        name: "range ends inside mov eax,imm32",
        code: &[0x90, 0xb8, 0x01, 0x02, 0x03, 0x04],
        len: 5,
        to: BOTH,
        expect: Expect::Err(|e| {
            matches!(
                e,
                RelocateError::NotOnBoundary {
                    offset: 1,
                    end: 6,
                    len: 5,
                    ..
                }
            )
        }),
    },
    Case {
        name: "range ends inside an instruction cut by the bytes given",
        code: &[0x90, 0xb8, 0x01, 0x02, 0x03],
        len: 5,
        to: BOTH,
        expect: Expect::Err(|e| matches!(e, RelocateError::NotOnBoundary { offset: 1, .. })),
    },
    Case {
        name: "hlt",
        code: &[0x90, 0xf4, 0x90, 0x90, 0x90],
        len: 5,
        to: BOTH,
        expect: Expect::Err(|e| matches!(e, RelocateError::Privileged { at, .. } if *at == AT + 1)),
    },
    Case {
        name: "int3 (a breakpoint)",
        code: &[0xcc, 0x90, 0x90, 0x90, 0x90],
        len: 5,
        to: BOTH,
        expect: Expect::Err(|e| matches!(e, RelocateError::Privileged { .. })),
    },
    Case {
        name: "ud2",
        code: &[0x90, 0x90, 0x90, 0x0f, 0x0b],
        len: 5,
        to: BOTH,
        expect: Expect::Err(|e| matches!(e, RelocateError::Privileged { .. })),
    },
    Case {
        name: "fewer than five bytes",
        code: &[0x55, 0x48, 0x89, 0xe5],
        len: 4,
        to: BOTH,
        expect: Expect::Err(|e| matches!(e, RelocateError::TooShort { len: 4, .. })),
    },
    Case {
        name: "range longer than the bytes given",
        code: &[0x55, 0x48, 0x89, 0xe5, 0x90],
        len: 6,
        to: BOTH,
        expect: Expect::Err(|e| matches!(e, RelocateError::TooShort { available: 5, .. })),
    },
    Case {
        name: "sixteen loops grow past the reserved space",
        code: &[
            0xe2, 0x40, 0xe2, 0x40, 0xe2, 0x40, 0xe2, 0x40, 0xe2, 0x40, 0xe2, 0x40, 0xe2, 0x40,
            0xe2, 0x40, 0xe2, 0x40, 0xe2, 0x40, 0xe2, 0x40, 0xe2, 0x40, 0xe2, 0x40, 0xe2, 0x40,
            0xe2, 0x40, 0xe2, 0x40,
        ],
        len: 32,
        to: BOTH,
        expect: Expect::Err(|e| matches!(e, RelocateError::TooLong { max: 64, .. })),
    },
];

#[test]
fn table_of_prologues() {
    for case in CASES {
        for &new_address in case.to {
            let got = relocate_prologue(case.code, AT, case.len, new_address);
            match (&case.expect, got) {
                (Expect::Ok, Ok(t)) => {
                    assert_eq!(t.address, new_address);
                    assert_eq!(t.original_address, AT);
                    assert_equivalent(case.code, case.len, &t);
                }
                (Expect::Ok, Err(e)) => panic!("{}: refused: {e}", case.name),
                (Expect::Err(_), Ok(t)) => panic!("{}: accepted: {t:?}", case.name),
                (Expect::Err(check), Err(e)) => {
                    assert!(check(&e), "{}: wrong refusal {e:?}", case.name);
                    // Every refusal says why in words.
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
}

#[test]
fn short_branches_grow_and_keep_their_targets() {
    // test rdi,rdi; jz +0x10 → the jz becomes a near jcc to AT+5+0x10.
    let t = relocate_prologue(&[0x48, 0x85, 0xff, 0x74, 0x10], AT, 5, UP).unwrap();
    let new = decode_all(&t.bytes, UP);
    assert_eq!(new.len(), 3);
    assert_eq!(new[1].code(), Code::Je_rel32_64);
    assert_eq!(new[1].near_branch_target(), AT + 5 + 0x10);
    assert_eq!(t.displaced, ["test rdi, rdi", "je 0x555500001015"]);
    // rip-relative: the displacement changes, the address does not.
    let t = relocate_prologue(&[0x48, 0x8d, 0x05, 0x34, 0x12, 0x00, 0x00], AT, 7, DOWN).unwrap();
    let new = decode_all(&t.bytes, DOWN);
    assert_eq!(new[0].ip_rel_memory_address(), AT + 7 + 0x1234);
    assert_ne!(&t.bytes[..7], &t.original[..]);
}

#[test]
fn the_jmp_back_must_be_in_range() {
    let far = AT + (3u64 << 30);
    let err = relocate_prologue(&[0x55, 0x48, 0x89, 0xe5, 0x90], AT, 5, far).unwrap_err();
    assert!(
        matches!(err, RelocateError::OutOfRange { target, .. } if target == AT + 5),
        "{err:?}"
    );
}

#[test]
fn plans_are_relocated_from_their_bytes() {
    let body = [0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0xc9, 0xc3];
    let plan = crate::plan_patch(AT, &body, &body, crate::CheckOptions::default()).unwrap();
    let t = relocate_plan(AT, &plan, UP).unwrap();
    assert_eq!(t.original, &body[..8]);
    assert_eq!(t.resumes_at, AT + 8);
}

mod native;

#[test]
fn a_system_call_in_the_entry_is_relocated() {
    // xor eax,eax; syscall; nop | ret
    let code = [0x31, 0xc0, 0x0f, 0x05, 0x90, 0xc3];
    let t = super::relocate_prologue(&code, 0x40_1000, 5, 0x40_1000 + (64 << 20)).unwrap();
    assert_eq!(&t.bytes[..5], &code[..5]);
}
