//! An open `/dev/adapt`.

use crate::error::DeviceError;
use adapt_abi as abi;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Where the module's misc device appears.
pub const DEFAULT_DEVICE_PATH: &str = "/dev/adapt";

/// The module's directory in sysfs: present exactly while it is loaded.
const SYSFS_MODULE: &str = "/sys/module/adapt";
/// `MAJOR:MINOR` of the misc device, while it is registered.
const SYSFS_MISC_DEV: &str = "/sys/class/misc/adapt/dev";

/// An open handle on the adapt device.
#[derive(Debug)]
pub struct Device {
    file: File,
    path: PathBuf,
}

impl Device {
    /// Opens the device node at `path`, telling apart a module that is not
    /// loaded, a missing or stale node, and missing privileges.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DeviceError> {
        let path = path.as_ref().to_path_buf();
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => Ok(Self { file, path }),
            Err(err) => Err(classify_open_error(path, err)),
        }
    }

    /// Opens the device node at `path` and checks that the loaded module
    /// speaks this client's ABI ([`crate::Status::check_abi`]): what every
    /// command that changes the module's state opens it with.
    pub fn open_checked(path: impl AsRef<Path>) -> Result<Self, DeviceError> {
        let device = Self::open(path)?;
        crate::Status::query(&device)?;
        Ok(device)
    }

    /// The path this handle was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `ADAPT_IOC_VERSION`: the module's ABI and module versions and the
    /// capabilities of this machine.
    pub fn version(&self) -> Result<abi::AdaptVersion, DeviceError> {
        let mut version = abi::AdaptVersion::default();
        self.ioctl(abi::ADAPT_IOC_VERSION, &mut version)
            .map_err(|err| match err.raw_os_error() {
                Some(libc::ENOTTY) | Some(libc::EINVAL) => DeviceError::NotAdaptDevice {
                    path: self.path.clone(),
                },
                _ => DeviceError::Io {
                    what: "ADAPT_IOC_VERSION",
                    path: self.path.clone(),
                    source: err,
                },
            })?;
        Ok(version)
    }

    /// Issues `cmd` with `arg` as its in/out argument.
    pub(crate) fn ioctl<T>(&self, cmd: u32, arg: &mut T) -> io::Result<libc::c_int> {
        assert_eq!(
            abi::ioc_size(cmd),
            std::mem::size_of::<T>(),
            "ioctl {cmd:#x} used with an argument of the wrong type"
        );
        // SAFETY: `arg` is a valid, exclusively borrowed `T` for the whole
        // call, and its size is the one encoded in `cmd` (asserted above), so
        // the kernel reads and writes only inside it.
        let ret =
            unsafe { libc::ioctl(self.file.as_raw_fd(), cmd as libc::c_ulong, arg as *mut T) };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }
}

fn classify_open_error(path: PathBuf, err: io::Error) -> DeviceError {
    match err.raw_os_error() {
        Some(libc::ENOENT) => {
            if Path::new(SYSFS_MODULE).exists() {
                let numbers = std::fs::read_to_string(SYSFS_MISC_DEV)
                    .ok()
                    .map(|dev| dev.trim().replace(':', " "));
                DeviceError::NoDeviceNode { path, numbers }
            } else {
                DeviceError::ModuleNotLoaded { path }
            }
        }
        Some(libc::EACCES) | Some(libc::EPERM) => DeviceError::PermissionDenied { path },
        Some(libc::ENXIO) | Some(libc::ENODEV) => DeviceError::StaleDeviceNode { path },
        _ => DeviceError::Io {
            what: "open",
            path,
            source: err,
        },
    }
}
