//! Prologue relocation: the trampoline that makes "the original function"
//! callable again once its entry holds adapt's `jmp rel32`.
//!
//! The bytes the `jmp` overwrites (whole instructions covering at least
//! [`ADAPT_JMP_LEN`] bytes, see [`crate::prologue`]) are decoded, re-encoded
//! for the trampoline's address with iced-x86's `BlockEncoder` (RIP-relative
//! operands and branches keep their absolute targets; short branches grow to
//! near ones), and followed by a `jmp rel32` to the first byte after them.
//! Calling the trampoline is calling the original function.
//!
//! # What is refused, and why ([`RelocateError`])
//!
//! | refusal | reason |
//! |---|---|
//! | [`RelocateError::TooShort`] | the range is shorter than the 5-byte `jmp`, or the bytes given are shorter than the range |
//! | [`RelocateError::Undecodable`] | bytes that do not decode: nothing can be concluded |
//! | [`RelocateError::NotOnBoundary`] | the range ends inside an instruction: its tail would stay behind the `jmp` |
//! | [`RelocateError::Privileged`] | privileged instructions, traps and interrupts (`int3` is a debugger's breakpoint, `ud2` a deliberate fault) |
//! | [`RelocateError::BranchIntoRange`] | a direct branch (`jmp`, `jcc`, `call`, `loop`, `jrcxz`, `xbegin`) whose target lies inside the displaced range: in the original it would land on the `jmp` or its `int3` fill |
//! | [`RelocateError::FlowEndsEarly`] | `ret`, an indirect or far jump followed by more displaced bytes: those bytes are reached from elsewhere, which the patch forbids |
//! | [`RelocateError::OutOfRange`] | a RIP-relative operand or a branch target (the `jmp` back included) more than ±2 GiB from the trampoline: it cannot be re-encoded with a 32-bit displacement |
//! | [`RelocateError::TooLong`] | the trampoline would not fit the [`TRAMPOLINE_MAX`] bytes a segment reserves for it |
//!
//! The trampoline holds code only (no embedded data): every target is
//! reached with a 32-bit displacement, which the ±2 GiB placement of the
//! segment near the patch site provides in practice. A function starting
//! with `endbr64` keeps it as the trampoline's first instruction, so the
//! trampoline stays a valid target of the segment's indirect `call`/`jmp`
//! through its import slot should user-space IBT be enforced.
//!
//! # Design note: how the trampoline gets into the target (issue 12)
//!
//! The trampoline lives **inside the segment's read+execute mapping**, in the
//! [`TRAMPOLINE_MAX`] bytes the segment format reserves right after a
//! variant's code (`adapt_segment::import_table::trampoline_offset`). Its bytes
//! depend on its own address, so injection takes two steps:
//!
//! 1. the module chooses the placement of the segment (within ±2 GiB of the
//!    patch site) and reports the address of the trampoline area;
//! 2. adaptctl calls [`relocate_prologue`] (or [`relocate_plan`]) with the
//!    live entry bytes it already checked ([`crate::PatchPlan`]) and that
//!    address, and hands the bytes to the module, which copies them into its
//!    own code page **before** the page is mapped into the target (the page
//!    is never writable in the target and never writable+executable
//!    anywhere: the same path as the segment's code). The module checks the
//!    length (at most [`TRAMPOLINE_MAX`]) and that the original bytes it
//!    reads under the rendezvous equal the ones the trampoline was built
//!    from ([`Trampoline::original`]); a mismatch refuses the injection.
//!
//! The address of the trampoline is what adaptctl writes into the import
//! slot named `fallback` (the import table is its own read-only mapping; see
//! `adapt_segment::format`). Revert and the rendezvous treat the trampoline
//! as part of the segment: no thread's IP may lie in it when it is retired,
//! and since a relocated `call` may leave return addresses into it on a
//! stack, a retired trampoline stays mapped (inert) like the rest of a
//! retired segment.

use adapt_abi::ADAPT_JMP_LEN;
use adapt_segment::import_table::TRAMPOLINE_SPACE;
use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Code, Decoder, DecoderError, DecoderOptions, FlowControl,
    Instruction, InstructionBlock, OpKind,
};
use serde::Serialize;

use crate::prologue::{format_instruction, spaced_hex};

