// SPDX-License-Identifier: GPL-2.0
//! The stack-depth analysis of variants with imports (see the verifier's
//! module documentation): proves `rsp % 16 == 0` at every call through an
//! import slot, and the entry's `rsp` at every tail jump and `ret`.

use std::fmt;

use iced_x86::{
    FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register,
};

use super::{Rule, Sweep};

/// Bytes below the entry's `rsp` (the entry's return address is not
/// counted: at depth 0, `rsp % 16 == 8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Depth {
    /// Exactly this many bytes.
    Bytes(i64),
    /// After `and rsp, -2^k`: the depth modulo 16 (`r`) and the bounds it
    /// lies within (`and` moves rsp down by less than 2^k), so a frame
    /// realigned and then grown still meets [`MAX_DEPTH`], and a loop that
    /// keeps growing it never reaches a fixed point.
    Aligned { r: i64, low: i64, high: i64 },
}

impl Depth {
    fn add(self, delta: i64) -> Depth {
        match self {
            Depth::Bytes(d) => Depth::Bytes(d + delta),
            Depth::Aligned { r, low, high } => Depth::Aligned {
                r: (r + delta).rem_euclid(16),
                low: low + delta,
                high: high + delta,
            },
        }
    }

    fn modulo16(self) -> i64 {
        match self {
            Depth::Bytes(d) => d.rem_euclid(16),
            Depth::Aligned { r, .. } => r,
        }
    }

    /// The least and the greatest depth it may be.
    fn bounds(self) -> (i64, i64) {
        match self {
            Depth::Bytes(d) => (d, d),
            Depth::Aligned { low, high, .. } => (low, high),
        }
    }
}

impl fmt::Display for Depth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Depth::Bytes(d) => write!(f, "{d} bytes below the entry's rsp"),
            Depth::Aligned { r, low, high } => write!(
                f,
                "realigned by `and rsp` ({r} mod 16, {low} to {high} bytes below the entry's rsp)"
            ),
        }
    }
}

/// The analysis state before an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stack {
    depth: Depth,
    /// The depth `rbp` holds (after `mov rbp, rsp`), if known.
    rbp: Option<Depth>,
}

/// The largest depth followed (a larger frame is refused: it could step
/// over the stack's guard page).
const MAX_DEPTH: i64 = 1 << 16;

type Refused = (Rule, String);

fn depth_rule(why: String) -> Refused {
    (Rule::StackDepth, why)
}

fn is_reg(i: &Instruction, op: u32, reg: Register) -> bool {
    i.op_kind(op) == OpKind::Register && i.op_register(op) == reg
}

fn immediate(i: &Instruction, op: u32) -> Option<i64> {
    matches!(
        i.op_kind(op),
        OpKind::Immediate8 | OpKind::Immediate32 | OpKind::Immediate8to64 | OpKind::Immediate32to64
    )
    .then(|| i.immediate(op) as i64)
}

/// The state after `i`, or why the analysis refuses it. `i` is not a
/// branch's target check: successors are joined by the caller.
fn step(i: &Instruction, s: Stack, info: &mut InstructionInfoFactory) -> Result<Stack, Refused> {
    use Mnemonic as M;
    let mut out = s;
    match i.mnemonic() {
        M::Push | M::Pushf | M::Pushfq => {
            out.depth = s.depth.add(-i.stack_pointer_increment() as i64);
        }
        M::Pop => {
            if is_reg(i, 0, Register::RSP) {
                return Err(depth_rule("pops into rsp".into()));
            }
            out.depth = s.depth.add(-i.stack_pointer_increment() as i64);
            if writes_rbp(i, info) {
                out.rbp = None;
            }
        }
        M::Sub | M::Add if is_reg(i, 0, Register::RSP) => {
            let Some(imm) = immediate(i, 1) else {
                return Err(depth_rule(
                    "changes rsp by an amount that is not a constant".into(),
                ));
            };
            let delta = if i.mnemonic() == M::Sub { imm } else { -imm };
            out.depth = s.depth.add(delta);
        }
        M::And if is_reg(i, 0, Register::RSP) => {
            let mask = immediate(i, 1).unwrap_or(0);
            // -2^k with k >= 4: clears at least the low four bits.
            let align = mask.wrapping_neg();
            if mask >= 0 || align < 16 || !(align as u64).is_power_of_two() {
                return Err(depth_rule(format!(
                    "`and rsp, {mask:#x}` does not align rsp to 16 bytes or more"
                )));
            }
            // rsp % 16 == 0 afterwards, and the entry's rsp is 8 mod 16;
            // rsp went down by 0 to align - 1 bytes (a multiple of 8 when
            // rsp was 8-aligned, which the bounds need not assume).
            let (low, high) = s.depth.bounds();
            out.depth = Depth::Aligned {
                r: 8,
                low,
                high: high.saturating_add(align - 1),
            };
        }
        M::Mov if is_reg(i, 0, Register::RBP) && is_reg(i, 1, Register::RSP) => {
            out.rbp = Some(s.depth);
        }
        M::Mov if is_reg(i, 0, Register::RSP) && is_reg(i, 1, Register::RBP) => {
            out.depth = s.rbp.ok_or_else(|| {
                depth_rule("restores rsp from rbp, which does not hold a known rsp".into())
            })?;
        }
        M::Lea if is_reg(i, 0, Register::RSP) => {
            let base = match i.memory_base() {
                Register::RSP => Some(s.depth),
                Register::RBP => s.rbp,
                _ => None,
            };
            let Some(base) = base.filter(|_| i.memory_index() == Register::None) else {
                return Err(depth_rule(
                    "sets rsp from an address the analysis cannot follow".into(),
                ));
            };
            out.depth = base.add(-(i.memory_displacement64() as i64));
        }
        M::Leave => {
            let frame = s
                .rbp
                .ok_or_else(|| depth_rule("`leave` with rbp not holding a known rsp".into()))?;
            out.depth = frame.add(-8);
            out.rbp = None;
        }
        M::Call => {
            // Only calls through import slots get here (the sweep refused
            // every other call). The callee keeps rsp and rbp.
            if s.depth.modulo16() != 8 {
                return Err((
                    Rule::StackAlignment,
                    format!(
                        "rsp % 16 is {} before this call (the stack is {}), System V needs 0",
                        (8 - s.depth.modulo16()).rem_euclid(16),
                        s.depth
                    ),
                ));
            }
        }
        M::Jmp | M::Ret if i.flow_control() != FlowControl::UnconditionalBranch => {
            // `ret` and tail jumps through a slot: the stack must be as at
            // entry, with the caller's return address on top.
            if s.depth != Depth::Bytes(0) {
                return Err((
                    Rule::StackAlignment,
                    format!(
                        "leaves the function with the stack {}; it must be as at entry",
                        s.depth
                    ),
                ));
            }
        }
        _ => {
            if writes(i, info, Register::RSP) {
                return Err(depth_rule(
                    "changes rsp in a way the stack-depth analysis cannot follow".into(),
                ));
            }
            if writes_rbp(i, info) {
                out.rbp = None;
            }
        }
    }
    let (low, high) = out.depth.bounds();
    if low < 0 {
        return Err(depth_rule(format!(
            "moves rsp up to {} bytes above the entry's (into the caller's frame)",
            -low
        )));
    }
    if high > MAX_DEPTH {
        return Err(depth_rule(format!(
            "a frame of up to {high} bytes is more than the {MAX_DEPTH} the analysis follows"
        )));
    }
    Ok(out)
}

