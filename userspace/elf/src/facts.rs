//! The facts of one ELF image in memory: its `PT_LOAD` segments, kind,
//! `DT_SONAME`, text relocations, build-id and function symbols.
//!
//! The bytes come from a file a target chose: parsing is bounded (at most
//! [`MAX_SYMBOLS`] symbols are walked) and never panics; whatever does not
//! parse is an error, whatever is informative only (soname, versions,
//! build-id) is `None` when malformed.

use crate::gnu_hash::GnuHash;
use object::elf;
use object::read::elf::{
    Dyn as _, ElfFile64, ElfSymbol64, FileHeader as _, ProgramHeader as _, SectionHeader as _,
    Sym as _,
};
use object::{Endian as _, Endianness, Object, ObjectSymbol};

/// Most symbols read from one file (`.symtab` plus `.dynsym`): a file
/// claiming more is refused rather than walked (a large libc has ~10 000).
pub const MAX_SYMBOLS: usize = 1 << 20;

/// Largest file read into memory (1 GiB); [`crate::ElfObject`] maps
/// rather than reads.
pub const MAX_FILE: u64 = 1 << 30;

/// How the file is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// A shared library: `ET_DYN` without `DF_1_PIE` (`dlopen` works).
    SharedLibrary,
    /// A position-independent executable (`ET_DYN` with `DF_1_PIE`):
    /// glibc refuses to `dlopen` it.
    PieExecutable,
    /// A fixed-address executable (`ET_EXEC`).
    FixedExecutable,
    /// Any other `e_type` (relocatable object, core dump, …).
    Other(u16),
}

impl ObjectKind {
    /// `ET_DYN` (PIE executable or shared library): loaded at a bias.
    pub fn position_independent(self) -> bool {
        matches!(self, ObjectKind::SharedLibrary | ObjectKind::PieExecutable)
    }
}

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Virtual address as linked.
    pub vaddr: u64,
    /// Size in memory.
    pub memsz: u64,
    /// Offset in the file.
    pub offset: u64,
    /// Size in the file.
    pub filesz: u64,
    /// `PF_R|PF_W|PF_X` bits.
    pub flags: u32,
}

impl Load {
    /// Whether `addr` lies in the segment's memory image.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.vaddr && addr - self.vaddr < self.memsz
    }

    /// Writable at run time (data, `.got`, `.bss`): its contents in the
    /// file are not what a running process holds.
    pub fn writable(&self) -> bool {
        self.flags & elf::PF_W != 0
    }

    /// Executable.
    pub fn executable(&self) -> bool {
        self.flags & elf::PF_X != 0
    }
}

/// Which symbol tables the function symbols came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolSource {
    /// `.symtab` (every function, including local ones), with whatever
    /// `.dynsym` adds.
    Symtab,
    /// `.dynsym` only: exported functions (stripped binaries, libraries).
    Dynsym,
    /// No function symbol at all.
    None,
}

/// One function symbol (`STT_FUNC` or `STT_GNU_IFUNC`, defined, non-zero).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSymbol {
    /// The name as stored (mangled for Rust and C++).
    pub name: String,
    /// The demangled name without hash, when it differs from `name`.
    pub demangled: Option<String>,
    /// Virtual address as linked.
    pub vaddr: u64,
    /// `st_size`; 0 when the object does not say.
    pub size: u64,
    /// `STB_GLOBAL`, `STB_WEAK` or `STB_GNU_UNIQUE` (as opposed to a
    /// file-local symbol).
    pub global: bool,
    /// `STT_GNU_IFUNC`: the address is a resolver that picks the real
    /// implementation at load time, not the function itself.
    pub ifunc: bool,
}

impl FunctionSymbol {
    /// Whether `name` names this symbol (its stored or demangled name).
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.demangled.as_deref() == Some(name)
    }
}

