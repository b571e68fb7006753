//! `adaptctl library verify [NAME…]`.

use super::disk::{self, DirArg};
use crate::cli::exit::Exit;
use adapt_ops::segment_check::{self, SegmentCheck};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Segments to verify (default: every segment of the library).
    names: Vec<String>,

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
    segments: Vec<SegmentCheck>,
    /// Segments refused (or unreadable).
    refused: usize,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let library = args.dir.open()?;
    let disk::Selection {
        segments,
        unreadable,
    } = disk::select(&library, &args.names)?;
    let mut outcomes: Vec<SegmentCheck> = segments
        .into_iter()
        .map(|(path, file)| segment_check::check(path, &file))
        .collect();
    outcomes.extend(unreadable.into_iter().map(|u| SegmentCheck {
        name: None,
        path: u.path,
        ok: false,
        variants: Vec::new(),
        refusals: Vec::new(),
        error: Some(u.error),
    }));
    let report = Report {
        dir: library.dir().to_path_buf(),
        refused: outcomes.iter().filter(|o| !o.ok).count(),
        segments: outcomes,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.refused == 0 {
        ExitCode::SUCCESS
    } else {
        Exit::Refused.into()
    })
}

fn render(r: &Report) -> String {
    let mut out = String::new();
    for o in &r.segments {
        let name = o
            .name
            .clone()
            .unwrap_or_else(|| o.path.display().to_string());
        if o.ok {
            let variants: Vec<String> = o
                .variants
                .iter()
                .map(|v| format!("{} ({} instructions)", v.variant, v.instructions))
                .collect();
            let _ = writeln!(out, "{name}: ok: {}", variants.join(", "));
            continue;
        }
        if let Some(err) = &o.error {
            let _ = writeln!(out, "{name}: REFUSED: {err}");
        } else {
            let _ = writeln!(out, "{name}: REFUSED: {} instruction(s)", o.refusals.len());
        }
        for refusal in &o.refusals {
            let _ = writeln!(
                out,
                "  variant {} offset {:#x}: `{}` ({}) breaks rule {}: {}",
                refusal.variant,
                refusal.offset,
                refusal.instruction,
                refusal.bytes,
                refusal.rule,
                refusal.detail
            );
        }
    }
    let _ = writeln!(
        out,
        "{} segment(s) in {}: {} refused",
        r.segments.len(),
        r.dir.display(),
        r.refused
    );
    out
}
