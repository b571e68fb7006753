//! What `adaptctl status` reports.

use crate::device::Device;
use crate::error::DeviceError;
use adapt_abi as abi;
use serde::Serialize;
use std::path::PathBuf;

/// The sampling event the profiler will use on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// A PMU that can sample CPU cycles.
    HardwareCycles,
    /// No sampling PMU: the software `cpu-clock` event.
    SoftwareCpuClock,
    /// Neither (should not happen on a kernel with perf events).
    Unavailable,
}

impl Sampling {
    pub fn from_capabilities(caps: u64) -> Self {
        if caps & abi::ADAPT_CAP_SAMPLING_HW_CYCLES != 0 {
            Sampling::HardwareCycles
        } else if caps & abi::ADAPT_CAP_SAMPLING_SW_CLOCK != 0 {
            Sampling::SoftwareCpuClock
        } else {
            Sampling::Unavailable
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Sampling::HardwareCycles => "hardware cycles (sampling PMU available)",
            Sampling::SoftwareCpuClock => "software cpu-clock (no sampling PMU on this machine)",
            Sampling::Unavailable => "unavailable (no usable perf event)",
        }
    }
}

/// The module as seen through `/dev/adapt`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    pub device: PathBuf,
    pub module_version: String,
    pub module_abi_version: u32,
    pub adaptctl_version: String,
    pub adaptctl_abi_version: u32,
    pub abi_match: bool,
    /// Raw `ADAPT_CAP_*` bits.
    pub capabilities: u64,
    pub hardware_pmu_sampling: bool,
    pub sampling: Sampling,
}

impl Status {
    /// Asks the module; an ABI mismatch is an error.
    pub fn query(device: &Device) -> Result<Self, DeviceError> {
        let status = Self::from_version(device.path().to_path_buf(), &device.version()?);
        status.check_abi()?;
        Ok(status)
    }

    /// Interprets an `ADAPT_IOC_VERSION` reply.
    pub fn from_version(device: PathBuf, version: &abi::AdaptVersion) -> Self {
        let module_version = version
            .module_version_str()
            .unwrap_or("(not UTF-8)")
            .to_owned();
        Self {
            device,
            module_version,
            module_abi_version: version.abi_version,
            adaptctl_version: env!("CARGO_PKG_VERSION").to_owned(),
            adaptctl_abi_version: abi::ADAPT_ABI_VERSION,
            abi_match: version.abi_version == abi::ADAPT_ABI_VERSION,
            capabilities: version.capabilities,
            hardware_pmu_sampling: version.capabilities & abi::ADAPT_CAP_SAMPLING_HW_CYCLES != 0,
            sampling: Sampling::from_capabilities(version.capabilities),
        }
    }

    /// Fails with [`DeviceError::AbiMismatch`] unless both sides speak the
    /// same ABI version.
    pub fn check_abi(&self) -> Result<(), DeviceError> {
        if self.abi_match {
            Ok(())
        } else {
            Err(DeviceError::AbiMismatch {
                module_abi: self.module_abi_version,
                module_version: self.module_version.clone(),
                cli_abi: self.adaptctl_abi_version,
                cli_version: self.adaptctl_version.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn reply(abi_version: u32, caps: u64) -> abi::AdaptVersion {
        let mut v = abi::AdaptVersion {
            abi_version,
            capabilities: caps,
            ..Default::default()
        };
        v.module_version[..5].copy_from_slice(b"9.9.9");
        v
    }

    #[test]
    fn matching_abi_is_accepted() {
        let s = Status::from_version("/dev/adapt".into(), &reply(abi::ADAPT_ABI_VERSION, 2));
        assert!(s.abi_match);
        assert!(s.check_abi().is_ok());
        assert_eq!(s.module_version, "9.9.9");
        assert_eq!(s.sampling, Sampling::SoftwareCpuClock);
        assert!(!s.hardware_pmu_sampling);
    }

    #[test]
    fn other_abi_is_a_mismatch_naming_both_versions() {
        let s = Status::from_version("/dev/adapt".into(), &reply(abi::ADAPT_ABI_VERSION + 1, 2));
        let err = s.check_abi().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AbiMismatch);
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("ABI v{}", abi::ADAPT_ABI_VERSION + 1)),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("ABI v{}", abi::ADAPT_ABI_VERSION)),
            "{msg}"
        );
        assert!(msg.contains("insmod"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn hardware_sampling_wins_over_software() {
        let caps = abi::ADAPT_CAP_SAMPLING_HW_CYCLES | abi::ADAPT_CAP_SAMPLING_SW_CLOCK;
        assert_eq!(Sampling::from_capabilities(caps), Sampling::HardwareCycles);
        assert_eq!(Sampling::from_capabilities(0), Sampling::Unavailable);
    }
}
