//! How errors reach the user: one line on stderr, and a JSON document on
//! stdout under `--json`.

use adapt_client::{DeviceError, ProfileError};
use serde_json::json;
use std::process::ExitCode;

/// Prints `err` and returns the exit code for it.
pub(crate) fn error(err: &anyhow::Error, json: bool) -> ExitCode {
    let (kind, code) = if let Some(device) = err.downcast_ref::<DeviceError>() {
        (device.kind().as_str(), device.kind().exit_code())
    } else if let Some(profile) = err.downcast_ref::<ProfileError>() {
        profile_kind(profile)
    } else {
        ("error", 1)
    };
    // The full chain on one line: "context: cause: cause".
    let message = format!("{err:#}");
    eprintln!("adaptctl: error: {message}");
    if json {
        let doc = json!({ "error": { "kind": kind, "exit_code": code, "message": message } });
        println!("{doc}");
    }
    ExitCode::from(code)
}

fn profile_kind(err: &ProfileError) -> (&'static str, u8) {
    match err {
        ProfileError::NoSuchProcess { .. } => ("no-such-process", 8),
        ProfileError::KernelThread { .. } => ("kernel-thread", 9),
        ProfileError::NotPermitted { .. } => ("not-permitted", 9),
        ProfileError::FrequencyOutOfRange { .. } => ("frequency-out-of-range", 1),
        ProfileError::TooManySessions => ("too-many-sessions", 1),
        ProfileError::SessionGone { .. } => ("session-gone", 1),
        ProfileError::UnknownEvent(_) | ProfileError::Io { .. } => ("error", 1),
    }
}
