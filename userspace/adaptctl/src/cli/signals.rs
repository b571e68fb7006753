//! Ending a long-running command cleanly on SIGINT/SIGTERM.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A flag set by SIGINT and SIGTERM: commands that run for a while
/// (`auto`, `calls`) poll it and then undo what they did.
pub(crate) fn stop_flag() -> Result<Arc<AtomicBool>, adapt_ops::Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for (signal, name) in [
        (signal_hook::consts::SIGINT, "SIGINT"),
        (signal_hook::consts::SIGTERM, "SIGTERM"),
    ] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|source| {
            adapt_ops::Error::Signal {
                signal: name,
                source,
            }
        })?;
    }
    Ok(stop)
}
