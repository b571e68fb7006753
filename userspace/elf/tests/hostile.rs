//! What a root adaptctl reads from its targets, fed hostile input: ELF
//! files (every question the selection, the injector and the profiler's
//! symbolizer ask of them) and `/proc/PID/maps` text. Nothing may panic:
//! each read gives a result or an error. The ELF cases are arbitrary bytes,
//! and a real library bit-flipped, byte-edited and truncated.
//!
//! A few thousand cases run with `cargo test`. For a long run:
//! `ADAPT_FUZZ_CASES=1000000 cargo test --release -p adapt-elf --test hostile`.

use adapt_elf::gnu_hash::{self, GnuHash};
use adapt_elf::{ElfFacts, FunctionsByAddress, ProcessMaps, SymbolFilter};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("ADAPT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// A small real ELF shared library (`.dynsym`, versions, a soname): the
/// system libz, else this test.
fn seed() -> &'static [u8] {
    static SEED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SEED.get_or_init(|| {
        [
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
            "/lib/x86_64-linux-gnu/libz.so.1",
        ]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .unwrap_or_else(|| std::fs::read(std::env::current_exe().unwrap()).unwrap())
    })
}

/// Every question adapt asks of an ELF file, on `data`.
fn read_all_ways(data: &[u8]) {
    for filter in [
        SymbolFilter::All,
        SymbolFilter::MayBe("crc32"),
        SymbolFilter::Lookup("crc32"),
        SymbolFilter::Lookup("inflate"),
        SymbolFilter::Nothing,
    ] {
        let Ok(facts) = ElfFacts::parse(data, filter) else {
            continue;
        };
        for f in facts.functions.iter().take(64) {
            let _ = facts.bytes_in(data, f.vaddr, f.size);
            let _ = facts.offset_of(f.vaddr);
            let _ = facts.load_of(f.vaddr);
        }
        for l in &facts.loads {
            let _ = facts.vaddr_of_offset(l.offset);
            let _ = facts.bytes_in(data, l.vaddr, l.filesz);
        }
        let _ = facts.functions_named("crc32");
        let index = FunctionsByAddress::new(facts);
        let _ = index.function_at(0x1000);
        let _ = index.function_named("crc32");
    }
}

#[test]
fn the_seed_itself_parses() {
    let facts = ElfFacts::parse(seed(), SymbolFilter::All).unwrap();
    assert!(!facts.functions.is_empty() && !facts.loads.is_empty());
}

/// Every exported function of the seed is found through its GNU hash table
/// exactly as the full scan finds it, and names it lacks are not.
#[test]
fn the_hash_lookup_agrees_with_the_scan_on_the_seed() {
    let all = ElfFacts::parse(seed(), SymbolFilter::All).unwrap();
    let mut names: Vec<&str> = all.functions.iter().map(|f| f.name.as_str()).collect();
    names.extend(["no_such_function", "", "crc", "crc32x", "_init"]);
    for name in names {
        let scanned = ElfFacts::parse(seed(), SymbolFilter::MayBe(name)).unwrap();
        let looked_up = ElfFacts::parse(seed(), SymbolFilter::Lookup(name)).unwrap();
        assert_eq!(
            looked_up.functions_named(name),
            scanned.functions_named(name),
            "{name}"
        );
        assert_eq!(looked_up.soname, all.soname);
        assert_eq!(looked_up.loads, all.loads);
    }
    let headers = ElfFacts::parse(seed(), SymbolFilter::Nothing).unwrap();
    assert!(headers.functions.is_empty());
    assert_eq!(
        (headers.kind, headers.soname.clone()),
        (all.kind, all.soname.clone())
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Arbitrary bytes as a GNU hash table: parsed or refused, and a lookup
    /// yields at most one index per symbol, each inside the table.
    #[test]
    fn gnu_hash_tables_of_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        header in proptest::collection::vec(0u32..40, 4),
        nsyms in 0u32..200,
        name in proptest::collection::vec(any::<u8>(), 0..12),
        big in any::<bool>(),
    ) {
        // Half the cases get a plausible header, so the chains are walked.
        let mut data = bytes.clone();
        if bytes.first().is_some_and(|b| b & 1 == 0) && data.len() >= 16 {
            for (i, w) in header.iter().enumerate() {
                let raw = if big { w.to_be_bytes() } else { w.to_le_bytes() };
                data[i * 4..i * 4 + 4].copy_from_slice(&raw);
            }
        }
        if let Ok(table) = GnuHash::parse(&data, nsyms, big) {
            let found: Vec<u32> = table.candidates(&name).collect();
            prop_assert!(found.len() <= nsyms as usize);
            prop_assert!(found.iter().all(|&i| i < nsyms));
            prop_assert!(found.windows(2).all(|w| w[0] < w[1]));
        }
    }

    /// A table built as a linker builds one finds exactly what a linear
    /// scan finds, for names present and absent.
    #[test]
    fn gnu_hash_lookup_is_a_linear_scan(
        names in proptest::collection::vec("[a-z_]{0,6}", 1..80),
        absent in "[a-z_]{0,7}",
        symoffset in 1u32..4,
        nbuckets in 1u32..40,
        bloom_size in 1u32..5,
        bloom_shift in 0u32..40,
    ) {
        let names: Vec<Vec<u8>> = names.into_iter().map(String::into_bytes).collect();
        let (section, order) =
            gnu_hash::build::table(&names, symoffset, nbuckets, bloom_size, bloom_shift);
        let sorted: Vec<&[u8]> = order.iter().map(|&i| names[i].as_slice()).collect();
        let nsyms = symoffset + sorted.len() as u32;
        let table = GnuHash::parse(&section, nsyms, false).unwrap();
        for wanted in sorted.iter().copied().chain([absent.as_bytes()]) {
            let scan: Vec<u32> = (0..sorted.len() as u32)
                .filter(|&i| sorted[i as usize] == wanted)
                .map(|i| i + symoffset)
                .collect();
            let found: Vec<u32> = table
                .candidates(wanted)
                .filter(|&i| sorted[(i - symoffset) as usize] == wanted)
                .collect();
            prop_assert_eq!(found, scan);
        }
    }
}

