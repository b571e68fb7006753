// SPDX-License-Identifier: GPL-2.0
//! The selection itself: load the variants and the original, measure them
//! side by side (or take the figures from the cache), check their results
//! agree, and decide.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use adapt_segment::{
    import_table::ImportLayout, CpuFeatures, Import, InProcessVariant, Numerics, Segment,
    SegmentFile,
};
use serde::{Deserialize, Serialize};

use crate::cache::{variant_cache_hash, Cache, CacheEntry, FigureKey, OriginalKey};
use crate::child::{self, ImportFill, Job, JobVariant, Timed};
use crate::cpu_id::CpuIdentity;
use crate::decide::{decide, Choice, Comparison, Decision, Forced, DEFAULT_MARGIN};
use crate::driver::Workload;
use crate::error::{OriginalError, SelectError};
use crate::evidence::Evidence;
use crate::original::{LoadMethod, OriginalSpec, PreparedOriginal};
use crate::sandbox::{Identity, Limits};
use crate::shape::Shape;
use crate::sizes::SizeClass;
use crate::timing::{paired_ratio, Budget, Figure, Series};

/// Whether to use the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// Neither read nor write it.
    Off,
    /// Use figures from the cache in this directory, measure what is
    /// missing and store it.
    Use(PathBuf),
    /// Measure everything again and store it in this directory.
    Refresh(PathBuf),
}

/// What to select for.
#[derive(Clone, Debug)]
pub struct SelectRequest<'a> {
    /// The segment.
    pub segment: &'a Segment,
    /// The segment function to measure (default: the one named like the
    /// original's symbol, else the segment's first).
    pub function: Option<String>,
    /// The original (default: the function's declared library, e.g.
    /// `libz.so.1`, if it declares one).
    pub original: Option<OriginalSpec>,
    /// Sizes the target uses, bytes (empty: [`crate::DEFAULT_SIZES`]).
    pub sizes: Vec<usize>,
    /// The target's own calls: (size in bytes, calls seen), e.g. from a
    /// call counter's histogram of its length argument. When given, the
    /// sizes measured are these (not [`SelectRequest::sizes`]) and each
    /// variant's speedup is that of this mix, weighted by the time each
    /// size takes (calls × bytes; see [`Comparison::speedup`]).
    pub weights: Vec<(usize, u64)>,
    /// Only these variants (empty: every variant this CPU runs).
    pub only: Vec<String>,
    /// An override: inject this variant whatever it measures.
    pub forced: Option<String>,
    /// The margin of the rule ([`DEFAULT_MARGIN`]).
    pub margin: f64,
    /// How long to measure.
    pub budget: Budget,
    /// The cache.
    pub cache: CacheUse,
    /// The CPU the figures are recorded for ([`CpuIdentity::detect`]).
    pub cpu: CpuIdentity,
    /// Limits of the unprivileged measuring child.
    pub limits: Limits,
    /// What the segment's code imports ([`SegmentFile::imports`]): only
    /// `fallback` can be measured, pointed at the original in the child.
    pub imports: Vec<Import>,
    /// Other segments replacing the same function, measured side by side
    /// (variants named `SEGMENT:VARIANT`): the relaxed
    /// (`float-reassociate`) segments of an exact one.
    pub companions: Vec<&'a SegmentFile>,
    /// Whether a `float-reassociate` variant may be chosen (the policy's
    /// `allow_float_reassociate`); otherwise it is measured and shown, never
    /// chosen.
    pub allow_float_reassociate: bool,
}

