//! Deciding an injection without touching anything: which segment, function
//! (entry) and variant replace the target, whether the segment passes the
//! verifier, which bytes the patch replaces, and which contract the target
//! has. `adaptctl inject` then loads the variant and asks the module;
//! `--dry-run` prints this plan and stops.

use crate::contract::{target_contract, TargetContract};
use crate::timings::Timings;
use adapt_segment::{CpuFeatures, Import, Library, Segment, SegmentFile, VerifyCache};
use adapt_target::{CheckOptions, Target};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What the caller asked for.
#[derive(Debug)]
pub struct Request<'a> {
    pub pid: u32,
    pub symbol: &'a str,
    pub object: Option<&'a str>,
    pub segment: Option<&'a str>,
    pub function: Option<&'a str>,
    pub variant: Option<&'a str>,
    pub assume_contract: Option<&'a str>,
    pub allow_indirect_jumps: bool,
    pub dir: Option<&'a Path>,
}

/// Everything decided; serialized as part of `adaptctl inject --json`.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub pid: u32,
    /// The function in the process and the bytes the patch replaces.
    pub target: Target,
    pub segment: String,
    pub segment_file: PathBuf,
    /// The segment function the target is replaced with.
    pub function: String,
    /// Its entry index in every variant.
    pub entry: u32,
    pub variant: String,
    /// CPU features the variant needs.
    pub variant_features: Vec<String>,
    pub contract: TargetContract,
    /// The segment as read and verified: what is uploaded.
    #[serde(skip)]
    pub verified: Segment,
    /// What the segment imports (format version 2), in slot order:
    /// `fallback` (the trampoline, placed at inject time) or a function of
    /// the target's objects, resolved here.
    pub imports: Vec<PlannedImport>,
    /// The file's import declarations (uploaded with the variant).
    #[serde(skip)]
    pub import_decls: Vec<Import>,
}

/// One import of the segment, as resolved in the target.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedImport {
    /// `fallback` or the symbol.
    pub name: String,
    /// The object that defines it (`None` for `fallback`, the trampoline
    /// to the original of the replaced function).
    pub object: Option<String>,
    /// Its run-time address (`None` for `fallback`: known once the segment
    /// is placed).
    pub address: Option<u64>,
}

impl PlannedImport {
    /// Whether this is the trampoline.
    pub fn is_fallback(&self) -> bool {
        self.object.is_none()
    }
}

/// Why no plan could be made (besides target and contract errors).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "no segment of the library in {dir} replaces {symbol}: see `adaptctl library list`, or \
         name one with --segment (and --function)"
    )]
    NoSegment { symbol: String, dir: String },

    #[error("segment {segment} replaces no function {function} (it replaces: {available}); pick one with --function")]
    NoSuchFunction {
        segment: String,
        function: String,
        available: String,
    },

    #[error("segment {segment} has no variant {variant} (it has: {available})")]
    NoSuchVariant {
        segment: String,
        variant: String,
        available: String,
    },

    #[error(
        "variant {segment}/{variant} needs {missing}, which this CPU lacks: pick a supported \
         variant (`adaptctl library show {segment}`)"
    )]
    Unsupported {
        segment: String,
        variant: String,
        missing: String,
    },

    #[error("no variant of segment {segment} runs on this CPU")]
    NoSupportedVariant { segment: String },

    #[error(
        "segment {segment} imports {import}{from}, which does not resolve in pid {pid}: {why}; \
         nothing was injected"
    )]
    UnresolvedImport {
        segment: String,
        import: String,
        from: String,
        pid: u32,
        why: String,
    },

    #[error(
        "the entry of {symbol} cannot be relocated into the trampoline segment {segment} calls \
         back through: {why}; nothing was injected"
    )]
    NotRelocatable {
        symbol: String,
        segment: String,
        why: String,
    },

    #[error(
        "no free address range within ±2 GiB of {symbol} in pid {pid} takes segment {segment} \
         ({why}); nothing was injected"
    )]
    NoPlacement {
        symbol: String,
        segment: String,
        pid: u32,
        why: String,
    },

    #[error(
        "the verifier refused segment {segment} ({first}); nothing was injected: see `adaptctl \
         library verify {segment}` and rebuild the library (`cargo run -p adapt-library-build --bin build-library` in the source tree)"
    )]
    Refused { segment: String, first: String },
}

