//! `adaptctl library load [NAME…|--all]`.

use super::disk::{self, DirArg};
use super::module;
use super::CommandError;
use adapt_client::library::{self, hex};
use adapt_client::upload::variant_upload_with_imports;
use adapt_client::VariantUpload;
use adapt_ops::segment_check;
use adapt_segment::{CpuFeatures, Segment};
use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Segments to load (see `adaptctl library list`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    names: Vec<String>,

    /// Load every segment of the library.
    #[arg(long)]
    all: bool,

    /// Upload only this variant of each segment (e.g. pclmul).
    #[arg(long, value_name = "VARIANT")]
    variant: Option<String>,

    /// Also upload variants this CPU cannot run (they are never injected
    /// here, but the module keeps them).
    #[arg(long)]
    all_variants: bool,

    #[command(flatten)]
    dir: DirArg,

    /// Print a JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The `--json` document (fields are only ever added).
#[derive(Debug, Serialize)]
struct Report {
    dir: PathBuf,
    device: PathBuf,
    cpu_features: Vec<String>,
    /// Every variant uploaded or found already loaded.
    loaded: Vec<Loaded>,
    /// Variants left out because this CPU cannot run them.
    skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
struct Loaded {
    segment: String,
    variant: String,
    id: u64,
    already_loaded: bool,
    hash: String,
}

#[derive(Debug, Serialize)]
struct Skipped {
    segment: String,
    variant: String,
    missing: Vec<String>,
}

pub(crate) fn run(device_path: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let library = args.dir.open()?;
    let disk::Selection {
        segments,
        unreadable,
    } = disk::select(&library, &args.names)?;
    if let Some(u) = unreadable.first() {
        anyhow::bail!(
            "unusable segment file: {} (remove it, or rebuild the library (`cargo run -p adapt-library-build --bin build-library` in the source tree))",
            u.error
        );
    }

    // Nothing is uploaded unless every selected segment passes the verifier.
    let refused: Vec<String> = segments
        .iter()
        .map(|(path, file)| segment_check::check(path.clone(), file))
        .filter(|o| !o.ok)
        .map(|o| {
            let name = o.name.unwrap_or_default();
            match (o.refusals.first(), o.error) {
                (Some(first), _) => format!("{name}: {first}"),
                (None, Some(err)) => format!("{name}: {err}"),
                (None, None) => name,
            }
        })
        .collect();
    if !refused.is_empty() {
        return Err(CommandError::Refused(refused).into());
    }

    let device = module::open(device_path)?;
    let cpu = CpuFeatures::detect();
    let mut uploads = Vec::new();
    let mut skipped = Vec::new();
    for (_, file) in &segments {
        let segment = &file.segment;
        // At most limits::MAX_IMPORTS (64), checked when the file was read.
        let nimports = file.imports.len() as u32;
        for index in select_variants(segment, args, &cpu)? {
            let variant = &segment.variants[index]; // Indices come from segment.variants.
            if !args.all_variants && !cpu.is_superset(&variant.features) {
                skipped.push(Skipped {
                    segment: segment.name.clone(),
                    variant: variant.name.clone(),
                    missing: cpu
                        .missing(&variant.features)
                        .iter()
                        .map(|f| f.name().to_owned())
                        .collect(),
                });
                continue;
            }
            uploads.push(variant_upload_with_imports(segment, index, nimports)?);
        }
    }

    let mut loaded = Vec::new();
    for upload in &uploads {
        let outcome = library::load_variant(&device, upload)
            .with_context(|| format!("uploading {}/{}", upload.segment, upload.variant))?;
        if !args.json {
            println!("{}", describe(upload, outcome.id, outcome.already_loaded));
        }
        loaded.push(Loaded {
            segment: upload.segment.clone(),
            variant: upload.variant.clone(),
            id: outcome.id,
            already_loaded: outcome.already_loaded,
            hash: hex(&upload.hash),
        });
    }

    let report = Report {
        dir: library.dir().to_path_buf(),
        device: device_path.to_path_buf(),
        cpu_features: cpu.iter().map(|f| f.name().to_owned()).collect(),
        loaded,
        skipped,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for s in &report.skipped {
            println!(
                "{}/{}: skipped: this CPU lacks {} (--all-variants uploads it anyway)",
                s.segment,
                s.variant,
                s.missing.join(",")
            );
        }
        let fresh = report.loaded.iter().filter(|l| !l.already_loaded).count();
        println!(
            "{fresh} variant(s) uploaded, {} already loaded, {} skipped",
            report.loaded.len() - fresh,
            report.skipped.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The indices of the variants of `segment` the arguments ask for.
fn select_variants(
    segment: &Segment,
    args: &Args,
    cpu: &CpuFeatures,
) -> Result<Vec<usize>, CommandError> {
    let Some(name) = &args.variant else {
        return Ok((0..segment.variants.len()).collect());
    };
    let (index, variant) =
        segment
            .variant(name)
            .ok_or_else(|| CommandError::NoSuchVariantName {
                segment: segment.name.clone(),
                variant: name.clone(),
                available: segment.variant_names(),
            })?;
    if !args.all_variants && !cpu.is_superset(&variant.features) {
        return Err(CommandError::Unsupported {
            segment: segment.name.clone(),
            variant: variant.name.clone(),
            missing: cpu.missing(&variant.features).to_string(),
        });
    }
    Ok(vec![index])
}

fn describe(upload: &VariantUpload, id: u64, already: bool) -> String {
    let what = if already {
        "already loaded as"
    } else {
        "loaded as"
    };
    format!("{}/{}: {what} #{id}", upload.segment, upload.variant)
}
