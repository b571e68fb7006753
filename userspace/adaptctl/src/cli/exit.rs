//! The one exit-code table of adaptctl. Libraries return typed errors; here
//! each error gets its stable `--json` kind, and each kind its exit code
//! (documented in `adaptctl --help`).

use adapt_ops::Error as Op;
use std::process::ExitCode;

/// Exit codes of failures, as documented in `adaptctl --help`
/// (`AFTER_HELP`); success is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Exit {
    Error = 1,
    Usage = 2,
    ModuleNotLoaded = 3,
    NoDeviceNode = 4,
    PermissionDenied = 5,
    AbiMismatch = 6,
    NotAdaptDevice = 7,
    NoSuchProcess = 8,
    NotPermitted = 9,
    Refused = 10,
    InUse = 11,
    NotFound = 12,
    LibraryFull = 13,
    Policy = 14,
    NotInjectable = 15,
    NoSuchSymbol = 16,
    Busy = 17,
    NoGain = 18,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

impl Exit {
    /// The exit code of an error of this `--json` kind.
    pub(crate) fn for_kind(kind: &str) -> Exit {
        match kind {
            "module-not-loaded" => Exit::ModuleNotLoaded,
            "no-device-node" => Exit::NoDeviceNode,
            "permission-denied" => Exit::PermissionDenied,
            "abi-mismatch" => Exit::AbiMismatch,
            "not-an-adapt-device" => Exit::NotAdaptDevice,
            "no-such-process" => Exit::NoSuchProcess,
            "kernel-thread" | "not-permitted" => Exit::NotPermitted,
            "refused" => Exit::Refused,
            "variant-in-use" => Exit::InUse,
            "no-library" | "no-such-segment" | "no-such-function" | "no-such-variant"
            | "no-such-injection" => Exit::NotFound,
            "library-full" => Exit::LibraryFull,
            "policy-disabled"
            | "quarantined"
            | "target-not-allowed"
            | "limit-reached"
            | "float-reassociate-not-allowed" => Exit::Policy,
            "unsupported-variant"
            | "contract-unknown"
            | "contract-mismatch"
            | "unsafe-entry"
            | "bytes-changed"
            | "already-patched"
            | "shared-address-space"
            | "site-modified"
            | "anonymous-code"
            | "stale"
            | "bad-patch"
            | "unresolved-import"
            | "not-relocatable"
            | "not-executable" => Exit::NotInjectable,
            "no-such-symbol" => Exit::NoSuchSymbol,
            "no-address-space"
            | "address-in-use"
            | "busy"
            | "thread-held"
            | "interrupted"
            | "threads-keep-appearing" => Exit::Busy,
            "usage" => Exit::Usage,
            "no-gain" => Exit::NoGain,
            _ => Exit::Error,
        }
    }
}

/// The `--json` kind of `err`: the first error in its chain adaptctl knows.
pub(crate) fn kind(err: &anyhow::Error) -> &'static str {
    for cause in err.chain() {
        if let Some(op) = cause.downcast_ref::<Op>() {
            return op_kind(op.root());
        }
        if let Some(kind) = known_kind(cause) {
            return kind;
        }
    }
    "error"
}

/// Kinds of the errors the subcommands meet outside `adapt_ops`.
fn known_kind(cause: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    if let Some(e) = cause.downcast_ref::<adapt_client::DeviceError>() {
        return Some(e.kind().as_str());
    }
    if let Some(e) = cause.downcast_ref::<adapt_client::LibraryError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<adapt_client::InjectError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<adapt_client::ProfileError>() {
        return Some(profile_kind(e));
    }
    if let Some(e) = cause.downcast_ref::<adapt_segment::LibraryDirError>() {
        return Some(segment_library_kind(e));
    }
    if let Some(e) = cause.downcast_ref::<adapt_select::SelectError>() {
        return Some(select_kind(e));
    }
    if let Some(e) = cause.downcast_ref::<adapt_client::UploadError>() {
        return Some(upload_kind(e));
    }
    if let Some(e) = cause.downcast_ref::<super::library::CommandError>() {
        return Some(e.kind());
    }
    if cause
        .downcast_ref::<super::bench::NotMeasurable>()
        .is_some()
    {
        return Some("not-measured");
    }
    None
}

