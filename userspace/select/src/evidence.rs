// SPDX-License-Identifier: GPL-2.0
//! Is the original really the function the segment replaces? A file whose
//! name (or `DT_SONAME`) says `libz.so.1` is not thereby zlib.
//!
//! The evidence, strongest first, all computed by the parent from the
//! bytes it read (never from what the measuring child says):
//!
//! | evidence | meaning |
//! |---|---|
//! | `file-sha256` | the whole file is a known-good build |
//! | `function-sha256` | the function's bytes equal a known-good build's |
//! | `build-id` | the file *claims* a known build-id (a note anyone can copy: reported, not relied on) |
//! | `name` | only the file name matches the library the segment declares |
//!
//! The known-good builds ship with the segment sources,
//! `segments/known-originals.json`. Without content evidence the
//! differential check decides: in the unprivileged child, every variant's
//! result is compared with the original's, and a variant whose result
//! differs is never injected.

use serde::{Deserialize, Serialize};

use adapt_segment::codec::hex;

use crate::original::PreparedOriginal;

/// The list, as shipped.
const KNOWN: &str = include_str!("../../../segments/known-originals.json");

#[derive(Deserialize)]
struct KnownFile {
    format: u32,
    originals: Vec<Known>,
}

#[derive(Deserialize)]
struct Known {
    name: String,
    library: String,
    file_sha256: String,
    build_id: String,
    functions: std::collections::BTreeMap<String, String>,
}

fn known() -> Vec<Known> {
    // The file is part of the build; a malformed one leaves the list empty
    // (the unit test below fails on it).
    serde_json::from_str::<KnownFile>(KNOWN)
        .ok()
        .filter(|k| k.format == 1)
        .map(|k| k.originals)
        .unwrap_or_default()
}

/// One kind of evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Match {
    /// The whole file equals a known-good build.
    FileSha256,
    /// The function's bytes equal a known-good build's.
    FunctionSha256,
    /// The file claims a known build-id.
    BuildId,
    /// Only the name matches.
    Name,
}

/// What matched, for the output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Every kind that matched, strongest first.
    pub matched: Vec<Match>,
    /// The known-good build matched by content, if any.
    pub known: Option<String>,
    /// Content evidence (file or function bytes) matched.
    pub by_content: bool,
    /// One sentence for people.
    pub summary: String,
}

impl Evidence {
    /// The evidence that `p` is `symbol` of `library` (the segment
    /// function's declared library, may be empty).
    pub fn of(p: &PreparedOriginal, segment: &str, symbol: &str, library: &str) -> Evidence {
        let list = known();
        let build_id = p.info.build_id.as_deref().map(hex);
        let mut matched = Vec::new();
        let mut known_name = None;
        // A build of another library does not vouch for this function.
        for k in list
            .iter()
            .filter(|k| library.is_empty() || k.library == library)
        {
            let file = k.file_sha256 == p.file_sha256;
            let func = k
                .functions
                .get(symbol)
                .is_some_and(|h| Some(h) == p.function_sha256.as_ref());
            let bid = build_id.as_deref() == Some(k.build_id.as_str());
            if file || func {
                known_name.get_or_insert_with(|| k.name.clone());
            }
            for (hit, m) in [
                (file, Match::FileSha256),
                (func, Match::FunctionSha256),
                (bid, Match::BuildId),
            ] {
                if hit && !matched.contains(&m) {
                    matched.push(m);
                }
            }
        }
        let file_name = p.path.rsplit('/').next().unwrap_or(&p.path);
        let named = !library.is_empty()
            && (file_name == library
                || file_name
                    .strip_prefix(library)
                    .is_some_and(|r| r.starts_with('.')));
        if named {
            matched.push(Match::Name);
        }
        let by_content = matched
            .iter()
            .any(|m| matches!(m, Match::FileSha256 | Match::FunctionSha256));
        let summary = match (&known_name, by_content) {
            (Some(k), true) => {
                let what = if matched.contains(&Match::FileSha256) {
                    "the whole file equals"
                } else {
                    "the function's bytes equal"
                };
                format!("{symbol} matched by content: {what} {k}")
            }
            _ if matched.contains(&Match::BuildId) => format!(
                "{symbol}: the file claims a known build-id but its content is not a known \
                 build: not trusted by name or build-id; the differential check against \
                 segment {segment}'s variants decides"
            ),
            _ if named => format!(
                "{symbol}: name only ({file_name}); not a known build: not trusted by name; the \
                 differential check against segment {segment}'s variants decides"
            ),
            _ => format!(
                "{symbol}: no evidence that it is the function segment {segment} replaces; the \
                 differential check decides"
            ),
        };
        Evidence {
            matched,
            known: known_name,
            by_content,
            summary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::original::{OriginalSpec, PreparedOriginal};

    #[test]
    fn the_known_list_parses() {
        let k = known();
        assert!(!k.is_empty(), "segments/known-originals.json is malformed");
        for o in &k {
            assert_eq!(o.file_sha256.len(), 64, "{}", o.name);
            assert!(o.functions.values().all(|h| h.len() == 64), "{}", o.name);
        }
    }

    #[test]
    fn the_system_zlib_is_recognised() {
        let Ok(p) = PreparedOriginal::prepare(&OriginalSpec {
            object: "libz.so.1".into(),
            symbol: "crc32".into(),
            pid: None,
        }) else {
            eprintln!("no system libz.so.1: skipped");
            return;
        };
        let e = Evidence::of(&p, "crc32", "crc32", "libz.so.1");
        eprintln!(
            "{}: file {} build-id {:?} crc32 {:?}: {e:?}",
            p.path,
            p.file_sha256,
            p.info.build_id.as_deref().map(hex),
            p.function_sha256
        );
        // Only Debian 12's build is listed; elsewhere: name only.
        if p.file_sha256 == known()[0].file_sha256 {
            assert!(e.by_content);
            assert_eq!(
                e.matched,
                [
                    Match::FileSha256,
                    Match::FunctionSha256,
                    Match::BuildId,
                    Match::Name
                ]
            );
            assert!(e.summary.contains("by content"), "{}", e.summary);
        }
    }
}