/// Which function symbols to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolFilter<'a> {
    /// Every function symbol.
    All,
    /// Only those that may be this name (stored or demangled) or a part
    /// split off it (`name.cold`, `name@@VERSION`, …): resolving one symbol
    /// then costs a scan of the symbol tables, not a copy and demangling of
    /// each of their entries.
    MayBe(&'a str),
    /// As [`SymbolFilter::MayBe`], but `.dynsym` is not scanned: the name is
    /// looked up through the GNU hash table ([`crate::gnu_hash`]), so only
    /// the dynamic symbols named exactly that are kept (`.symtab`, when the
    /// file has one, is still scanned for local definitions and split-off
    /// parts). Falls back to [`SymbolFilter::MayBe`] when the file has no
    /// usable GNU hash table, and for a path (`a::b`), which only a
    /// demangled name can match.
    Lookup(&'a str),
    /// No function symbol: the headers' facts only (kind, loads, soname, …).
    Nothing,
}

/// Why bytes are not an ELF file adapt reads.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// `object` refused it.
    #[error("{0}")]
    Object(#[from] object::Error),
    /// Its symbol tables claim more than [`MAX_SYMBOLS`] entries.
    #[error("it declares {declared} symbols, more than the {MAX_SYMBOLS} read")]
    TooManySymbols {
        /// Entries of `.symtab` plus `.dynsym`.
        declared: usize,
    },
}

/// The facts of one ELF file (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfFacts {
    /// How it is loaded.
    pub kind: ObjectKind,
    /// Its `PT_LOAD` segments.
    pub loads: Vec<Load>,
    /// `DT_SONAME`, for shared libraries that have one.
    pub soname: Option<String>,
    /// `DT_TEXTREL` or `DF_TEXTREL`: the loader patches read-only segments.
    pub text_relocations: bool,
    /// The GNU build-id note, if any (a claim of the file, not a proof of
    /// its content).
    pub build_id: Option<Vec<u8>>,
    /// The function symbols of `.symtab` then `.dynsym` (without hidden
    /// symbol versions), in table order, each (name, address) once; only
    /// those the [`SymbolFilter`] kept.
    pub functions: Vec<FunctionSymbol>,
    /// Which tables [`ElfFacts::functions`] came from.
    pub symbol_source: SymbolSource,
}

impl ElfFacts {
    /// Parses a 64-bit ELF image.
    pub fn parse(data: &[u8], filter: SymbolFilter<'_>) -> Result<ElfFacts, ParseError> {
        let file = ElfFile64::<Endianness>::parse(data)?;
        let endian = file.endian();
        let loads = file
            .elf_program_headers()
            .iter()
            .filter(|ph| ph.p_type(endian) == elf::PT_LOAD)
            .map(|ph| Load {
                vaddr: ph.p_vaddr(endian),
                memsz: ph.p_memsz(endian),
                offset: ph.p_offset(endian),
                filesz: ph.p_filesz(endian),
                flags: ph.p_flags(endian),
            })
            .collect();
        let dynamic = Dynamic::read(&file, data);
        let kind = match file.elf_header().e_type(endian) {
            elf::ET_EXEC => ObjectKind::FixedExecutable,
            elf::ET_DYN if dynamic.flags_1 & u64::from(elf::DF_1_PIE) != 0 => {
                ObjectKind::PieExecutable
            }
            elf::ET_DYN => ObjectKind::SharedLibrary,
            other => ObjectKind::Other(other),
        };
        let declared = [file.elf_symbol_table(), file.elf_dynamic_symbol_table()]
            .iter()
            .map(|t| t.len())
            .fold(0usize, usize::saturating_add);
        if declared > MAX_SYMBOLS {
            return Err(ParseError::TooManySymbols { declared });
        }
        let (functions, symbol_source) = match filter {
            SymbolFilter::Nothing => (Vec::new(), SymbolSource::None),
            SymbolFilter::Lookup(name) => match looked_up(&file, data, name) {
                Some(found) => found,
                None => functions(&file, data, SymbolFilter::MayBe(name)),
            },
            _ => functions(&file, data, filter),
        };
        Ok(ElfFacts {
            kind,
            loads,
            soname: dynamic.soname,
            text_relocations: dynamic.textrel || dynamic.flags & u64::from(elf::DF_TEXTREL) != 0,
            build_id: file.build_id().ok().flatten().map(<[u8]>::to_vec),
            functions,
            symbol_source,
        })
    }

    /// The function symbols `matches` accepts, globals first, then by
    /// address, without two at the same address.
    pub fn functions_where(
        &self,
        matches: impl Fn(&FunctionSymbol) -> bool,
    ) -> Vec<&FunctionSymbol> {
        let mut found: Vec<&FunctionSymbol> =
            self.functions.iter().filter(|f| matches(f)).collect();
        found.sort_by_key(|f| (!f.global, f.vaddr));
        found.dedup_by_key(|f| f.vaddr);
        found
    }

    /// The function symbols named `name` ([`FunctionSymbol::is_named`]),
    /// globals first, without two at the same address.
    pub fn functions_named(&self, name: &str) -> Vec<&FunctionSymbol> {
        self.functions_where(|f| f.is_named(name))
    }