fn op_kind(err: &Op) -> &'static str {
    match err {
        Op::Device(e) => e.kind().as_str(),
        Op::Inject(e) => e.kind(),
        Op::Profile(e) => profile_kind(e),
        Op::ModuleLibrary(e) => e.kind(),
        Op::Upload(e) => upload_kind(e),
        Op::Library(e) => segment_library_kind(e),
        Op::Segment(_) => "error",
        Op::Target(e) => target_kind(e),
        Op::Resolve(e) => resolve_kind(e),
        Op::Select(e) => select_kind(e),
        Op::Plan(e) => plan_kind(e),
        Op::Contract(e) => contract_kind(e),
        Op::AlreadyInjected(_) => "already-patched",
        Op::Revert(e) => match **e {
            adapt_ops::revert::RevertError::OtherProcess { .. } => "other-process",
            adapt_ops::revert::RevertError::NotInjected { .. } => "no-such-injection",
        },
        Op::Calls(e) => match &**e {
            adapt_ops::calls::CallsError::Generate(adapt_count::GenerateError::Argument(_)) => {
                "usage"
            }
            adapt_ops::calls::CallsError::Unreadable { source, .. } => match source {
                adapt_target::MemoryError::NoSuchProcess { .. } => "no-such-process",
                adapt_target::MemoryError::NotPermitted { .. } => "not-permitted",
                _ => "error",
            },
            _ => "error",
        },
        Op::Maps { .. } | Op::Exited { .. } | Op::Signal { .. } | Op::During { .. } => "error",
    }
}

fn profile_kind(err: &adapt_client::ProfileError) -> &'static str {
    use adapt_client::ProfileError as E;
    match err {
        E::NoSuchProcess { .. } => "no-such-process",
        E::KernelThread { .. } => "kernel-thread",
        E::NotPermitted { .. } => "not-permitted",
        E::FrequencyOutOfRange { .. } => "frequency-out-of-range",
        E::TooManySessions => "too-many-sessions",
        E::SessionGone { .. } => "session-gone",
        E::UnknownEvent(_) | E::Io { .. } => "error",
    }
}

fn segment_library_kind(err: &adapt_segment::LibraryDirError) -> &'static str {
    use adapt_segment::LibraryDirError as E;
    match err {
        E::NotFound | E::NotADirectory(_) => "no-library",
        E::NoSuchSegment { .. } => "no-such-segment",
        E::Io { .. } | E::Load(_) => "error",
    }
}

fn select_kind(err: &adapt_select::SelectError) -> &'static str {
    use adapt_select::SelectError as E;
    match err {
        E::NoSuchFunction { .. } => "no-such-function",
        E::NoSuchVariant { .. } => "no-such-variant",
        E::NoVariant { .. } => "unsupported-variant",
        E::Shape { .. } => "contract-unknown",
        E::Load(adapt_segment::LoaderError::Verify { .. }) => "refused",
        E::Load(_) => "error",
        E::Child { .. } | E::Imports { .. } => "not-measured",
    }
}

fn upload_kind(err: &adapt_client::UploadError) -> &'static str {
    use adapt_client::UploadError as E;
    match err {
        E::Abi(library) => library.kind(),
        E::NoSuchVariant { .. } => "no-such-variant",
        E::FeatureWithoutBit { .. } | E::EntryMismatch { .. } => "malformed-variant",
    }
}

fn target_kind(err: &adapt_target::TargetError) -> &'static str {
    use adapt_target::{MemoryError, TargetError as E};
    match err {
        E::Resolve(resolve) => resolve_kind(resolve),
        E::Memory(MemoryError::NoSuchProcess { .. }) => "no-such-process",
        E::Memory(MemoryError::NotPermitted { .. }) => "not-permitted",
        E::Memory(_) => "error",
        E::UnknownSize { .. } | E::BodyNotInFile { .. } | E::Prologue { .. } => "unsafe-entry",
        E::Modified { .. } => "bytes-changed",
    }
}

fn resolve_kind(err: &adapt_target::ResolveError) -> &'static str {
    use adapt_target::ResolveError as E;
    match err {
        E::NoSuchProcess { .. } => "no-such-process",
        E::KernelThread { .. } => "kernel-thread",
        E::Maps { .. } => "not-permitted",
        E::NoSuchObject { .. }
        | E::NotFound { .. }
        | E::Ambiguous { .. }
        | E::InSeveralLibraries { .. } => "no-such-symbol",
        E::Ifunc { .. } | E::NotCode { .. } | E::NotMapped { .. } => "unsafe-entry",
        E::FileReplaced { .. } | E::Elf(_) => "error",
    }
}

fn contract_kind(err: &adapt_ops::contract::ContractError) -> &'static str {
    use adapt_ops::contract::ContractError as E;
    match err {
        E::Unknown { .. } => "contract-unknown",
        E::Mismatch { .. } => "contract-mismatch",
        E::Syntax { .. } => "usage",
    }
}