/// Makes the plan for `request` (see the module documentation); its phases
/// (library, verify, target, contract) are marked in `timings`.
pub fn plan(request: &Request<'_>, timings: &mut Timings) -> crate::Result<Plan> {
    let library = Library::open_or_default(request.dir)?;
    let wanted = request.function.unwrap_or(request.symbol);
    let (segment_file, file) = match request.segment {
        Some(name) => library.find_file(name)?,
        None => find_by_function(&library, wanted)?,
    };
    let SegmentFile {
        segment, imports, ..
    } = file;
    timings.mark("library");
    // Verified once per content and build of the verifier: the result is
    // remembered in the cache directory (adapt_segment::verify_cache). A
    // segment with imports is verified with them, every time.
    let verified = if imports.is_empty() {
        let verifier = VerifyCache::open(adapt_select::cache::default_cache_dir().as_deref());
        verifier.verify(&segment).map(|_| ())
    } else {
        adapt_segment::verify_with_imports(&segment, &imports).map(|_| ())
    };
    if let Err(err) = verified {
        return Err(PlanError::Refused {
            segment: segment.name.clone(),
            first: err.to_string(),
        }
        .into());
    }
    timings.mark("verify");
    let (entry, function) = pick_function(&segment, request.function, request.symbol)?;
    let (_, variant) = pick_variant(&segment, request.variant, &CpuFeatures::detect())?;

    let options = CheckOptions {
        allow_indirect_jumps: request.allow_indirect_jumps,
    };
    let target = adapt_target::inspect(request.pid, request.symbol, request.object, options)?;
    timings.mark("target");
    let contract = target_contract(
        &segment.name,
        function,
        &target.symbol.name,
        &target.symbol.object,
        request.assume_contract,
    )?;
    timings.mark("contract");
    let import_decls = imports;
    let imports = resolve_imports(request.pid, &segment.name, &import_decls, &target)?;
    if !imports.is_empty() {
        timings.mark("imports");
    }
    Ok(Plan {
        pid: request.pid,
        segment: segment.name.clone(),
        segment_file,
        function: function.symbol.clone(),
        // At most limits::MAX_FUNCTIONS (16) functions: fits a u32.
        entry: entry as u32,
        variant: variant.name.clone(),
        variant_features: variant
            .features
            .iter()
            .map(|f| f.name().to_owned())
            .collect(),
        contract,
        target,
        verified: segment,
        imports,
        import_decls,
    })
}

/// Resolves every import but `fallback` in process `pid`: an import with
/// no library is looked up in the replaced function's object first, then
/// in the executable and its libraries in load order; one naming a library
/// only there. The first that does not resolve refuses the plan.
fn resolve_imports(
    pid: u32,
    segment: &str,
    imports: &[Import],
    target: &adapt_target::Target,
) -> crate::Result<Vec<PlannedImport>> {
    let mut out = Vec::new();
    for import in imports {
        if import.is_fallback() {
            out.push(PlannedImport {
                name: import.name.clone(),
                object: None,
                address: None,
            });
            continue;
        }
        let resolved = if import.library.is_empty() {
            adapt_target::resolve_symbol(pid, &import.name, Some(&target.symbol.object.path))
                .or_else(|_| adapt_target::resolve_symbol(pid, &import.name, None))
        } else {
            adapt_target::resolve_symbol(pid, &import.name, Some(&import.library))
        };
        match resolved {
            Ok(r) => out.push(PlannedImport {
                name: import.name.clone(),
                object: Some(r.symbol.object.path.clone()),
                address: Some(r.symbol.address),
            }),
            Err(err) => {
                return Err(PlanError::UnresolvedImport {
                    segment: segment.to_owned(),
                    import: import.name.clone(),
                    from: if import.library.is_empty() {
                        String::new()
                    } else {
                        format!(" from {}", import.library)
                    },
                    pid,
                    why: err.to_string(),
                }
                .into())
            }
        }
    }
    Ok(out)
}

/// The segment replacing a function named `symbol`: the file named like
/// the function (`crc32.seg` for `crc32`) if it replaces it, else the first
/// segment in file order that does. The first rule reads one file instead
/// of the whole library.
fn find_by_function(library: &Library, symbol: &str) -> crate::Result<(PathBuf, SegmentFile)> {
    // Only a plain name (a target's symbol names may be hostile): never a
    // path out of the library directory.
    let plain = !symbol.is_empty() && !symbol.contains('/') && !symbol.starts_with('.');
    if plain {
        let named = library.path_for(symbol);
        if let Ok(file) = SegmentFile::read_file(&named) {
            if file.segment.function(symbol).is_some() {
                return Ok((named, file));
            }
        }
    }
    for (path, file) in library.load_all_files()? {
        // Unreadable files cannot replace anything; `library list` names them.
        if let Ok(file) = file {
            if file.segment.function(symbol).is_some() {
                return Ok((path, file));
            }
        }
    }
    Err(PlanError::NoSegment {
        symbol: symbol.to_owned(),
        dir: library.dir().display().to_string(),
    }
    .into())
}

/// The segment function to jump to: `--function`, else the one named like
/// the target symbol, else the only one.
fn pick_function<'s>(
    segment: &'s Segment,
    function: Option<&str>,
    symbol: &str,
) -> Result<(usize, &'s adapt_segment::Function), PlanError> {
    let wanted = function.unwrap_or(symbol);
    if let Some(found) = segment.function(wanted) {
        return Ok(found);
    }
    if function.is_none() && segment.functions.len() == 1 {
        return Ok((0, &segment.functions[0]));
    }
    Err(PlanError::NoSuchFunction {
        segment: segment.name.clone(),
        function: wanted.to_owned(),
        available: segment
            .functions
            .iter()
            .map(|f| f.symbol.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// `--variant`, if this CPU runs it, else the best variant this CPU runs.
fn pick_variant<'s>(
    segment: &'s Segment,
    name: Option<&str>,
    cpu: &CpuFeatures,
) -> Result<(usize, &'s adapt_segment::Variant), PlanError> {
    let Some(name) = name else {
        return segment
            .best_variant(cpu)
            .ok_or_else(|| PlanError::NoSupportedVariant {
                segment: segment.name.clone(),
            });
    };
    let (index, variant) = segment
        .variant(name)
        .ok_or_else(|| PlanError::NoSuchVariant {
            segment: segment.name.clone(),
            variant: name.to_owned(),
            available: segment.variant_names(),
        })?;
    if !cpu.is_superset(&variant.features) {
        return Err(PlanError::Unsupported {
            segment: segment.name.clone(),
            variant: variant.name.clone(),
            missing: cpu.missing(&variant.features).to_string(),
        });
    }
    Ok((index, variant))
}
