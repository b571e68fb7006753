//! The one error type of the operations: every library error they pass on,
//! plus their own.

use std::path::PathBuf;

/// What went wrong in an operation. The CLI maps each case to its exit
/// code and `--json` kind; the message names the cause and the fix. Causes are
/// boxed to keep `Result`s small.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening or talking to `/dev/adapt`.
    #[error(transparent)]
    Device(Box<adapt_client::DeviceError>),
    /// An injection, revert, list or policy ioctl.
    #[error(transparent)]
    Inject(Box<adapt_client::InjectError>),
    /// A profiling session.
    #[error(transparent)]
    Profile(Box<adapt_client::ProfileError>),
    /// The module's variant library (load, unload, list).
    #[error(transparent)]
    ModuleLibrary(Box<adapt_client::LibraryError>),
    /// Turning a segment variant into an upload.
    #[error(transparent)]
    Upload(Box<adapt_client::UploadError>),
    /// The library directory on disk.
    #[error(transparent)]
    Library(Box<adapt_segment::LibraryDirError>),
    /// A segment file.
    #[error(transparent)]
    Segment(Box<adapt_segment::LoadError>),
    /// The target function: resolution, prologue, bytes.
    #[error(transparent)]
    Target(Box<adapt_target::TargetError>),
    /// Resolving a symbol in a process.
    #[error(transparent)]
    Resolve(Box<adapt_target::ResolveError>),
    /// The measurement of the variants against the original.
    #[error(transparent)]
    Select(Box<adapt_select::SelectError>),
    /// Choosing segment, function and variant.
    #[error(transparent)]
    Plan(Box<crate::plan::PlanError>),
    /// The target's C contract.
    #[error(transparent)]
    Contract(Box<crate::contract::ContractError>),
    /// The target is already redirected by one of ours.
    #[error(transparent)]
    AlreadyInjected(Box<crate::inject::AlreadyInjected>),
    /// Which injections to revert.
    #[error(transparent)]
    Revert(Box<crate::revert::RevertError>),
    /// Counting calls.
    #[error(transparent)]
    Calls(Box<crate::calls::CallsError>),
    /// The process's memory map could not be read.
    #[error("cannot read the mappings of pid {pid} ({}): {source}", .path.display())]
    Maps {
        pid: u32,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The profiled process exited during a window.
    #[error("process {pid} exited")]
    Exited { pid: u32 },
    /// Installing a signal handler.
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
    /// An operation failed while doing `what`.
    #[error("{what}: {source}")]
    During { what: String, source: Box<Error> },
}

/// `From` for every cause, boxed.
macro_rules! boxed_from {
    ($($variant:ident: $cause:ty),* $(,)?) => {$(
        impl From<$cause> for Error {
            fn from(err: $cause) -> Self {
                Error::$variant(Box::new(err))
            }
        }
    )*};
}

boxed_from! {
    Device: adapt_client::DeviceError,
    Inject: adapt_client::InjectError,
    Profile: adapt_client::ProfileError,
    ModuleLibrary: adapt_client::LibraryError,
    Upload: adapt_client::UploadError,
    Library: adapt_segment::LibraryDirError,
    Segment: adapt_segment::LoadError,
    Plan: crate::plan::PlanError,
    Contract: crate::contract::ContractError,
    AlreadyInjected: crate::inject::AlreadyInjected,
    Revert: crate::revert::RevertError,
    Calls: crate::calls::CallsError,
    Target: adapt_target::TargetError,
    Resolve: adapt_target::ResolveError,
    Select: adapt_select::SelectError,
}

/// The result of an operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// This error, said to have happened while doing `what`.
    pub fn during(self, what: impl Into<String>) -> Self {
        Error::During {
            what: what.into(),
            source: Box::new(self),
        }
    }

    /// The error that decided the outcome, under any [`Error::During`].
    pub fn root(&self) -> &Error {
        match self {
            Error::During { source, .. } => source.root(),
            other => other,
        }
    }
}