/// Most bytes a trampoline may take: the space the segment format reserves
/// for it after a variant's code ([`TRAMPOLINE_SPACE`], owned by the
/// format). Relocating at most 16 displaced bytes (five instructions at
/// most, each growing by at most 7 bytes when a short branch becomes a near
/// one) plus the 5-byte `jmp` back stays well below.
pub const TRAMPOLINE_MAX: usize = TRAMPOLINE_SPACE;

/// Relocated entry instructions followed by a `jmp` back to the original.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Trampoline {
    /// Where the bytes must be placed: they are only correct there.
    pub address: u64,
    /// The trampoline's code (at most [`TRAMPOLINE_MAX`] bytes).
    #[serde(serialize_with = "hex_bytes")]
    pub bytes: Vec<u8>,
    /// Address of the original function's entry.
    pub original_address: u64,
    /// The displaced original bytes the trampoline was built from.
    #[serde(serialize_with = "hex_bytes")]
    pub original: Vec<u8>,
    /// Where the trampoline's final `jmp` goes: the first byte after the
    /// displaced ones.
    pub resumes_at: u64,
    /// The displaced instructions, Intel syntax at their original address.
    pub displaced: Vec<String>,
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Why the entry of a function cannot be relocated into a trampoline.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelocateError {
    #[error(
        "{len} displaced bytes are given ({available} available); a trampoline needs the whole \
         range the {needed}-byte jmp overwrites"
    )]
    TooShort {
        len: usize,
        available: usize,
        needed: u32,
    },
    #[error("the entry does not decode as x86-64 code at offset {offset} ({bytes})")]
    Undecodable { offset: usize, bytes: String },
    #[error(
        "the instruction at offset {offset} (`{instruction}`) ends at {end}, past the {len} \
         displaced bytes: the range does not end on an instruction boundary"
    )]
    NotOnBoundary {
        offset: usize,
        end: usize,
        len: usize,
        instruction: String,
    },
    #[error(
        "the instruction at {at:#x} (`{instruction}`) is privileged, a trap or an interrupt: it \
         is not relocated"
    )]
    Privileged { at: u64, instruction: String },
    #[error(
        "the instruction at {at:#x} (`{instruction}`) branches to {target:#x}, inside the \
         displaced bytes {start:#x}..{end:#x}: that target is overwritten by the jmp"
    )]
    BranchIntoRange {
        at: u64,
        instruction: String,
        target: u64,
        start: u64,
        end: u64,
    },
    #[error(
        "the instruction at {at:#x} (`{instruction}`) ends the flow of control but {remaining} \
         displaced byte(s) follow it: they are reached from elsewhere"
    )]
    FlowEndsEarly {
        at: u64,
        instruction: String,
        remaining: usize,
    },
    #[error(
        "the {what} of the instruction at {at:#x} (`{instruction}`) is {target:#x}, more than \
         ±2 GiB from the trampoline at {trampoline:#x}: it cannot be re-encoded"
    )]
    OutOfRange {
        at: u64,
        instruction: String,
        what: &'static str,
        target: u64,
        trampoline: u64,
    },
    #[error("the trampoline is {len} bytes, more than the {max} reserved for it")]
    TooLong { len: usize, max: usize },
    #[error("iced-x86 could not re-encode the displaced instructions: {0}")]
    Encode(String),
}

