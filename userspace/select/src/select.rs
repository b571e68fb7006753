// SPDX-License-Identifier: GPL-2.0
//! The selection itself: load the variants and the original, measure them
//! side by side (or take the figures from the cache), check their results
//! agree, and decide.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use adapt_segment::{CpuFeatures, LoadedVariant, Segment};
use serde::{Deserialize, Serialize};

use crate::cache::{variant_hash, Cache, CacheEntry, CacheKey, OriginalKey};
use crate::cpu_id::CpuIdentity;
use crate::decide::{decide, Choice, Comparison, Decision, Forced, DEFAULT_MARGIN};
use crate::driver::{Outcome, Workload};
use crate::error::{OriginalError, SelectError};
use crate::original::{LoadMethod, Original, OriginalSpec};
use crate::shape::Shape;
use crate::sizes::SizeClass;
use crate::timing::{measure, paired_ratio, Budget, Figure, Runner};

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
            only: Vec::new(),
            forced: None,
            margin: DEFAULT_MARGIN,
            budget: Budget::default(),
            cache: crate::cache::default_cache_dir().map_or(CacheUse::Off, CacheUse::Use),
            cpu: CpuIdentity::detect(),
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
    /// Why it could not be run here (absent when it ran).
    pub unavailable: Option<String>,
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
pub struct VariantSummary {
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
    pub variants: Vec<VariantSummary>,
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
    _loaded: LoadedVariant,
    entry: usize,
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

    // Variants this CPU runs (and the caller wants).
    let cpu = CpuFeatures::detect();
    let mut skipped = Vec::new();
    let mut wanted = Vec::new();
    for (i, v) in seg.variants.iter().enumerate() {
        let listed = req.only.is_empty()
            || req.only.contains(&v.name)
            || req.forced.as_deref() == Some(&v.name);
        if !listed {
            continue;
        }
        if !cpu.is_superset(&v.features) {
            skipped.push(Skipped {
                variant: v.name.clone(),
                why: format!("this CPU lacks {}", cpu.missing(&v.features)),
            });
            continue;
        }
        wanted.push(i);
    }
    if let Some(f) = &req.forced {
        if !wanted.iter().any(|&i| seg.variants[i].name == *f) {
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
    for i in wanted {
        let loaded = LoadedVariant::load(seg, i)?;
        let entry = loaded.entry_address(&function.symbol)?;
        cands.push(Candidate {
            name: seg.variants[i].name.clone(),
            hash: variant_hash(seg, i).unwrap_or_default(),
            _loaded: loaded,
            entry,
        });
    }

    // The original.
    let spec = req.original.clone().or_else(|| {
        (!function.library.is_empty()).then(|| OriginalSpec {
            object: function.library.clone(),
            symbol: function.symbol.clone(),
        })
    });
    let original: Result<Original, OriginalError> = match &spec {
        Some(s) => Original::open(s),
        None => Err(OriginalError::NoneNamed {
            symbol: function.symbol.clone(),
        }),
    };
    let original_report = match &original {
        Ok(o) => OriginalReport {
            spec: spec.clone(),
            path: Some(o.path.display().to_string()),
            method: Some(o.method),
            unavailable: None,
        },
        Err(e) => OriginalReport {
            spec: spec.clone(),
            path: None,
            method: None,
            unavailable: Some(e.to_string()),
        },
    };
    let original = original.ok();
    let original_key = original.as_ref().map(|o| OriginalKey {
        path: o.path.display().to_string(),
        symbol: o.symbol.clone(),
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
        error: None,
    };

    let mut rows = Vec::new();
    for class in SizeClass::classes(&req.sizes) {
        let work = Workload::new(shape, class.bytes());
        // Correctness is checked on every selection, cached or not.
        // SAFETY: every entry is a function of this shape: the variants'
        // by the segment's contract (verified, loaded above), the
        // original's by the caller's choice of original (checked against
        // the contract by adaptctl), and they live until the end of this
        // function.
        let reference: Option<Outcome> = match &original {
            // SAFETY: as above.
            Some(o) => Some(unsafe { work.outcome(o.entry()) }),
            // SAFETY: as above.
            None => cands.last().map(|c| unsafe { work.outcome(c.entry) }),
        };
        let correct: Vec<bool> = cands
            .iter()
            // SAFETY: as above.
            .map(|c| {
                reference
                    .as_ref()
                    .is_some_and(|r| r.agrees(&unsafe { work.outcome(c.entry) }))
            })
            .collect();
        let keys: Option<Vec<CacheKey>> = original_key.as_ref().map(|ok| {
            cands
                .iter()
                .map(|c| CacheKey {
                    segment: seg.name.clone(),
                    function: function.symbol.clone(),
                    variant: c.name.clone(),
                    variant_hash: c.hash.clone(),
                    cpu: req.cpu.clone(),
                    original: ok.clone(),
                    size: class,
                })
                .collect()
        });
        let hits: Option<Vec<CacheEntry>> = match (&cache, &keys) {
            (Some(cache), Some(keys)) if read_cache => {
                keys.iter().map(|k| cache.lookup(k).cloned()).collect()
            }
            _ => None,
        };
        let row = if let Some(hits) = hits {
            cache_report.hits += 1;
            SizeRow {
                size: class,
                original: hits.first().map(|h| h.original),
                variants: hits
                    .iter()
                    .zip(&cands)
                    .zip(&correct)
                    .map(|((h, c), ok)| VariantFigure {
                        variant: c.name.clone(),
                        figure: h.variant,
                        ratio: Some(h.ratio),
                        correct: *ok && h.correct,
                        cached: true,
                    })
                    .collect(),
            }
        } else {
            cache_report.measured += 1;
            let mut runners: Vec<Runner<'_>> = Vec::new();
            if let Some(o) = &original {
                // SAFETY: as above.
                runners.push(unsafe { work.runner(o.entry()) });
            }
            for c in &cands {
                // SAFETY: as above.
                runners.push(unsafe { work.runner(c.entry) });
            }
            let series = measure(&mut runners, work.bytes_per_call(), req.budget);
            drop(runners);
            let (orig_series, var_series) = if original.is_some() {
                (Some(&series[0]), &series[1..])
            } else {
                (None, &series[..])
            };
            let orig_fig = orig_series.map(|o| o.figure());
            let row = SizeRow {
                size: class,
                original: orig_fig,
                variants: cands
                    .iter()
                    .zip(var_series)
                    .zip(&correct)
                    .map(|((c, s), ok)| VariantFigure {
                        variant: c.name.clone(),
                        figure: s.figure(),
                        ratio: orig_series.map(|o| paired_ratio(s, o)),
                        correct: *ok,
                        cached: false,
                    })
                    .collect(),
            };
            if let (Some(cache), Some(keys), Some(o)) = (cache.as_mut(), &keys, orig_fig) {
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
        .map(|c| VariantSummary {
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
        .filter(|&i| comparisons[i].correct)
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
