//! Carrying out a [`Plan`]: make sure its variant is loaded in the module
//! (uploaded in-process by `adapt_client::upload`) and ask the module to
//! redirect the target.

use crate::plan::Plan;
use crate::timings::Timings;
use adapt_client::inject::{self, InjectRequest, Injected};
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
    let variant_id = upload::ensure_loaded(device, &plan.verified, &plan.variant)
        .map_err(|err| {
            crate::Error::from(err).during(format!(
                "loading {}/{} into the module",
                plan.segment, plan.variant
            ))
        })?
        .id;
    timings.mark("upload");
    let request = InjectRequest {
        pid: plan.pid,
        target: plan.target.symbol.address,
        variant_id,
        entry: plan.entry,
        contract_hash: plan.contract.hash,
        expected: plan.target.patch.bytes().to_vec(),
        automatic,
    };
    let injected = inject::inject(device, &request)?;
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
