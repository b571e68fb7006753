//! The module side of the library commands: opening `/dev/adapt` with the
//! ABI checked, or learning that the module is not loaded.

use adapt_client::{Device, DeviceError, ErrorKind};
use std::path::Path;

/// Opens the device with the ABI checked ([`Device::open_checked`]).
pub(crate) fn open(path: &Path) -> Result<Device, DeviceError> {
    Device::open_checked(path)
}

/// Like [`open`], but a module that is not loaded is `Ok(Err(why))`: the
/// caller reports it instead of failing.
pub(crate) fn open_if_loaded(path: &Path) -> Result<Result<Device, DeviceError>, DeviceError> {
    match open(path) {
        Ok(device) => Ok(Ok(device)),
        Err(err) if err.kind() == ErrorKind::ModuleNotLoaded => Ok(Err(err)),
        Err(err) => Err(err),
    }
}
