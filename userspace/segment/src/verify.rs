// SPDX-License-Identifier: GPL-2.0
//! The verifier: decodes every byte of a variant's code with iced-x86 and
//! refuses anything a leaf, position-independent, unprivileged function that
//! touches only its arguments' memory (and its own read-only data) would not
//! contain.
//!
//! The code is decoded by a linear sweep from offset 0 to the end, so every
//! byte belongs to exactly one decoded instruction; branches and entry points
//! must land on the start of one of them. Relocations are resolved for a
//! virtual layout (code at address 0, read-only data at [`VIRTUAL_RODATA`])
//! before decoding, so RIP-relative operands are checked where they will
//! really point. Rules, checked in this order for each instruction (the first
//! one that applies is reported):
//!
//! | rule | refused |
//! |---|---|
//! | [`Rule::Invalid`] | bytes that do not decode, or an instruction cut by the end of the code |
//! | [`Rule::SystemCall`] | `syscall`, `sysenter`, `sysexit`, `sysret`, `int n`, `int3`, `int1`, `into` |
//! | [`Rule::Privileged`] | CPL-0 and IOPL instructions (iced's `is_privileged`, plus VM entry/exit calls) |
//! | [`Rule::Trap`] | `ud0`, `ud1`, `ud2` (a fault inside a segment kills or reverts the target) |
//! | [`Rule::IndirectBranch`] | jumps and calls through a register or memory, far jumps, calls and returns (except, in a segment with imports, `call`/`jmp qword ptr [rip+slot]` on a declared import slot) |
//! | [`Rule::Call`] | any direct call: segments call nothing but their imports |
//! | [`Rule::ProcessState`] | writes to segment registers (`mov fs, ax`, `pop gs`, `lss`, ...) and `popf`, which would change the target thread's TLS base or trap flags |
//! | [`Rule::Relocation`] | a relocation whose field is not the 32-bit displacement of a RIP-relative operand |
//! | [`Rule::SegmentOverride`] | memory operands through `fs` or `gs` (thread-local storage of the target) |
//! | [`Rule::AbsoluteAddress`] | memory operands with neither base nor index register (fixed addresses) |
//! | [`Rule::RipRelative`] | RIP-relative operands not inside the code (without relocation) or inside the read-only data (with one) |
//! | [`Rule::SelfWrite`] | writes through a RIP-relative operand (to the segment's own code or data), except into a per-injection data area ([`verify_with_data`]) |
//! | [`Rule::UndeclaredFeature`] | instructions whose CPUID features are neither baseline ([`BASELINE_CPUID`]) nor made available by the variant's declared features |
//! | [`Rule::BranchTarget`] | direct branches to outside the code or into the middle of an instruction |
//! | [`Rule::EntryPoint`] | entry points not at the start of an instruction |
//! | [`Rule::FallsOffEnd`] | a last instruction that is not `ret`, an unconditional `jmp` or a tail jump through an import slot |
//! | [`Rule::StackAlignment`] | (segments with imports) a `call` through an import slot where `rsp % 16 != 0`, a tail jump or `ret` with the stack not as at entry |
//! | [`Rule::StackDepth`] | (segments with imports) a change of `rsp` the stack-depth analysis cannot follow, a depth that differs where paths join, `rsp` above the entry's |
//!
//! # Imports (segments of format version 2)
//!
//! A segment that declares imports ([`crate::SegmentFile::imports`],
//! verified with [`verify_with_imports`] or [`SegmentFile::verify`]) may
//! leave its code in exactly one way more: `call qword ptr [rip+d]` or
//! `jmp qword ptr [rip+d]` (no relocation, no segment override) whose
//! operand is exactly slot `m < imports.len()` of the variant's import
//! table, at code offset [`slot_offset`]`(code.len(), m)`. Every other
//! indirect transfer stays refused, and so does every other access to the
//! table.
//!
//! Calls need the System V stack alignment (`rsp % 16 == 0` before `call`;
//! at entry `rsp % 16 == 8`), so each variant with imports is also run
//! through a stack-depth analysis: from each entry (depth 0), along
//! fall-through and direct branches, it tracks the bytes below the entry's
//! `rsp` through `push`, `pop`, `sub/add rsp, imm`, `lea rsp, [rsp|rbp+d]`,
//! `mov rbp, rsp` / `mov rsp, rbp` / `leave` (a frame pointer), and
//! `and rsp, -2^k` (k ≥ 4; after it only the depth modulo 16 is known). A
//! call through a slot needs a depth ≡ 8 (mod 16); a tail jump through a
//! slot and `ret` need depth 0 exactly. Any other write to `rsp`, a depth
//! that differs where paths join, or a `pop` above the entry's `rsp`, is
//! refused: the analysis proves alignment or the segment is refused.
//!
//! Segments without imports are verified exactly as before (no analysis, the
//! same rules and messages).

