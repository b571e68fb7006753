//! Which bytes at a function's entry the `jmp rel32` replaces, and whether
//! replacing them is safe.
//!
//! The patch is the first instructions of the function up to the end of the
//! first instruction that ends at or after [`ADAPT_JMP_LEN`] (5) bytes, so it
//! ends on an instruction boundary; more than [`ADAPT_PATCH_MAX`] (16) is
//! refused. The module writes the `jmp` and fills the rest with `int3`.
//!
//! Replacing those bytes is only safe when no code can arrive *inside* them:
//! a thread branching to the middle of the patch would execute half of the
//! `jmp` or an `int3`. So the whole function (its bytes from the ELF file,
//! `st_size` long) is decoded, and the patch is refused when
//! - any direct branch (`jmp`, `jcc`, `call`, `loop`, `jrcxz`, `xbegin`)
//!   targets an address strictly inside the patch (a branch to the entry
//!   itself is fine: it reaches the `jmp`);
//! - the function contains an indirect `jmp` that may be a jump table
//!   (through a register, or through memory other than a single RIP-relative
//!   slot, which is a tail call through the GOT): its targets are unknown,
//!   unless the caller allows it ([`CheckOptions::allow_indirect_jumps`]);
//! - a byte of the function does not decode (data inside code: nothing can
//!   be concluded).
//!
//! Compilers also branch into a function from the parts they split off it
//! (`NAME.cold`, `NAME.part.0`, …); [`crate::inspect`] runs the same direct
//! branch check over those.

use adapt_abi::{ADAPT_JMP_LEN, ADAPT_PATCH_MAX};
use iced_x86::{
    Decoder, DecoderOptions, FastFormatter, FlowControl, Instruction, OpKind, Register,
};
use serde::Serialize;

/// What the patch replaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PatchPlan {
    /// Bytes replaced: [`ADAPT_JMP_LEN`]`..=`[`ADAPT_PATCH_MAX`], ending on an
    /// instruction boundary.
    pub patch_len: u32,
    /// The current bytes at the entry (first `patch_len`; the rest zero), as
    /// the module expects them.
    #[serde(serialize_with = "hex_bytes")]
    pub expected: [u8; ADAPT_PATCH_MAX],
    /// The instructions replaced, in Intel syntax.
    pub replaced: Vec<String>,
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8; ADAPT_PATCH_MAX], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

impl PatchPlan {
    /// The replaced bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.expected[..self.patch_len as usize]
    }
}

/// Knobs of the check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Accept functions with indirect jumps whose targets are unknown
    /// (jump tables). The caller vouches that none of them targets the
    /// function's first bytes.
    pub allow_indirect_jumps: bool,
}

/// Why the entry of a function cannot be patched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrologueError {
    #[error(
        "the function is {size} bytes long, shorter than the {needed}-byte patch its entry needs: \
         the jmp would overwrite the next function"
    )]
    TooShort { size: u64, needed: u64 },
    #[error("its entry does not decode as x86-64 code at offset {offset} ({bytes})")]
    Undecodable { offset: u64, bytes: String },
    #[error(
        "its first instructions ({replaced}) end {len} bytes after the entry, more than the {max} \
         bytes a patch may replace"
    )]
    PatchTooLong {
        len: u64,
        max: usize,
        replaced: String,
    },
    #[error(
        "the instruction at {from:#x} (`{instruction}`) branches to {to:#x}, inside the {patch_len} \
         bytes the jmp replaces: a thread taking that branch would run half an instruction"
    )]
    BranchIntoPatch {
        from: u64,
        to: u64,
        instruction: String,
        patch_len: u32,
    },
    #[error(
        "the instruction at {at:#x} (`{instruction}`) is an indirect jump (a jump table?) whose \
         targets cannot be checked against the replaced bytes; pass --allow-indirect-jumps if you \
         know none of them is among the first {patch_len} bytes"
    )]
    IndirectJump {
        at: u64,
        instruction: String,
        patch_len: u32,
    },
}

