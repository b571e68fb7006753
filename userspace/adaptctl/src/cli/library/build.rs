//! `adaptctl library build`: the segment builder (`adapt-segments`), run
//! in-process. Same result as
//! `cargo run -p adapt-segments --bin build-library -- --out DIR [SEGMENT…]`.

use super::disk::DirArg;
use adapt_segment::VariantReport;
use adapt_segments::builder::{build_library, default_sources_dir, BuildOptions};
use anyhow::Context;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Segments to build (default: all of them).
    names: Vec<String>,

    /// Where to write NAME.seg (default: the library directory in use, else
    /// target/adapt-library next to adaptctl).
    #[command(flatten)]
    dir: DirArg,

    /// Segment sources (default: segments/sources of the adapt tree adaptctl
    /// was built from).
    #[arg(long, value_name = "DIR")]
    sources: Option<PathBuf>,

    /// Print a JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The `--json` document (fields are only ever added).
#[derive(Debug, Serialize)]
struct Report {
    dir: PathBuf,
    sources: PathBuf,
    segments: Vec<Built>,
}

#[derive(Debug, Serialize)]
struct Built {
    name: String,
    path: PathBuf,
    content_hash: String,
    /// The verifier's report on each variant.
    variants: Vec<VariantReport>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let out_dir = args.dir.output();
    let sources = args.sources.clone().unwrap_or_else(default_sources_dir);
    if !sources.is_dir() {
        anyhow::bail!(
            "segment sources not found at {}: pass --sources DIR (segments/sources in the adapt repository)",
            sources.display()
        );
    }
    let opts = BuildOptions {
        work_dir: out_dir.join(".objects"),
        out_dir: out_dir.clone(),
        sources_dir: sources.clone(),
        only: args.names.clone(),
    };
    let built = build_library(&opts)
        .with_context(|| format!("building the library into {}", out_dir.display()))?;
    let report = Report {
        dir: out_dir,
        sources,
        segments: built
            .into_iter()
            .map(|b| Built {
                name: b.segment.name.clone(),
                content_hash: b.segment.content_hash_hex(),
                path: b.path,
                variants: b.reports,
            })
            .collect(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    for s in &report.segments {
        println!(
            "{}  {}  {}",
            &s.content_hash[..16],
            s.name,
            s.path.display()
        );
        for v in &s.variants {
            println!(
                "    {:<16} {:>6} bytes {:>5} instructions",
                v.variant, v.code_bytes, v.instructions
            );
        }
    }
    println!(
        "{} segment(s) written to {}",
        report.segments.len(),
        report.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
