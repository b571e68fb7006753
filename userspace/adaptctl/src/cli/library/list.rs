//! `adaptctl library list`.

use super::disk::{self, DirArg, Unreadable};
use super::module;
use adapt_client::library::{self, hex, LoadedVariant};
use adapt_client::upload::variant_upload_with_imports;
use adapt_segment::{CpuFeatures, LibraryDirError, Numerics, SegmentFile};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    dir: DirArg,

    /// Print a JSON document instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The `--json` document (fields are only ever added).
#[derive(Debug, Serialize)]
struct Report {
    /// The features of this CPU.
    cpu_features: Vec<String>,
    library: DiskLibrary,
    module: ModuleState,
}

#[derive(Debug, Serialize)]
struct DiskLibrary {
    /// The directory, when one was found.
    dir: Option<PathBuf>,
    /// Why there is no library (only when no --dir was given).
    error: Option<String>,
    segments: Vec<DiskSegment>,
    unreadable: Vec<Unreadable>,
}

#[derive(Debug, Serialize)]
struct DiskSegment {
    name: String,
    version: u32,
    description: String,
    path: PathBuf,
    content_hash: String,
    /// `exact` (bit-identical to what it replaces) or `float-reassociate`
    /// (chosen only where the policy allows it).
    numerics: String,
    /// Symbols it replaces.
    functions: Vec<String>,
    /// What its code may call (format version 2): `fallback` (the
    /// original) or symbols of the target's objects.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    imports: Vec<String>,
    /// The variant this CPU would use.
    best_variant: Option<String>,
    variants: Vec<DiskVariant>,
}

#[derive(Debug, Serialize)]
struct DiskVariant {
    name: String,
    features: Vec<String>,
    /// This CPU has every feature it needs.
    supported: bool,
    /// The upload (variant) hash, hex; absent if it cannot be uploaded.
    hash: Option<String>,
    /// Why it cannot be uploaded.
    upload_error: Option<String>,
    /// Its library id, when the module has it loaded.
    loaded_id: Option<u64>,
}

#[derive(Debug, Serialize)]
struct ModuleState {
    /// The module answered.
    loaded: bool,
    /// Why it did not.
    message: Option<String>,
    device: PathBuf,
    variants: Vec<LoadedVariant>,
}

pub(crate) fn run(device: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let cpu = CpuFeatures::detect();
    let module = match module::open_if_loaded(device)? {
        Ok(dev) => ModuleState {
            loaded: true,
            message: None,
            device: device.to_path_buf(),
            variants: library::list(&dev)?,
        },
        Err(why) => ModuleState {
            loaded: false,
            message: Some(why.to_string()),
            device: device.to_path_buf(),
            variants: Vec::new(),
        },
    };
    let library = disk_library(&args.dir, &cpu, &module.variants)?;
    let report = Report {
        cpu_features: cpu.iter().map(|f| f.name().to_owned()).collect(),
        library,
        module,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The disk library; without `--dir`, a missing library is reported in the
/// document rather than failing the listing of the module.
fn disk_library(
    dir: &DirArg,
    cpu: &CpuFeatures,
    loaded: &[LoadedVariant],
) -> anyhow::Result<DiskLibrary> {
    let library = match dir.open() {
        Ok(library) => library,
        Err(err @ LibraryDirError::NotFound) if dir.dir.is_none() => {
            return Ok(DiskLibrary {
                dir: None,
                error: Some(err.to_string()),
                segments: Vec::new(),
                unreadable: Vec::new(),
            })
        }
        Err(err) => return Err(err.into()),
    };
    let disk::Selection {
        segments,
        unreadable,
    } = disk::select(&library, &[])?;
    Ok(DiskLibrary {
        dir: Some(library.dir().to_path_buf()),
        error: None,
        segments: segments
            .iter()
            .map(|(path, file)| disk_segment(path, file, cpu, loaded))
            .collect(),
        unreadable,
    })
}

fn disk_segment(
    path: &Path,
    file: &SegmentFile,
    cpu: &CpuFeatures,
    loaded: &[LoadedVariant],
) -> DiskSegment {
    let segment = &file.segment;
    // At most limits::MAX_IMPORTS (64), checked when the file was read.
    let nimports = file.imports.len() as u32;
    let variants = segment
        .variants
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let upload = variant_upload_with_imports(segment, index, nimports);
            let hash = upload.as_ref().ok().map(|u| hex(&u.hash));
            let loaded_id = hash
                .as_ref()
                .and_then(|h| loaded.iter().find(|l| &l.hash == h))
                .map(|l| l.id);
            DiskVariant {
                name: v.name.clone(),
                features: v.features.iter().map(|f| f.name().to_owned()).collect(),
                supported: cpu.is_superset(&v.features),
                hash,
                upload_error: upload.err().map(|e| e.to_string()),
                loaded_id,
            }
        })
        .collect();
    DiskSegment {
        name: segment.name.clone(),
        version: segment.version,
        description: segment.description.clone(),
        path: path.to_path_buf(),
        content_hash: segment.content_hash_hex(),
        numerics: segment.numerics.name().to_owned(),
        functions: segment.functions.iter().map(|f| f.symbol.clone()).collect(),
        imports: file.imports.iter().map(|i| i.name.clone()).collect(),
        best_variant: segment.best_variant(cpu).map(|(_, v)| v.name.clone()),
        variants,
    }
}

