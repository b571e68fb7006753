//! `adaptctl library unload (ID…|NAME…|--all) [--force]`.

use super::module;
use super::CommandError;
use crate::cli::exit::Exit;
use adapt_client::library::{self, LoadedVariant};
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Library ids (as `adaptctl library list` shows them), segment names
    /// (every loaded variant of the segment) or SEGMENT/VARIANT.
    #[arg(
        value_name = "ID|NAME",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    targets: Vec<String>,

    /// Unload every loaded variant.
    #[arg(long)]
    all: bool,

    /// Revert the injections that use a variant, then unload it.
    #[arg(long)]
    force: bool,

    /// Print a JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The `--json` document (fields are only ever added).
#[derive(Debug, Serialize)]
struct Report {
    unloaded: Vec<Target>,
    /// Variants the module refused to unload, with the reason.
    refused: Vec<Refused>,
}

#[derive(Debug, Clone, Serialize)]
struct Target {
    id: u64,
    segment: Option<String>,
    variant: Option<String>,
}

#[derive(Debug, Serialize)]
struct Refused {
    #[serde(flatten)]
    target: Target,
    kind: &'static str,
    exit_code: u8,
    message: String,
}

pub(crate) fn run(device_path: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let device = module::open(device_path)?;
    let loaded = library::list(&device)?;
    let targets = resolve(&loaded, &args.targets, args.all)?;
    let mut report = Report {
        unloaded: Vec::new(),
        refused: Vec::new(),
    };
    for target in targets {
        match library::unload(&device, target.id, args.force) {
            Ok(()) => {
                if !args.json {
                    println!("#{} {}: unloaded", target.id, name(&target));
                }
                report.unloaded.push(target);
            }
            Err(err) => {
                if !args.json {
                    eprintln!("adaptctl: error: #{} {}: {err}", target.id, name(&target));
                }
                report.refused.push(Refused {
                    target,
                    kind: err.kind(),
                    exit_code: Exit::for_kind(err.kind()) as u8,
                    message: err.to_string(),
                });
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.unloaded.is_empty() && report.refused.is_empty() {
        println!("nothing to unload: no variant is loaded");
    }
    Ok(match report.refused.first() {
        None => ExitCode::SUCCESS,
        Some(r) => ExitCode::from(r.exit_code),
    })
}

/// The variants the arguments name; an argument naming nothing loaded is an
/// error before anything is unloaded. A numeric id is passed through even if
/// it is not listed (the module answers for it).
fn resolve(
    loaded: &[LoadedVariant],
    targets: &[String],
    all: bool,
) -> Result<Vec<Target>, CommandError> {
    let of = |v: &LoadedVariant| Target {
        id: v.id,
        segment: Some(v.segment.clone()),
        variant: Some(v.variant.clone()),
    };
    if all {
        return Ok(loaded.iter().map(of).collect());
    }
    let mut out: Vec<Target> = Vec::new();
    for arg in targets {
        let matched: Vec<Target> = if let Ok(id) = arg.parse::<u64>() {
            vec![loaded
                .iter()
                .find(|v| v.id == id)
                .map(of)
                .unwrap_or(Target {
                    id,
                    segment: None,
                    variant: None,
                })]
        } else {
            let (segment, variant) = match arg.split_once('/') {
                Some((s, v)) => (s, Some(v)),
                None => (arg.as_str(), None),
            };
            loaded
                .iter()
                .filter(|v| v.segment == segment && variant.is_none_or(|name| v.variant == name))
                .map(of)
                .collect()
        };
        if matched.is_empty() {
            return Err(CommandError::NotLoaded {
                target: arg.clone(),
            });
        }
        for t in matched {
            if !out.iter().any(|o| o.id == t.id) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

fn name(t: &Target) -> String {
    match (&t.segment, &t.variant) {
        (Some(s), Some(v)) => format!("{s}/{v}"),
        _ => "(not listed)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(id: u64, segment: &str, variant: &str) -> LoadedVariant {
        LoadedVariant {
            id,
            segment: segment.into(),
            variant: variant.into(),
            hash: String::new(),
            cpu_features: 0,
            features: Vec::new(),
            code_len: 1,
            rodata_len: 0,
            entries: 1,
            users: 0,
            quarantined: false,
        }
    }

    fn ids(t: &[Target]) -> Vec<u64> {
        t.iter().map(|t| t.id).collect()
    }

    #[test]
    fn targets_resolve_by_id_segment_and_variant() {
        let l = [
            loaded(1, "crc32", "pclmul"),
            loaded(2, "crc32", "portable"),
            loaded(5, "adler32", "avx2"),
        ];
        assert_eq!(ids(&resolve(&l, &[], true).unwrap()), [1, 2, 5]);
        assert_eq!(ids(&resolve(&l, &["crc32".into()], false).unwrap()), [1, 2]);
        assert_eq!(
            ids(&resolve(&l, &["crc32/portable".into(), "5".into()], false).unwrap()),
            [2, 5]
        );
        // Duplicates collapse; unknown numeric ids go to the module.
        assert_eq!(
            ids(&resolve(&l, &["1".into(), "crc32".into(), "99".into()], false).unwrap()),
            [1, 2, 99]
        );
        let err = resolve(&l, &["sha256".into()], false).unwrap_err();
        assert!(err.to_string().contains("\"sha256\""), "{err}");
        assert!(resolve(&l, &["crc32/avx2".into()], false).is_err());
    }
}
