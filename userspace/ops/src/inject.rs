//! Carrying out a [`Plan`]: make sure its variant is loaded in the module
//! (uploaded in-process by `adapt_client::upload`) and ask the module to
//! redirect the target.
//!
//! # Segments with imports: who places the segment (issue 12)
//!
//! The trampoline's bytes depend on its own address, and the module must
//! write them into its pages *before* it maps them (never writable in the
//! target). Two protocols keep that rule: a two-step reserve/commit (the
//! module maps or reserves, reports the address, adaptctl relocates, a
//! second ioctl fills and maps), or userspace choosing the address. adapt
//! does the latter: adaptctl reads `/proc/PID/maps`, picks a free range
//! within ±2 GiB of the site ([`adapt_target::placement`]; first a retired
//! mapping of the same variant, which the module reuses when its
//! trampoline and slots are identical), relocates the prologue for
//! `address + trampoline_offset`, and asks for exactly that address. The
//! module checks reach and maps with `MAP_FIXED_NOREPLACE` from a target
//! thread (nothing is ever replaced; a range taken meanwhile is
//! `EADDRINUSE` and adaptctl tries the next candidate). One ioctl, no
//! reservation state in the module to clean up on a crash of adaptctl
//! between two calls, the same rendezvous and re-checks as a leaf segment,
//! and the decision (where) stays in userspace with the mechanism (map
//! exactly there, or refuse) in the kernel.

use crate::plan::Plan;
use crate::timings::Timings;
use adapt_client::inject::{self, InjectError, InjectImports, InjectRequest, Injected};
use adapt_client::{upload, Device};
use adapt_target::TargetError;

/// The target's entry is already redirected by one of our injections.
#[derive(Debug, thiserror::Error)]
#[error(
    "{symbol} at {address:#x} in pid {pid} is already redirected by injection #{id} \
     ({segment}/{variant}): revert it first with `adaptctl revert --id {id}`"
)]
pub struct AlreadyInjected {
    pub symbol: String,
    pub address: u64,
    pub pid: u32,
    pub id: u64,
    pub segment: String,
    pub variant: String,
}

/// What an injection did: the module's report and the exact request, for
/// tools that repeat it.
#[derive(Debug)]
pub struct Done {
    pub variant_id: u64,
    pub request: InjectRequest,
    pub injected: Injected,
}

/// Loads the plan's variant (if the module does not hold it yet) and
/// injects it; `automatic` marks requests of the adaptive loop (the module
/// refuses quarantined variants for them). Phases `upload` and `inject`
/// are marked in `timings`.
pub fn execute(
    device: &Device,
    plan: &Plan,
    automatic: bool,
    timings: &mut Timings,
) -> crate::Result<Done> {
    let file = adapt_segment::SegmentFile::new(plan.verified.clone(), plan.import_decls.clone());
    let variant_id = upload::ensure_loaded_with_data(device, &file, &plan.variant, plan.data_len)
        .map_err(|err| {
            crate::Error::from(err).during(format!(
                "loading {}/{} into the module",
                plan.segment, plan.variant
            ))
        })?
        .id;
    timings.mark("upload");
    let mut request = InjectRequest {
        pid: plan.pid,
        target: plan.target.symbol.address,
        variant_id,
        entry: plan.entry,
        contract_hash: plan.contract.hash,
        expected: plan.target.patch.bytes().to_vec(),
        automatic,
        imports: None,
    };
    let injected = if plan.imports.is_empty() {
        inject::inject(device, &request)?
    } else {
        inject_placed(device, plan, &mut request)?
    };
    timings.mark("inject");
    timings.inside(
        "threads held",
        std::time::Duration::from_nanos(injected.pause_ns),
    );
    Ok(Done {
        variant_id,
        request,
        injected,
    })
}

/// A plan that failed because the target's entry already starts with a
/// `jmp` may have met one of our injections: then the error names it.
pub fn explain_modified(device: Option<&Device>, pid: u32, err: crate::Error) -> crate::Error {
    let (Some(device), crate::Error::Target(target)) = (device, err.root()) else {
        return err;
    };
    let TargetError::Modified { name, address, .. } = target.as_ref() else {
        return err;
    };
    match inject::list(device, Some(pid)) {
        Ok(list) => match list.into_iter().find(|i| i.target == *address) {
            Some(i) => AlreadyInjected {
                symbol: name.clone(),
                address: *address,
                pid,
                id: i.id,
                segment: i.segment,
                variant: i.variant,
            }
            .into(),
            None => err,
        },
        Err(_) => err,
    }
}

