//! "Make sure this variant is loaded in the module, and tell me its library
//! id", for `adaptctl inject`.
//!
//! The conversion of a segment variant into an upload, with its variant
//! hash, lives in `library/upload.rs`, private to `adaptctl library`. Rather
//! than a second copy of that definition (two copies of the variant hash
//! could disagree and load the same code twice), this runs `adaptctl
//! library load SEGMENT --variant V --json` — the same binary — and reads
//! the id it reports (a variant already loaded answers with its existing
//! id). Once `library::upload` is reachable from here, this becomes
//! `variant_upload` + `adapt_client::library::load_variant`.

use serde::Deserialize;
use std::path::Path;
use std::process::{Command, Stdio};

/// Why the variant could not be loaded; carries the kind and exit code
/// `library load` reported.
#[derive(Debug, thiserror::Error)]
#[error("loading {segment}/{variant} into the module: {message}")]
pub(crate) struct LoadError {
    pub(crate) segment: String,
    pub(crate) variant: String,
    pub(crate) message: String,
    pub(crate) kind: String,
    pub(crate) exit_code: u8,
}

#[derive(Deserialize)]
struct Report {
    loaded: Vec<Loaded>,
}

#[derive(Deserialize)]
struct Loaded {
    segment: String,
    variant: String,
    id: u64,
}

#[derive(Deserialize)]
struct ErrorDoc {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    kind: String,
    exit_code: u8,
    message: String,
}

/// The library id of `segment`/`variant`, uploading it first if the module
/// does not have it.
pub(crate) fn ensure_loaded(
    device: &Path,
    dir: Option<&Path>,
    segment: &str,
    variant: &str,
) -> Result<u64, LoadError> {
    let fail = |kind: &str, exit_code: u8, message: String| LoadError {
        segment: segment.to_owned(),
        variant: variant.to_owned(),
        message,
        kind: kind.to_owned(),
        exit_code,
    };
    let exe = std::env::current_exe().map_err(|e| {
        fail(
            "error",
            1,
            format!("cannot find adaptctl's own executable: {e}"),
        )
    })?;
    let mut command = Command::new(exe);
    command.arg("--device").arg(device).args([
        "library",
        "load",
        segment,
        "--variant",
        variant,
        "--json",
    ]);
    if let Some(dir) = dir {
        command.arg("--dir").arg(dir);
    }
    let out = command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| {
            fail(
                "error",
                1,
                format!("cannot run `adaptctl library load`: {e}"),
            )
        })?;
    if !out.status.success() {
        return Err(match serde_json::from_slice::<ErrorDoc>(&out.stdout) {
            Ok(doc) => fail(&doc.error.kind, doc.error.exit_code, doc.error.message),
            Err(_) => fail(
                "error",
                1,
                format!(
                    "`adaptctl library load` failed ({}) without a report",
                    out.status
                ),
            ),
        });
    }
    let report: Report = serde_json::from_slice(&out.stdout).map_err(|e| {
        fail(
            "error",
            1,
            format!("`adaptctl library load --json` printed no report: {e}"),
        )
    })?;
    report
        .loaded
        .iter()
        .find(|l| l.segment == segment && l.variant == variant)
        .map(|l| l.id)
        .ok_or_else(|| {
            fail(
                "error",
                1,
                "`adaptctl library load` did not load it".to_owned(),
            )
        })
}