    /// The `PT_LOAD` segment holding virtual address `vaddr`.
    pub fn load_of(&self, vaddr: u64) -> Option<&Load> {
        self.loads.iter().find(|l| l.contains(vaddr))
    }

    /// File offset of virtual address `vaddr` (inside a segment's file
    /// part).
    pub fn offset_of(&self, vaddr: u64) -> Option<u64> {
        let load = self.load_of(vaddr)?;
        let delta = vaddr - load.vaddr;
        (delta < load.filesz).then(|| load.offset + delta)
    }

    /// The virtual address (as linked) that file offset `offset` is loaded
    /// at, if a `PT_LOAD` segment's file part covers it.
    pub fn vaddr_of_offset(&self, offset: u64) -> Option<u64> {
        self.loads
            .iter()
            .find(|l| offset >= l.offset && offset - l.offset < l.filesz)
            .map(|l| offset - l.offset + l.vaddr)
    }

    /// The `len` bytes at virtual address `vaddr` in `data` (the file these
    /// facts were parsed from), if all of them are in one segment's file
    /// part.
    pub fn bytes_in<'d>(&self, data: &'d [u8], vaddr: u64, len: u64) -> Option<&'d [u8]> {
        let load = self.load_of(vaddr)?;
        let delta = vaddr - load.vaddr;
        if delta.checked_add(len)? > load.filesz {
            return None;
        }
        let start = usize::try_from(load.offset.checked_add(delta)?).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        data.get(start..end)
    }
}

/// What the dynamic section says.
#[derive(Default)]
struct Dynamic {
    flags: u64,
    flags_1: u64,
    textrel: bool,
    soname: Option<String>,
}

impl Dynamic {
    /// The entries of `SHT_DYNAMIC`; all absent when it is missing or
    /// malformed.
    fn read(file: &ElfFile64<'_, Endianness>, data: &[u8]) -> Dynamic {
        let endian = file.endian();
        let sections = file.elf_section_table();
        let mut out = Dynamic::default();
        let Ok(Some((entries, link))) = sections.dynamic(endian, data) else {
            return out;
        };
        let mut soname = None;
        for e in entries {
            let tag = e.d_tag(endian);
            if tag == u64::from(elf::DT_FLAGS) {
                out.flags = e.d_val(endian);
            } else if tag == u64::from(elf::DT_FLAGS_1) {
                out.flags_1 = e.d_val(endian);
            } else if tag == u64::from(elf::DT_TEXTREL) {
                out.textrel = true;
            } else if tag == u64::from(elf::DT_SONAME) && soname.is_none() {
                soname = Some(e.d_val(endian));
            }
        }
        out.soname = soname.and_then(|offset| {
            let strings = sections.strings(endian, data, link).ok()?;
            let name = strings.get(u32::try_from(offset).ok()?).ok()?;
            Some(String::from_utf8_lossy(name).into_owned())
        });
        out
    }
}

/// The function symbols of `.symtab` then `.dynsym`, filtered, each
/// (name, address) once in table order.
fn functions(
    file: &ElfFile64<'_, Endianness>,
    data: &[u8],
    filter: SymbolFilter<'_>,
) -> (Vec<FunctionSymbol>, SymbolSource) {
    let endian = file.endian();
    // Only the default version of a versioned dynamic symbol is what the
    // dynamic loader binds new references to (`memcpy@@GLIBC_2.14`, not the
    // compatibility `memcpy@GLIBC_2.2.5`).
    let versions = file
        .elf_section_table()
        .versions(endian, data)
        .ok()
        .flatten();
    let hidden = |index| {
        versions
            .as_ref()
            .is_some_and(|v| v.version_index(endian, index).is_hidden())
    };
    let mut functions = functions_of(file.symbols(), endian, filter);
    let from_symtab = functions.len();
    let dynsym = file.dynamic_symbols().filter(|s| !hidden(s.index()));
    functions.extend(functions_of(dynsym, endian, filter));
    let source = match (from_symtab, functions.len()) {
        (0, 0) => SymbolSource::None,
        (0, _) => SymbolSource::Dynsym,
        _ => SymbolSource::Symtab,
    };
    (dedup_in_order(functions), source)
}

