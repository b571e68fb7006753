//! Samples → a ranked per-function profile.

use crate::symbolizer::Location;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// One function's part of the profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FunctionShare {
    /// 1 for the hottest function.
    pub rank: usize,
    pub function: String,
    pub object: String,
    pub samples: u64,
    /// Fraction of all samples of the target, 0.0–1.0.
    pub share: f64,
    /// Id of the optimization-library segment that replaces this function,
    /// if the library has one: the optimization opportunity.
    pub segment: Option<String>,
}

/// A finished, ranked profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Profile {
    pub total_samples: u64,
    pub user_samples: u64,
    pub kernel_samples: u64,
    /// Distinct threads seen in samples.
    pub threads: usize,
    /// Sorted by samples, descending (ties by name).
    pub functions: Vec<FunctionShare>,
}

/// Accumulates symbolized samples.
#[derive(Default)]
pub struct ProfileBuilder {
    counts: HashMap<Location, u64>,
    threads: BTreeSet<u32>,
    total: u64,
    kernel: u64,
}

impl ProfileBuilder {
    /// Counts one sample of thread `tid` at `location`.
    pub fn add(&mut self, location: Location, tid: u32, in_kernel: bool) {
        *self.counts.entry(location).or_default() += 1;
        self.threads.insert(tid);
        self.total += 1;
        if in_kernel {
            self.kernel += 1;
        }
    }

    /// Samples counted so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Ranks the functions; `segment_for(function, object)` names the library
    /// segment replacing a function, if any.
    pub fn finish(self, mut segment_for: impl FnMut(&str, &str) -> Option<String>) -> Profile {
        let total = self.total;
        let mut functions: Vec<FunctionShare> = self
            .counts
            .into_iter()
            .map(|(location, samples)| FunctionShare {
                rank: 0,
                segment: segment_for(&location.function, &location.object),
                function: location.function,
                object: location.object,
                samples,
                share: if total == 0 {
                    0.0
                } else {
                    samples as f64 / total as f64
                },
            })
            .collect();
        functions.sort_by(|a, b| {
            b.samples
                .cmp(&a.samples)
                .then_with(|| a.function.cmp(&b.function))
                .then_with(|| a.object.cmp(&b.object))
        });
        for (i, f) in functions.iter_mut().enumerate() {
            f.rank = i + 1;
        }
        Profile {
            total_samples: total,
            user_samples: total - self.kernel,
            kernel_samples: self.kernel,
            threads: self.threads.len(),
            functions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(f: &str) -> Location {
        Location {
            function: f.into(),
            object: "/bin/x".into(),
        }
    }

    #[test]
    fn ranks_by_samples_with_shares_and_coverage() {
        let mut b = ProfileBuilder::default();
        for _ in 0..7 {
            b.add(loc("a"), 1, false);
        }
        for _ in 0..2 {
            b.add(loc("b"), 2, false);
        }
        b.add(
            Location {
                function: "[kernel]".into(),
                object: "[kernel]".into(),
            },
            3,
            true,
        );
        let p = b.finish(|f, _| (f == "b").then(|| "seg-b".to_string()));
        assert_eq!(p.total_samples, 10);
        assert_eq!(p.kernel_samples, 1);
        assert_eq!(p.user_samples, 9);
        assert_eq!(p.threads, 3);
        let names: Vec<_> = p.functions.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(names, ["a", "b", "[kernel]"]);
        assert_eq!(p.functions[0].rank, 1);
        assert!((p.functions[0].share - 0.7).abs() < 1e-9);
        assert_eq!(p.functions[1].segment.as_deref(), Some("seg-b"));
        assert_eq!(p.functions[0].segment, None);
    }

    #[test]
    fn an_empty_profile_has_no_shares() {
        let p = ProfileBuilder::default().finish(|_, _| None);
        assert_eq!(p.total_samples, 0);
        assert!(p.functions.is_empty());
    }
}
