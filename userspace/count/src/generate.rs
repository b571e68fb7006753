// SPDX-License-Identifier: GPL-2.0
//! Generating a counting segment's code.
//!
//! ```text
//! entry:  lock inc qword ptr [rip + data.calls]
//!         ; with a histogram of argument N (its register R):
//!         mov r11, R
//!         bsr r11, r11             ; ZF: R was 0
//!         jz zero
//!         ; a binary search on r11 (0..=63) by cmp/jae, each leaf:
//!         lock inc qword ptr [rip + data.bucket(r11 + 1)]
//!         jmp qword ptr [rip + slot 0]
//! zero:   lock inc qword ptr [rip + data.bucket(0)]
//!         jmp qword ptr [rip + slot 0]       ; fallback: the original
//! ```
//!
//! Every write is a RIP-relative operand inside the data area (the only
//! writes the verifier allows), the search keeps the code free of indexed
//! stores the verifier could not bound, and no path touches the stack, so
//! every tail jump leaves it exactly as at entry. iced-x86's `BlockEncoder`
//! lays the branches and RIP-relative displacements out for the code at
//! offset 0.

use adapt_segment::{
    data_area_offset, CType, Contract, CpuFeatures, Function, Import, Scalar, Segment, SegmentFile,
    Variant, FALLBACK,
};
use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Code, Instruction, InstructionBlock, MemoryOperand, Register,
};

use crate::data::{bucket_offset, CALLS_OFFSET, DATA_LEN};

/// Highest argument index (0-based) whose histogram can be taken: the six
/// System V integer argument registers.
pub const MAX_ARG: u8 = 5;

const ARG_REGISTERS: [Register; 6] = [
    Register::RDI,
    Register::RSI,
    Register::RDX,
    Register::RCX,
    Register::R8,
    Register::R9,
];

/// Name of the generated segment (shown by `adaptctl list`).
pub const SEGMENT_NAME: &str = "count";

/// The entry's symbol in the generated segment: the counter does not
/// depend on what it counts, so one upload serves every function.
pub const FUNCTION_SYMBOL: &str = "counted";

/// Why no counting segment was generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(
        "argument {0} is not one of the six integer argument registers: \
         `--arg` takes 0 to {MAX_ARG} (0-based, integer and pointer arguments only)"
    )]
    Argument(u8),
    #[error("encoding the counting code failed: {0}")]
    Encode(String),
    #[error("the counting code is {0} bytes, more than the layout assumed")]
    TooLong(usize),
}

/// A generated counting segment, ready to verify and upload.
#[derive(Clone, Debug)]
pub struct CountingSegment {
    /// The segment (one variant, one function) and its one import,
    /// `fallback`.
    pub file: SegmentFile,
    /// The variant to inject.
    pub variant: String,
    /// Bytes of its data area.
    pub data_len: u32,
}

/// The contract the generated code declares: it passes every argument
/// through untouched, so it does not depend on the counted function's.
fn pass_through() -> Contract {
    Contract {
        returns: CType::value(Scalar::Void, "void"),
        params: Vec::new(),
    }
}

/// The counting segment: counts calls, and with `arg` the log2 histogram
/// of integer argument `arg` (0-based).
pub fn counting_segment(arg: Option<u8>) -> Result<CountingSegment, GenerateError> {
    let register = match arg {
        None => None,
        Some(n) => Some(
            *ARG_REGISTERS
                .get(usize::from(n))
                .ok_or(GenerateError::Argument(n))?,
        ),
    };
    let code = encode(register)?;
    let variant = match arg {
        None => "calls".to_owned(),
        Some(n) => format!("calls-arg{n}"),
    };
    let segment = Segment {
        name: SEGMENT_NAME.to_owned(),
        version: 1,
        description: "generated: counts calls (and one argument's log2 histogram), then runs \
                      the original"
            .to_owned(),
        build: format!("adapt-count {}", env!("CARGO_PKG_VERSION")),
        numerics: Default::default(),
        functions: vec![Function {
            symbol: FUNCTION_SYMBOL.to_owned(),
            library: String::new(),
            contract: pass_through(),
            reference: "the original function, through its trampoline".to_owned(),
        }],
        variants: vec![Variant {
            name: variant.clone(),
            features: CpuFeatures::default(),
            code,
            rodata: Vec::new(),
            rodata_align: 1,
            relocations: Vec::new(),
            entry_offsets: vec![0],
        }],
    };
    let imports = vec![Import {
        name: FALLBACK.to_owned(),
        library: String::new(),
        contract: pass_through(),
    }];
    Ok(CountingSegment {
        file: SegmentFile::new(segment, imports),
        variant,
        data_len: DATA_LEN,
    })
}

