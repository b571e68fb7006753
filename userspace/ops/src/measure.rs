//! The measurement before an injection: the plan's segment variants against
//! the target's own function, loaded from the file the target mapped (read
//! through `/proc/PID/map_files`, run only in an unprivileged child as the
//! target's user), at the default sizes, through the default cache. The
//! same selection `adaptctl bench` runs for a person.

use crate::plan::Plan;
use adapt_segment::Segment;
use adapt_select::{select, CacheUse, OriginalSpec, SelectRequest, Selection};
use std::path::Path;

/// Measures the plan's variants (or only `forced`'s decision, if given: it
/// is injected whatever it measures) against the target function, at the
/// sizes of `observed` (the target's own calls: bytes and calls, weighted
/// by the time each size takes) or, when empty, the default sizes. Sets
/// `plan.variant` to the variant to inject. Returns every figure and the
/// decision; when its `decision.variant_to_inject()` is `None`, nothing
/// must be injected.
pub fn before_inject(
    plan: &mut Plan,
    forced: Option<&str>,
    observed: &[(usize, u64)],
) -> crate::Result<Selection> {
    let segment: &Segment = &plan.verified;
    let mut req = SelectRequest::new(segment);
    req.function = Some(plan.function.clone());
    req.original = Some(OriginalSpec {
        object: plan.target.symbol.object.path.clone(),
        symbol: plan.target.symbol.name.clone(),
        pid: Some(plan.pid),
    });
    req.forced = forced.map(str::to_owned);
    req.weights = observed.to_vec();
    let selection = select(&req)?;
    let chosen = selection
        .decision
        .variant_to_inject()
        .and_then(|name| segment.variant(name))
        .map(|(_, v)| {
            (
                v.name.clone(),
                v.features.iter().map(|f| f.name().to_owned()).collect(),
            )
        });
    if let Some((name, features)) = chosen {
        plan.variant = name;
        plan.variant_features = features;
    }
    Ok(selection)
}

/// One sentence on the original of `selection`: measured (by which
/// unprivileged uid) or not and why, and the evidence that it is the
/// function the segment replaces.
pub fn original_sentence(selection: &Selection) -> String {
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
pub fn original_summary(selection: &Selection) -> serde_json::Value {
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

/// The original named by an object and a symbol (`adaptctl bench
/// --object/--symbol`): with only the symbol, in
/// the function's declared library; with neither, `None` (the selection
/// then uses the declared library, if any).
pub fn default_original(
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

/// Whether and how a measurement uses the cache: `no_cache`, `refresh`,
/// and the directory (default: [`adapt_select::default_cache_dir`]).
pub fn cache_use(no_cache: bool, refresh: bool, dir: Option<&Path>) -> CacheUse {
    let dir = dir
        .map(Path::to_path_buf)
        .or_else(adapt_select::default_cache_dir);
    match (no_cache, dir) {
        (true, _) | (false, None) => CacheUse::Off,
        (false, Some(d)) if refresh => CacheUse::Refresh(d),
        (false, Some(d)) => CacheUse::Use(d),
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
            numerics: Default::default(),
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
        let spec = |o, s, f| default_original(&zlib, o, s, f);
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
        assert_eq!(default_original(&dot, None, None, None), None);
        assert_eq!(
            default_original(&dot, Some("./app"), None, None),
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
    }
}