/// Builds the trampoline for the function at `address` whose entry bytes
/// are `code` (at least `len` bytes; more are used only to tell a range cut
/// inside an instruction from undecodable bytes), `len` being the number of
/// bytes the `jmp rel32` overwrites, for placement at `new_address`.
pub fn relocate_prologue(
    code: &[u8],
    address: u64,
    len: usize,
    new_address: u64,
) -> Result<Trampoline, RelocateError> {
    if len < ADAPT_JMP_LEN as usize || code.len() < len {
        return Err(RelocateError::TooShort {
            len,
            available: code.len(),
            needed: ADAPT_JMP_LEN,
        });
    }
    let end_address = address.wrapping_add(len as u64);
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut instructions = Vec::new();
    let mut displaced = Vec::new();
    let mut instruction = Instruction::default();
    while decoder.position() < len {
        let offset = decoder.position();
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            let cut = decoder.last_error() == DecoderError::NoMoreBytes;
            if cut && code.len() == len {
                return Err(RelocateError::NotOnBoundary {
                    offset,
                    end: code.len() + 1,
                    len,
                    instruction: "(cut)".into(),
                });
            }
            return Err(RelocateError::Undecodable {
                offset,
                bytes: spaced_hex(&code[offset..(offset + 15).min(code.len())]),
            });
        }
        let end = offset + instruction.len();
        let text = format_instruction(&instruction);
        if end > len {
            return Err(RelocateError::NotOnBoundary {
                offset,
                end,
                len,
                instruction: text,
            });
        }
        check_instruction(&instruction, &text, address, end_address, new_address)?;
        if end < len && ends_flow(&instruction) {
            return Err(RelocateError::FlowEndsEarly {
                at: instruction.ip(),
                instruction: text,
                remaining: len - end,
            });
        }
        displaced.push(text);
        instructions.push(instruction);
    }

    let back = Instruction::with_branch(Code::Jmp_rel32_64, end_address)
        .map_err(|e| RelocateError::Encode(e.to_string()))?;
    if !within_rel32(end_address, new_address) {
        return Err(RelocateError::OutOfRange {
            at: end_address,
            instruction: "jmp back".into(),
            what: "target",
            target: end_address,
            trampoline: new_address,
        });
    }
    instructions.push(back);
    let encoded = BlockEncoder::encode(
        64,
        InstructionBlock::new(&instructions, new_address),
        BlockEncoderOptions::NONE,
    )
    .map_err(|e| RelocateError::Encode(e.to_string()))?;
    let bytes = encoded.code_buffer;
    if bytes.len() > TRAMPOLINE_MAX {
        return Err(RelocateError::TooLong {
            len: bytes.len(),
            max: TRAMPOLINE_MAX,
        });
    }
    Ok(Trampoline {
        address: new_address,
        bytes,
        original_address: address,
        original: code[..len].to_vec(),
        resumes_at: end_address,
        displaced,
    })
}

/// [`relocate_prologue`] for a checked patch ([`crate::PatchPlan`]) of the
/// function at `address`.
pub fn relocate_plan(
    address: u64,
    plan: &crate::PatchPlan,
    new_address: u64,
) -> Result<Trampoline, RelocateError> {
    relocate_prologue(plan.bytes(), address, plan.patch_len as usize, new_address)
}

/// Whether `target` is reachable with a 32-bit displacement from every byte
/// of a trampoline at `trampoline` (conservative by [`TRAMPOLINE_MAX`]).
fn within_rel32(target: u64, trampoline: u64) -> bool {
    let fits = |from: u64| {
        let delta = i128::from(target) - i128::from(from);
        delta >= i128::from(i32::MIN) && delta <= i128::from(i32::MAX)
    };
    fits(trampoline) && fits(trampoline.saturating_add(TRAMPOLINE_MAX as u64))
}

/// The checks of one displaced instruction (flow after it is checked by the
/// caller, which knows whether bytes follow).
fn check_instruction(
    instruction: &Instruction,
    text: &str,
    start: u64,
    end: u64,
    new_address: u64,
) -> Result<(), RelocateError> {
    if instruction.is_privileged()
        || matches!(
            instruction.flow_control(),
            FlowControl::Interrupt | FlowControl::Exception
        )
    {
        return Err(RelocateError::Privileged {
            at: instruction.ip(),
            instruction: text.into(),
        });
    }
    let near = (0..instruction.op_count()).any(|i| {
        matches!(
            instruction.op_kind(i),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        )
    });
    if near {
        let target = instruction.near_branch_target();
        if target >= start && target < end {
            return Err(RelocateError::BranchIntoRange {
                at: instruction.ip(),
                instruction: text.into(),
                target,
                start,
                end,
            });
        }
        if !within_rel32(target, new_address) {
            return Err(RelocateError::OutOfRange {
                at: instruction.ip(),
                instruction: text.into(),
                what: "branch target",
                target,
                trampoline: new_address,
            });
        }
    }
    if instruction.is_ip_rel_memory_operand() {
        let target = instruction.ip_rel_memory_address();
        if !within_rel32(target, new_address) {
            return Err(RelocateError::OutOfRange {
                at: instruction.ip(),
                instruction: text.into(),
                what: "RIP-relative operand",
                target,
                trampoline: new_address,
            });
        }
    }
    Ok(())
}

/// `ret`, indirect or far jumps, far returns: no fall-through.
fn ends_flow(instruction: &Instruction) -> bool {
    match instruction.flow_control() {
        FlowControl::Return | FlowControl::IndirectBranch => true,
        FlowControl::UnconditionalBranch => !matches!(
            instruction.op0_kind(),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
