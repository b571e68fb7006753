//! Function symbols of one ELF file, looked up by file offset.

use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};
use std::fs::File;
use std::path::Path;

/// Which symbol table the names came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolSource {
    /// `.symtab`: every function, including local ones.
    Symtab,
    /// `.dynsym`: exported functions only (stripped binaries, libraries).
    Dynsym,
    /// No symbols at all.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Function {
    start: u64,
    end: u64,
    name: String,
}

#[derive(Clone, Copy, Debug)]
struct LoadSegment {
    file_offset: u64,
    file_size: u64,
    vaddr: u64,
}

/// The function symbols of an ELF file and how its file offsets map to
/// virtual addresses.
#[derive(Clone, Debug)]
pub struct ElfSymbols {
    segments: Vec<LoadSegment>,
    /// Sorted by `start`.
    functions: Vec<Function>,
    pub source: SymbolSource,
}

/// Why an ELF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a readable ELF file: {source}")]
    Parse {
        path: String,
        #[source]
        source: object::Error,
    },
}

impl ElfSymbols {
    /// Reads the function symbols of the ELF file at `path`: `.symtab` when
    /// present, `.dynsym` otherwise.
    pub fn load(path: &Path) -> Result<Self, ElfError> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|source| ElfError::Open {
            path: shown.clone(),
            source,
        })?;
        // SAFETY: The mapping is read-only and private; a concurrent
        // truncation of a system library would fault, which is the same risk
        // every debugger and profiler takes on mapped binaries.
        let data = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| ElfError::Open {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&data).map_err(|source| ElfError::Parse {
            path: shown,
            source,
        })
    }

    /// Parses an ELF image in memory.
    pub fn parse(data: &[u8]) -> Result<Self, object::Error> {
        let elf = object::File::parse(data)?;
        let segments = elf
            .segments()
            .map(|s| {
                let (file_offset, file_size) = s.file_range();
                LoadSegment {
                    file_offset,
                    file_size,
                    vaddr: s.address(),
                }
            })
            .collect();

        let (mut functions, source) = match collect(elf.symbols()) {
            f if !f.is_empty() => (f, SymbolSource::Symtab),
            _ => match collect(elf.dynamic_symbols()) {
                f if !f.is_empty() => (f, SymbolSource::Dynsym),
                _ => (Vec::new(), SymbolSource::None),
            },
        };
        functions.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        functions.dedup_by_key(|f| f.start);
        // Symbols without a size extend to the next symbol.
        for i in 0..functions.len() {
            if functions[i].end == functions[i].start {
                functions[i].end = functions.get(i + 1).map_or(u64::MAX, |n| n.start);
            }
        }
        Ok(Self {
            segments,
            functions,
            source,
        })
    }

    /// The virtual address (as linked) that file offset `offset` is loaded
    /// at, if a loadable segment covers it.
    pub fn vaddr_of_offset(&self, offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| offset >= s.file_offset && offset - s.file_offset < s.file_size)
            .map(|s| offset - s.file_offset + s.vaddr)
    }

    /// The function containing virtual address `vaddr`, and the offset into it.
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

fn collect<'a, I, S>(symbols: I) -> Vec<Function>
where
    I: Iterator<Item = S>,
    S: ObjectSymbol<'a>,
{
    symbols
        .filter(|s| s.kind() == SymbolKind::Text && s.is_definition() && s.address() != 0)
        .filter_map(|s| {
            let name = s.name().ok()?;
            let name = format!("{:#}", rustc_demangle::demangle(name));
            Some(Function {
                start: s.address(),
                end: s.address() + s.size(),
                name,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_executable() -> ElfSymbols {
        ElfSymbols::load(&std::env::current_exe().unwrap()).unwrap()
    }

    #[inline(never)]
    #[no_mangle]
    extern "C" fn adapt_profile_test_marker(x: u64) -> u64 {
        x.wrapping_mul(0x9e37_79b9).rotate_left(7)
    }

    #[test]
    fn finds_a_function_of_this_test_binary_by_address() {
        let symbols = own_executable();
        assert_eq!(symbols.source, SymbolSource::Symtab);
        let (start, end) = symbols
            .function_named("adapt_profile_test_marker")
            .expect("marker symbol");
        assert!(end > start);
        let (name, offset) = symbols.function_at(start + 1).unwrap();
        assert_eq!(name, "adapt_profile_test_marker");
        assert_eq!(offset, 1);
        assert_eq!(
            std::hint::black_box(adapt_profile_test_marker(1)),
            (0x9e37_79b9u64).rotate_left(7)
        );
    }

    #[test]
    fn maps_file_offsets_through_load_segments() {
        let symbols = own_executable();
        let (start, _) = symbols.function_named("adapt_profile_test_marker").unwrap();
        // Find the offset whose vaddr is `start` by inverting the segment map.
        let seg = symbols
            .segments
            .iter()
            .find(|s| start >= s.vaddr && start - s.vaddr < s.file_size)
            .unwrap();
        let offset = start - seg.vaddr + seg.file_offset;
        assert_eq!(symbols.vaddr_of_offset(offset), Some(start));
    }

    #[test]
    fn a_library_without_symtab_falls_back_to_dynsym() {
        let libz = [
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
            "/lib/x86_64-linux-gnu/libz.so.1",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("the system libz.so.1 (zlib1g)");
        let symbols = ElfSymbols::load(libz).unwrap();
        assert_eq!(
            symbols.source,
            SymbolSource::Dynsym,
            "Debian strips .symtab"
        );
        let (start, end) = symbols.function_named("crc32").expect("crc32 is exported");
        assert_eq!(symbols.function_at(start).unwrap().0, "crc32");
        assert!(symbols.function_at(end - 1).is_some());
    }

    #[test]
    fn garbage_is_not_an_elf_file() {
        assert!(ElfSymbols::parse(b"not an elf file at all").is_err());
    }
}
