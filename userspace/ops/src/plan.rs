//! Deciding an injection without touching anything: which segment, function
//! (entry) and variant replace the target, whether the segment passes the
//! verifier, which bytes the patch replaces, and which contract the target
//! has. `adaptctl inject` then loads the variant and asks the module;
//! `--dry-run` prints this plan and stops.
//!
//! A segment whose numerics are not exact (`float-reassociate`: results
//! not bit for bit the original's) is refused unless the request allows
//! it ([`Request::allow_float_reassociate`]: the policy's
//! `allow_float_reassociate`, or `adaptctl inject
//! --allow-float-reassociate`); when no segment is named, an exact segment
//! replacing the function is always chosen before a relaxed one.

use crate::contract::{target_contract, TargetContract};
use crate::timings::Timings;
use adapt_segment::{CpuFeatures, Import, Library, Numerics, Segment, SegmentFile, VerifyCache};
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
    /// Accept a segment of `float-reassociate` numerics (not bit-identical
    /// to the original): set from the policy's `allow_float_reassociate`
    /// flag, or by an explicit override of the caller. Off: such a segment
    /// is refused ([`PlanError::NumericsNotAllowed`]).
    pub allow_float_reassociate: bool,
    pub dir: Option<&'a Path>,
}

/// Everything decided; serialized as part of `adaptctl inject --json`.
#[derive(Clone, Debug, Serialize)]
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
    /// The segment's numerics: `exact`, or `float-reassociate` (allowed by
    /// the request).
    pub numerics: Numerics,
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
    /// Bytes of the injection's data area (0 but for generated code such
    /// as a counting segment, see [`crate::calls`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub data_len: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
        "segment {segment} has {numerics} numerics (results not bit-identical to {symbol}'s): \
         refused unless the policy sets allow_float_reassociate = true (`adaptctl policy load`), \
         or `adaptctl inject --allow-float-reassociate` overrides it for one injection; nothing \
         was injected"
    )]
    NumericsNotAllowed {
        segment: String,
        symbol: String,
        numerics: Numerics,
    },

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
    check_numerics(&segment, request.symbol, request.allow_float_reassociate)?;
    timings.mark("library");
    // Verified once per content (with its imports) and build of the
    // verifier: the result is remembered in the cache directory
    // (adapt_segment::verify_cache).
    let verifier = VerifyCache::open(adapt_select::cache::default_cache_dir().as_deref());
    let verified = verifier.verify_with_imports(&segment, &imports).map(|_| ());
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
        numerics: segment.numerics,
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
        data_len: 0,
    })
}

