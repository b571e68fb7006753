//! How errors reach the user: one line on stderr, and a JSON document on
//! stdout under `--json`.

use adapt_client::{DeviceError, LibraryError, ProfileError};
use serde_json::json;
use std::process::ExitCode;

/// Prints `err` and returns the exit code for it.
pub(crate) fn error(err: &anyhow::Error, json: bool) -> ExitCode {
    let (kind, code) = if let Some(device) = err.downcast_ref::<DeviceError>() {
        (device.kind().as_str(), device.kind().exit_code())
    } else if let Some(profile) = err.downcast_ref::<ProfileError>() {
        profile_kind(profile)
    } else if let Some(library) = err.downcast_ref::<LibraryError>() {
        (library.kind(), library.exit_code())
    } else if let Some(command) = err.downcast_ref::<super::library::CommandError>() {
        command.kind()
    } else if let Some(segments) = err.downcast_ref::<adapt_segment::LibraryError>() {
        segment_library_kind(segments)
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

fn segment_library_kind(err: &adapt_segment::LibraryError) -> (&'static str, u8) {
    use adapt_segment::LibraryError as E;
    match err {
        E::NotFound | E::NotADirectory(_) => ("no-library", super::library::EXIT_NOT_FOUND),
        E::NoSuchSegment { .. } => ("no-such-segment", super::library::EXIT_NOT_FOUND),
        E::Io { .. } | E::Load(_) => ("error", 1),
    }
}
