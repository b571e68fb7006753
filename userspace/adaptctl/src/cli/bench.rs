//! `adaptctl bench SEGMENT`: measure, on this machine, every variant of a
//! segment against the original function, and say which one adapt would
//! inject (the in-situ selection of `adapt-select`, for a person).
//!
//! `adaptctl inject` runs the same measurement before it injects
//! ([`measure_for_inject`]).

use adapt_segment::{Library, Segment};
use adapt_select::{
    parse_size, select, Budget, CacheUse, OriginalSpec, SelectError, SelectRequest, Selection,
    DEFAULT_MARGIN,
};
use std::path::{Path, PathBuf};
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
    /// declares (libz.so.1 for crc32 and adler32); without one, the
    /// variants are only compared with each other.
    #[arg(long, value_name = "PATH|SONAME")]
    object: Option<String>,

    /// The segment function to measure (default: the one named like
    /// --symbol, else the segment's first).
    #[arg(long, value_name = "NAME")]
    function: Option<String>,

    /// Buffer sizes the target uses, comma-separated (64, 4K, 1MiB, ...);
    /// each is measured at the nearest power of two. Default: 64,1K,16K,256K.
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
    #[arg(long, value_name = "N", default_value_t = Budget::default().rounds)]
    rounds: usize,

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

The decision: the fastest variant whose result equals the original's, that
is at least --margin faster (geometric mean of the per-size ratios) and
no more than --margin slower at any size; otherwise nothing is injected.
Figures are cached per segment, function, variant build, CPU model and
features, original file and size class.";

fn parse_size_arg(text: &str) -> Result<usize, String> {
    parse_size(text).map_err(|e| e.to_string())
}

/// Exit code and kind of a selection error.
pub(crate) fn select_kind(err: &SelectError) -> (&'static str, u8) {
    match err {
        SelectError::NoSuchFunction { .. } => ("no-such-function", 12),
        SelectError::NoSuchVariant { .. } => ("no-such-variant", 12),
        SelectError::NoVariant { .. } => ("unsupported-variant", 15),
        SelectError::Shape { .. } => ("contract-unknown", 15),
        SelectError::Load(adapt_segment::LoaderError::Verify { .. }) => ("refused", 10),
        SelectError::Load(_) => ("error", 1),
        SelectError::Child { .. } => ("not-measured", 1),
    }
}

fn open_library(dir: Option<&Path>) -> anyhow::Result<Library> {
    Ok(match dir {
        Some(d) => Library::open(d)?,
        None => Library::open_default()?,
    })
}

