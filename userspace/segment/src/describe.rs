// SPDX-License-Identifier: GPL-2.0
//! Summaries of segments for display (`Display`) and JSON (`Serialize`).

use std::fmt;

use serde::Serialize;

use crate::cpu::CpuFeatures;
use crate::format::Segment;

/// A segment, as `adaptctl library show` presents it.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentSummary {
    /// Segment name.
    pub name: String,
    /// Implementation version.
    pub version: u32,
    /// One line for humans.
    pub description: String,
    /// How it was built.
    pub build: String,
    /// sha256 of the content, hex.
    pub content_hash: String,
    /// `exact` (bit-identical to what it replaces) or `float-reassociate`
    /// (opt-in only).
    pub numerics: String,
    /// The functions it replaces.
    pub functions: Vec<FunctionSummary>,
    /// Its variants, best first.
    pub variants: Vec<VariantSummary>,
    /// The variant the described CPU would use.
    pub best_variant: Option<String>,
}

/// One replaced function.
#[derive(Clone, Debug, Serialize)]
pub struct FunctionSummary {
    /// Symbol.
    pub symbol: String,
    /// Library usually exporting it.
    pub library: String,
    /// C declaration.
    pub declaration: String,
    /// The behaviour it matches.
    pub reference: String,
}

/// One variant.
#[derive(Clone, Debug, Serialize)]
pub struct VariantSummary {
    /// Variant name.
    pub name: String,
    /// Required CPU features.
    pub features: Vec<String>,
    /// Whether the described CPU has them.
    pub supported: bool,
    /// CPU features the described CPU lacks.
    pub missing: Vec<String>,
    /// Code bytes.
    pub code_bytes: usize,
    /// Read-only data bytes.
    pub rodata_bytes: usize,
    /// Relocation count.
    pub relocations: usize,
    /// Entry offset of each function, in function order.
    pub entry_offsets: Vec<u32>,
}

impl Segment {
    /// A summary for display, with support judged against `cpu` (use
    /// [`CpuFeatures::detect`] for this machine).
    pub fn describe(&self, cpu: &CpuFeatures) -> SegmentSummary {
        SegmentSummary {
            name: self.name.clone(),
            version: self.version,
            description: self.description.clone(),
            build: self.build.clone(),
            content_hash: self.content_hash_hex(),
            numerics: self.numerics.name().to_owned(),
            functions: self
                .functions
                .iter()
                .map(|f| FunctionSummary {
                    symbol: f.symbol.clone(),
                    library: f.library.clone(),
                    declaration: f.contract.declaration(&f.symbol),
                    reference: f.reference.clone(),
                })
                .collect(),
            variants: self
                .variants
                .iter()
                .map(|v| VariantSummary {
                    name: v.name.clone(),
                    features: v.features.iter().map(|f| f.name().to_owned()).collect(),
                    supported: cpu.is_superset(&v.features),
                    missing: cpu
                        .missing(&v.features)
                        .iter()
                        .map(|f| f.name().to_owned())
                        .collect(),
                    code_bytes: v.code.len(),
                    rodata_bytes: v.rodata.len(),
                    relocations: v.relocations.len(),
                    entry_offsets: v.entry_offsets.clone(),
                })
                .collect(),
            best_variant: self.best_variant(cpu).map(|(_, v)| v.name.clone()),
        }
    }
}

impl fmt::Display for SegmentSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "segment {} (version {}): {}",
            self.name, self.version, self.description
        )?;
        writeln!(f, "  content hash {}", self.content_hash)?;
        if self.numerics == crate::Numerics::Exact.name() {
            writeln!(f, "  numerics exact (bit-identical to what it replaces)")?;
        } else {
            writeln!(
                f,
                "  numerics {} (NOT bit-identical: used only where the policy sets \
                 allow_float_reassociate, or with inject --allow-float-reassociate)",
                self.numerics
            )?;
        }
        writeln!(f, "  built with {}", self.build)?;
        for func in &self.functions {
            let lib = if func.library.is_empty() {
                String::new()
            } else {
                format!(" [{}]", func.library)
            };
            writeln!(f, "  replaces {}{lib}", func.declaration)?;
            writeln!(f, "    must match: {}", func.reference)?;
        }
        for v in &self.variants {
            let mark = if Some(&v.name) == self.best_variant.as_ref() {
                "best"
            } else if v.supported {
                "ok"
            } else {
                "no"
            };
            let feats = if v.features.is_empty() {
                "baseline".to_owned()
            } else {
                v.features.join(",")
            };
            write!(
                f,
                "  variant {:<16} [{mark:>4}] code {:>6} B, rodata {:>6} B, {:>3} relocs, needs {feats}",
                v.name, v.code_bytes, v.rodata_bytes, v.relocations
            )?;
            if !v.missing.is_empty() {
                write!(f, " (missing {})", v.missing.join(","))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Formats a [`CpuFeatures`] set as a list of names.
pub fn feature_names(s: &CpuFeatures) -> Vec<String> {
    s.iter().map(|f| f.name().to_owned()).collect()
}