use std::fmt;

use iced_x86::{
    Code, CpuidFeature, Decoder, DecoderError, DecoderOptions, FlowControl, Formatter, Instruction,
    InstructionInfoFactory, IntelFormatter, Mnemonic, OpAccess, OpKind, Register,
};
use serde::Serialize;

use crate::codec::hex;
use crate::error::FormatError;
use crate::format::import_table::{import_table_offset, slot_offset, SLOT_SIZE};
use crate::format::{Import, Segment, SegmentFile, Variant};
use crate::reloc::apply_relocations;
use crate::validate::validate_imports;

/// CPUID features every x86-64 CPU has; instructions needing only these are
/// allowed in every variant: the 8086–486 integer instruction sets, 64-bit
/// mode, `cmov`, `cmpxchg8b`, x87, SSE, SSE2, the multi-byte `nop` and
/// `pause`. MMX, `cpuid`, `rdtsc`, `cmpxchg16b`, `lahf`-in-64-bit and the like
/// are not included: a segment that needs them must say so, and none can.
pub const BASELINE_CPUID: &[CpuidFeature] = &[
    CpuidFeature::INTEL8086,
    CpuidFeature::INTEL186,
    CpuidFeature::INTEL286,
    CpuidFeature::INTEL386,
    CpuidFeature::INTEL486,
    CpuidFeature::X64,
    CpuidFeature::CMOV,
    CpuidFeature::CX8,
    CpuidFeature::FPU,
    CpuidFeature::FPU287,
    CpuidFeature::FPU387,
    CpuidFeature::SSE,
    CpuidFeature::SSE2,
    CpuidFeature::MULTIBYTENOP,
    CpuidFeature::PAUSE,
];

/// Address at which the verifier places the read-only data (code is at 0).
pub const VIRTUAL_RODATA: u64 = 0x4000_0000;

/// Most refusals collected for one variant before the verifier stops.
pub const MAX_REFUSALS: usize = 100;

/// A verifier rule (see the module documentation for what each refuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Undecodable or truncated instruction.
    Invalid,
    /// System call or software interrupt.
    SystemCall,
    /// Privileged instruction.
    Privileged,
    /// `ud0`/`ud1`/`ud2`.
    Trap,
    /// Indirect or far control transfer.
    IndirectBranch,
    /// Direct call.
    Call,
    /// Write to a segment register or the flags register.
    ProcessState,
    /// Relocation not on a RIP-relative displacement.
    Relocation,
    /// `fs`/`gs` memory operand.
    SegmentOverride,
    /// Memory operand at a fixed address.
    AbsoluteAddress,
    /// RIP-relative operand outside the segment's code/data.
    RipRelative,
    /// Write to the segment's own code or data.
    SelfWrite,
    /// CPUID feature not declared.
    UndeclaredFeature,
    /// Branch target outside the code or inside an instruction.
    BranchTarget,
    /// Entry point not at an instruction start.
    EntryPoint,
    /// Execution can run past the end of the code.
    FallsOffEnd,
    /// A call through an import slot with a misaligned stack, or a tail
    /// jump or return with the stack not as at entry.
    StackAlignment,
    /// The stack depth cannot be followed (or differs at a join).
    StackDepth,
}

