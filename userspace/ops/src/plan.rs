//! Deciding an injection without touching anything: which segment, function
//! (entry) and variant replace the target, whether the segment passes the
//! verifier, which bytes the patch replaces, and which contract the target
//! has. `adaptctl inject` then loads the variant and asks the module;
//! `--dry-run` prints this plan and stops.

use crate::contract::{target_contract, TargetContract};
use crate::timings::Timings;
use adapt_segment::{CpuFeatures, Library, Segment, VerifyCache};
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
    let (segment_file, segment) = match request.segment {
        Some(name) => library.find(name)?,
        None => find_by_function(&library, wanted)?,
    };
    timings.mark("library");
    // Verified once per content and build of the verifier: the result is
    // remembered in the cache directory (adapt_segment::verify_cache).
    let verifier = VerifyCache::open(adapt_select::cache::default_cache_dir().as_deref());
    if let Err(err) = verifier.verify(&segment) {
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
    })
}

/// The segment replacing a function named `symbol`: the file named like
/// the function (`crc32.seg` for `crc32`) if it replaces it, else the first
/// segment in file order that does. The first rule reads one file instead
/// of the whole library.
fn find_by_function(library: &Library, symbol: &str) -> crate::Result<(PathBuf, Segment)> {
    // Only a plain name (a target's symbol names may be hostile): never a
    // path out of the library directory.
    let plain = !symbol.is_empty() && !symbol.contains('/') && !symbol.starts_with('.');
    if plain {
        let named = library.path_for(symbol);
        if let Ok(segment) = Segment::read_file(&named) {
            if segment.function(symbol).is_some() {
                return Ok((named, segment));
            }
        }
    }
    for (path, segment) in library.load_all()? {
        // Unreadable files cannot replace anything; `library list` names them.
        if let Ok(segment) = segment {
            if segment.function(symbol).is_some() {
                return Ok((path, segment));
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
            available: segment
                .variants
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
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
