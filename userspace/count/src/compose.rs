// SPDX-License-Identifier: GPL-2.0
//! A library variant with a call counter in front (issue 12 §3): what the
//! adaptive loop injects to measure the candidate's time per call.
//!
//! The counter is appended after the variant's code, so nothing in the
//! code moves:
//!
//! ```text
//! 0                 the variant's code, unchanged but for the
//!                   displacements of its import-slot operands when the
//!                   import table moved to a later page
//! S = len ↑ 16      lock inc qword ptr [rip + data.calls]
//!                   jmp <the entry of the counted function>
//! (the gap between the two filled with nops)
//! ```
//!
//! The result is one function (the counted one, entry `S`) with the
//! variant's imports — or, for a leaf variant, a `fallback` import it
//! never uses, because a data area is laid out after an import table —
//! and a data area of [`DATA_LEN`] bytes; it is verified like any segment
//! with [`adapt_segment::verify_with_data`]. Relocations to the read-only
//! data keep their code offsets, and the module resolves them for wherever
//! it maps the read-only data.

use adapt_segment::import_table::{import_table_offset, SLOT_SIZE};
use adapt_segment::{data_area_offset, Import, Segment, SegmentFile, Variant, FALLBACK};
use iced_x86::{Decoder, DecoderOptions, Encoder};

use crate::data::{CALLS_OFFSET, DATA_LEN};
use crate::generate::GenerateError;
use crate::CountingSegment;

/// Suffix of a counted variant's name: `pclmul` → `pclmul.counted`.
pub const COUNTED_SUFFIX: &str = ".counted";

/// Variant `variant` of `file`'s segment, counting the calls of function
/// `function` (an index into the segment's functions).
pub fn counted_variant(
    file: &SegmentFile,
    variant: usize,
    function: usize,
) -> Result<CountingSegment, GenerateError> {
    let segment = &file.segment;
    let v = segment
        .variants
        .get(variant)
        .ok_or_else(|| GenerateError::Encode(format!("no variant {variant}")))?;
    let f = segment
        .functions
        .get(function)
        .ok_or_else(|| GenerateError::Encode(format!("no function {function}")))?;
    let entry = v
        .entry(function)
        .ok_or_else(|| GenerateError::Encode(format!("no entry for function {function}")))?;
    let imports: Vec<Import> = if file.imports.is_empty() {
        vec![Import {
            name: FALLBACK.to_owned(),
            library: String::new(),
            contract: f.contract.clone(),
        }]
    } else {
        file.imports.clone()
    };

    let start = v.code.len().div_ceil(16) * 16;
    // The stub's length does not depend on where it points (both rel32).
    let stub_len = stub(0, 0, 0)?.len();
    let new_len = start + stub_len;
    let mut code = v.code.clone();
    if !file.imports.is_empty() {
        retarget_slots(&mut code, &v.relocations, file.imports.len(), new_len)?;
    }
    code.resize(start, 0x90);
    let data = data_area_offset(new_len, v.rodata.len(), imports.len());
    code.extend(stub(
        start as u64,
        (data + CALLS_OFFSET) as u64,
        u64::from(entry),
    )?);
    if code.len() != new_len {
        return Err(GenerateError::TooLong(code.len()));
    }

    let name = format!("{}{COUNTED_SUFFIX}", v.name);
    let counted = Segment {
        name: segment.name.clone(),
        version: segment.version,
        description: format!("{} (calls of {} counted)", segment.description, f.symbol),
        build: segment.build.clone(),
        numerics: segment.numerics,
        functions: vec![f.clone()],
        variants: vec![Variant {
            name: name.clone(),
            features: v.features,
            code,
            rodata: v.rodata.clone(),
            rodata_align: v.rodata_align,
            relocations: v.relocations.clone(),
            entry_offsets: vec![start as u32],
        }],
    };
    Ok(CountingSegment {
        file: SegmentFile::new(counted, imports),
        variant: name,
        data_len: DATA_LEN,
    })
}

/// `lock inc qword ptr [rip + data]; jmp entry`, for the code at `at`.
fn stub(at: u64, data: u64, entry: u64) -> Result<Vec<u8>, GenerateError> {
    use iced_x86::{Code, Instruction, MemoryOperand, Register};
    let mem = MemoryOperand::with_base_displ(Register::RIP, data as i64);
    let mut inc = Instruction::with1(Code::Inc_rm64, mem).map_err(enc)?;
    inc.set_has_lock_prefix(true);
    let jmp = Instruction::with_branch(Code::Jmp_rel32_64, entry).map_err(enc)?;
    let mut encoder = Encoder::new(64);
    let first = encoder.encode(&inc, at).map_err(enc)?;
    encoder.encode(&jmp, at + first as u64).map_err(enc)?;
    Ok(encoder.take_buffer())
}

fn enc(e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Encode(e.to_string())
}

/// Moves every RIP-relative operand (without relocation) that points into
/// the import table of `code` (with `imports` slots) to the same slot of
/// the table of a variant of `new_len` bytes of code.
fn retarget_slots(
    code: &mut [u8],
    relocations: &[adapt_segment::Relocation],
    imports: usize,
    new_len: usize,
) -> Result<(), GenerateError> {
    let old_table = import_table_offset(code.len()) as u64;
    let new_table = import_table_offset(new_len) as u64;
    if old_table == new_table {
        return Ok(());
    }
    let shift = new_table - old_table;
    let table_end = old_table + (imports * SLOT_SIZE) as u64;
    let mut patches = Vec::new();
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    while decoder.can_decode() {
        let at = decoder.position();
        let instr = decoder.decode();
        if instr.is_invalid() || !instr.is_ip_rel_memory_operand() {
            continue;
        }
        let target = instr.ip_rel_memory_address();
        if !(old_table..table_end).contains(&target) {
            continue;
        }
        let offsets = decoder.get_constant_offsets(&instr);
        if !offsets.has_displacement() || offsets.displacement_size() != 4 {
            return Err(GenerateError::Encode(format!(
                "import-slot operand at {at:#x} without a 32-bit displacement"
            )));
        }
        let field = at + offsets.displacement_offset();
        if relocations.iter().any(|r| r.offset as usize == field) {
            continue;
        }
        patches.push(field);
    }
    for field in patches {
        let bytes: [u8; 4] = code[field..field + 4].try_into().expect("4 bytes");
        let disp = i32::from_le_bytes(bytes)
            .checked_add(i32::try_from(shift).map_err(enc)?)
            .ok_or_else(|| GenerateError::Encode("displacement overflow".into()))?;
        code[field..field + 4].copy_from_slice(&disp.to_le_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