impl Rule {
    /// The rule's name as printed and serialized (`kebab-case`).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Invalid => "invalid",
            Rule::SystemCall => "system-call",
            Rule::Privileged => "privileged",
            Rule::Trap => "trap",
            Rule::IndirectBranch => "indirect-branch",
            Rule::Call => "call",
            Rule::ProcessState => "process-state",
            Rule::Relocation => "relocation",
            Rule::SegmentOverride => "segment-override",
            Rule::AbsoluteAddress => "absolute-address",
            Rule::RipRelative => "rip-relative",
            Rule::SelfWrite => "self-write",
            Rule::UndeclaredFeature => "undeclared-feature",
            Rule::BranchTarget => "branch-target",
            Rule::EntryPoint => "entry-point",
            Rule::FallsOffEnd => "falls-off-end",
            Rule::StackAlignment => "stack-alignment",
            Rule::StackDepth => "stack-depth",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One refused instruction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The variant it belongs to.
    pub variant: String,
    /// Offset of the instruction in the variant's code.
    pub offset: u32,
    /// Its bytes, hex.
    pub bytes: String,
    /// The instruction in Intel syntax (addresses are code offsets; the
    /// read-only data appears at [`VIRTUAL_RODATA`]).
    pub instruction: String,
    /// The rule it breaks.
    pub rule: Rule,
    /// Why, in words.
    pub detail: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "variant {}: offset {:#x}: `{}` ({}): {} [rule {}]",
            self.variant, self.offset, self.instruction, self.bytes, self.detail, self.rule
        )
    }
}

/// Why a segment failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The segment is structurally wrong (see [`Segment::validate`]).
    #[error("malformed segment: {0}")]
    Malformed(#[from] FormatError),
    /// Instructions were refused; at most [`MAX_REFUSALS`] per variant.
    #[error("{} refused instruction(s), first: {}", .0.len(), .0.first().map(|r| r.to_string()).unwrap_or_default())]
    Refused(Vec<Refusal>),
}

impl VerifyError {
    /// The refusals (empty for a malformed segment).
    pub fn refusals(&self) -> &[Refusal] {
        match self {
            VerifyError::Refused(r) => r,
            VerifyError::Malformed(_) => &[],
        }
    }
}

/// What the verifier saw in an accepted variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VariantReport {
    /// Variant name.
    pub variant: String,
    /// Instructions decoded.
    pub instructions: usize,
    /// Code bytes.
    pub code_bytes: usize,
    /// CPUID features used beyond the baseline, iced's names, sorted.
    pub features_used: Vec<String>,
}

/// Verifies every variant of `segment` (after [`Segment::validate`]), a
/// segment without imports: no control transfer may leave its code.
pub fn verify_segment(segment: &Segment) -> Result<Vec<VariantReport>, VerifyError> {
    verify_with_imports(segment, &[])
}

impl SegmentFile {
    /// Verifies every variant of the file's segment with its imports (see
    /// [`verify_with_imports`]).
    pub fn verify(&self) -> Result<Vec<VariantReport>, VerifyError> {
        verify_with_imports(&self.segment, &self.imports)
    }
}

/// Verifies every variant of `segment` whose file declares `imports` (after
/// [`Segment::validate`] and the import checks of
/// [`SegmentFile::validate`]): calls and tail jumps through the declared
/// slots are allowed, and the stack alignment at each is proven (see the
/// module documentation). With no imports this is [`verify_segment`].
pub fn verify_with_imports(
    segment: &Segment,
    imports: &[Import],
) -> Result<Vec<VariantReport>, VerifyError> {
    verify_with_data(segment, imports, 0)
}