fn render(r: &Report) -> String {
    let mut out = String::new();
    let lib = &r.library;
    match &lib.dir {
        Some(dir) => {
            let _ = writeln!(
                out,
                "library {} ({} segment(s))",
                dir.display(),
                lib.segments.len()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "library: {}",
                lib.error.as_deref().unwrap_or("not found")
            );
        }
    }
    for s in &lib.segments {
        let _ = writeln!(
            out,
            "  {:<10} v{:<3} replaces {}{}{}",
            s.name,
            s.version,
            s.functions.join(", "),
            if s.imports.is_empty() {
                String::new()
            } else {
                format!("; calls {}", s.imports.join(", "))
            },
            if s.numerics == Numerics::Exact.name() {
                String::new()
            } else {
                format!(
                    "; numerics {} (not bit-identical, opt-in: allow_float_reassociate)",
                    s.numerics
                )
            }
        );
        for v in &s.variants {
            let mark = if Some(&v.name) == s.best_variant.as_ref() {
                "best"
            } else if v.supported {
                "ok"
            } else {
                "unsupported"
            };
            let needs = if v.features.is_empty() {
                "baseline".to_owned()
            } else {
                v.features.join(",")
            };
            let state = match (v.loaded_id, &v.upload_error) {
                (Some(id), _) => format!("loaded as #{id}"),
                (None, Some(err)) => format!("cannot be uploaded: {err}"),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "      {:<16} {mark:<11}  {state:<16} needs {needs}",
                v.name
            );
        }
    }
    for u in &lib.unreadable {
        let _ = writeln!(out, "  unreadable: {}: {}", u.path.display(), u.error);
    }
    let _ = writeln!(out, "this CPU: {}", r.cpu_features.join(","));
    let m = &r.module;
    if !m.loaded {
        let _ = writeln!(
            out,
            "module: not loaded: {}",
            m.message.as_deref().unwrap_or("")
        );
        return out;
    }
    let _ = writeln!(
        out,
        "module: {} variant(s) loaded ({})",
        m.variants.len(),
        m.device.display()
    );
    if m.variants.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "  {:>4}  {:<28}  {:>5}  {:<11}  {:>7}  {:>7}  hash",
        "id", "segment/variant", "users", "state", "code", "rodata"
    );
    for v in &m.variants {
        let _ = writeln!(
            out,
            "  {:>4}  {:<28}  {:>5}  {:<11}  {:>7}  {:>7}  {}",
            v.id,
            format!("{}/{}", v.segment, v.variant),
            v.users,
            if v.quarantined { "quarantined" } else { "ok" },
            v.code_len,
            v.rodata_len,
            &v.hash[..16.min(v.hash.len())],
        );
    }
    out
}
