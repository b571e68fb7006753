//! `adaptctl library show NAME`.

use super::disk::DirArg;
use adapt_client::library::hex;
use adapt_client::upload::{contract_hash, contract_signature, variant_upload_with_imports};
use adapt_segment::{CpuFeatures, FunctionSummary, VariantSummary};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Segment name, e.g. crc32 (see `adaptctl library list`).
    name: String,

    #[command(flatten)]
    dir: DirArg,

    /// Print a JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The `--json` document (fields are only ever added).
#[derive(Debug, Serialize)]
struct ImportDecl {
    /// `fallback` (the original function, through its trampoline) or a
    /// symbol of the target's objects.
    name: String,
    /// The object expected to define it (empty: the replaced function's
    /// object first, then load order).
    library: String,
    contract_signature: String,
}

#[derive(Debug, Serialize)]
struct Report {
    name: String,
    path: PathBuf,
    version: u32,
    description: String,
    build: String,
    /// sha256 of the segment file's content, hex.
    content_hash: String,
    /// `exact` (bit-identical to what it replaces) or `float-reassociate`
    /// (chosen only where the policy allows it).
    numerics: String,
    /// Features of this CPU.
    cpu_features: Vec<String>,
    functions: Vec<Function>,
    /// What its code may call (format version 2), in import-slot order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    imports: Vec<ImportDecl>,
    /// Best first.
    variants: Vec<Variant>,
    /// The variant this CPU would use.
    best_variant: Option<String>,
}

#[derive(Debug, Serialize)]
struct Function {
    #[serde(flatten)]
    summary: FunctionSummary,
    /// The canonical contract signature.
    contract_signature: String,
    /// The 64-bit contract hash the module stores for this entry, hex.
    contract_hash: String,
}

#[derive(Debug, Serialize)]
struct Variant {
    #[serde(flatten)]
    summary: VariantSummary,
    /// The variant (upload) hash, hex.
    hash: Option<String>,
    /// `ADAPT_CPU_*` bits uploaded with it.
    cpu_feature_bits: Option<u64>,
    /// Why it cannot be uploaded.
    upload_error: Option<String>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let library = args.dir.open()?;
    let (path, file) = library.find_file(&args.name)?;
    let segment = &file.segment;
    // At most limits::MAX_IMPORTS (64), checked when the file was read.
    let nimports = file.imports.len() as u32;
    let cpu = CpuFeatures::detect();
    let summary = segment.describe(&cpu);
    let functions = summary
        .functions
        .iter()
        .zip(&segment.functions)
        .map(|(s, f)| Function {
            summary: s.clone(),
            contract_signature: contract_signature(&f.contract),
            contract_hash: format!("{:016x}", contract_hash(&f.contract)),
        })
        .collect();
    let variants = summary
        .variants
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let upload = variant_upload_with_imports(segment, index, nimports);
            Variant {
                summary: s.clone(),
                hash: upload.as_ref().ok().map(|u| hex(&u.hash)),
                cpu_feature_bits: upload.as_ref().ok().map(|u| u.cpu_features),
                upload_error: upload.err().map(|e| e.to_string()),
            }
        })
        .collect();
    let report = Report {
        name: summary.name.clone(),
        path,
        version: summary.version,
        description: summary.description.clone(),
        build: summary.build.clone(),
        content_hash: summary.content_hash.clone(),
        numerics: summary.numerics.clone(),
        cpu_features: cpu.iter().map(|f| f.name().to_owned()).collect(),
        functions,
        imports: file
            .imports
            .iter()
            .map(|i| ImportDecl {
                name: i.name.clone(),
                library: i.library.clone(),
                contract_signature: contract_signature(&i.contract),
            })
            .collect(),
        variants,
        best_variant: summary.best_variant.clone(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{summary}");
        print!("{}", render_hashes(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn render_hashes(r: &Report) -> String {
    let mut out = format!("  file {}\n", r.path.display());
    for f in &r.functions {
        let _ = writeln!(
            out,
            "  contract of {:<12} {}  hash {}",
            f.summary.symbol, f.contract_signature, f.contract_hash
        );
    }
    for (slot, i) in r.imports.iter().enumerate() {
        let from = if i.library.is_empty() {
            String::new()
        } else {
            format!(" from {}", i.library)
        };
        let _ = writeln!(
            out,
            "  import {slot}: {}{from}  {}",
            i.name, i.contract_signature
        );
    }
    for v in &r.variants {
        let state = match (&v.hash, &v.upload_error) {
            (Some(hash), _) => format!("upload hash {hash}"),
            (None, Some(err)) => format!("cannot be uploaded: {err}"),
            (None, None) => String::new(),
        };
        let _ = writeln!(out, "  variant {:<16} {state}", v.summary.name);
    }
    let _ = writeln!(
        out,
        "  this CPU would use: {}",
        r.best_variant
            .as_deref()
            .unwrap_or("none (no variant is supported)")
    );
    out
}
