// SPDX-License-Identifier: GPL-2.0
//! The printable report of a [`Selection`]: a table of throughput per size
//! (original first, then each variant with its ratio to the original),
//! the speedups, and the decision in one sentence.

use std::fmt;

use crate::decide::Choice;
use crate::selection::Selection;
use crate::timing::Figure;

fn cell(f: &Figure, flops: bool) -> String {
    if flops {
        // BLAS shapes count floating-point operations, not bytes.
        format!(
            "{:.2} GFLOP/s ±{:.0}%",
            f.bytes_per_sec / 1e9,
            50.0 * f.spread()
        )
    } else {
        format!("{:.0} MB/s ±{:.0}%", f.mb_per_sec(), 50.0 * f.spread())
    }
}

impl Selection {
    /// One line saying what will be injected and why.
    pub fn verdict(&self) -> String {
        let d = &self.decision;
        let margin = format!("margin {:.0} %", d.margin * 100.0);
        let rule = match &d.choice {
            Choice::Variant {
                variant,
                speedup,
                worst,
            } => format!(
                "chosen: {variant} ({speedup:.2}× the original, worst size {worst:.2}×; {margin})"
            ),
            Choice::Nothing { reason } => format!("inject nothing: {reason} ({margin})"),
            Choice::OriginalUnavailable { reason, fastest } => format!(
                "the original was not measured here ({reason}); fastest variant here: {}; measure \
                 in the target before keeping it",
                fastest.as_deref().unwrap_or("none ran correctly")
            ),
        };
        match &d.forced {
            None => rule,
            Some(f) if f.wrong_result => format!(
                "refused override {}: its result differs from the original's, it is never injected; \
                 the rule alone: {rule}",
                f.variant
            ),
            Some(f) => {
                let measured = match f.speedup {
                    Some(s) if f.measured_slower => format!("it measured SLOWER, {s:.2}× the original"),
                    Some(s) => format!("it measured {s:.2}× the original"),
                    None => "not compared with the original".to_owned(),
                };
                let auto = match &f.rule_says {
                    Some(why) => format!("; the rule (adaptctl auto) would not inject it: {why}"),
                    None => String::new(),
                };
                format!("override: {} is injected as asked ({measured}){auto}. The rule alone: {rule}", f.variant)
            }
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} {} on {} [{}]",
            self.segment, self.function, self.shape, self.cpu.model, self.cpu.features
        )?;
        let uid = self
            .original
            .measured_as
            .map_or(String::new(), |u| format!(", uid {u}"))
            + match self.original.seccomp {
                Some(false) => ", no seccomp filter: this kernel has no CONFIG_SECCOMP",
                _ => "",
            };
        match (&self.original.path, &self.original.unavailable) {
            (Some(path), _) => writeln!(
                f,
                "original: {} in {} ({}{uid}){}",
                self.original
                    .spec
                    .as_ref()
                    .map_or(self.function.as_str(), |s| s.symbol.as_str()),
                path,
                match self.original.method {
                    Some(crate::LoadMethod::MappedExecutable) => {
                        "executable code mapped in an unprivileged child"
                    }
                    _ => "dlopen in an unprivileged child",
                },
                match &self.original.opened {
                    Some(o) if o != path => format!(", read through {o}"),
                    _ => String::new(),
                }
            )?,
            (None, Some(why)) => writeln!(f, "original: not measured: {why}")?,
            (None, None) => {}
        }
        if let Some(e) = &self.original.evidence {
            writeln!(f, "evidence: {}", e.summary)?;
        }
        writeln!(
            f,
            "median of {} interleaved batches of ~{} ms each; ± is half the interquartile range; \
             ratios are medians of the per-round ratios",
            self.budget.rounds,
            self.budget.batch.as_millis()
        )?;
        let has_original = self.sizes.iter().any(|r| r.original.is_some());
        let names: Vec<&str> = self
            .sizes
            .first()
            .map(|r| r.variants.iter().map(|v| v.variant.as_str()).collect())
            .unwrap_or_default();
        const W: usize = 26;
        let blas = self.shape.is_blas();
        write!(f, "{:>8}", if blas { "n" } else { "size" })?;
        if has_original {
            write!(f, "  {:>W$}", "original")?;
        }
        for n in &names {
            write!(f, "  {n:>W$}")?;
        }
        writeln!(f)?;
        for row in &self.sizes {
            let size = if blas {
                row.size.bytes().to_string()
            } else {
                row.size.to_string()
            };
            write!(f, "{size:>8}")?;
            if let Some(o) = &row.original {
                write!(f, "  {:>W$}", cell(o, blas))?;
            }
            for v in &row.variants {
                let mut c = cell(&v.figure, blas);
                if let Some(r) = v.ratio {
                    c = format!("{c} {r:.2}×");
                }
                if !v.correct {
                    c = format!("WRONG {c}");
                }
                write!(f, "  {c:>W$}")?;
            }
            writeln!(f)?;
        }
        if has_original {
            write!(f, "{:>8}  {:>W$}", "speedup", "1.00×")?;
            for v in &self.variants {
                let s = v.speedup.map_or("-".to_owned(), |s| format!("{s:.2}×"));
                write!(f, "  {s:>W$}")?;
            }
            writeln!(f, "   (geometric mean over the sizes)")?;
        }
        if blas && has_original {
            write!(f, "{:>8}  {:>W$}", "max ulp", "0")?;
            for v in &self.variants {
                let u = v.max_ulp.map_or("not finite".to_owned(), |u| u.to_string());
                write!(f, "  {u:>W$}")?;
            }
            writeln!(
                f,
                "   (largest difference from the original's output, every size and form)"
            )?;
            write!(f, "{:>8}  {:>W$}", "numerics", "reference")?;
            for v in &self.variants {
                write!(f, "  {:>W$}", v.numerics.name())?;
            }
            writeln!(f)?;
        }
        for v in self.variants.iter().filter(|v| !v.numerics.is_exact()) {
            writeln!(
                f,
                "RELAXED: {} is {} (not bit-identical; checked within its stated error bound){}",
                v.variant,
                v.numerics,
                if v.ineligible
                    .as_deref()
                    .is_some_and(|w| w.contains("not allowed"))
                {
                    ": never chosen unless float-reassociate is allowed"
                } else {
                    ""
                }
            )?;
        }
        for s in &self.skipped {
            writeln!(f, "not measured: {}: {}", s.variant, s.why)?;
        }
        for v in self.variants.iter().filter(|v| !v.correct) {
            writeln!(
                f,
                "WRONG: {}'s result differs from the original's{}: never injected",
                v.variant,
                if v.numerics.is_exact() {
                    ""
                } else {
                    " beyond its stated bound"
                }
            )?;
        }
        match &self.cache.path {
            Some(p) => {
                write!(
                    f,
                    "cache: {} size(s) from {p}, {} measured now",
                    self.cache.hits, self.cache.measured
                )?;
                match &self.cache.error {
                    Some(e) => writeln!(f, " ({e})")?,
                    None => writeln!(f)?,
                }
            }
            None => writeln!(f, "cache: off")?,
        }
        writeln!(f, "{}", self.verdict())
    }
}
