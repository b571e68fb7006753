//! Finding the injections a revert request means, and reverting them.

use crate::timings::Timings;
use adapt_client::inject::{self, Reverted};
use adapt_client::Device;

/// Which injections to revert.
#[derive(Debug, Clone)]
pub enum Which<'a> {
    /// One injection by id; with a pid, it must be that process's.
    Id { id: u64, pid: Option<u32> },
    /// The injection at a function of a process.
    Symbol {
        pid: u32,
        symbol: &'a str,
        object: Option<&'a str>,
    },
    /// Every injection into a process.
    All { pid: u32 },
}

/// A revert request that names no live injection.
#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error(
        "injection #{id} is in pid {actual}, not pid {asked}: check the id with `adaptctl list`"
    )]
    OtherProcess { id: u64, asked: u32, actual: u32 },
    #[error(
        "no live injection at {symbol} ({address:#x}) in pid {pid}: see `adaptctl list --pid {pid}`"
    )]
    NotInjected {
        symbol: String,
        address: u64,
        pid: u32,
    },
}

/// The ids of the live injections `which` means (none for `All` on a
/// process without injections).
pub fn find(device: &Device, which: &Which<'_>) -> crate::Result<Vec<u64>> {
    Ok(match *which {
        Which::Id { id, pid } => {
            if let Some(asked) = pid {
                let live = inject::list(device, None)?;
                if let Some(other) = live.iter().find(|i| i.id == id && i.pid != asked) {
                    return Err(RevertError::OtherProcess {
                        id,
                        asked,
                        actual: other.pid,
                    }
                    .into());
                }
            }
            vec![id]
        }
        Which::Symbol {
            pid,
            symbol,
            object,
        } => {
            let address = adapt_target::resolve_symbol(pid, symbol, object)?
                .symbol
                .address;
            let ids: Vec<u64> = inject::list(device, Some(pid))?
                .iter()
                .filter(|i| i.target == address)
                .map(|i| i.id)
                .collect();
            if ids.is_empty() {
                return Err(RevertError::NotInjected {
                    symbol: symbol.to_owned(),
                    address,
                    pid,
                }
                .into());
            }
            ids
        }
        Which::All { pid } => inject::list(device, Some(pid))?
            .iter()
            .map(|i| i.id)
            .collect(),
    })
}

/// Reverts `ids` in order, marking `revert` (and how long the module held
/// the threads) in `timings` and calling `done` for each as it happens;
/// stops at the first failure.
pub fn revert_all(
    device: &Device,
    ids: &[u64],
    timings: &mut Timings,
    mut done: impl FnMut(&Reverted),
) -> crate::Result<Vec<Reverted>> {
    let mut reverted = Vec::with_capacity(ids.len());
    for &id in ids {
        let r = inject::revert(device, id)?;
        timings.mark("revert");
        timings.inside("threads held", std::time::Duration::from_nanos(r.pause_ns));
        done(&r);
        reverted.push(r);
    }
    Ok(reverted)
}
