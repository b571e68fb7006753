// SPDX-License-Identifier: GPL-2.0
//! Whether a function of an executable can run from a bare mapping of the
//! file's read-only segments, outside the process that normally runs it.
//!
//! A bare mapping has no dynamic linking, no relocated data, no TLS and
//! nothing of the target's heap or globals. So the function must be a
//! *self-contained leaf*; every instruction of its body (`st_size` bytes
//! from its symbol, decoded with iced-x86) is checked:
//!
//! - no `call` of any kind (that includes `syscall`), no indirect branch,
//!   no interrupt, no `ud2`, no transaction, no privileged instruction,
//!   no far return; every direct branch lands inside the function (no tail
//!   call into other code);
//! - no memory operand with an `fs`/`gs` override (thread-local storage);
//! - every RIP-relative operand (loads, stores and `lea` alike) points into
//!   a *non-writable* `PT_LOAD` segment: constant tables and code are the
//!   same in the file as in every process, while writable segments (`.data`,
//!   `.bss`, the GOT after relocation) are not;
//! - for a fixed-address executable, also every absolute displacement and
//!   every immediate that falls inside a writable segment is refused (it
//!   is the address of a global);
//! - the file has no text relocations.
//!
//! What passes reads only its arguments' memory, its stack and read-only
//! data of its own file — exactly what it reads in the target.

use iced_x86::{Decoder, DecoderOptions, FlowControl, Mnemonic, OpKind, Register};

use adapt_elf::{ElfFacts, FunctionSymbol, ObjectKind};