/// Candidates tried for a segment with imports before giving up.
const PLACEMENT_CANDIDATES: usize = 16;

/// Injects a variant with imports: for each candidate address (a retired
/// mapping of the variant first, then free ranges nearest the site), the
/// trampoline relocated for it and the slots resolved, until the module
/// maps it (see the module documentation).
fn inject_placed(
    device: &Device,
    plan: &Plan,
    request: &mut InjectRequest,
) -> crate::Result<Injected> {
    let variant = plan
        .verified
        .variant(&plan.variant)
        .map(|(_, v)| v)
        .ok_or_else(|| crate::plan::PlanError::NoSuchVariant {
            segment: plan.segment.clone(),
            variant: plan.variant.clone(),
            available: String::new(),
        })?;
    let layout = adapt_abi::adapt_import_layout(variant.code.len(), plan.imports.len());
    let len =
        (adapt_abi::adapt_data_offset(variant.code.len(), variant.rodata.len(), plan.imports.len())
            + (plan.data_len as usize).div_ceil(4096) * 4096) as u64;
    let site = plan.target.symbol.address;
    let no_placement = |why: String| crate::plan::PlanError::NoPlacement {
        symbol: plan.target.symbol.name.clone(),
        segment: plan.segment.clone(),
        pid: plan.pid,
        why,
    };
    let mut candidates: Vec<u64> = inject::list_with_retired(device, Some(plan.pid))
        .map(|(list, _)| {
            list.into_iter()
                .filter(|i| i.state == "retired" && i.variant_id == request.variant_id)
                .map(|i| i.segment_addr)
                .collect()
        })
        .unwrap_or_default();
    candidates.extend(
        adapt_target::placement::free_ranges_near(plan.pid, site, len, PLACEMENT_CANDIDATES)
            .map_err(|e| no_placement(format!("reading /proc/{}/maps: {e}", plan.pid)))?,
    );
    let wants_fallback = plan.imports.iter().any(|i| i.is_fallback());
    let mut last = String::from("no free range is within reach");
    for address in candidates {
        let trampoline_at = address + layout.trampoline_offset as u64;
        let trampoline = if wants_fallback {
            match adapt_target::relocate::relocate_plan(site, &plan.target.patch, trampoline_at) {
                Ok(t) => Some(t),
                Err(adapt_target::relocate::RelocateError::OutOfRange { .. }) => {
                    last = format!("the trampoline at {trampoline_at:#x} is out of range");
                    continue;
                }
                Err(e) => {
                    return Err(crate::plan::PlanError::NotRelocatable {
                        symbol: plan.target.symbol.name.clone(),
                        segment: plan.segment.clone(),
                        why: e.to_string(),
                    }
                    .into())
                }
            }
        } else {
            None
        };
        let slots = plan
            .imports
            .iter()
            .map(|i| i.address.unwrap_or(trampoline_at))
            .collect();
        request.imports = Some(InjectImports {
            segment_addr: address,
            relocated: trampoline
                .as_ref()
                .map(|t| t.original.clone())
                .unwrap_or_default(),
            trampoline: trampoline.map(|t| t.bytes).unwrap_or_default(),
            slots,
        });
        match inject::inject(device, request) {
            Ok(injected) => return Ok(injected),
            Err(InjectError::AddressInUse { .. }) | Err(InjectError::NoAddressSpace { .. }) => {
                last = format!("{address:#x} was taken or out of reach");
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(no_placement(last).into())
}

/// The values of the `n` import slots of an injection, read from its
/// import table at `table` in process `pid` (empty when unreadable).
pub fn import_slots(pid: u32, table: u64, n: u32) -> Vec<u64> {
    match adapt_target::read_memory(pid, table, n as usize * 8) {
        Ok(bytes) => bytes
            .chunks_exact(8)
            .map(|c| {
                let mut word = [0u8; 8];
                word.copy_from_slice(c);
                u64::from_le_bytes(word)
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}
