//! Truncated and bit-flipped ELF files: every reader of adapt-elf gives a
//! result or an error, never a panic. A few hundred cases run with
//! `cargo test`; `ADAPT_FUZZ_CASES=100000` for a long run.

use adapt_elf::{ElfFacts, FunctionsByAddress, SymbolFilter};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("ADAPT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// The system libz (small, with `.dynsym`, versions, a soname), else this
/// test binary.
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
    for filter in [SymbolFilter::All, SymbolFilter::MayBe("crc32")] {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn truncated_elf_files_never_panic(cut in any::<usize>()) {
        let data = seed();
        read_all_ways(&data[..cut % (data.len() + 1)]);
    }

    #[test]
    fn bit_flipped_elf_files_never_panic(
        flips in proptest::collection::vec((any::<usize>(), 0u8..8, any::<bool>()), 1..24),
    ) {
        let mut data = seed().to_vec();
        let n = data.len();
        // Most flips land in the headers and tables: the first and last
        // 8 KiB (ELF and program headers; section headers, .dynsym, notes).
        for (at, bit, head) in flips {
            let at = if head { at % 8192.min(n) } else { n - 1 - at % 8192.min(n) };
            data[at] ^= 1 << bit;
        }
        read_all_ways(&data);
    }

    #[test]
    fn arbitrary_bytes_after_an_elf_magic_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let mut data = b"\x7fELF\x02\x01\x01\x00".to_vec();
        data.extend_from_slice(&tail);
        read_all_ways(&data);
    }
}