/// [`verify_with_imports`] for variants that also get a per-injection data
/// area of `data_len` bytes (generated code such as a counting segment;
/// see [`data_area_offset`]): RIP-relative reads and writes (no
/// relocation) that lie wholly inside the area are allowed, and nothing
/// else about the rules changes. A data area needs at least one import
/// (it is laid out after the import table) and at most
/// [`crate::limits::MAX_DATA`] bytes.
pub fn verify_with_data(
    segment: &Segment,
    imports: &[Import],
    data_len: u32,
) -> Result<Vec<VariantReport>, VerifyError> {
    segment.validate()?;
    validate_imports(segment, imports)?;
    if data_len > 0 && (imports.is_empty() || data_len as usize > crate::limits::MAX_DATA) {
        return Err(FormatError::Invalid {
            what: format!("segment {}: data area", segment.name),
            why: format!(
                "{data_len} bytes with {} imports: a data area needs imports and at most {} bytes",
                imports.len(),
                crate::limits::MAX_DATA
            ),
        }
        .into());
    }
    let mut reports = Vec::new();
    let mut refusals = Vec::new();
    for v in &segment.variants {
        let data = (data_len > 0).then(|| {
            (
                data_area_offset(v.code.len(), v.rodata.len(), imports.len()) as u64,
                u64::from(data_len),
            )
        });
        match verify_checked(v, imports.len(), data) {
            Ok(r) => reports.push(r),
            Err(mut r) => refusals.append(&mut r),
        }
    }
    if refusals.is_empty() {
        Ok(reports)
    } else {
        Err(VerifyError::Refused(refusals))
    }
}

/// Verifies variant `index` of `segment` (after [`Segment::validate`]).
pub fn verify_variant(segment: &Segment, index: usize) -> Result<VariantReport, VerifyError> {
    segment.validate()?;
    let v = segment
        .variants
        .get(index)
        .ok_or_else(|| FormatError::Invalid {
            what: format!("segment {}: variant {index}", segment.name),
            why: format!("there are only {} variants", segment.variants.len()),
        })?;
    verify_checked(v, 0, None).map_err(VerifyError::Refused)
}

/// Code offset of the per-injection data area of a variant with
/// `code_len` bytes of code, `rodata_len` bytes of read-only data and
/// `imports` import slots: the first page after its read-only data, where
/// the module maps it (`adapt_abi::adapt_data_offset`, pinned equal by a
/// test in `adapt-target`).
pub const fn data_area_offset(code_len: usize, rodata_len: usize, imports: usize) -> usize {
    crate::format::import_table::ImportLayout::of(code_len, rodata_len, imports).total()
}

struct Sweep<'a> {
    variant: &'a Variant,
    code: &'a [u8],
    refusals: Vec<Refusal>,
    formatter: IntelFormatter,
    text: String,
}

impl Sweep<'_> {
    fn refuse(
        &mut self,
        offset: usize,
        len: usize,
        instr: Option<&Instruction>,
        rule: Rule,
        detail: String,
    ) {
        if self.refusals.len() >= MAX_REFUSALS {
            return;
        }
        let end = offset.saturating_add(len).min(self.code.len());
        let bytes = hex(self.code.get(offset..end).unwrap_or(&[]));
        self.text.clear();
        match instr {
            Some(i) => self.formatter.format(i, &mut self.text),
            None => self.text.push_str("(bytes)"),
        }
        self.refusals.push(Refusal {
            variant: self.variant.name.clone(),
            offset: offset as u32,
            bytes,
            instruction: self.text.clone(),
            rule,
            detail,
        });
    }
}

fn is_write(a: OpAccess) -> bool {
    matches!(
        a,
        OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
    )
}

