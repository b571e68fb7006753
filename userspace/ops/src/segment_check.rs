//! The verifier's verdict on a segment file of the library, as
//! `adaptctl library verify` reports it and `library load` requires it.

use adapt_segment::{verify_with_imports, Refusal, SegmentFile, VariantReport, VerifyError};
use serde::Serialize;
use std::path::PathBuf;

/// The verifier's verdict on one segment file.
#[derive(Debug, Serialize)]
pub struct SegmentCheck {
    pub name: Option<String>,
    pub path: PathBuf,
    pub ok: bool,
    /// One per accepted variant (all of them when `ok`).
    pub variants: Vec<VariantReport>,
    /// Every refused instruction (at most 100 per variant).
    pub refusals: Vec<Refusal>,
    /// A file or structure problem that stopped verification.
    pub error: Option<String>,
}

/// Verifies the segment of `file` (read from `path`) with its imports,
/// keeping the report of every variant it accepts and every refusal.
pub fn check(path: PathBuf, file: &SegmentFile) -> SegmentCheck {
    let segment = &file.segment;
    let (variants, refusals, error) = match verify_with_imports(segment, &file.imports) {
        Ok(reports) => (reports, Vec::new(), None),
        Err(VerifyError::Refused(refusals)) => {
            // The variants without refusals, verified alone for their
            // reports.
            let accepted = segment
                .variants
                .iter()
                .filter(|v| !refusals.iter().any(|r| r.variant == v.name))
                .filter_map(|v| {
                    let alone = adapt_segment::Segment {
                        variants: vec![v.clone()],
                        ..segment.clone()
                    };
                    verify_with_imports(&alone, &file.imports).ok()?.pop()
                })
                .collect();
            (accepted, refusals, None)
        }
        Err(err @ VerifyError::Malformed(_)) => (Vec::new(), Vec::new(), Some(err.to_string())),
    };
    SegmentCheck {
        name: Some(segment.name.clone()),
        path,
        ok: refusals.is_empty() && error.is_none(),
        variants,
        refusals,
        error,
    }
}