/// Decides the patch for a function whose current entry bytes are `live`
/// (at least [`ADAPT_PATCH_MAX`] bytes when the function is that long) and
/// whose whole body, as stored in its ELF file, is `body` (`st_size` bytes),
/// the function starting at `address`.
pub fn plan_patch(
    address: u64,
    live: &[u8],
    body: &[u8],
    options: CheckOptions,
) -> Result<PatchPlan, PrologueError> {
    let size = body.len() as u64;
    if size < u64::from(ADAPT_JMP_LEN) {
        return Err(PrologueError::TooShort {
            size,
            needed: u64::from(ADAPT_JMP_LEN),
        });
    }
    let (patch_len, replaced) = patch_length(address, live)?;
    if u64::from(patch_len) > size {
        return Err(PrologueError::TooShort {
            size,
            needed: u64::from(patch_len),
        });
    }
    check_branches(address, body, address, patch_len, options)?;
    let mut expected = [0u8; ADAPT_PATCH_MAX];
    expected[..patch_len as usize].copy_from_slice(&live[..patch_len as usize]);
    Ok(PatchPlan {
        patch_len,
        expected,
        replaced,
    })
}

/// Length of the patch at the entry whose bytes are `live`, and the text of
/// the instructions it replaces.
fn patch_length(address: u64, live: &[u8]) -> Result<(u32, Vec<String>), PrologueError> {
    let mut decoder = Decoder::with_ip(64, live, address, DecoderOptions::NONE);
    let mut replaced = Vec::new();
    let mut end = 0u64;
    while end < u64::from(ADAPT_JMP_LEN) {
        let offset = decoder.position() as u64;
        if !decoder.can_decode() {
            return Err(PrologueError::Undecodable {
                offset,
                bytes: spaced_hex(&live[offset as usize..]),
            });
        }
        let instruction = decoder.decode();
        if instruction.is_invalid() {
            return Err(PrologueError::Undecodable {
                offset,
                bytes: spaced_hex(&live[offset as usize..(offset as usize + 15).min(live.len())]),
            });
        }
        replaced.push(format_instruction(&instruction));
        end = offset + instruction.len() as u64;
    }
    if end > ADAPT_PATCH_MAX as u64 {
        return Err(PrologueError::PatchTooLong {
            len: end,
            max: ADAPT_PATCH_MAX,
            replaced: replaced.join("; "),
        });
    }
    // `end` is at most ADAPT_PATCH_MAX (16): it fits a u32.
    Ok((end as u32, replaced))
}

/// Refuses `code` (starting at `ip`) when a branch in it may land strictly
/// inside the `patch_len` bytes at `entry`. Used for the function itself and
/// for the parts split off it.
pub fn check_branches(
    ip: u64,
    code: &[u8],
    entry: u64,
    patch_len: u32,
    options: CheckOptions,
) -> Result<(), PrologueError> {
    let inside = |target: u64| target > entry && target < entry + u64::from(patch_len);
    let mut decoder = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    while decoder.can_decode() {
        let offset = decoder.position();
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            return Err(PrologueError::Undecodable {
                offset: offset as u64,
                bytes: spaced_hex(&code[offset..(offset + 15).min(code.len())]),
            });
        }
        let near = (0..instruction.op_count()).any(|i| {
            matches!(
                instruction.op_kind(i),
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            )
        });
        if near && inside(instruction.near_branch_target()) {
            return Err(PrologueError::BranchIntoPatch {
                from: instruction.ip(),
                to: instruction.near_branch_target(),
                instruction: format_instruction(&instruction),
                patch_len,
            });
        }
        if instruction.flow_control() == FlowControl::IndirectBranch
            && !options.allow_indirect_jumps
            && !is_got_tail_call(&instruction)
        {
            return Err(PrologueError::IndirectJump {
                at: instruction.ip(),
                instruction: format_instruction(&instruction),
                patch_len,
            });
        }
    }
    Ok(())
}

