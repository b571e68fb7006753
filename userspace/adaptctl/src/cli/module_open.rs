//! Opening `/dev/adapt` for the injection commands, with the ABI checked.

use adapt_client::{Device, DeviceError, Status};
use std::path::Path;

/// Opens the device and checks that the module speaks adaptctl's ABI.
pub(crate) fn open_checked(path: &Path) -> Result<Device, DeviceError> {
    let device = Device::open(path)?;
    Status::query(&device)?;
    Ok(device)
}