fn cache_use(no_cache: bool, refresh: bool, dir: Option<&Path>) -> CacheUse {
    let dir = dir
        .map(Path::to_path_buf)
        .or_else(adapt_select::default_cache_dir);
    match (no_cache, dir) {
        (true, _) | (false, None) => CacheUse::Off,
        (false, Some(d)) if refresh => CacheUse::Refresh(d),
        (false, Some(d)) => CacheUse::Use(d),
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let library = open_library(args.dir.as_deref())?;
    let (_, segment) = library.find(&args.segment)?;
    if !(0.0..100.0).contains(&args.margin) {
        anyhow::bail!(
            "--margin {} is not a percentage between 0 and 100",
            args.margin
        );
    }
    let mut req = SelectRequest::new(&segment);
    req.function = args.function.clone();
    req.original = original_spec(
        &segment,
        args.object.as_deref(),
        args.symbol.as_deref(),
        args.function.as_deref(),
    );
    req.sizes = args.sizes.clone();
    req.only = args.only.clone();
    req.forced = args.variant.clone();
    req.margin = args.margin / 100.0;
    req.budget = Budget {
        batch: Duration::from_millis(args.batch_ms.max(1)),
        rounds: args.rounds.max(1),
    };
    req.cache = cache_use(args.no_cache, args.refresh, args.cache_dir.as_deref());
    let selection = select(&req)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&selection)?);
    } else {
        print!("{selection}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The original named by `--object`/`--symbol`: with only `--symbol`, in
/// the function's declared library; with neither, `None` (the selection
/// then uses the declared library, if any).
fn original_spec(
    segment: &Segment,
    object: Option<&str>,
    symbol: Option<&str>,
    function: Option<&str>,
) -> Option<OriginalSpec> {
    let declared = segment
        .function(function.or(symbol).unwrap_or(""))
        .or_else(|| segment.functions.first().map(|f| (0, f)))
        .map(|(_, f)| f);
    let symbol = symbol
        .map(str::to_owned)
        .or_else(|| function.map(str::to_owned))
        .or_else(|| declared.map(|f| f.symbol.clone()))?;
    let object = object.map(str::to_owned).or_else(|| {
        declared
            .map(|f| f.library.clone())
            .filter(|l| !l.is_empty())
    })?;
    Some(OriginalSpec {
        object,
        symbol,
        pid: None,
    })
}

/// What `adaptctl inject` measured before injecting.
pub(crate) struct InjectMeasurement {
    /// Every figure and the decision (printable, serializable).
    pub(crate) selection: Selection,
    /// The variant to inject; `None`: inject nothing.
    pub(crate) variant: Option<String>,
}

/// The in-situ selection `adaptctl inject` runs before injecting: the
/// segment's variants (or only `forced`'s decision, if given: it is
/// injected whatever it measures) against `symbol` in `object`, the file
/// process `pid` mapped (read through `/proc/PID/map_files`, run only in
/// an unprivileged child as the target's user), at the default sizes,
/// through the default cache.
pub(crate) fn measure_for_inject(
    segment: &Segment,
    function: &str,
    pid: u32,
    object: &str,
    symbol: &str,
    forced: Option<&str>,
) -> anyhow::Result<InjectMeasurement> {
    let mut req = SelectRequest::new(segment);
    req.function = Some(function.to_owned());
    req.original = Some(OriginalSpec {
        object: object.to_owned(),
        symbol: symbol.to_owned(),
        pid: Some(pid),
    });
    req.forced = forced.map(str::to_owned);
    let selection = select(&req)?;
    let variant = selection.decision.variant_to_inject().map(str::to_owned);
    Ok(InjectMeasurement { selection, variant })
}

/// Exit status of `adaptctl inject` when the measurement found no variant
/// faster than the original: nothing was injected.
pub(crate) const EXIT_NO_GAIN: u8 = 18;

/// The measurement `adaptctl inject` runs unless `--no-measure`: the
/// plan's segment variants against the target function, loaded from the
/// file the target mapped. Sets `plan.variant` to the variant to inject
/// (`--variant`'s if forced). Returns every figure and the decision; when
/// its [`adapt_select::Decision::variant_to_inject`] is `None`, nothing
/// must be injected.
pub(crate) fn measure_before_inject(
    plan: &mut super::inject_plan::Plan,
    forced: Option<&str>,
) -> anyhow::Result<Selection> {
    let segment = Segment::read_file(&plan.segment_file)?;
    let m = measure_for_inject(
        &segment,
        &plan.function,
        plan.pid,
        &plan.target.symbol.object.path,
        &plan.target.symbol.name,
        forced,
    )?;
    if let Some(v) = m
        .variant
        .as_deref()
        .and_then(|name| segment.variant(name))
        .map(|(_, v)| v)
    {
        plan.variant = v.name.clone();
        plan.variant_features = v.features.iter().map(|f| f.name().to_owned()).collect();
    }
    Ok(m.selection)
}

/// One sentence on the original of `selection`: measured (by which
/// unprivileged uid) or not and why, and the evidence that it is the
/// function the segment replaces.
pub(crate) fn original_sentence(selection: &Selection) -> String {
    let o = &selection.original;
    let measured = match (&o.unavailable, o.measured_as) {
        (Some(why), _) => format!("original not measured: {why}"),
        (None, Some(uid)) => format!(
            "original measured in an unprivileged child (uid {uid}{})",
            if o.seccomp == Some(false) {
                "; no seccomp filter: this kernel has no CONFIG_SECCOMP"
            } else {
                ""
            }
        ),
        (None, None) => "original measured".to_owned(),
    };
    match &o.evidence {
        Some(e) => format!("{measured}; evidence: {}", e.summary),
        None => measured,
    }
}

/// [`original_sentence`] and its parts, for `--json` decisions.
pub(crate) fn original_summary(selection: &Selection) -> serde_json::Value {
    let o = &selection.original;
    serde_json::json!({
        "sentence": original_sentence(selection),
        "measured_as": o.measured_as,
        "seccomp": o.seccomp,
        "unavailable": o.unavailable,
        "opened": o.opened,
        "evidence": o.evidence,
    })
}

/// Prints what `adaptctl inject` measured (text mode).
pub(crate) fn print_measurement(selection: &Selection) {
    println!(
        "measured here before injecting (the same as `adaptctl bench {}`):",
        selection.segment
    );
    for line in selection.to_string().lines() {
        println!("  {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adapt_segment::{CType, Contract, Function, Scalar};

    fn segment(functions: &[(&str, &str)]) -> Segment {
        Segment {
            name: "s".into(),
            version: 1,
            description: String::new(),
            build: String::new(),
            functions: functions
                .iter()
                .map(|(symbol, library)| Function {
                    symbol: (*symbol).into(),
                    library: (*library).into(),
                    contract: Contract {
                        returns: CType::value(Scalar::Void, "void"),
                        params: vec![],
                    },
                    reference: String::new(),
                })
                .collect(),
            variants: vec![],
        }
    }

    #[test]
    fn the_original_defaults_to_the_declared_library() {
        let zlib = segment(&[("crc32", "libz.so.1"), ("crc32_z", "libz.so.1")]);
        let spec = |o, s, f| original_spec(&zlib, o, s, f);
        assert_eq!(
            spec(None, None, None),
            Some(OriginalSpec {
                object: "libz.so.1".into(),
                symbol: "crc32".into(),
                pid: None,
            })
        );
        assert_eq!(
            spec(None, None, Some("crc32_z")),
            Some(OriginalSpec {
                object: "libz.so.1".into(),
                symbol: "crc32_z".into(),
                pid: None,
            })
        );
        assert_eq!(
            spec(Some("/opt/app"), Some("my_crc"), Some("crc32")),
            Some(OriginalSpec {
                object: "/opt/app".into(),
                symbol: "my_crc".into(),
                pid: None,
            })
        );
        // A function declaring no library has no default original.
        let dot = segment(&[("dot_f32", "")]);
        assert_eq!(original_spec(&dot, None, None, None), None);
        assert_eq!(
            original_spec(&dot, Some("./app"), None, None),
            Some(OriginalSpec {
                object: "./app".into(),
                symbol: "dot_f32".into(),
                pid: None,
            })
        );
    }

    #[test]
    fn cache_flags_choose_the_cache_use() {
        let d = Path::new("/tmp/c");
        assert_eq!(cache_use(true, false, Some(d)), CacheUse::Off);
        assert_eq!(
            cache_use(false, true, Some(d)),
            CacheUse::Refresh(d.to_path_buf())
        );
        assert_eq!(
            cache_use(false, false, Some(d)),
            CacheUse::Use(d.to_path_buf())
        );
        assert_eq!(parse_size_arg("4K"), Ok(4096));
        assert!(parse_size_arg("4T").is_err());
    }

    #[test]
    fn selection_errors_have_documented_exit_codes() {
        let e = SelectError::NoSuchVariant {
            segment: "s".into(),
            variant: "v".into(),
            available: "p".into(),
        };
        assert_eq!(select_kind(&e), ("no-such-variant", 12));
        assert_eq!(
            select_kind(&SelectError::NoVariant {
                segment: "s".into()
            })
            .1,
            15
        );
    }
}
