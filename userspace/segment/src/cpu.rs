// SPDX-License-Identifier: GPL-2.0
//! CPU features a variant may require, their implications, and detection of
//! the features of the machine we run on.
//!
//! Names are those of rustc's `target_feature` (and of
//! `is_x86_feature_detected!`), so the builder passes them to rustc unchanged
//! and a reader recognises them. The baseline of x86-64 (SSE, SSE2, CMOV,
//! CMPXCHG8B, x87, multi-byte NOP, PAUSE) is never listed: every x86-64 CPU
//! has it, see [`crate::verify::BASELINE_CPUID`].

use std::fmt;
use std::str::FromStr;

use iced_x86::CpuidFeature;
use serde::{Deserialize, Serialize};

macro_rules! cpu_features {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, implies [$($imp:ident),*], iced [$($iced:ident),*]; )*) => {
        /// One optional x86-64 CPU feature (beyond the baseline).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum CpuFeature {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )*
        }

        impl CpuFeature {
            /// Every feature, in declaration (and serialization sort) order.
            pub const ALL: &'static [CpuFeature] = &[$(CpuFeature::$variant),*];

            /// The name used by rustc's `target_feature`, by
            /// `is_x86_feature_detected!` and in segment files.
            pub const fn name(self) -> &'static str {
                match self { $(CpuFeature::$variant => $name,)* }
            }

            /// Features this one directly implies (a CPU that has it has them,
            /// and the compiler may use them once it is enabled).
            pub const fn implies(self) -> &'static [CpuFeature] {
                match self { $(CpuFeature::$variant => &[$(CpuFeature::$imp),*],)* }
            }

            /// The iced-x86 CPUID features this feature makes available.
            pub const fn cpuid(self) -> &'static [CpuidFeature] {
                match self { $(CpuFeature::$variant => &[$(CpuidFeature::$iced),*],)* }
            }
        }
    };
}

cpu_features! {
    /// SSE3.
    Sse3 = "sse3", implies [], iced [SSE3];
    /// Supplemental SSE3 (`pshufb`, `palignr`).
    Ssse3 = "ssse3", implies [Sse3], iced [SSSE3];
    /// SSE4.1 (`ptest`, `pextrd`, `pblendw`, ...).
    Sse41 = "sse4.1", implies [Ssse3], iced [SSE4_1];
    /// SSE4.2 (`crc32`, `pcmpistri`).
    Sse42 = "sse4.2", implies [Sse41], iced [SSE4_2];
    /// `popcnt`.
    Popcnt = "popcnt", implies [], iced [POPCNT];
    /// Carry-less multiplication (`pclmulqdq`).
    Pclmulqdq = "pclmulqdq", implies [], iced [PCLMULQDQ];
    /// AES-NI.
    Aes = "aes", implies [], iced [AES];
    /// AVX (256-bit float vectors, VEX encoding).
    Avx = "avx", implies [Sse42], iced [AVX];
    /// AVX2 (256-bit integer vectors).
    Avx2 = "avx2", implies [Avx], iced [AVX2];
    /// Fused multiply-add (FMA3).
    Fma = "fma", implies [Avx], iced [FMA];
    /// Half-precision conversions.
    F16c = "f16c", implies [Avx], iced [F16C];
    /// Bit manipulation 1 (`andn`, `blsr`, `tzcnt`, ...).
    Bmi1 = "bmi1", implies [], iced [BMI1];
    /// Bit manipulation 2 (`shlx`, `pdep`, `mulx`, ...).
    Bmi2 = "bmi2", implies [], iced [BMI2];
    /// `lzcnt`.
    Lzcnt = "lzcnt", implies [], iced [LZCNT];
    /// `movbe`.
    Movbe = "movbe", implies [], iced [MOVBE];
    /// SHA extensions (`sha256rnds2`, ...).
    Sha = "sha", implies [], iced [SHA];
    /// AVX-512 foundation.
    Avx512f = "avx512f", implies [Avx2, Fma, F16c], iced [AVX512F];
    /// AVX-512 byte and word instructions.
    Avx512bw = "avx512bw", implies [Avx512f], iced [AVX512BW];
    /// AVX-512 vector length extensions (EVEX on xmm/ymm).
    Avx512vl = "avx512vl", implies [Avx512f], iced [AVX512VL];
    /// AVX-512 doubleword and quadword instructions.
    Avx512dq = "avx512dq", implies [Avx512f], iced [AVX512DQ];
    /// AVX-512 conflict detection.
    Avx512cd = "avx512cd", implies [Avx512f], iced [AVX512CD];
    /// AVX-512 vector byte manipulation.
    Avx512vbmi = "avx512vbmi", implies [Avx512bw], iced [AVX512_VBMI];
    /// AVX-512 vector neural network instructions (`vpdpbusd`).
    Avx512vnni = "avx512vnni", implies [Avx512f], iced [AVX512_VNNI];
    /// Carry-less multiplication on ymm/zmm.
    Vpclmulqdq = "vpclmulqdq", implies [Avx, Pclmulqdq], iced [VPCLMULQDQ];
    /// AES on ymm/zmm.
    Vaes = "vaes", implies [Avx, Aes], iced [VAES];
    /// Galois-field instructions.
    Gfni = "gfni", implies [], iced [GFNI];
}

impl fmt::Display for CpuFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`CpuFeature`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CPU feature {0:?}")]
pub struct UnknownCpuFeature(pub String);

impl FromStr for CpuFeature {
    type Err = UnknownCpuFeature;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CpuFeature::ALL
            .iter()
            .copied()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownCpuFeature(s.to_owned()))
    }
}

