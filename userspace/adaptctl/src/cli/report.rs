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
    } else if let Some(inject) = err.downcast_ref::<adapt_client::InjectError>() {
        (inject.kind(), inject.exit_code())
    } else if let Some(target) = err.downcast_ref::<adapt_target::TargetError>() {
        target_kind(target)
    } else if let Some(resolve) = err.downcast_ref::<adapt_target::ResolveError>() {
        resolve_kind(resolve)
    } else if let Some(contract) = err.downcast_ref::<super::contract::ContractError>() {
        contract_kind(contract)
    } else if let Some(select) = err.downcast_ref::<adapt_select::SelectError>() {
        super::bench::select_kind(select)
    } else if let Some(plan) = err.downcast_ref::<super::inject_plan::PlanError>() {
        plan.kind()
    } else if let Some(command) = err.downcast_ref::<super::inject::InjectCommandError>() {
        match command {
            super::inject::InjectCommandError::AlreadyInjected { .. } => ("already-patched", 15),
        }
    } else if let Some(command) = err.downcast_ref::<super::revert::RevertCommandError>() {
        command.kind()
    } else if let Some(upload) = err.downcast_ref::<adapt_client::UploadError>() {
        upload_kind(upload)
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

fn target_kind(err: &adapt_target::TargetError) -> (&'static str, u8) {
    use adapt_target::{MemoryError, TargetError as E};
    match err {
        E::Resolve(resolve) => resolve_kind(resolve),
        E::Memory(MemoryError::NoSuchProcess { .. }) => ("no-such-process", 8),
        E::Memory(MemoryError::NotPermitted { .. }) => ("not-permitted", 9),
        E::Memory(_) => ("error", 1),
        E::UnknownSize { .. } | E::BodyNotInFile { .. } | E::Prologue { .. } => {
            ("unsafe-entry", 15)
        }
        E::Modified { .. } => ("bytes-changed", 15),
    }
}

fn resolve_kind(err: &adapt_target::ResolveError) -> (&'static str, u8) {
    use adapt_target::ResolveError as E;
    match err {
        E::NoSuchProcess { .. } => ("no-such-process", 8),
        E::KernelThread { .. } => ("kernel-thread", 9),
        E::Maps { .. } => ("not-permitted", 9),
        E::NoSuchObject { .. } | E::NotFound { .. } | E::Ambiguous { .. } => ("no-such-symbol", 16),
        E::Ifunc { .. } | E::NotCode { .. } | E::NotMapped { .. } => ("unsafe-entry", 15),
        E::FileReplaced { .. } | E::Elf(_) => ("error", 1),
    }
}

fn contract_kind(err: &super::contract::ContractError) -> (&'static str, u8) {
    use super::contract::ContractError as E;
    match err {
        E::Unknown { .. } => ("contract-unknown", 15),
        E::Mismatch { .. } => ("contract-mismatch", 15),
        E::Syntax { .. } => ("usage", 2),
    }
}

fn upload_kind(err: &adapt_client::UploadError) -> (&'static str, u8) {
    use adapt_client::UploadError as E;
    match err {
        E::Abi(library) => (library.kind(), library.exit_code()),
        E::NoSuchVariant { .. } => ("no-such-variant", super::library::EXIT_NOT_FOUND),
        E::FeatureWithoutBit { .. } | E::EntryMismatch { .. } => ("malformed-variant", 1),
    }
}
