//! The injection policy the module enforces: the enable switch and limits
//! the injection commands show and change, and the whole policy a policy
//! file sets.

use crate::inject::{common_error, InjectError};
use crate::Device;
use adapt_abi as abi;
use serde::Serialize;

/// The part of the module's policy the injection commands show and change:
/// the enable switch and the limits. (The rest — targets, segments, sampling
/// bounds, regression margin — is kept as it is by [`set_policy`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Injection is allowed at all.
    pub enabled: bool,
    /// Most live injections in one process.
    pub max_per_process: u32,
    /// Most live injections in all processes.
    pub max_total: u32,
}

impl Policy {
    pub(crate) fn from_abi(p: &abi::AdaptPolicy) -> Self {
        Self {
            enabled: p.flags & abi::ADAPT_POLICY_F_ENABLED != 0,
            max_per_process: p.max_per_process,
            max_total: p.max_total,
        }
    }

    /// `current` with this switch and these limits, everything else kept.
    fn apply_to(self, current: &abi::AdaptPolicy) -> abi::AdaptPolicy {
        let mut p = *current;
        p.flags = if self.enabled {
            p.flags | abi::ADAPT_POLICY_F_ENABLED
        } else {
            p.flags & !abi::ADAPT_POLICY_F_ENABLED
        };
        p.max_per_process = self.max_per_process;
        p.max_total = self.max_total;
        p
    }

    /// Checks the limits the module accepts, so a bad value is refused with
    /// the bounds before the ioctl.
    pub fn validate(&self) -> Result<(), InjectError> {
        let total_ok = (1..=abi::ADAPT_POLICY_MAX_TOTAL).contains(&self.max_total);
        let per_process_ok = (1..=self.max_total).contains(&self.max_per_process);
        if total_ok && per_process_ok {
            Ok(())
        } else {
            Err(InjectError::BadPolicy { policy: *self })
        }
    }
}

/// The switch and limits of the policy the module enforces now.
pub fn get_policy(device: &Device) -> Result<Policy, InjectError> {
    Ok(Policy::from_abi(&get_policy_raw(device)?))
}

/// The whole policy as the module holds it.
pub fn get_policy_raw(device: &Device) -> Result<abi::AdaptPolicy, InjectError> {
    let mut arg = abi::AdaptPolicy::default();
    device
        .ioctl(abi::ADAPT_IOC_POLICY_GET, &mut arg)
        .map_err(|source| common_error("ADAPT_IOC_POLICY_GET", source))?;
    Ok(arg)
}

/// Sets the enable switch and the limits, keeping every other part of the
/// module's policy (read first). Live injections above a new limit stay.
pub fn set_policy(device: &Device, policy: &Policy) -> Result<(), InjectError> {
    policy.validate()?;
    let mut arg = policy.apply_to(&get_policy_raw(device)?);
    device
        .ioctl(abi::ADAPT_IOC_POLICY_SET, &mut arg)
        .map(drop)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::EINVAL) => InjectError::BadPolicy { policy: *policy },
            _ => common_error("ADAPT_IOC_POLICY_SET", source),
        })
}

/// Replaces the whole policy (as loaded from a policy file). The module
/// validates it again; `EINVAL` becomes an error naming the file's fields.
pub fn set_policy_raw(device: &Device, policy: &abi::AdaptPolicy) -> Result<(), InjectError> {
    let mut arg = *policy;
    device
        .ioctl(abi::ADAPT_IOC_POLICY_SET, &mut arg)
        .map(drop)
        .map_err(|source| common_error("ADAPT_IOC_POLICY_SET", source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_checked_against_the_abi_bounds() {
        let p = |max_per_process, max_total| Policy {
            enabled: true,
            max_per_process,
            max_total,
        };
        assert!(p(1, 1).validate().is_ok());
        assert!(p(16, 256).validate().is_ok());
        assert!(p(abi::ADAPT_POLICY_MAX_TOTAL, abi::ADAPT_POLICY_MAX_TOTAL)
            .validate()
            .is_ok());
        for bad in [
            p(0, 5),
            p(6, 5),
            p(1, 0),
            p(1, abi::ADAPT_POLICY_MAX_TOTAL + 1),
        ] {
            let err = bad.validate().unwrap_err();
            assert!(
                err.to_string()
                    .contains("1 <= max-per-process <= max-total <= 4096"),
                "{err}"
            );
        }
        // Only the switch and the limits change; targets and the rest stay.
        let current = abi::AdaptPolicy {
            flags: 0,
            max_per_process: 16,
            max_total: 256,
            nuids: 1,
            uids: [1000; abi::ADAPT_POLICY_MAX_UIDS],
            regression_margin_permille: 50,
            ..Default::default()
        };
        let a = p(3, 9).apply_to(&current);
        assert_eq!(
            (a.flags, a.max_per_process, a.max_total),
            (abi::ADAPT_POLICY_F_ENABLED, 3, 9)
        );
        assert_eq!(
            (a.nuids, a.uids[0], a.regression_margin_permille, a.reserved),
            (1, 1000, 50, [0; 4])
        );
        assert_eq!(Policy::from_abi(&a), p(3, 9));
        let off = Policy {
            enabled: false,
            ..p(3, 9)
        }
        .apply_to(&a);
        assert_eq!(off.flags, 0);
        assert_eq!(off.nuids, 1);
    }
}