/// A set of [`CpuFeature`]s.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CpuFeatures(u64);

// One bit per feature must fit the set.
const _: () = assert!(CpuFeature::ALL.len() <= 64);

impl CpuFeatures {
    /// The empty set (a baseline x86-64 CPU).
    pub const fn empty() -> Self {
        CpuFeatures(0)
    }

    /// The set holding every feature this crate knows.
    pub fn all() -> Self {
        CpuFeature::ALL.iter().copied().collect()
    }

    /// Adds `f` (without its implications).
    pub fn insert(&mut self, f: CpuFeature) {
        self.0 |= 1 << f as u32;
    }

    /// Removes `f`.
    pub fn remove(&mut self, f: CpuFeature) {
        self.0 &= !(1 << f as u32);
    }

    /// Whether `f` is in the set.
    pub const fn contains(&self, f: CpuFeature) -> bool {
        self.0 & (1 << f as u32) != 0
    }

    /// Whether every feature of `other` is in the set.
    pub const fn is_superset(&self, other: &CpuFeatures) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub const fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The features of `other` missing from `self`.
    pub const fn missing(&self, other: &CpuFeatures) -> CpuFeatures {
        CpuFeatures(other.0 & !self.0)
    }

    /// The set together with everything its features imply, transitively.
    pub fn closure(&self) -> CpuFeatures {
        let mut out = *self;
        loop {
            let before = out;
            for f in before.iter() {
                for &g in f.implies() {
                    out.insert(g);
                }
            }
            if out == before {
                return out;
            }
        }
    }

    /// Whether the set already holds everything its features imply.
    pub fn is_closed(&self) -> bool {
        self.closure() == *self
    }

    /// The features, in [`CpuFeature::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = CpuFeature> + '_ {
        CpuFeature::ALL
            .iter()
            .copied()
            .filter(|f| self.contains(*f))
    }

    /// The features as a sorted vector (the order segment files use).
    pub fn to_vec(&self) -> Vec<CpuFeature> {
        self.iter().collect()
    }

    /// The features of the machine this process runs on, as reported by the
    /// CPU and enabled by the operating system (AVX and AVX-512 register state
    /// included), through `std::is_x86_feature_detected!`.
    pub fn detect() -> CpuFeatures {
        let mut s = CpuFeatures::empty();
        macro_rules! probe {
            ($($v:ident => $n:tt),*) => {
                $( if std::is_x86_feature_detected!($n) { s.insert(CpuFeature::$v); } )*
            };
        }
        probe!(
            Sse3 => "sse3", Ssse3 => "ssse3", Sse41 => "sse4.1", Sse42 => "sse4.2",
            Popcnt => "popcnt", Pclmulqdq => "pclmulqdq", Aes => "aes", Avx => "avx",
            Avx2 => "avx2", Fma => "fma", F16c => "f16c", Bmi1 => "bmi1", Bmi2 => "bmi2",
            Lzcnt => "lzcnt", Movbe => "movbe", Sha => "sha", Avx512f => "avx512f",
            Avx512bw => "avx512bw", Avx512vl => "avx512vl", Avx512dq => "avx512dq",
            Avx512cd => "avx512cd", Avx512vbmi => "avx512vbmi",
            Avx512vnni => "avx512vnni", Vpclmulqdq => "vpclmulqdq", Vaes => "vaes",
            Gfni => "gfni"
        );
        s
    }
}

impl FromIterator<CpuFeature> for CpuFeatures {
    fn from_iter<I: IntoIterator<Item = CpuFeature>>(iter: I) -> Self {
        let mut s = CpuFeatures::empty();
        for f in iter {
            s.insert(f);
        }
        s
    }
}

impl<'a> FromIterator<&'a CpuFeature> for CpuFeatures {
    fn from_iter<I: IntoIterator<Item = &'a CpuFeature>>(iter: I) -> Self {
        iter.into_iter().copied().collect()
    }
}

impl fmt::Debug for CpuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(|x| x.name()))
            .finish()
    }
}

impl fmt::Display for CpuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("x86-64 baseline");
        }
        let mut first = true;
        for x in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(x.name())?;
        }
        Ok(())
    }
}

impl Serialize for CpuFeatures {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for CpuFeatures {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<CpuFeature>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &f in CpuFeature::ALL {
            assert_eq!(f.name().parse::<CpuFeature>(), Ok(f));
        }
        assert!("avx1024".parse::<CpuFeature>().is_err());
    }

    #[test]
    fn closure_follows_implications() {
        let s: CpuFeatures = [CpuFeature::Avx512bw].iter().collect();
        let c = s.closure();
        for f in [
            CpuFeature::Avx512bw,
            CpuFeature::Avx512f,
            CpuFeature::Avx2,
            CpuFeature::Avx,
            CpuFeature::Fma,
            CpuFeature::Sse42,
            CpuFeature::Sse41,
            CpuFeature::Ssse3,
            CpuFeature::Sse3,
        ] {
            assert!(c.contains(f), "{f} missing from {c}");
        }
        assert!(!c.contains(CpuFeature::Pclmulqdq));
        assert!(c.is_closed());
        assert!(!s.is_closed());
    }

    #[test]
    fn detected_set_is_closed_on_real_cpus() {
        // A real CPU (or a sane hypervisor) that reports a feature also
        // reports what it implies; the detection must not invent features.
        let d = CpuFeatures::detect();
        assert!(d.is_closed(), "detected {d}, closure {}", d.closure());
    }
}
