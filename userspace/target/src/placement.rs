//! Where a segment with a trampoline can be mapped in a process: free,
//! page-aligned ranges of its address space that a `jmp rel32` at the
//! patch site reaches in full.
//!
//! adaptctl chooses the address (and relocates the trampoline for it); the
//! module maps exactly there or refuses (`EADDRINUSE` when the range was
//! taken meanwhile), and adaptctl tries the next candidate. See
//! `adapt_ops::inject` for why the choice is userspace's.

use adapt_elf::ProcessMaps;

/// Page size of the placement.
const PAGE: u64 = 4096;
/// Farthest any byte of a placement may be from the patch site: what the
/// module itself accepts (2 GiB minus 2 MiB of margin, so that a `rel32`
/// from anywhere in the trampoline reaches back too).
pub const REACH: u64 = (1 << 31) - (1 << 21);
/// Lowest address considered (above `vm.mmap_min_addr`'s usual values).
const LOWEST: u64 = 1 << 20;
/// Highest end considered (the top of the 47-bit user address space, less
/// a guard page).
const HIGHEST: u64 = 0x0000_7fff_ffff_f000 - PAGE;
/// Free pages kept between a placement and its neighbours, so that a
/// segment never sits right against a stack or a heap that grows.
const GAP: u64 = 16 * PAGE;

/// Candidate start addresses for `len` bytes in process `pid`, nearest to
/// `site` first, at most `max` of them.
pub fn free_ranges_near(pid: u32, site: u64, len: u64, max: usize) -> std::io::Result<Vec<u64>> {
    let maps = ProcessMaps::read(pid)?;
    let used: Vec<(u64, u64)> = maps.mappings.iter().map(|m| (m.start, m.end)).collect();
    Ok(candidates(&used, site, len, max))
}

/// [`free_ranges_near`] over sorted `(start, end)` used ranges.
pub fn candidates(used: &[(u64, u64)], site: u64, len: u64, max: usize) -> Vec<u64> {
    let len = len.div_ceil(PAGE) * PAGE;
    let reaches =
        |start: u64| start.abs_diff(site) <= REACH && (start + len).abs_diff(site) <= REACH;
    let mut out = Vec::new();
    let mut gap_start = LOWEST;
    let mut bounds: Vec<(u64, u64)> = Vec::new();
    for &(start, end) in used {
        if start > gap_start {
            bounds.push((gap_start, start));
        }
        gap_start = gap_start.max(end);
    }
    if HIGHEST > gap_start {
        bounds.push((gap_start, HIGHEST));
    }
    for (free_start, free_end) in bounds {
        let (lo, hi) = (free_start.saturating_add(GAP), free_end.saturating_sub(GAP));
        if hi < lo || hi - lo < len {
            continue;
        }
        // The place of the free range nearest the site, page-aligned.
        let last = (hi - len) / PAGE * PAGE;
        let first = lo.div_ceil(PAGE) * PAGE;
        if first > last {
            continue;
        }
        let nearest = if site <= first {
            first
        } else if site >= last {
            last
        } else {
            (site / PAGE * PAGE).clamp(first, last)
        };
        if reaches(nearest) {
            out.push(nearest);
        }
    }
    out.sort_by_key(|&a| a.abs_diff(site));
    out.truncate(max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_free_ranges_first_and_all_within_reach() {
        let site = 0x5555_0000_1000;
        let used = [
            (0x5554_ff00_0000, 0x5555_0001_0000),
            (0x5555_0010_0000, 0x5555_0020_0000),
            (0x7fff_f000_0000, 0x7fff_f100_0000),
        ];
        let c = candidates(&used, site, 3 * PAGE, 8);
        assert!(!c.is_empty());
        for &a in &c {
            assert_eq!(a % PAGE, 0);
            assert!(a.abs_diff(site) <= REACH && (a + 3 * PAGE).abs_diff(site) <= REACH);
            for &(s, e) in &used {
                assert!(
                    a + 3 * PAGE + GAP <= s || a >= e + GAP,
                    "{a:#x} overlaps {s:#x}-{e:#x}"
                );
            }
        }
        assert!(c
            .windows(2)
            .all(|w| w[0].abs_diff(site) <= w[1].abs_diff(site)));
        // The gap between the two mappings near the site comes first.
        assert!(
            c[0] > 0x5555_0001_0000 && c[0] < 0x5555_0010_0000,
            "{:#x}",
            c[0]
        );
    }
}

#[cfg(test)]
mod layout_tests {
    use adapt_segment::import_table::{ImportLayout, TRAMPOLINE_SPACE};

    /// The ABI's layout (the module's) and the segment format's
    /// (the verifier's and adaptctl's) are one rule.
    #[test]
    fn the_abi_and_the_format_agree_on_the_import_layout() {
        assert_eq!(adapt_abi::ADAPT_TRAMPOLINE_MAX, TRAMPOLINE_SPACE);
        for code in [1, 15, 16, 230, 4031, 4032, 4033, 4096, 9000] {
            for imports in [1, 2, 64] {
                let abi = adapt_abi::adapt_import_layout(code, imports);
                let format = ImportLayout::of(code, 0, imports);
                assert_eq!(abi.trampoline_offset, format.trampoline_offset);
                assert_eq!(abi.import_table_offset, format.import_table_offset);
                assert_eq!(abi.import_table_pages, format.import_table_pages);
                assert_eq!(abi.rodata_offset, format.rodata_offset);
            }
        }
    }
}