impl<'a> SelectRequest<'a> {
    /// Defaults for `segment`: its declared original, default sizes, every
    /// variant, the default margin and budget, the default cache directory.
    pub fn new(segment: &'a Segment) -> SelectRequest<'a> {
        SelectRequest {
            segment,
            function: None,
            original: None,
            sizes: Vec::new(),
            weights: Vec::new(),
            only: Vec::new(),
            forced: None,
            margin: DEFAULT_MARGIN,
            budget: Budget::default(),
            cache: crate::cache::default_cache_dir().map_or(CacheUse::Off, CacheUse::Use),
            cpu: CpuIdentity::detect(),
            limits: Limits::default(),
            imports: Vec::new(),
            companions: Vec::new(),
            allow_float_reassociate: false,
        }
    }
}

/// The original, as measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OriginalReport {
    /// What was asked for (absent: nothing named and nothing declared).
    pub spec: Option<OriginalSpec>,
    /// The file it was loaded from.
    pub path: Option<String>,
    /// How.
    pub method: Option<LoadMethod>,
    /// Why it was not measured (absent when it was).
    pub unavailable: Option<String>,
    /// Where its file was opened from by the parent (which only reads it):
    /// `/proc/PID/map_files/…` for a process's mapping.
    #[serde(default)]
    pub opened: Option<String>,
    /// The uid of the unprivileged child that loaded and ran it.
    #[serde(default)]
    pub measured_as: Option<u32>,
    /// Whether that child ran under seccomp filters (false: the kernel
    /// has no `CONFIG_SECCOMP`; every other barrier still held).
    #[serde(default)]
    pub seccomp: Option<bool>,
    /// What says it is the function the segment replaces.
    #[serde(default)]
    pub evidence: Option<Evidence>,
}

/// One candidate's figure at one size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantFigure {
    /// Variant name.
    pub variant: String,
    /// Its throughput.
    pub figure: Figure,
    /// Over the original's: the median of the per-round ratios
    /// ([`crate::timing::paired_ratio`]); absent without an original.
    pub ratio: Option<f64>,
    /// Its result equalled the original's (or, without an original, the
    /// portable variant's).
    pub correct: bool,
    /// Taken from the cache rather than measured now.
    pub cached: bool,
    /// Largest difference of its output elements from the original's, in
    /// ulps (BLAS shapes; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ulp: Option<u64>,
}

/// Every candidate at one size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SizeRow {
    /// The size class.
    pub size: SizeClass,
    /// The original's throughput.
    pub original: Option<Figure>,
    /// The variants'.
    pub variants: Vec<VariantFigure>,
}

/// One variant over all sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantSpeedup {
    /// Variant name.
    pub variant: String,
    /// Geometric mean of the ratios (absent without an original).
    pub speedup: Option<f64>,
    /// Smallest ratio.
    pub worst: Option<f64>,
    /// Correct at every size.
    pub correct: bool,
    /// Why the rule would not choose it (absent when eligible, or without
    /// an original).
    pub ineligible: Option<String>,
    /// Its segment's numerical contract.
    #[serde(default)]
    pub numerics: Numerics,
    /// Largest difference from the original's output over every size, in
    /// ulps (BLAS shapes; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ulp: Option<u64>,
}

/// A variant not measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Variant name.
    pub variant: String,
    /// Why.
    pub why: String,
}

/// What happened with the cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheReport {
    /// The file (absent when the cache is off).
    pub path: Option<String>,
    /// Size classes taken from it.
    pub hits: usize,
    /// Size classes measured now.
    pub measured: usize,
    /// Why it could not be written, if so.
    pub error: Option<String>,
}

/// The full result: every figure and the decision. `Display` prints it for
/// a person; `Serialize` for a program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Segment.
    pub segment: String,
    /// Segment function measured.
    pub function: String,
    /// Its C signature.
    pub shape: Shape,
    /// The machine.
    pub cpu: CpuIdentity,
    /// The original.
    pub original: OriginalReport,
    /// The measurement budget.
    pub budget: Budget,
    /// Figures per size class.
    pub sizes: Vec<SizeRow>,
    /// Figures per variant.
    pub variants: Vec<VariantSpeedup>,
    /// Variants not measured.
    pub skipped: Vec<Skipped>,
    /// The decision.
    pub decision: Decision,
    /// The cache.
    pub cache: CacheReport,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Candidate {
    name: String,
    hash: String,
    /// Keeps the code mapped while `entry` is called.
    _loaded: InProcessVariant,
    entry: usize,
    imports: Option<ImportFill>,
    numerics: Numerics,
}