/// Code length the layout below is computed for: code, trampoline space
/// and all fit in the first page, so the import table is at 0x1000 and the
/// data area at 0x2000.
const CODE_BUDGET: usize = 2048;

/// Labels (instruction IPs the branches refer to) live far above every
/// address the code refers to, so the encoder never confuses the two.
const LABEL_BASE: u64 = 0x4000_0000;

struct Asm {
    out: Vec<Instruction>,
    next_label: u64,
    data: u64,
    slot: u64,
}

impl Asm {
    fn label(&mut self) -> u64 {
        self.next_label += 1;
        LABEL_BASE + self.next_label
    }

    /// Appends `i` (at `label` when given: a branch target; every
    /// instruction gets an IP of its own).
    fn push(&mut self, mut i: Instruction, label: Option<u64>) {
        let ip = label.unwrap_or_else(|| self.label());
        i.set_ip(ip);
        self.out.push(i);
    }

    fn count(&mut self, offset: usize, label: Option<u64>) -> Result<(), GenerateError> {
        let mem = MemoryOperand::with_base_displ(Register::RIP, (self.data + offset as u64) as i64);
        let mut inc = Instruction::with1(Code::Inc_rm64, mem).map_err(enc)?;
        inc.set_has_lock_prefix(true);
        self.push(inc, label);
        Ok(())
    }

    fn tail_jump(&mut self) -> Result<(), GenerateError> {
        let mem = MemoryOperand::with_base_displ(Register::RIP, self.slot as i64);
        let jmp = Instruction::with1(Code::Jmp_rm64, mem).map_err(enc)?;
        self.push(jmp, None);
        Ok(())
    }

    /// Counts bucket `r11 + 1` for `r11` in `lo..=hi`, then tail-jumps.
    fn search(&mut self, lo: u32, hi: u32, label: Option<u64>) -> Result<(), GenerateError> {
        if lo == hi {
            self.count(bucket_offset(lo as usize + 1), label)?;
            return self.tail_jump();
        }
        let mid = (lo + hi).div_ceil(2);
        let upper = self.label();
        let cmp = Instruction::with2(Code::Cmp_rm32_imm8, Register::R11D, mid).map_err(enc)?;
        self.push(cmp, label);
        let jae = Instruction::with_branch(Code::Jae_rel32_64, upper).map_err(enc)?;
        self.push(jae, None);
        self.search(lo, mid - 1, None)?;
        self.search(mid, hi, Some(upper))
    }
}

fn enc(e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Encode(e.to_string())
}

fn encode(register: Option<Register>) -> Result<Vec<u8>, GenerateError> {
    let data = data_area_offset(CODE_BUDGET, 0, 1) as u64;
    let slot = adapt_segment::import_table::slot_offset(CODE_BUDGET, 0) as u64;
    let mut asm = Asm {
        out: Vec::new(),
        next_label: 0,
        data,
        slot,
    };
    asm.count(CALLS_OFFSET, None)?;
    if let Some(reg) = register {
        let zero = asm.label();
        let mov = Instruction::with2(Code::Mov_rm64_r64, Register::R11, reg).map_err(enc)?;
        asm.push(mov, None);
        let bsr =
            Instruction::with2(Code::Bsr_r64_rm64, Register::R11, Register::R11).map_err(enc)?;
        asm.push(bsr, None);
        let jz = Instruction::with_branch(Code::Je_rel32_64, zero).map_err(enc)?;
        asm.push(jz, None);
        asm.search(0, 63, None)?;
        asm.count(bucket_offset(0), Some(zero))?;
    }
    asm.tail_jump()?;
    let encoded = BlockEncoder::encode(
        64,
        InstructionBlock::new(&asm.out, 0),
        BlockEncoderOptions::NONE,
    )
    .map_err(enc)?;
    let code = encoded.code_buffer;
    // The layout (import table, data area) was computed for a code length
    // up to the budget: it must be the same for the real length.
    let same = data_area_offset(code.len(), 0, 1) as u64 == data
        && adapt_segment::import_table::slot_offset(code.len(), 0) as u64 == slot;
    if code.len() > CODE_BUDGET || !same {
        return Err(GenerateError::TooLong(code.len()));
    }
    Ok(code)
}

#[cfg(test)]
pub(crate) mod tests;