/// Refuses `segment` if its numerics are not exact and `allow` is off.
fn check_numerics(segment: &Segment, symbol: &str, allow: bool) -> Result<(), PlanError> {
    match segment.numerics {
        Numerics::Exact => Ok(()),
        Numerics::FloatReassociate if allow => Ok(()),
        numerics => Err(PlanError::NumericsNotAllowed {
            segment: segment.name.clone(),
            symbol: symbol.to_owned(),
            numerics,
        }),
    }
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
/// the function (`crc32.seg` for `crc32`) if it replaces it and is exact,
/// else the first exact segment in file order that does, else the first
/// relaxed one (which [`check_numerics`] then judges). The first rule reads
/// one file instead of the whole library; exact segments come first so
/// that `dgemm-relaxed.seg`, sorted before `dgemm.seg`, is never the
/// default.
fn find_by_function(library: &Library, symbol: &str) -> crate::Result<(PathBuf, SegmentFile)> {
    // Only a plain name (a target's symbol names may be hostile): never a
    // path out of the library directory.
    let plain = !symbol.is_empty() && !symbol.contains('/') && !symbol.starts_with('.');
    if plain {
        let named = library.path_for(symbol);
        if let Ok(file) = SegmentFile::read_file(&named) {
            if file.segment.function(symbol).is_some() && file.segment.numerics.is_exact() {
                return Ok((named, file));
            }
        }
    }
    // Unreadable files cannot replace anything; `library list` names them.
    let replacing = library
        .load_all_files()?
        .into_iter()
        .filter_map(|(path, file)| Some((path, file.ok()?)))
        .filter(|(_, file)| file.segment.function(symbol).is_some());
    if let Some(found) = prefer_exact(replacing) {
        return Ok(found);
    }
    Err(PlanError::NoSegment {
        symbol: symbol.to_owned(),
        dir: library.dir().display().to_string(),
    }
    .into())
}

/// The first exact segment file of `files`, else the first of them.
fn prefer_exact(
    files: impl Iterator<Item = (PathBuf, SegmentFile)>,
) -> Option<(PathBuf, SegmentFile)> {
    let mut first = None;
    for (path, file) in files {
        if file.segment.numerics.is_exact() {
            return Some((path, file));
        }
        first.get_or_insert((path, file));
    }
    first
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

#[cfg(test)]
mod tests {
    use super::*;
    use adapt_segment::{CType, Contract, Function, Param, Scalar, Variant};

    fn segment(name: &str, numerics: Numerics) -> Segment {
        Segment {
            name: name.into(),
            version: 1,
            description: String::new(),
            build: String::new(),
            numerics,
            functions: vec![Function {
                symbol: "dgemm_".into(),
                library: String::new(),
                contract: Contract {
                    returns: CType::value(Scalar::Void, "void"),
                    params: vec![Param {
                        name: "a".into(),
                        ty: CType::const_ptr(Scalar::F64, "const double *"),
                    }],
                },
                reference: String::new(),
            }],
            variants: vec![Variant {
                name: "portable".into(),
                features: Default::default(),
                code: vec![0xc3],
                rodata: vec![],
                rodata_align: 1,
                relocations: vec![],
                entry_offsets: vec![0],
            }],
        }
    }

    #[test]
    fn float_reassociate_is_refused_unless_allowed() {
        let relaxed = segment("dgemm-relaxed", Numerics::FloatReassociate);
        let err = check_numerics(&relaxed, "dgemm_", false).unwrap_err();
        assert!(matches!(err, PlanError::NumericsNotAllowed { .. }));
        let msg = err.to_string();
        for needle in [
            "dgemm-relaxed",
            "float-reassociate",
            "allow_float_reassociate = true",
            "--allow-float-reassociate",
        ] {
            assert!(msg.contains(needle), "{needle} missing from: {msg}");
        }
        assert!(check_numerics(&relaxed, "dgemm_", true).is_ok());
        let exact = segment("dgemm", Numerics::Exact);
        assert!(check_numerics(&exact, "dgemm_", false).is_ok());
        assert!(check_numerics(&exact, "dgemm_", true).is_ok());
    }

    #[test]
    fn the_exact_segment_is_found_first_whatever_the_file_order() {
        let dir = std::env::temp_dir().join(format!("adapt-plan-numerics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |s: &Segment| {
            SegmentFile::new(s.clone(), vec![])
                .write_file(&dir.join(format!("{}.seg", s.name)))
                .unwrap()
        };
        let library = Library::open(&dir).unwrap();
        // Only the relaxed one: it is the one found (and refused later by
        // check_numerics unless allowed).
        write(&segment("dgemm-relaxed", Numerics::FloatReassociate));
        let (_, found) = find_by_function(&library, "dgemm_").unwrap();
        assert_eq!(found.segment.name, "dgemm-relaxed");
        // dgemm-relaxed.seg sorts before dgemm.seg; the exact one wins.
        write(&segment("dgemm", Numerics::Exact));
        let (path, found) = find_by_function(&library, "dgemm_").unwrap();
        assert_eq!(found.segment.name, "dgemm");
        assert!(path.ends_with("dgemm.seg"), "{}", path.display());
        // A relaxed file named like the symbol is not taken by the fast path.
        write(&segment("dgemm_", Numerics::FloatReassociate));
        let (_, found) = find_by_function(&library, "dgemm_").unwrap();
        assert_eq!(found.segment.name, "dgemm");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn prefer_exact_keeps_file_order_otherwise() {
        let f = |name: &str, n| {
            (
                PathBuf::from(name),
                SegmentFile::new(segment(name, n), vec![]),
            )
        };
        let pick = |files: Vec<(PathBuf, SegmentFile)>| {
            prefer_exact(files.into_iter()).map(|(_, f)| f.segment.name)
        };
        assert_eq!(pick(vec![]), None);
        assert_eq!(
            pick(vec![
                f("r1", Numerics::FloatReassociate),
                f("r2", Numerics::FloatReassociate)
            ]),
            Some("r1".into())
        );
        assert_eq!(
            pick(vec![
                f("r1", Numerics::FloatReassociate),
                f("e1", Numerics::Exact),
                f("e2", Numerics::Exact)
            ]),
            Some("e1".into())
        );
    }
}