/// `jmp qword ptr [rip+disp]`: a tail call through one GOT slot, which
/// leaves the function (a jump table needs an index).
fn is_got_tail_call(instruction: &Instruction) -> bool {
    instruction.op_count() == 1
        && instruction.op0_kind() == OpKind::Memory
        && instruction.is_ip_rel_memory_operand()
        && instruction.memory_index() == Register::None
}

/// `instruction` in Intel syntax, lowercase hex with `0x`.
///
/// iced's fast formatter: the first use of its full Intel formatter builds
/// tables for every instruction (about 1 ms natively, over 100 ms in an
/// emulated guest), on every `inject`; the fast one's are a tenth of that.
pub(crate) fn format_instruction(instruction: &Instruction) -> String {
    let mut formatter = FastFormatter::new();
    let options = formatter.options_mut();
    options.set_use_hex_prefix(true);
    options.set_uppercase_hex(false);
    options.set_space_after_operand_separator(true);
    let mut text = String::new();
    formatter.format(instruction, &mut text);
    text
}

/// `bytes` in hex, a space between bytes.
pub(crate) fn spaced_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| adapt_segment::codec::hex(&[*b]))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: u64 = 0x7000_1000;
    const NONE: CheckOptions = CheckOptions {
        allow_indirect_jumps: false,
    };

    fn plan(body: &[u8]) -> Result<PatchPlan, PrologueError> {
        let live = &body[..body.len().min(32)];
        plan_patch(AT, live, body, NONE)
    }

    #[test]
    fn the_patch_ends_at_the_first_instruction_boundary_at_or_after_five_bytes() {
        // zlib's crc32: mov edx,edx (2) ; jmp rel32 (5) → 7.
        let crc32 = [0x89, 0xd2, 0xe9, 0x69, 0xe8, 0xff, 0xff];
        let p = plan(&crc32).unwrap();
        assert_eq!(p.patch_len, 7);
        assert_eq!(p.bytes(), &crc32);
        assert_eq!(&p.expected[7..], &[0; 9]);
        assert_eq!(p.replaced, ["mov edx, edx", "jmp 0x6ffff870"]);
        // push rbp (1); mov rbp,rsp (3); sub rsp,0x10 (4) → 8.
        let frame = [0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0xc9, 0xc3];
        assert_eq!(plan(&frame).unwrap().patch_len, 8);
        // endbr64 (4) ; push rbp (1) → exactly 5.
        let cet = [0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x5d, 0xc3];
        assert_eq!(plan(&cet).unwrap().patch_len, 5);
    }

    #[test]
    fn short_functions_are_refused() {
        // xor eax,eax ; ret
        let err = plan(&[0x31, 0xc0, 0xc3]).unwrap_err();
        assert_eq!(err, PrologueError::TooShort { size: 3, needed: 5 });
        // mov eax,edi (2); imul eax,eax,0x1000 (6) is 8 bytes, then ret: the
        // function is 9 bytes and fine; cut to 6 bytes it is too short for
        // its own 8-byte patch.
        let body = [0x89, 0xf8, 0x69, 0xc0, 0x00, 0x10, 0x00, 0x00, 0xc3];
        assert_eq!(plan(&body).unwrap().patch_len, 8);
        let err = plan_patch(AT, &body, &body[..6], NONE).unwrap_err();
        assert_eq!(err, PrologueError::TooShort { size: 6, needed: 8 });
    }

    #[test]
    fn a_patch_longer_than_sixteen_bytes_is_refused() {
        // nop (1) x4 then movabs rax, imm64 (10): ends at 14, fine.
        let mut body = vec![0x90; 4];
        body.extend([0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 0xc3]);
        assert_eq!(plan(&body).unwrap().patch_len, 14);
        // A 13-byte instruction starting at 4 ends at 17.
        let mut long = vec![0x90; 4];
        // lock add dword ptr fs:[rax+rbx*1+0x12345678], 0x12345678 with prefixes
        long.extend([
            0x64, 0x66, 0x67, 0xf0, 0x81, 0x84, 0x18, 0x78, 0x56, 0x34, 0x12, 0x78, 0x56,
        ]);
        long.extend([0xc3; 8]);
        let err = plan(&long).unwrap_err();
        assert!(
            matches!(err, PrologueError::PatchTooLong { len, .. } if len > 16),
            "{err:?}"
        );
    }

    #[test]
    fn undecodable_entries_are_refused() {
        let err = plan(&[0x0f, 0x0b, 0x06, 0x06, 0x06, 0x06]).unwrap_err();
        assert!(
            matches!(err, PrologueError::Undecodable { offset: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_branch_into_the_patch_is_refused_and_one_to_the_entry_is_not() {
        // 0: xor eax,eax (2)  2: add eax,edi (2)  4: dec edi (2)  6: jnz 2  8: ret
        // The loop head at offset 2 is inside the 6-byte patch.
        let body = [0x31, 0xc0, 0x01, 0xf8, 0xff, 0xcf, 0x75, 0xfa, 0xc3];
        let err = plan(&body).unwrap_err();
        assert_eq!(
            err,
            PrologueError::BranchIntoPatch {
                from: AT + 6,
                to: AT + 2,
                instruction: "jne 0x70001002".into(),
                patch_len: 6
            }
        );
        assert!(err.to_string().contains("half an instruction"));
        // The same loop back to the entry itself: fine.
        // 0: add eax,edi (2)  2: dec edi (2)  4: test edi,edi (2)  6: jnz 0  8: ret
        let to_entry = [0x01, 0xf8, 0xff, 0xcf, 0x85, 0xff, 0x75, 0xf8, 0xc3];
        assert_eq!(plan(&to_entry).unwrap().patch_len, 6);
        // A branch to exactly the end of the patch is fine too.
        // 0: jmp +4 (2) → 6 ; 2: nop4 ; 6: ret
        let to_end = [0xeb, 0x04, 0x0f, 0x1f, 0x40, 0x00, 0xc3];
        assert_eq!(plan(&to_end).unwrap().patch_len, 6);
    }

    #[test]
    fn jump_tables_are_refused_unless_allowed_and_got_tail_calls_pass() {
        // 0: mov eax,edi (2) 2: nop5 (5) 7: jmp rax (2) 9: ret
        let body = [0x89, 0xf8, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0xff, 0xe0, 0xc3];
        let err = plan(&body).unwrap_err();
        assert!(
            matches!(err, PrologueError::IndirectJump { at, .. } if at == AT + 7),
            "{err:?}"
        );
        assert!(err.to_string().contains("--allow-indirect-jumps"));
        let allowed = CheckOptions {
            allow_indirect_jumps: true,
        };
        assert_eq!(plan_patch(AT, &body, &body, allowed).unwrap().patch_len, 7);
        // jmp qword ptr [rip+0x100]: a tail call through the GOT.
        let got = [
            0x89, 0xf8, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0xff, 0x25, 0x00, 0x01, 0x00, 0x00,
        ];
        assert_eq!(plan(&got).unwrap().patch_len, 7);
        // jmp qword ptr [rip+rax*8...] cannot be encoded; a table through a
        // base and an index can: jmp qword ptr [rdx+rax*8].
        let table = [0x89, 0xf8, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0xff, 0x24, 0xc2];
        assert!(matches!(
            plan(&table),
            Err(PrologueError::IndirectJump { .. })
        ));
    }

    #[test]
    fn split_parts_are_checked_with_their_own_addresses() {
        // A .cold part at another address jumping back to entry+2.
        let cold_at = AT + 0x5000;
        // jmp rel32 to AT+2: target - (cold_at + 5)
        let rel = ((AT + 2) as i64 - (cold_at + 5) as i64) as i32;
        let mut cold = vec![0xe9];
        cold.extend(rel.to_le_bytes());
        let err = check_branches(cold_at, &cold, AT, 7, NONE).unwrap_err();
        assert!(
            matches!(err, PrologueError::BranchIntoPatch { to, .. } if to == AT + 2),
            "{err:?}"
        );
        assert!(
            check_branches(cold_at, &cold, AT, 2, NONE).is_ok(),
            "AT+2 is the end of a 2-byte patch"
        );
    }
}