/// Edits at offsets biased to the headers (ELF, program and section
/// headers sit in the first and last few KiB).
fn edits() -> impl Strategy<Value = Vec<(usize, u8, bool)>> {
    proptest::collection::vec((any::<usize>(), 1u8..=255, any::<bool>()), 1..16)
}

fn apply(data: &mut [u8], edits: &[(usize, u8, bool)]) {
    let n = data.len();
    for &(i, x, head) in edits {
        let at = if head {
            i % 4096.min(n)
        } else {
            n - 1 - i % 4096.min(n)
        };
        data[at] ^= x;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_never_panic_an_elf_reader(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        read_all_ways(&data);
        let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
        elf.extend_from_slice(&data);
        read_all_ways(&elf);
    }

    #[test]
    fn edited_real_elf_files_never_panic(e in edits(), cut in any::<usize>(), truncate in any::<bool>()) {
        let mut data = seed().to_vec();
        apply(&mut data, &e);
        if truncate {
            data.truncate(cut % data.len());
        }
        read_all_ways(&data);
    }

    #[test]
    fn truncated_and_bit_flipped_elf_files_never_panic(
        cut in any::<usize>(),
        flips in proptest::collection::vec((any::<usize>(), 0u8..8, any::<bool>()), 0..24),
    ) {
        let mut data = seed()[..cut % (seed().len() + 1)].to_vec();
        let n = data.len();
        for (at, bit, head) in flips.into_iter().filter(|_| n > 0) {
            let at = if head { at % 8192.min(n) } else { n - 1 - at % 8192.min(n) };
            data[at] ^= 1 << bit;
        }
        read_all_ways(&data);
    }

    #[test]
    fn arbitrary_maps_text_never_panics(text in "(([0-9a-f]{1,16}-[0-9a-f]{1,16} [rwxsp-]{0,5} [0-9a-f]{0,9} [0-9a-f:]{0,6} [0-9]{0,12} *[ -~]{0,40})|[ -~]{0,80})(\n[ -~]{0,80}){0,4}") {
        let maps = ProcessMaps::parse(1, &text);
        for m in &maps.mappings {
            let _ = maps.find(m.start);
            let _ = m.short_name();
            let _ = m.is_file();
        }
        let _ = maps.find(u64::MAX);
    }

    #[test]
    fn well_formed_maps_lines_parse_exactly(
        start in 0u64..(1 << 47), len in 1u64..(1 << 30), offset in any::<u32>(),
        inode in any::<u32>(), name in "(/[a-z0-9._]{1,12}){1,4}( \\(deleted\\))?",
    ) {
        let end = start + len;
        let line = format!("{start:x}-{end:x} r-xp {offset:08x} fd:01 {inode}    {name}\n");
        let maps = ProcessMaps::parse(7, &line);
        prop_assert_eq!(maps.mappings.len(), 1);
        let m = &maps.mappings[0];
        prop_assert_eq!((m.start, m.end, m.offset, m.inode), (start, end, u64::from(offset), u64::from(inode)));
        prop_assert_eq!(&m.name, &name);
        prop_assert!(m.executable && !m.writable);
    }
}