/// The function symbols among `symbols` that `filter` keeps, in order.
fn functions_of<'d, 'f>(
    symbols: impl Iterator<Item = ElfSymbol64<'d, 'f, Endianness>>,
    endian: Endianness,
    filter: SymbolFilter<'_>,
) -> Vec<FunctionSymbol>
where
    'd: 'f,
{
    let mut functions = Vec::new();
    // The filter's test on the raw bytes first: a `.symtab` of tens of
    // thousands of symbols is scanned for one name on every inject, so
    // the UTF-8 check and the demangling are for candidates only.
    let wanted = match filter {
        SymbolFilter::MayBe(wanted) | SymbolFilter::Lookup(wanted) => Some(NameFilter::new(wanted)),
        _ => None,
    };
    for symbol in symbols {
        if let Some(wanted) = &wanted {
            match symbol.name_bytes() {
                Ok(raw) if wanted.may_be(raw) => {}
                _ => continue,
            }
        }
        let Ok(name) = symbol.name() else { continue };
        if let Some(f) = function_symbol(symbol.elf_symbol(), endian, name) {
            functions.push(f);
        }
    }
    functions
}

/// `raw`, named `name`, as a function symbol, if it defines one (`STT_FUNC`
/// or `STT_GNU_IFUNC`, in a section, at a non-zero address, named).
fn function_symbol(
    raw: &elf::Sym64<Endianness>,
    endian: Endianness,
    name: &str,
) -> Option<FunctionSymbol> {
    let st_type = raw.st_type();
    // (object's `is_definition` leaves IFUNCs out: test the section.)
    if !(st_type == elf::STT_FUNC || st_type == elf::STT_GNU_IFUNC)
        || raw.st_shndx(endian) == elf::SHN_UNDEF
        || raw.st_value(endian) == 0
        || name.is_empty()
    {
        return None;
    }
    let demangled = format!("{:#}", rustc_demangle::demangle(name));
    Some(FunctionSymbol {
        name: name.to_owned(),
        demangled: (demangled != name).then_some(demangled),
        vaddr: raw.st_value(endian),
        size: raw.st_size(endian),
        global: matches!(
            raw.st_bind(),
            elf::STB_GLOBAL | elf::STB_WEAK | elf::STB_GNU_UNIQUE
        ),
        ifunc: st_type == elf::STT_GNU_IFUNC,
    })
}

/// [`SymbolFilter::Lookup`]: `.symtab`'s candidates for `name` (scanned),
/// then `.dynsym`'s definitions of exactly `name` found through the GNU
/// hash table, without hidden versions. `None` when the table is missing or
/// malformed, or `name` is a path: scan instead.
fn looked_up(
    file: &ElfFile64<'_, Endianness>,
    data: &[u8],
    name: &str,
) -> Option<(Vec<FunctionSymbol>, SymbolSource)> {
    if name.contains("::") {
        return None;
    }
    let endian = file.endian();
    let sections = file.elf_section_table();
    let dynsym = file.elf_dynamic_symbol_table();
    let dynsym_index = dynsym.section();
    if dynsym.is_empty() {
        return None;
    }
    // The tables that belong to this .dynsym (sh_link names it).
    let linked = |kind: u32| {
        sections
            .iter()
            .find(|s| s.sh_type(endian) == kind && s.sh_link(endian) as usize == dynsym_index.0)
            .and_then(|s| s.data(endian, data).ok())
    };
    let table = linked(elf::SHT_GNU_HASH)?;
    let nsyms = u32::try_from(dynsym.len()).ok()?;
    let table = GnuHash::parse(table, nsyms, endian.is_big_endian()).ok()?;
    let versym = linked(elf::SHT_GNU_VERSYM);
    let hidden = |index: u32| {
        let at = index as usize * 2;
        versym
            .and_then(|v| v.get(at..at + 2))
            .is_some_and(|b| endian.read_u16_bytes([b[0], b[1]]) & elf::VERSYM_HIDDEN != 0)
    };
    let strings = dynsym.strings();
    let mut exported = Vec::new();
    for index in table.candidates(name.as_bytes()) {
        let Ok(raw) = dynsym.symbol(object::SymbolIndex(index as usize)) else {
            continue;
        };
        if raw.name(endian, strings).ok() != Some(name.as_bytes()) || hidden(index) {
            continue;
        }
        if let Some(f) = function_symbol(raw, endian, name) {
            exported.push(f);
        }
    }
    let mut found = Vec::new();
    let mut from_symtab = 0;
    if !file.elf_symbol_table().is_empty() {
        found = functions_of(file.symbols(), endian, SymbolFilter::MayBe(name));
        from_symtab = found.len();
    }
    found.extend(exported);
    let source = match (from_symtab, found.len()) {
        (0, 0) => SymbolSource::None,
        (0, _) => SymbolSource::Dynsym,
        _ => SymbolSource::Symtab,
    };
    Some((dedup_in_order(found), source))
}