/// Maps variant `index` of `segment` (importing `imports`) here, without
/// running it: an import table's `fallback` slots are filled in the
/// measuring child, with the original loaded there.
fn load_candidate(
    segment: &Segment,
    imports: &[Import],
    index: usize,
) -> Result<(InProcessVariant, Option<ImportFill>), SelectError> {
    if imports.is_empty() {
        return Ok((InProcessVariant::load(segment, index)?, None));
    }
    if let Some(other) = imports.iter().find(|i| !i.is_fallback()) {
        return Err(SelectError::Imports {
            segment: segment.name.clone(),
            why: format!(
                "its code imports {} ({}), which the measuring child cannot provide (only \
                 fallback, the original itself)",
                other.name,
                if other.library.is_empty() {
                    "from the target's objects"
                } else {
                    other.library.as_str()
                }
            ),
        });
    }
    let file = SegmentFile {
        magic: adapt_segment::MAGIC.to_owned(),
        format_version: adapt_segment::FORMAT_VERSION_IMPORTS,
        content_hash: Vec::new(),
        segment: segment.clone(),
        imports: imports.to_vec(),
    };
    // Slots hold 0 until the child fills them; this process never calls
    // the code.
    let zeros = vec![0u64; imports.len()];
    // SAFETY: the variant's code is never called in this process; the
    // child calls it only after pointing every slot (all `fallback`,
    // checked above) at the original, the function of the import's
    // contract.
    let loaded = unsafe { InProcessVariant::load_with_imports(&file, index, &zeros)? };
    let v = &segment.variants[index];
    let layout = ImportLayout::of(v.code.len(), v.rodata.len(), imports.len());
    let table = loaded.code_address() + layout.import_table_offset;
    let fill = ImportFill {
        table,
        len: layout.import_table_pages,
        fallback_slots: (0..imports.len())
            .map(|m| table + m * adapt_segment::import_table::SLOT_SIZE)
            .collect(),
    };
    Ok((loaded, Some(fill)))
}