fn plan_kind(err: &adapt_ops::plan::PlanError) -> &'static str {
    use adapt_ops::plan::PlanError as E;
    match err {
        E::NoSegment { .. } => "no-such-segment",
        E::NoSuchFunction { .. } => "no-such-function",
        E::NoSuchVariant { .. } => "no-such-variant",
        E::Unsupported { .. } | E::NoSupportedVariant { .. } => "unsupported-variant",
        E::Refused { .. } => "refused",
        E::UnresolvedImport { .. } => "unresolved-import",
        E::NotRelocatable { .. } => "not-relocatable",
        E::NoPlacement { .. } => "no-address-space",
        E::NumericsNotAllowed { .. } => "float-reassociate-not-allowed",
    }
}

/// The exit code of `err`: its kind's, except where one kind means two
/// outcomes.
pub(crate) fn exit_of(err: &anyhow::Error) -> Exit {
    let shared_at_revert = err.chain().any(|cause| {
        let inner = match cause.downcast_ref::<Op>().map(Op::root) {
            Some(Op::Inject(e)) => Some(e.as_ref()),
            _ => None,
        };
        matches!(inner, Some(adapt_client::InjectError::RevertShared { .. }))
            || matches!(
                cause.downcast_ref::<adapt_client::InjectError>(),
                Some(adapt_client::InjectError::RevertShared { .. })
            )
    });
    // A revert refused because another process shares the address space
    // may work later (the sharer exits or execs): busy, not "never safe".
    if shared_at_revert {
        return Exit::Busy;
    }
    Exit::for_kind(kind(err))
}

/// Prints `err` (one line on stderr; under `--json` also a document on
/// stdout) and returns its exit code.
pub(crate) fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    let kind = kind(err);
    let code = exit_of(err);
    // The full chain on one line: "context: cause: cause".
    let message = format!("{err:#}");
    eprintln!("adaptctl: error: {message}");
    if json {
        let doc = serde_json::json!({
            "error": { "kind": kind, "exit_code": code as u8, "message": message }
        });
        println!("{doc}");
    }
    code.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_injection_error_kind_has_its_documented_code() {
        // The kinds adapt_client gives the errnos of ADAPT_IOC_INJECT.
        let cases = [
            ("no-such-process", 8),
            ("kernel-thread", 9),
            ("not-permitted", 9),
            ("policy-disabled", 14),
            ("limit-reached", 14),
            ("float-reassociate-not-allowed", 14),
            ("no-such-variant", 12),
            ("bad-request", 1),
            ("unsupported-variant", 15),
            ("contract-mismatch", 15),
            ("not-executable", 15),
            ("bytes-changed", 15),
            ("already-patched", 15),
            ("no-address-space", 17),
            ("address-in-use", 17),
            ("unresolved-import", 15),
            ("not-relocatable", 15),
            ("busy", 17),
            ("thread-held", 17),
            ("shared-address-space", 15),
            ("site-modified", 15),
            ("anonymous-code", 15),
            ("interrupted", 17),
            ("threads-keep-appearing", 17),
            ("abi-mismatch", 6),
            ("io", 1),
        ];
        for (kind, code) in cases {
            assert_eq!(Exit::for_kind(kind) as u8, code, "{kind}");
        }
    }

    #[test]
    fn library_and_selection_kinds_have_their_codes() {
        for (kind, code) in [
            ("library-full", 13),
            ("variant-in-use", 11),
            ("no-such-variant", 12),
            ("refused", 10),
            ("module-not-loaded", 3),
            ("permission-denied", 5),
            ("usage", 2),
            ("no-such-symbol", 16),
            ("not-measured", 1),
        ] {
            assert_eq!(Exit::for_kind(kind) as u8, code, "{kind}");
        }
        let e = anyhow::Error::from(adapt_select::SelectError::NoVariant {
            segment: "s".into(),
        });
        assert_eq!(
            (kind(&e), exit_of(&e)),
            ("unsupported-variant", Exit::NotInjectable)
        );
        let e = anyhow::Error::from(adapt_ops::Error::from(
            adapt_client::InjectError::RevertShared { id: 3 },
        ))
        .context("reverting");
        assert_eq!(exit_of(&e), Exit::Busy);
    }

    #[test]
    fn a_refused_float_reassociate_segment_is_a_policy_refusal() {
        let e = anyhow::Error::from(adapt_ops::Error::from(
            adapt_ops::plan::PlanError::NumericsNotAllowed {
                segment: "dgemm-relaxed".into(),
                symbol: "dgemm_".into(),
                numerics: adapt_segment::Numerics::FloatReassociate,
            },
        ));
        assert_eq!(
            (kind(&e), exit_of(&e)),
            ("float-reassociate-not-allowed", Exit::Policy)
        );
        assert_eq!(exit_of(&e) as u8, 14);
    }
}