/// The first rule `instr` breaks on its own (branch targets, entry points and
/// the end of the code are checked after the sweep).
fn instruction_rule(
    instr: &Instruction,
    reloc: Option<(u32, bool)>,
    v: &Variant,
    imports: usize,
    data: Option<(u64, u64)>,
    allowed: &[CpuidFeature],
    info: &mut InstructionInfoFactory,
) -> Option<(Rule, String)> {
    use Mnemonic as M;
    let m = instr.mnemonic();
    if matches!(
        m,
        M::Syscall | M::Sysenter | M::Sysexit | M::Sysexitq | M::Sysret | M::Sysretq
    ) || instr.flow_control() == FlowControl::Interrupt
    {
        return Some((
            Rule::SystemCall,
            "system calls and software interrupts leave user code".into(),
        ));
    }
    if instr.is_privileged()
        || matches!(
            m,
            M::Vmcall | M::Vmmcall | M::Vmgexit | M::Tdcall | M::Seamcall
        )
    {
        return Some((Rule::Privileged, "privileged instruction".into()));
    }
    match instr.flow_control() {
        FlowControl::Exception => {
            return Some((
                Rule::Trap,
                "an undefined-instruction trap would fault inside the target".into(),
            ));
        }
        FlowControl::IndirectBranch | FlowControl::IndirectCall => {
            let kind = if instr.flow_control() == FlowControl::IndirectCall {
                "indirect call"
            } else {
                "indirect jump"
            };
            if imports == 0 {
                return Some((Rule::IndirectBranch, kind.into()));
            }
            return match import_slot(instr, v.code.len(), imports) {
                Ok(_) if reloc.is_some() => Some((
                    Rule::Relocation,
                    "an import slot is addressed without relocation (its place is fixed)".into(),
                )),
                Ok(_) => None,
                Err(why) => Some((Rule::IndirectBranch, format!("{kind}: {why}"))),
            };
        }
        FlowControl::Call => {
            return Some((
                Rule::Call,
                if imports == 0 {
                    "calls are refused: segments are leaf code".into()
                } else {
                    "direct calls are refused: a segment calls only its imports, through their slots"
                        .into()
                },
            ))
        }
        FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
            if !matches!(
                instr.op0_kind(),
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            ) =>
        {
            return Some((Rule::IndirectBranch, "far jump".into()));
        }
        FlowControl::Return if !matches!(m, M::Ret) => {
            return Some((Rule::IndirectBranch, "far or interrupt return".into()));
        }
        _ => {}
    }

    let writes_sreg = info.info(instr).used_registers().iter().any(|u| {
        u.register().is_segment_register()
            && matches!(
                u.access(),
                OpAccess::Write
                    | OpAccess::ReadWrite
                    | OpAccess::CondWrite
                    | OpAccess::ReadCondWrite
            )
    });
    if writes_sreg || matches!(m, M::Popf | M::Popfd | M::Popfq) {
        return Some((
            Rule::ProcessState,
            "changes segment registers or the flags register".into(),
        ));
    }

    // Relocations must be exactly the 32-bit displacement of a RIP-relative
    // operand: anything else would let the loader rewrite instruction bytes.
    if let Some((rel_off, exact)) = reloc {
        let ok = exact && instr.is_ip_rel_memory_operand();
        if !ok {
            return Some((
                Rule::Relocation,
                format!(
                    "relocation at {rel_off:#x} is not the displacement of a RIP-relative operand"
                ),
            ));
        }
    }

    let is_lea = m == M::Lea;
    let has_memory = (0..instr.op_count()).any(|i| instr.op_kind(i) == OpKind::Memory);
    if has_memory && !is_lea {
        if matches!(instr.memory_segment(), Register::FS | Register::GS) {
            return Some((
                Rule::SegmentOverride,
                format!("memory operand through {:?}", instr.memory_segment()),
            ));
        }
        if instr.memory_base() == Register::None && instr.memory_index() == Register::None {
            return Some((
                Rule::AbsoluteAddress,
                format!(
                    "memory operand at the fixed address {:#x}",
                    instr.memory_displacement64()
                ),
            ));
        }
    }

    if instr.is_ip_rel_memory_operand() {
        let addr = instr.ip_rel_memory_address();
        let size = if is_lea {
            0
        } else {
            instr.memory_size().size() as u64
        };
        let within = |start: u64, len: u64| {
            addr >= start && addr.checked_add(size).is_some_and(|end| end <= start + len)
        };
        // The data area: the one place the code may write (and read) by
        // its own address; not through a relocation.
        if data.is_some_and(|(s, l)| reloc.is_none() && within(s, l)) {
            return instr_features_rule(instr, v, allowed);
        }
        let (start, len, region) = if reloc.is_some() {
            (VIRTUAL_RODATA, v.rodata.len() as u64, "read-only data")
        } else {
            (0, v.code.len() as u64, "code")
        };
        let inside = within(start, len);
        if !inside {
            let shown = if reloc.is_some() {
                format!("rodata{:+#x}", addr.wrapping_sub(start) as i64)
            } else {
                format!("code{:+#x}", addr as i64)
            };
            return Some((
                Rule::RipRelative,
                format!("RIP-relative access of {size} bytes at {shown} is not inside the segment's {region} ({len:#x} bytes)"),
            ));
        }
        // The access of the explicit (RIP-relative) memory operand. (iced's
        // used_memory() reports RIP-relative operands with no base register
        // and the absolute address, so the operand access is the reliable
        // signal.)
        let info = info.info(instr);
        let writes = (0..instr.op_count())
            .any(|i| instr.op_kind(i) == OpKind::Memory && is_write(info.op_access(i)));
        if writes {
            return Some((
                Rule::SelfWrite,
                format!("writes to the segment's own {region}"),
            ));
        }
    }

    instr_features_rule(instr, v, allowed)
}