/// Checks `body`, the bytes of `f` from its file, against the rules above;
/// the error names the first offending instruction.
pub fn check_self_contained(
    info: &ElfFacts,
    f: &FunctionSymbol,
    body: &[u8],
) -> Result<(), String> {
    if f.ifunc {
        return Err("it is an IFUNC resolver, not the function".to_owned());
    }
    if f.size == 0 {
        return Err("its symbol has no size (hand-written assembly?)".to_owned());
    }
    if info.text_relocations {
        return Err("the file has text relocations".to_owned());
    }
    let start = f.vaddr;
    let end = f.vaddr.saturating_add(f.size);
    let fixed = info.kind == ObjectKind::FixedExecutable;
    let writable_at = |addr: u64| info.load_of(addr).is_some_and(|l| l.writable());
    let mut decoder = Decoder::with_ip(64, body, start, DecoderOptions::NONE);
    for ins in &mut decoder {
        let at = || format!("{:#x} (+{:#x})", ins.ip(), ins.ip() - start);
        if ins.is_invalid() {
            return Err(format!("undecodable bytes at {}", at()));
        }
        match ins.flow_control() {
            FlowControl::Next => {}
            FlowControl::Return => {
                if ins.mnemonic() != Mnemonic::Ret {
                    return Err(format!("{:?} at {}", ins.mnemonic(), at()));
                }
            }
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch => {
                let near = matches!(
                    ins.op0_kind(),
                    OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
                );
                let target = ins.near_branch_target();
                if !near || target < start || target >= end {
                    return Err(format!(
                        "a branch at {} leaves the function (to {target:#x}): a tail call",
                        at()
                    ));
                }
            }
            FlowControl::Call | FlowControl::IndirectCall => {
                return Err(format!(
                    "it calls other code ({:?} at {})",
                    ins.mnemonic(),
                    at()
                ));
            }
            FlowControl::IndirectBranch => {
                return Err(format!("an indirect jump at {} (a jump table?)", at()));
            }
            FlowControl::Interrupt | FlowControl::XbeginXabortXend | FlowControl::Exception => {
                return Err(format!("{:?} at {}", ins.mnemonic(), at()));
            }
        }
        if ins.is_privileged() {
            return Err(format!("privileged {:?} at {}", ins.mnemonic(), at()));
        }
        for i in 0..ins.op_count() {
            match ins.op_kind(i) {
                OpKind::Memory => {
                    if matches!(ins.memory_segment(), Register::FS | Register::GS) {
                        return Err(format!("thread-local storage access at {}", at()));
                    }
                    if ins.is_ip_rel_memory_operand() {
                        let target = ins.ip_rel_memory_address();
                        match info.load_of(target) {
                            Some(l) if !l.writable() => {}
                            Some(_) => {
                                return Err(format!(
                                "it uses writable data at {target:#x} (a global variable or the \
                                     GOT) from {}",
                                at()
                            ))
                            }
                            None => {
                                return Err(format!(
                                    "{} refers to {target:#x}, outside the file",
                                    at()
                                ))
                            }
                        }
                    } else if fixed
                        && ins.memory_base() == Register::None
                        && writable_at(ins.memory_displacement64())
                    {
                        return Err(format!(
                            "it uses writable data at {:#x} from {}",
                            ins.memory_displacement64(),
                            at()
                        ));
                    }
                }
                OpKind::Immediate32 | OpKind::Immediate32to64 | OpKind::Immediate64 if fixed => {
                    let imm = ins.immediate(i);
                    if writable_at(imm) {
                        return Err(format!(
                            "it takes the address {imm:#x} of writable data at {}",
                            at()
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapt_elf::{Load, SymbolSource};

    fn info(kind: ObjectKind) -> ElfFacts {
        ElfFacts {
            kind,
            loads: vec![
                Load {
                    vaddr: 0x1000,
                    memsz: 0x1000,
                    offset: 0x1000,
                    filesz: 0x1000,
                    flags: 5,
                },
                Load {
                    vaddr: 0x2000,
                    memsz: 0x1000,
                    offset: 0x2000,
                    filesz: 0x1000,
                    flags: 4,
                },
                Load {
                    vaddr: 0x3000,
                    memsz: 0x1000,
                    offset: 0x3000,
                    filesz: 0x800,
                    flags: 6,
                },
            ],
            text_relocations: false,
            functions: vec![],
            build_id: None,
            soname: None,
            symbol_source: SymbolSource::None,
        }
    }

    fn func(size: usize) -> FunctionSymbol {
        FunctionSymbol {
            name: "f".into(),
            demangled: None,
            vaddr: 0x1000,
            size: size as u64,
            global: true,
            ifunc: false,
        }
    }

    fn check(kind: ObjectKind, code: &[u8]) -> Result<(), String> {
        check_self_contained(&info(kind), &func(code.len()), code)
    }

    #[test]
    fn self_contained_leaves_pass() {
        // mov eax, edi; lea rcx, [rip + 0xff9] (0x2000, read-only); add eax, [rcx]; ret
        let code = [
            0x89, 0xf8, 0x48, 0x8d, 0x0d, 0xf9, 0x0f, 0x00, 0x00, 0x03, 0x01, 0xc3,
        ];
        assert_eq!(check(ObjectKind::PieExecutable, &code), Ok(()));
        // test edi, edi; je +1 (inside); nop; ret
        assert_eq!(
            check(
                ObjectKind::PieExecutable,
                &[0x85, 0xff, 0x74, 0x01, 0x90, 0xc3]
            ),
            Ok(())
        );
    }

    #[test]
    fn dependencies_on_the_process_are_refused() {
        let pie = ObjectKind::PieExecutable;
        // call rel32
        assert!(check(pie, &[0xe8, 0, 0, 0, 0, 0xc3])
            .unwrap_err()
            .contains("calls"));
        // syscall
        assert!(check(pie, &[0x0f, 0x05, 0xc3])
            .unwrap_err()
            .contains("calls"));
        // jmp rax
        assert!(check(pie, &[0xff, 0xe0]).unwrap_err().contains("indirect"));
        // jmp rel32 far outside (tail call)
        assert!(check(pie, &[0xe9, 0, 0x10, 0, 0])
            .unwrap_err()
            .contains("tail call"));
        // mov eax, [rip + 0x1ffa] → 0x3000 (writable)
        let code = [0x8b, 0x05, 0xfa, 0x1f, 0x00, 0x00, 0xc3];
        assert!(check(pie, &code).unwrap_err().contains("writable"));
        // mov rax, fs:[0]
        let tls = [0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, 0xc3];
        assert!(check(pie, &tls).unwrap_err().contains("thread-local"));
        // ud2
        assert!(check(pie, &[0x0f, 0x0b]).is_err());
        // hlt
        assert!(check(pie, &[0xf4]).is_err());
    }

    #[test]
    fn fixed_executables_refuse_absolute_writable_addresses() {
        // mov eax, [0x3010]
        let abs = [0x8b, 0x04, 0x25, 0x10, 0x30, 0, 0, 0xc3];
        assert!(check(ObjectKind::FixedExecutable, &abs)
            .unwrap_err()
            .contains("writable"));
        // mov edi, 0x3010 (address of a global)
        let imm = [0xbf, 0x10, 0x30, 0, 0, 0xc3];
        assert!(check(ObjectKind::FixedExecutable, &imm)
            .unwrap_err()
            .contains("address"));
        // the same constant in a PIE is just a number
        assert_eq!(check(ObjectKind::PieExecutable, &imm), Ok(()));
        // mov eax, [0x2010] (read-only table) is fine
        let ro = [0x8b, 0x04, 0x25, 0x10, 0x20, 0, 0, 0xc3];
        assert_eq!(check(ObjectKind::FixedExecutable, &ro), Ok(()));
    }
}
