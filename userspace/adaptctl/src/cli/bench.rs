//! `adaptctl bench SEGMENT`: measure, on this machine, every variant of a
//! segment against the original function, and say which one adapt would
//! inject (the in-situ selection of `adapt-select`, for a person).
//!
//! `adaptctl inject` runs the same measurement before it injects
//! (`adapt_ops::measure`).
//!
//! The Fortran BLAS segments (dgemm, sgemm, dgemv, dsyrk) are measured
//! the same way: their sizes are matrix dimensions, figures GFLOP/s, and
//! every variant's output is compared with the original's element by
//! element (max ulp column). Their code calls the original through the
//! `fallback` import, which the measuring child points at the original it
//! loaded. The relaxed segments replacing the same function
//! (`dgemm-relaxed`, numerics `float-reassociate`) are measured beside the
//! exact one and never chosen unless --allow-float-reassociate.

use adapt_ops::measure;
use adapt_segment::Library;
use adapt_select::{parse_size, select, Budget, SelectRequest, DEFAULT_MARGIN};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Measure each variant of a segment against the original function, here.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    /// The segment (e.g. crc32; see `adaptctl library list`).
    segment: String,

    /// The original's name in --object (default: the segment function's
    /// name).
    #[arg(long, value_name = "NAME")]
    symbol: Option<String>,

    /// The ELF file the target uses, as a path or a soname: a shared
    /// library is dlopen'ed (RTLD_LOCAL|RTLD_NOW), a function of an
    /// executable is run from a mapping of the file if it is a
    /// self-contained leaf. Default: the library the segment function
    /// declares (libz.so.1 for crc32 and adler32; for the BLAS segments
    /// Debian's reference /usr/lib/x86_64-linux-gnu/blas/libblas.so.3, not
    /// the libblas.so.3 alternative); without one, the variants are only
    /// compared with each other.
    #[arg(long, value_name = "PATH|SONAME")]
    object: Option<String>,

    /// The segment function to measure (default: the one named like
    /// --symbol, else the segment's first).
    #[arg(long, value_name = "NAME")]
    function: Option<String>,

    /// Buffer sizes the target uses, comma-separated (64, 4K, 1MiB, ...);
    /// each is measured at the nearest power of two. Default: 64,1K,16K,256K.
    /// For the BLAS segments: square matrix dimensions n (default
    /// 64,256,512).
    #[arg(long, value_name = "SIZES", value_delimiter = ',', value_parser = parse_size_arg)]
    sizes: Vec<usize>,

    /// Measure only these variants (comma-separated).
    #[arg(long, value_name = "VARIANTS", value_delimiter = ',')]
    only: Vec<String>,

    /// Report what `adaptctl inject --variant V` would do: V is injected
    /// whatever it measures.
    #[arg(long, value_name = "V")]
    variant: Option<String>,

    /// Required gain in percent: a variant is chosen only if it is at least
    /// this much faster than the original (geometric mean over the sizes)
    /// and no size is this much slower.
    #[arg(long, value_name = "PERCENT", default_value_t = DEFAULT_MARGIN * 100.0)]
    margin: f64,

    /// Interleaved batches per candidate and size (the median is reported).
    /// Default: 21, or 5 for the BLAS segments (one call of the original
    /// at n = 512 is a fraction of a second).
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,

    /// Let a float-reassociate (not bit-identical) variant be chosen, as
    /// the policy's allow_float_reassociate would; it is measured and shown
    /// either way.
    #[arg(long)]
    allow_float_reassociate: bool,

    /// Do not measure the relaxed (float-reassociate) segments replacing
    /// the same function beside an exact one.
    #[arg(long)]
    no_relaxed: bool,

    /// Target duration of one batch, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = Budget::default().batch.as_millis() as u64)]
    batch_ms: u64,

    /// Neither read nor write the measurement cache.
    #[arg(long)]
    no_cache: bool,

    /// Measure again even if the cache has figures (and store the new ones).
    #[arg(long, conflicts_with = "no_cache")]
    refresh: bool,

    /// Cache directory (default: $ADAPT_CACHE_DIR, else
    /// $XDG_CACHE_HOME/adapt, else ~/.cache/adapt).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Library directory (default: $ADAPT_LIBRARY, else the adapt-library
    /// directory of the cargo target directory adaptctl was built in).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Print a JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

const EXAMPLES: &str = "\
Examples:
  adaptctl bench crc32                       against the system libz.so.1
  adaptctl bench crc32 --sizes 256,64K       at the sizes the target uses
  adaptctl bench crc32 --object /usr/lib/x86_64-linux-gnu/libz.so.1.2.13
  adaptctl bench crc32 --object ./app --symbol my_crc32 --function crc32
  adaptctl bench crc32c --json               variants only (no system original)
  adaptctl bench dgemm                       exact and relaxed dgemm against the
                                             reference libblas.so.3, with max ulp
  adaptctl bench dgemm --sizes 128,1024 --no-relaxed

