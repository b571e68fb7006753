//! Function symbols looked up by address (what a profiler's symbolizer
//! asks).

use crate::facts::{ElfFacts, SymbolSource};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Function {
    start: u64,
    end: u64,
    name: String,
}

/// The function symbols of one file by address, each named as people read
/// it (demangled), and how its file offsets map to virtual addresses.
///
/// # Invariants
///
/// `functions` is sorted by `start`, one per start address (what
/// [`FunctionsByAddress::function_at`]'s binary search needs).
#[derive(Clone, Debug)]
pub struct FunctionsByAddress {
    facts: ElfFacts,
    /// Sorted by `start`, one per start address.
    functions: Vec<Function>,
}

impl FunctionsByAddress {
    /// The index of `facts`' function symbols (parsed with
    /// [`crate::SymbolFilter::All`]). At one address the longest symbol,
    /// then the first in table order, names it; a symbol without a size
    /// extends to the next one.
    pub fn new(mut facts: ElfFacts) -> Self {
        let mut functions: Vec<Function> = std::mem::take(&mut facts.functions)
            .into_iter()
            .map(|f| Function {
                start: f.vaddr,
                end: f.vaddr.saturating_add(f.size),
                name: f.demangled.unwrap_or(f.name),
            })
            .collect();
        functions.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        functions.dedup_by_key(|f| f.start);
        for i in 0..functions.len() {
            if functions[i].end == functions[i].start {
                functions[i].end = functions.get(i + 1).map_or(u64::MAX, |n| n.start);
            }
        }
        Self { facts, functions }
    }

    /// Which symbol tables the names came from.
    pub fn source(&self) -> SymbolSource {
        self.facts.symbol_source
    }

    /// The virtual address (as linked) that file offset `offset` is loaded
    /// at, if a loadable segment covers it.
    pub fn vaddr_of_offset(&self, offset: u64) -> Option<u64> {
        self.facts.vaddr_of_offset(offset)
    }

    /// The function containing virtual address `vaddr`, and the offset into
    /// it.
    pub fn function_at(&self, vaddr: u64) -> Option<(&str, u64)> {
        let index = self.functions.partition_point(|f| f.start <= vaddr);
        let f = self.functions.get(index.checked_sub(1)?)?;
        (vaddr < f.end).then(|| (f.name.as_str(), vaddr - f.start))
    }

    /// The address range of the function named `name` (as demangled), if
    /// any.
    pub fn function_named(&self, name: &str) -> Option<(u64, u64)> {
        self.functions
            .iter()
            .find(|f| f.name == name)
            .map(|f| (f.start, f.end))
    }
}
