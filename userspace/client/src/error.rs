//! Errors of the device client, each with a stable kind.

use std::io;
use std::path::PathBuf;

/// A coarse, stable classification of [`DeviceError`], for `--json`
/// output (and the exit codes adaptctl derives from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    ModuleNotLoaded,
    NoDeviceNode,
    PermissionDenied,
    NotAdaptDevice,
    AbiMismatch,
    Io,
}

impl ErrorKind {
    /// A stable identifier for scripts (`--json`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ModuleNotLoaded => "module-not-loaded",
            ErrorKind::NoDeviceNode => "no-device-node",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::NotAdaptDevice => "not-an-adapt-device",
            ErrorKind::AbiMismatch => "abi-mismatch",
            ErrorKind::Io => "io",
        }
    }
}

/// Why `/dev/adapt` could not be used. Every message is one line that names
/// the cause and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "the adapt kernel module is not loaded ({path} does not exist and there is no \
         /sys/module/adapt): load it with `insmod adapt.ko` (inside `cargo vm` guests: \
         `insmod $ADAPT_KO`)",
        path = path.display()
    )]
    ModuleNotLoaded { path: PathBuf },

    #[error(
        "{path} exists but no driver answers it (stale device node; the adapt module is not \
         loaded): load it with `insmod adapt.ko`",
        path = path.display()
    )]
    StaleDeviceNode { path: PathBuf },

    #[error(
        "the adapt module is loaded but {path} does not exist: create it with \
         `mknod -m 600 {path} c {numbers}` or mount devtmpfs on /dev",
        path = path.display(),
        numbers = numbers.as_deref().unwrap_or("MAJOR MINOR (see /sys/class/misc/adapt/dev)")
    )]
    NoDeviceNode {
        path: PathBuf,
        /// `MAJOR MINOR` read from sysfs, when available.
        numbers: Option<String>,
    },

    #[error(
        "permission denied opening {path}: adaptctl must run as root (the device is mode 0600 \
         and requires CAP_SYS_ADMIN); try `sudo adaptctl …`",
        path = path.display()
    )]
    PermissionDenied { path: PathBuf },

    #[error(
        "{path} is not an adapt device (it does not answer ADAPT_IOC_VERSION): pass the adapt \
         device node with --device, normally /dev/adapt",
        path = path.display()
    )]
    NotAdaptDevice { path: PathBuf },

    #[error(
        "ABI mismatch: the loaded adapt module {module_version} speaks ABI v{module_abi}, this \
         adaptctl {cli_version} speaks ABI v{cli_abi}: load the adapt.ko built from the same \
         source as adaptctl (`rmmod adapt && insmod adapt.ko`)"
    )]
    AbiMismatch {
        module_abi: u32,
        module_version: String,
        cli_abi: u32,
        cli_version: String,
    },

    #[error("{what} on {path} failed: {source}", path = path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DeviceError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DeviceError::ModuleNotLoaded { .. } | DeviceError::StaleDeviceNode { .. } => {
                ErrorKind::ModuleNotLoaded
            }
            DeviceError::NoDeviceNode { .. } => ErrorKind::NoDeviceNode,
            DeviceError::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            DeviceError::NotAdaptDevice { .. } => ErrorKind::NotAdaptDevice,
            DeviceError::AbiMismatch { .. } => ErrorKind::AbiMismatch,
            DeviceError::Io { .. } => ErrorKind::Io,
        }
    }
}
