//! The verifier's verdict on a segment file of the library, as
//! `adaptctl library verify` reports it and `library load` requires it.

use adapt_segment::{verify_segment, Refusal, Segment, VariantReport, VerifyError};
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

/// Verifies `segment` (read from `path`), keeping the report of every
/// variant it accepts and every refusal.
pub fn check(path: PathBuf, segment: &Segment) -> SegmentCheck {
    let (variants, refusals, error) = match verify_segment(segment) {
        Ok(reports) => (reports, Vec::new(), None),
        Err(VerifyError::Refused(refusals)) => {
            let accepted = segment
                .variants
                .iter()
                .enumerate()
                .filter(|(_, v)| !refusals.iter().any(|r| r.variant == v.name))
                .filter_map(|(i, _)| adapt_segment::verify_variant(segment, i).ok())
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