/// Measures and decides (see the crate documentation).
pub fn select(req: &SelectRequest<'_>) -> Result<Selection, SelectError> {
    let seg = req.segment;
    let fname = req
        .function
        .clone()
        .or_else(|| {
            req.original
                .as_ref()
                .filter(|o| seg.function(&o.symbol).is_some())
                .map(|o| o.symbol.clone())
        })
        .or_else(|| seg.functions.first().map(|f| f.symbol.clone()))
        .unwrap_or_default();
    let (_, function) = seg
        .function(&fname)
        .ok_or_else(|| SelectError::NoSuchFunction {
            segment: seg.name.clone(),
            function: fname.clone(),
            available: names(seg.functions.iter().map(|f| f.symbol.as_str())),
        })?;
    let shape = Shape::of(&function.contract).map_err(|source| SelectError::Shape {
        segment: seg.name.clone(),
        function: fname.clone(),
        source,
    })?;

    // Variants this CPU runs (and the caller wants): the segment's, then
    // its companions' of the same shape (named SEGMENT:VARIANT).
    let cpu = CpuFeatures::detect();
    let mut skipped = Vec::new();
    let mut wanted: Vec<(&Segment, &[Import], usize, String)> = Vec::new();
    let mut sources: Vec<(&Segment, &[Import], bool)> = vec![(seg, &req.imports, false)];
    for c in &req.companions {
        match c.segment.function(&function.symbol) {
            Some((_, f)) if Shape::of(&f.contract) == Ok(shape) => {
                sources.push((&c.segment, &c.imports, true));
            }
            _ => skipped.push(Skipped {
                variant: format!("{}:*", c.segment.name),
                why: format!(
                    "it does not replace {} with the same signature",
                    function.symbol
                ),
            }),
        }
    }
    for (s, imports, prefixed) in sources {
        for (i, v) in s.variants.iter().enumerate() {
            let name = if prefixed {
                format!("{}:{}", s.name, v.name)
            } else {
                v.name.clone()
            };
            let listed = req.only.is_empty()
                || req.only.contains(&name)
                || req.only.contains(&v.name)
                || req.forced.as_deref() == Some(&name);
            if !listed {
                continue;
            }
            if !cpu.is_superset(&v.features) {
                skipped.push(Skipped {
                    variant: name,
                    why: format!("this CPU lacks {}", cpu.missing(&v.features)),
                });
                continue;
            }
            wanted.push((s, imports, i, name));
        }
    }
    if let Some(f) = &req.forced {
        if !wanted.iter().any(|(_, _, _, name)| name == f) {
            return Err(SelectError::NoSuchVariant {
                segment: seg.name.clone(),
                variant: f.clone(),
                available: names(seg.supported_variants(&cpu).map(|(_, v)| v.name.as_str())),
            });
        }
    }
    if wanted.is_empty() {
        return Err(SelectError::NoVariant {
            segment: seg.name.clone(),
        });
    }
    let mut cands = Vec::new();
    for (s, imports, i, name) in wanted {
        let (loaded, imports) = load_candidate(s, imports, i)?;
        let entry = loaded.entry_address(&function.symbol)?;
        cands.push(Candidate {
            name,
            hash: variant_cache_hash(s, i).unwrap_or_default(),
            _loaded: loaded,
            entry,
            imports,
            numerics: s.numerics,
        });
    }
    let importing = cands.iter().any(|c| c.imports.is_some());

    // The original: opened, read and checked here, run only in the
    // unprivileged child.
    let spec = req.original.clone().or_else(|| {
        (!function.library.is_empty()).then(|| OriginalSpec {
            object: function.library.clone(),
            symbol: function.symbol.clone(),
            pid: None,
        })
    });
    let prepared: Result<PreparedOriginal, OriginalError> = match &spec {
        Some(s) => PreparedOriginal::prepare(s),
        None => Err(OriginalError::NoneNamed {
            symbol: function.symbol.clone(),
        }),
    };
    let (prepared, mut unavailable) = match prepared {
        Ok(p) => (Some(p), None),
        Err(e) if importing => {
            return Err(SelectError::Imports {
                segment: seg.name.clone(),
                why: format!(
                    "its code calls the original (import fallback), which cannot be run: {e}"
                ),
            })
        }
        Err(e) => (None, Some(e.to_string())),
    };
    let evidence = prepared
        .as_ref()
        .map(|p| Evidence::of(p, &seg.name, &function.symbol, &function.library));
    let original_key = prepared.as_ref().map(|o| OriginalKey {
        path: o.path.clone(),
        symbol: o.spec.symbol.clone(),
        file_sha256: o.file_sha256.clone(),
    });

    let mut cache = match &req.cache {
        CacheUse::Off => None,
        CacheUse::Use(d) | CacheUse::Refresh(d) => Some(Cache::open(d)),
    };
    let read_cache = matches!(req.cache, CacheUse::Use(_));
    let mut cache_report = CacheReport {
        path: cache.as_ref().map(|c| c.path().display().to_string()),
        hits: 0,
        measured: 0,
        error: cache.as_ref().and_then(|c| c.refused().map(str::to_owned)),
    };

    let observed: Vec<usize> = req.weights.iter().map(|(size, _)| *size).collect();
    let classes = if observed.is_empty() && req.sizes.is_empty() && shape.is_blas() {
        SizeClass::classes(&crate::blas::DEFAULT_DIMENSIONS)
    } else if observed.is_empty() {
        SizeClass::classes(&req.sizes)
    } else {
        SizeClass::classes(&observed)
    };
    let mut weights: Vec<(SizeClass, f64)> = Vec::new();
    for &(size, calls) in &req.weights {
        let class = SizeClass::of(size);
        let time = calls as f64 * size as f64;
        match weights.iter_mut().find(|(c, _)| *c == class) {
            Some((_, w)) => *w += time,
            None => weights.push((class, time)),
        }
    }
    let workloads: Vec<Workload> = classes
        .iter()
        .map(|c| Workload::new(shape, c.bytes()))
        .collect();
    let keys: Vec<Option<Vec<FigureKey>>> = classes
        .iter()
        .map(|&class| {
            original_key.as_ref().map(|ok| {
                cands
                    .iter()
                    .map(|c| FigureKey {
                        segment: seg.name.clone(),
                        function: function.symbol.clone(),
                        variant: c.name.clone(),
                        variant_hash: c.hash.clone(),
                        cpu: req.cpu.clone(),
                        original: ok.clone(),
                        size: class,
                    })
                    .collect()
            })
        })
        .collect();
    let hits: Vec<Option<Vec<CacheEntry>>> = keys
        .iter()
        .map(|k| match (&cache, k) {
            (Some(cache), Some(keys)) if read_cache => {
                keys.iter().map(|k| cache.lookup(k).cloned()).collect()
            }
            _ => None,
        })
        .collect();
    let time: Vec<bool> = hits.iter().map(Option::is_none).collect();

    // One mechanism for the original and the variants: the unprivileged
    // child. If it fails with the original, the variants alone are
    // measured in a second child, and the original is "not measured".
    let job_variants: Vec<JobVariant> = cands
        .iter()
        .map(|c| JobVariant {
            name: c.name.clone(),
            entry: c.entry,
            imports: c.imports.clone(),
            relaxed: !c.numerics.is_exact(),
        })
        .collect();
    let identity = prepared
        .as_ref()
        .map_or_else(Identity::nobody, |p| p.identity);
    let mut job = Job {
        variants: &job_variants,
        workloads: &workloads,
        time: &time,
        original: prepared.as_ref(),
        budget: req.budget,
    };
    let mut report = child::run(&job, identity, req.limits);
    // Without the original, variants calling it through `fallback`
    // cannot run: no second try.
    if let (Err(e), Some(_), false) = (&report, &job.original, importing) {
        unavailable = Some(format!("not run: {e}"));
        job.original = None;
        report = child::run(&job, identity, req.limits);
    }
    let (report, seccomp) = report.map_err(|reason| SelectError::Child { reason })?;
    let method = match &report.original {
        Some(Ok(m)) => Some(*m),
        Some(Err(why)) => {
            unavailable = Some(format!("not loaded in the unprivileged child: {why}"));
            None
        }
        None => None,
    };
    if report.rows.is_empty() {
        return Err(SelectError::Child {
            reason: unavailable.unwrap_or_else(|| "it measured nothing".to_owned()),
        });
    }
    let original_ok = method.is_some();
    let original_report = OriginalReport {
        spec: spec.clone(),
        path: prepared
            .as_ref()
            .filter(|_| original_ok)
            .map(|p| p.path.clone()),
        method,
        unavailable: unavailable.clone(),
        opened: prepared.as_ref().map(|p| p.opened.clone()),
        measured_as: Some(identity.uid),
        seccomp: Some(seccomp),
        evidence,
    };

    let mut rows = Vec::new();
    for (((class, crow), hit), keys) in classes.iter().zip(&report.rows).zip(hits).zip(&keys) {
        let class = *class;
        let correct: Vec<bool> = crow.variants.iter().map(|v| v.correct).collect();
        let row = match hit.filter(|_| original_ok) {
            Some(hits) => {
                cache_report.hits += 1;
                SizeRow {
                    size: class,
                    original: hits.first().map(|h| h.original),
                    variants: hits
                        .iter()
                        .zip(&cands)
                        .zip(&correct)
                        .zip(&crow.variants)
                        .map(|(((h, c), ok), v)| VariantFigure {
                            variant: c.name.clone(),
                            figure: h.variant,
                            ratio: Some(h.ratio),
                            correct: *ok && h.correct,
                            cached: true,
                            max_ulp: v.max_ulp,
                        })
                        .collect(),
                }
            }
            None => {
                cache_report.measured += 1;
                let orig_series = crow.original.as_ref().map(Timed::series);
                let orig_fig = orig_series.as_ref().map(|o| o.figure());
                let row = SizeRow {
                    size: class,
                    original: orig_fig,
                    variants: cands
                        .iter()
                        .zip(&crow.variants)
                        .map(|(c, v)| {
                            // Validated: every variant of a timed row has figures.
                            let s = v.timed.as_ref().map(Timed::series).unwrap_or(Series {
                                samples: Vec::new(),
                                calls_per_batch: 0,
                            });
                            VariantFigure {
                                variant: c.name.clone(),
                                figure: s.figure(),
                                ratio: orig_series.as_ref().map(|o| paired_ratio(&s, o)),
                                correct: v.correct,
                                cached: false,
                                max_ulp: v.max_ulp,
                            }
                        })
                        .collect(),
                };
                if let (Some(cache), Some(keys), Some(o)) = (cache.as_mut(), keys, orig_fig) {
                    for (k, v) in keys.iter().zip(&row.variants) {
                        cache.insert(CacheEntry {
                            key: k.clone(),
                            variant: v.figure,
                            original: o,
                            ratio: v.ratio.unwrap_or(f64::NAN),
                            correct: v.correct,
                            measured_unix: now_unix(),
                        });
                    }
                }
                row
            }
        };
        rows.push(row);
    }
    if let Some(c) = cache.as_mut() {
        if let Err(e) = c.save() {
            cache_report.error = Some(format!("cannot write {}: {e}", c.path().display()));
        }
    }

    let comparisons: Vec<Comparison> = cands
        .iter()
        .enumerate()
        .map(|(i, c)| Comparison {
            blocked: (!c.numerics.is_exact() && !req.allow_float_reassociate).then(|| {
                format!(
                    "its numerics are {}, not bit-identical, and float-reassociate is not allowed",
                    c.numerics
                )
            }),
            weights: weights.clone(),
            variant: c.name.clone(),
            correct: rows.iter().all(|r| r.variants[i].correct),
            ratios: rows
                .iter()
                .filter_map(|r| r.variants[i].ratio.map(|x| (r.size, x)))
                .collect(),
        })
        .collect();
    let decision = match &original_report.unavailable {
        None => decide(&comparisons, req.margin, req.forced.as_deref()),
        Some(reason) => unavailable_decision(&rows, &comparisons, req, reason),
    };
    let variants = comparisons
        .iter()
        .zip(&cands)
        .enumerate()
        .map(|(i, (c, cand))| VariantSpeedup {
            numerics: cand.numerics,
            max_ulp: rows
                .iter()
                .map(|r| r.variants[i].max_ulp)
                .try_fold(0u64, |m, d| d.map(|d| m.max(d))),
            variant: c.variant.clone(),
            speedup: (!c.ratios.is_empty()).then(|| c.speedup()),
            worst: (!c.ratios.is_empty()).then(|| c.worst()),
            correct: c.correct,
            ineligible: if original_report.unavailable.is_none() {
                c.ineligible(req.margin)
            } else {
                None
            },
        })
        .collect();
    // The variants stay mapped until every call above is done.
    drop(cands);
    Ok(Selection {
        segment: seg.name.clone(),
        function: function.symbol.clone(),
        shape,
        cpu: req.cpu.clone(),
        original: original_report,
        budget: req.budget,
        sizes: rows,
        variants,
        skipped,
        decision,
        cache: cache_report,
    })
}

/// Without an original: the fastest correct variant (geometric mean of
/// throughput over the sizes) for the caller to try in the target.
fn unavailable_decision(
    rows: &[SizeRow],
    comparisons: &[Comparison],
    req: &SelectRequest<'_>,
    reason: &str,
) -> Decision {
    let score = |i: usize| -> f64 {
        let logs: f64 = rows
            .iter()
            .map(|r| r.variants[i].figure.bytes_per_sec.max(1.0).ln())
            .sum();
        logs / rows.len().max(1) as f64
    };
    let fastest = (0..comparisons.len())
        .filter(|&i| comparisons[i].correct && comparisons[i].blocked.is_none())
        .max_by(|&a, &b| score(a).total_cmp(&score(b)))
        .map(|i| comparisons[i].variant.clone());
    let forced = req.forced.as_ref().map(|name| Forced {
        variant: name.clone(),
        speedup: None,
        measured_slower: false,
        rule_says: None,
        wrong_result: comparisons.iter().any(|c| c.variant == *name && !c.correct),
    });
    Decision {
        margin: req.margin,
        choice: Choice::OriginalUnavailable {
            reason: reason.to_owned(),
            fastest,
        },
        forced,
    }
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}
