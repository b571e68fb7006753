// SPDX-License-Identifier: GPL-2.0
//! Which machine a measurement belongs to: the CPU model string and the CPU
//! features adapt knows, as this process sees them.

use adapt_segment::CpuFeatures;
use serde::{Deserialize, Serialize};

/// The CPU a measurement was made on. Two measurements are comparable only
/// if both fields are equal: a different model (another host, or a
/// hypervisor presenting another CPU) or another feature set (a hypervisor
/// hiding AVX-512, a microcode update disabling a feature) invalidates them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CpuIdentity {
    /// `model name` of the first processor in `/proc/cpuinfo` (or
    /// `vendor_id family/model/stepping` when it has none).
    pub model: String,
    /// The features of [`CpuFeatures::detect`], comma-separated in their
    /// canonical order.
    pub features: String,
}

impl CpuIdentity {
    /// The identity of the CPU this process runs on.
    pub fn detect() -> CpuIdentity {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        CpuIdentity {
            model: model_from_cpuinfo(&cpuinfo),
            features: CpuFeatures::detect().to_string(),
        }
    }
}

/// The model string of the first processor listed in a `/proc/cpuinfo`
/// text.
pub fn model_from_cpuinfo(cpuinfo: &str) -> String {
    let field = |name: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
    };
    if let Some(m) = field("model name").filter(|m| !m.is_empty()) {
        return m;
    }
    let parts: Vec<String> = ["vendor_id", "cpu family", "model", "stepping"]
        .iter()
        .filter_map(|k| field(k))
        .collect();
    if parts.is_empty() {
        "unknown CPU".to_owned()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_name_is_read_from_the_first_processor() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(model_from_cpuinfo(text), "AMD EPYC 9B14");
        let bare = "vendor_id : GenuineIntel\ncpu family : 6\nmodel : 85\nstepping : 7\n";
        assert_eq!(model_from_cpuinfo(bare), "GenuineIntel 6 85 7");
        assert_eq!(model_from_cpuinfo(""), "unknown CPU");
        let me = CpuIdentity::detect();
        assert!(!me.model.is_empty());
    }
}