The decision: the fastest variant whose result equals the original's, that
is at least --margin faster (geometric mean of the per-size ratios) and
no more than --margin slower at any size; otherwise nothing is injected.
Figures are cached per segment, function, variant build, CPU model and
features, original file and size class.";

/// Debian's reference BLAS (`libblas3`), the original of the BLAS segments.
const REFERENCE_BLAS: &str = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3";

fn parse_size_arg(text: &str) -> Result<usize, String> {
    parse_size(text).map_err(|e| e.to_string())
}

/// A segment `adaptctl bench` cannot run in its measuring child (kind
/// `not-measured`): a function signature without a benchmark driver, or
/// code that calls back into the target through imports other than
/// `fallback` (the original, which the child provides).
#[derive(Debug, thiserror::Error)]
#[error(
    "adaptctl bench cannot measure segment {segment}: {why}; measure it natively in the source \
     tree with `cargo run --release -p adapt-library-build --bin bench-library {segment}`{also}, \
     or let `adaptctl auto` judge it in the running program by its time per call"
)]
pub(crate) struct NotMeasurable {
    segment: String,
    why: String,
    also: &'static str,
}

/// Refuses, with the reason and where to measure instead, a segment the
/// selection cannot run: one whose function has no benchmark driver
/// (`adapt_select::shape`), or that imports functions of the target other
/// than `fallback`.
fn check_measurable(
    file: &adapt_segment::SegmentFile,
    function: Option<&str>,
) -> Result<(), NotMeasurable> {
    let segment = &file.segment;
    let f = function
        .and_then(|name| segment.function(name).map(|(_, f)| f))
        .or(segment.functions.first());
    let mut why = Vec::new();
    if let Some(f) = f {
        if let Err(unknown) = adapt_select::shape::Shape::of(&f.contract) {
            why.push(format!(
                "{} has the signature {}{}, for which adapt-select has no benchmark driver",
                f.symbol,
                unknown.signature,
                if f.symbol.ends_with('_') {
                    " (the Fortran ABI: every argument by reference)"
                } else {
                    ""
                }
            ));
        }
    }
    let foreign: Vec<&str> = file
        .imports
        .iter()
        .filter(|i| !i.is_fallback())
        .map(|i| i.name.as_str())
        .collect();
    if !foreign.is_empty() {
        why.push(format!(
            "its code calls back into the target (imports {}), which the measuring child cannot \
             provide (it provides only fallback, the original)",
            foreign.join(", ")
        ));
    }
    if why.is_empty() {
        return Ok(());
    }
    Err(NotMeasurable {
        segment: segment.name.clone(),
        why: why.join("; and "),
        also: if segment.functions.iter().any(|f| f.symbol == "dgemm_") {
            " (exact and relaxed dgemm side by side, with their ulp distance from the \
             reference BLAS)"
        } else {
            ""
        },
    })
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let library = Library::open_or_default(args.dir.as_deref())?;
    // Read as a file of either format version: a segment with imports is
    // refused below with the reason, not as unreadable.
    let (_, file) = library.find_file(&args.segment)?;
    check_measurable(&file, args.function.as_deref())?;
    let companions = if args.no_relaxed {
        Vec::new()
    } else {
        relaxed_companions(&library, &file, args.function.as_deref())
    };
    let blas = file
        .segment
        .functions
        .iter()
        .any(|f| adapt_select::Shape::of(&f.contract).is_ok_and(|s| s.is_blas()));
    let segment = file.segment;
    if !(0.0..100.0).contains(&args.margin) {
        anyhow::bail!(
            "--margin {} is not a percentage between 0 and 100",
            args.margin
        );
    }
    let mut req = SelectRequest::new(&segment);
    req.function = args.function.clone();
    // The BLAS segments replace the netlib reference, by its own path: the
    // soname libblas.so.3 is an alternatives link that may name OpenBLAS
    // (which also starts threads the measuring child may not).
    let object = args
        .object
        .clone()
        .or_else(|| blas.then(|| REFERENCE_BLAS.to_owned()));
    req.original = measure::default_original(
        &segment,
        object.as_deref(),
        args.symbol.as_deref(),
        args.function.as_deref(),
    );
    req.sizes = args.sizes.clone();
    req.only = args.only.clone();
    req.forced = args.variant.clone();
    req.margin = args.margin / 100.0;
    req.budget = Budget {
        batch: Duration::from_millis(args.batch_ms.max(1)),
        rounds: args
            .rounds
            .unwrap_or(if blas { 5 } else { Budget::default().rounds })
            .max(1),
    };
    req.imports = file.imports;
    req.companions = companions.iter().collect();
    req.allow_float_reassociate = args.allow_float_reassociate;
    req.cache = measure::cache_use(args.no_cache, args.refresh, args.cache_dir.as_deref());
    let selection = select(&req)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&selection)?);
    } else {
        print!("{selection}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The relaxed (`float-reassociate`) segments of the library replacing the
/// measured function of an exact `file` (dgemm-relaxed for dgemm), each
/// measurable; files that do not read are left out.
fn relaxed_companions(
    library: &Library,
    file: &adapt_segment::SegmentFile,
    function: Option<&str>,
) -> Vec<adapt_segment::SegmentFile> {
    let seg = &file.segment;
    if !seg.numerics.is_exact() {
        return Vec::new();
    }
    let Some(symbol) = function
        .and_then(|name| seg.function(name).map(|(_, f)| f.symbol.clone()))
        .or_else(|| seg.functions.first().map(|f| f.symbol.clone()))
    else {
        return Vec::new();
    };
    let Ok(all) = library.load_all_files() else {
        return Vec::new();
    };
    all.into_iter()
        .filter_map(|(_, r)| r.ok())
        .filter(|f| {
            f.segment.name != seg.name
                && !f.segment.numerics.is_exact()
                && f.segment.function(&symbol).is_some()
                && check_measurable(f, Some(&symbol)).is_ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_without_driver_or_with_foreign_imports_is_not_measurable() {
        use adapt_segment::{
            CType, Contract, Function, Import, Param, Scalar, Segment, SegmentFile,
        };
        let contract = Contract {
            returns: CType::value(Scalar::Void, "void"),
            params: vec![Param {
                name: "m".into(),
                ty: CType::const_ptr(Scalar::I32, "const int *"),
            }],
        };
        let segment = Segment {
            name: "dgemm".into(),
            version: 1,
            description: String::new(),
            build: String::new(),
            numerics: Default::default(),
            functions: vec![Function {
                symbol: "dgemm_".into(),
                library: "libblas.so.3".into(),
                contract: contract.clone(),
                reference: String::new(),
            }],
            variants: vec![],
        };
        let file = SegmentFile {
            magic: adapt_segment::MAGIC.into(),
            format_version: adapt_segment::FORMAT_VERSION_IMPORTS,
            content_hash: vec![],
            segment,
            imports: vec![
                Import {
                    name: "fallback".into(),
                    library: String::new(),
                    contract: contract.clone(),
                },
                Import {
                    name: "xerbla_".into(),
                    library: String::new(),
                    contract,
                },
            ],
        };
        let msg = check_measurable(&file, None).unwrap_err().to_string();
        for needle in [
            "cannot measure segment dgemm",
            "no benchmark driver",
            "Fortran ABI",
            "imports xerbla_",
            "only fallback",
            "bench-library dgemm",
            "relaxed",
        ] {
            assert!(msg.contains(needle), "{needle} missing from: {msg}");
        }
        assert!(!msg.contains("imports fallback"), "{msg}");
        let err = anyhow::Error::from(check_measurable(&file, None).unwrap_err());
        assert_eq!(super::super::exit::kind(&err), "not-measured");
    }

    #[test]
    fn a_fortran_blas_segment_importing_only_fallback_is_measurable() {
        use adapt_segment::{
            CType, Contract, Function, Import, Param, Scalar, Segment, SegmentFile,
        };
        let p = |name: &str, ty: CType| Param {
            name: name.into(),
            ty,
        };
        let chr = || CType::const_ptr(Scalar::U8, "const char *");
        let int = || CType::const_ptr(Scalar::I32, "const int *");
        let num = || CType::const_ptr(Scalar::F64, "const double *");
        let len = || CType::value(Scalar::U64, "size_t");
        let contract = Contract {
            returns: CType::value(Scalar::Void, "void"),
            params: vec![
                p("transa", chr()),
                p("transb", chr()),
                p("m", int()),
                p("n", int()),
                p("k", int()),
                p("alpha", num()),
                p("a", num()),
                p("lda", int()),
                p("b", num()),
                p("ldb", int()),
                p("beta", num()),
                p("c", CType::mut_ptr(Scalar::F64, "double *")),
                p("ldc", int()),
                p("transa_len", len()),
                p("transb_len", len()),
            ],
        };
        let file = SegmentFile {
            magic: adapt_segment::MAGIC.into(),
            format_version: adapt_segment::FORMAT_VERSION_IMPORTS,
            content_hash: vec![],
            segment: Segment {
                name: "dgemm".into(),
                version: 1,
                description: String::new(),
                build: String::new(),
                numerics: Default::default(),
                functions: vec![Function {
                    symbol: "dgemm_".into(),
                    library: "libblas.so.3".into(),
                    contract: contract.clone(),
                    reference: String::new(),
                }],
                variants: vec![],
            },
            imports: vec![Import {
                name: "fallback".into(),
                library: String::new(),
                contract,
            }],
        };
        check_measurable(&file, None).unwrap();
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size_arg("4K"), Ok(4096));
        assert!(parse_size_arg("4T").is_err());
    }
}