/// `functions` without a later repeat of an earlier (name, address) —
/// `.symtab` repeats what `.dynsym` exports — in O(n log n), keeping table
/// order.
fn dedup_in_order(functions: Vec<FunctionSymbol>) -> Vec<FunctionSymbol> {
    let mut order: Vec<usize> = (0..functions.len()).collect();
    order.sort_by(|&a, &b| {
        let (fa, fb) = (&functions[a], &functions[b]);
        (fa.vaddr, &fa.name, a).cmp(&(fb.vaddr, &fb.name, b))
    });
    let mut keep = vec![true; functions.len()];
    for pair in order.windows(2) {
        let (first, next) = (&functions[pair[0]], &functions[pair[1]]);
        if first.vaddr == next.vaddr && first.name == next.name {
            keep[pair[1]] = false;
        }
    }
    functions
        .into_iter()
        .zip(keep)
        .filter_map(|(f, keep)| keep.then_some(f))
        .collect()
}

/// Whether the symbol stored as `raw` may be `wanted` or a part split off
/// it: `raw` starts with `wanted`, or `raw` is mangled (Itanium `_Z`, Rust
/// v0 `_R`) and holds the last path component of `wanted`, which every
/// mangling keeps verbatim for ASCII identifiers. A cheap superset: the
/// exact test ([`FunctionSymbol::is_named`], split-part names) follows.
#[cfg(test)]
pub(crate) fn may_name(raw: &str, wanted: &str) -> bool {
    NameFilter::new(wanted).may_be(raw.as_bytes())
}

/// [`may_name`] prepared for one wanted name and tested on raw symbol
/// bytes, as a scan of a whole symbol table needs it.
pub(crate) struct NameFilter<'w> {
    wanted: &'w [u8],
    /// The last `::` component of the wanted name.
    ident: &'w [u8],
}

impl<'w> NameFilter<'w> {
    pub(crate) fn new(wanted: &'w str) -> Self {
        let ident = wanted.rsplit("::").next().unwrap_or(wanted);
        Self {
            wanted: wanted.as_bytes(),
            ident: ident.as_bytes(),
        }
    }

    pub(crate) fn may_be(&self, raw: &[u8]) -> bool {
        if raw.starts_with(self.wanted) {
            return true;
        }
        (raw.starts_with(b"_Z") || raw.starts_with(b"_R"))
            && (self.ident.is_empty() || raw.windows(self.ident.len()).any(|w| w == self.ident))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_filter_keeps_split_parts_and_mangled_candidates() {
        assert!(may_name("crc32", "crc32"));
        assert!(may_name("crc32.cold", "crc32"));
        assert!(may_name(
            "_ZN4core3fmt5write17h0123456789abcdefE",
            "core::fmt::write"
        ));
        assert!(may_name("_RNvCs1234_4core5write", "core::fmt::write"));
        assert!(!may_name("adler32", "crc32"));
        assert!(!may_name("xcrc32", "crc32"));
        assert!(!may_name(
            "_ZN4core3fmt5print17h0123456789abcdefE",
            "core::fmt::write"
        ));
    }

    fn symbol(name: &str, vaddr: u64) -> FunctionSymbol {
        FunctionSymbol {
            name: name.into(),
            demangled: None,
            vaddr,
            size: 1,
            global: true,
            ifunc: false,
        }
    }

    #[test]
    fn duplicates_go_and_table_order_stays() {
        let input = vec![
            symbol("b", 2),
            symbol("a", 2),
            symbol("c", 1),
            symbol("b", 2),
            symbol("a", 3),
            symbol("c", 1),
        ];
        let names: Vec<(String, u64)> = dedup_in_order(input)
            .into_iter()
            .map(|f| (f.name, f.vaddr))
            .collect();
        assert_eq!(
            names,
            [("b", 2), ("a", 2), ("c", 1), ("a", 3)].map(|(n, a)| (n.to_owned(), a))
        );
    }

    #[test]
    fn garbage_is_not_an_elf_file() {
        assert!(ElfFacts::parse(b"not an elf file at all", SymbolFilter::All).is_err());
    }
}