fn writes(i: &Instruction, info: &mut InstructionInfoFactory, reg: Register) -> bool {
    info.info(i).used_registers().iter().any(|u| {
        u.register().full_register() == reg
            && matches!(
                u.access(),
                OpAccess::Write
                    | OpAccess::ReadWrite
                    | OpAccess::CondWrite
                    | OpAccess::ReadCondWrite
            )
    })
}

fn writes_rbp(i: &Instruction, info: &mut InstructionInfoFactory) -> bool {
    writes(i, info, Register::RBP)
}

/// Runs the analysis over the decoded instructions (`starts[k]` is the
/// offset of `decoded[k]`; every branch target and entry is known to be an
/// instruction start) from every entry, and records the first refusal.
pub(super) fn check(
    sweep: &mut Sweep<'_>,
    starts: &[usize],
    decoded: &[Instruction],
    info: &mut InstructionInfoFactory,
) {
    let index = |offset: u64| {
        usize::try_from(offset)
            .ok()
            .and_then(|o| starts.binary_search(&o).ok())
    };
    let mut state: Vec<Option<Stack>> = vec![None; decoded.len()];
    let mut work: Vec<usize> = Vec::new();
    let entry = Stack {
        depth: Depth::Bytes(0),
        rbp: None,
    };
    let mut failure: Option<(usize, Refused)> = None;
    let join = |k: usize, s: Stack, state: &mut Vec<Option<Stack>>, work: &mut Vec<usize>| {
        match state[k] {
            None => {
                state[k] = Some(s);
                work.push(k);
                Ok(())
            }
            Some(old) if old == s => Ok(()),
            Some(old) if old.depth != s.depth => Err((
                Rule::StackDepth,
                format!(
                    "paths join here with different stacks: {} on one, {} on another",
                    old.depth, s.depth
                ),
            )),
            Some(old) => {
                // Only the frame pointer differs: forget it.
                let merged = Stack {
                    depth: old.depth,
                    rbp: None,
                };
                if merged != old {
                    state[k] = Some(merged);
                    work.push(k);
                }
                Ok(())
            }
        }
    };
    for &e in sweep.variant.entry_offsets.iter() {
        if let Some(k) = index(u64::from(e)) {
            if let Err(r) = join(k, entry, &mut state, &mut work) {
                failure = Some((k, r));
            }
        }
    }
    while failure.is_none() {
        let Some(k) = work.pop() else { break };
        let Some(s) = state[k] else { continue };
        let i = &decoded[k];
        let after = match step(i, s, info) {
            Ok(a) => a,
            Err(r) => {
                failure = Some((k, r));
                break;
            }
        };
        let mut successors: Vec<usize> = Vec::with_capacity(2);
        let branches = (0..i.op_count()).any(|op| {
            matches!(
                i.op_kind(op),
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            )
        });
        if branches {
            if let Some(t) = index(i.near_branch_target()) {
                successors.push(t);
            }
        }
        let falls_through = !matches!(
            i.flow_control(),
            FlowControl::UnconditionalBranch | FlowControl::IndirectBranch | FlowControl::Return
        );
        if falls_through && k + 1 < decoded.len() {
            successors.push(k + 1);
        }
        for t in successors {
            if let Err(r) = join(t, after, &mut state, &mut work) {
                failure = Some((t, r));
                break;
            }
        }
    }
    if let Some((k, (rule, detail))) = failure {
        let i = decoded[k];
        sweep.refuse(starts[k], i.len(), Some(&i), rule, detail);
    }
}