/// [`Rule::UndeclaredFeature`], the last rule of [`instruction_rule`].
fn instr_features_rule(
    instr: &Instruction,
    v: &Variant,
    allowed: &[CpuidFeature],
) -> Option<(Rule, String)> {
    let f = instr
        .cpuid_features()
        .iter()
        .find(|f| !allowed.contains(f))?;
    Some((
        Rule::UndeclaredFeature,
        format!(
            "needs CPUID feature {f:?}, not provided by the declared features ({})",
            v.features
        ),
    ))
}

/// The import slot `instr` calls or jumps through, for a variant of
/// `code_len` bytes with `imports` slots (code placed at address 0), or why
/// it is not a transfer through a declared slot.
fn import_slot(instr: &Instruction, code_len: usize, imports: usize) -> Result<usize, String> {
    let form = matches!(instr.code(), Code::Call_rm64 | Code::Jmp_rm64)
        && instr.op0_kind() == OpKind::Memory
        && instr.is_ip_rel_memory_operand()
        && instr.memory_segment() == Register::DS;
    if !form {
        return Err(
            "only `call`/`jmp qword ptr [rip+slot]` on a declared import slot may leave the segment"
                .into(),
        );
    }
    let addr = instr.ip_rel_memory_address();
    let table = import_table_offset(code_len) as u64;
    let slot = addr
        .checked_sub(table)
        .filter(|d| d % SLOT_SIZE as u64 == 0)
        .map(|d| d / SLOT_SIZE as u64)
        .filter(|&m| m < imports as u64);
    match slot {
        // `m` is below `imports`, a usize.
        Some(m) => Ok(m as usize),
        None => Err(format!(
            "its operand code{:+#x} is not a declared import slot (the table is at code{:+#x}: \
             {imports} slot(s) of {SLOT_SIZE} bytes, up to code{:+#x})",
            addr as i64,
            table,
            slot_offset(code_len, imports)
        )),
    }
}

/// Verifies one structurally valid variant with `imports` import slots.
fn verify_checked(
    v: &Variant,
    imports: usize,
    data: Option<(u64, u64)>,
) -> Result<VariantReport, Vec<Refusal>> {
    let mut code = v.code.clone();
    // The layout is fixed and the code at most 1 MiB, so every displacement
    // fits; a failure here is a malformed relocation, reported as such.
    if let Err(e) = apply_relocations(&mut code, &v.relocations, 0, VIRTUAL_RODATA) {
        return Err(vec![Refusal {
            variant: v.name.clone(),
            offset: 0,
            bytes: String::new(),
            instruction: String::new(),
            rule: Rule::Relocation,
            detail: e.to_string(),
        }]);
    }
    let mut allowed: Vec<CpuidFeature> = BASELINE_CPUID.to_vec();
    for f in v.features.iter() {
        allowed.extend_from_slice(f.cpuid());
    }

    let mut sweep = Sweep {
        variant: v,
        code: &code,
        refusals: Vec::new(),
        formatter: IntelFormatter::new(),
        text: String::new(),
    };
    let mut info = InstructionInfoFactory::new();
    let mut decoder = Decoder::with_ip(64, &code, 0, DecoderOptions::NONE);
    let mut starts: Vec<usize> = Vec::new();
    let mut decoded: Vec<Instruction> = Vec::new();
    let mut targets: Vec<(usize, usize, Instruction, u64)> = Vec::new();
    let mut relocs = v.relocations.iter().peekable();
    let mut last: Option<Instruction> = None;
    let mut instr = Instruction::default();

    while decoder.can_decode() {
        let offset = decoder.position();
        decoder.decode_out(&mut instr);
        let len = instr.len();
        if instr.is_invalid() {
            let detail = if decoder.last_error() == DecoderError::NoMoreBytes {
                "instruction is cut by the end of the code".to_owned()
            } else {
                "bytes do not decode to a valid instruction".to_owned()
            };
            sweep.refuse(offset, len.max(1), None, Rule::Invalid, detail);
            last = None;
            break;
        }
        starts.push(offset);
        last = Some(instr);

        // The relocation inside this instruction, if any (validation made
        // them sorted and non-overlapping).
        let mut reloc = None;
        while let Some(r) = relocs.next_if(|r| (r.offset as usize) < offset + len) {
            let r_off = r.offset as usize;
            let offs = decoder.get_constant_offsets(&instr);
            let exact = r_off >= offset
                && offs.has_displacement()
                && offs.displacement_size() == 4
                && offset + offs.displacement_offset() == r_off;
            if reloc.is_some() || r_off < offset {
                // A second relocation in one instruction, or one that started
                // inside the previous instruction.
                reloc = Some((r.offset, false));
            } else {
                reloc = Some((r.offset, exact));
            }
        }

        decoded.push(instr);
        if let Some((rule, detail)) =
            instruction_rule(&instr, reloc, v, imports, data, &allowed, &mut info)
        {
            sweep.refuse(offset, len, Some(&instr), rule, detail);
        } else if matches!(
            instr.flow_control(),
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
        ) {
            targets.push((offset, len, instr, instr.near_branch_target()));
        }
    }

    for (offset, len, instr, target) in targets {
        let ok = usize::try_from(target).is_ok_and(|t| starts.binary_search(&t).is_ok());
        if !ok {
            let why = if target < code.len() as u64 {
                format!("branch to {target:#x}, which is inside an instruction")
            } else {
                format!(
                    "branch to {:+#x}, outside the code ({:#x} bytes)",
                    target as i64,
                    code.len()
                )
            };
            sweep.refuse(offset, len, Some(&instr), Rule::BranchTarget, why);
        }
    }
    for (i, &e) in v.entry_offsets.iter().enumerate() {
        if starts.binary_search(&(e as usize)).is_err() {
            sweep.refuse(
                e as usize,
                1,
                None,
                Rule::EntryPoint,
                format!("entry {i} at {e:#x} is not the start of an instruction"),
            );
        }
    }
    if let Some(l) = last {
        let ends = l.mnemonic() == Mnemonic::Ret
            || (l.flow_control() == FlowControl::UnconditionalBranch && l.code() != Code::INVALID)
            || (imports > 0
                && l.code() == Code::Jmp_rm64
                && import_slot(&l, code.len(), imports).is_ok());
        if !ends {
            let off = starts.last().copied().unwrap_or(0);
            sweep.refuse(
                off,
                l.len(),
                Some(&l),
                Rule::FallsOffEnd,
                "the last instruction is not ret or jmp".into(),
            );
        }
    }

    if imports > 0 && sweep.refusals.is_empty() {
        stack::check(&mut sweep, &starts, &decoded, &mut info);
    }
    if !sweep.refusals.is_empty() {
        return Err(sweep.refusals);
    }
    let mut features: Vec<String> = Vec::new();
    let mut d2 = Decoder::with_ip(64, &code, 0, DecoderOptions::NONE);
    for i in &mut d2 {
        for f in i.cpuid_features() {
            if !BASELINE_CPUID.contains(f) {
                let n = format!("{f:?}");
                if !features.contains(&n) {
                    features.push(n);
                }
            }
        }
    }
    features.sort();
    Ok(VariantReport {
        variant: v.name.clone(),
        instructions: starts.len(),
        code_bytes: code.len(),
        features_used: features,
    })
}

mod stack;
