//! What the injector needs from one ELF file: its function symbols with
//! their sizes and types, its loadable segments (to turn a symbol's virtual
//! address into a file offset and back), its `DT_SONAME`, and the bytes of a
//! function as they are in the file.

use object::elf;
use object::read::elf::{Dyn as _, ElfFile64, FileHeader as _, ProgramHeader as _, Sym as _};
use object::{Endianness, Object, ObjectSymbol};
use std::fs::File;
use std::path::{Path, PathBuf};

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub executable: bool,
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
    /// `STB_GLOBAL` or `STB_WEAK` (as opposed to a file-local symbol).
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

/// Why an ELF file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a 64-bit ELF file adaptctl can read: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: object::Error,
    },
}

/// A parsed ELF file; the file stays mapped for [`ElfObject::bytes`].
pub struct ElfObject {
    path: PathBuf,
    data: memmap2::Mmap,
    pub loads: Vec<Load>,
    /// `DT_SONAME`, for shared libraries that have one.
    pub soname: Option<String>,
    /// `ET_DYN` (PIE executable or shared library) rather than `ET_EXEC`.
    pub position_independent: bool,
    /// Every function symbol of `.symtab` and `.dynsym`, without duplicates
    /// (from [`ElfObject::open_for`] with a name: only those that may be
    /// that name or a part split off it).
    pub functions: Vec<FunctionSymbol>,
}

impl std::fmt::Debug for ElfObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfObject")
            .field("path", &self.path)
            .field("loads", &self.loads)
            .field("soname", &self.soname)
            .field("functions", &self.functions.len())
            .finish()
    }
}

impl ElfObject {
    /// Maps and parses the file at `path`, with every function symbol.
    pub fn open(path: &Path) -> Result<Self, ElfError> {
        Self::open_for(path, None)
    }

    /// Maps and parses the file at `path`; with `name`, [`ElfObject::functions`]
    /// keeps only the symbols that may be `name` (by stored or demangled
    /// name) or a part split off it (`name.cold`, …): resolving one symbol
    /// then costs a scan of the symbol tables, not a copy and demangling of
    /// each of their entries.
    pub fn open_for(path: &Path, name: Option<&str>) -> Result<Self, ElfError> {
        let open_error = |source| ElfError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        // SAFETY: The mapping is private and read-only. Like every debugger
        // and profiler reading mapped binaries, we accept that truncating the
        // file underneath would fault this process; object files are
        // replaced by rename, not rewritten in place.
        let data = unsafe { memmap2::Mmap::map(&file) }.map_err(open_error)?;
        let parsed = Parsed::parse(&data, name).map_err(|source| ElfError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            data,
            loads: parsed.loads,
            soname: parsed.soname,
            position_independent: parsed.position_independent,
            functions: parsed.functions,
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The function symbols named `name`, globals first, without two at the
    /// same address.
    pub fn functions_named(&self, name: &str) -> Vec<&FunctionSymbol> {
        let mut found: Vec<&FunctionSymbol> =
            self.functions.iter().filter(|f| f.is_named(name)).collect();
        found.sort_by_key(|f| (!f.global, f.vaddr));
        let mut seen = Vec::new();
        found.retain(|f| {
            let fresh = !seen.contains(&f.vaddr);
            seen.push(f.vaddr);
            fresh
        });
        found
    }

    /// The `PT_LOAD` segment holding virtual address `vaddr`.
    pub fn load_of(&self, vaddr: u64) -> Option<&Load> {
        self.loads
            .iter()
            .find(|l| vaddr >= l.vaddr && vaddr - l.vaddr < l.memsz)
    }

    /// File offset of virtual address `vaddr` (inside a segment's file
    /// part).
    pub fn offset_of(&self, vaddr: u64) -> Option<u64> {
        let load = self.load_of(vaddr)?;
        let delta = vaddr - load.vaddr;
        (delta < load.filesz).then(|| load.offset + delta)
    }

    /// The `len` bytes at virtual address `vaddr` as stored in the file, if
    /// all of them are in one segment's file part.
    pub fn bytes(&self, vaddr: u64, len: u64) -> Option<&[u8]> {
        let load = self.load_of(vaddr)?;
        let delta = vaddr - load.vaddr;
        if delta.checked_add(len)? > load.filesz {
            return None;
        }
        let start = usize::try_from(load.offset.checked_add(delta)?).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.data.get(start..end)
    }
}

struct Parsed {
    loads: Vec<Load>,
    soname: Option<String>,
    position_independent: bool,
    functions: Vec<FunctionSymbol>,
}

impl Parsed {
    fn parse(data: &[u8], only: Option<&str>) -> Result<Self, object::Error> {
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
                executable: ph.p_flags(endian) & elf::PF_X != 0,
            })
            .collect();
        let position_independent = file.elf_header().e_type(endian) == elf::ET_DYN;
        let soname = soname(&file, data);

        // Only the default version of a versioned dynamic symbol is what
        // the dynamic loader binds new references to (`memcpy@@GLIBC_2.14`,
        // not the compatibility `memcpy@GLIBC_2.2.5`).
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
        let dynamic = file.dynamic_symbols().filter(|s| !hidden(s.index()));
        let mut functions = Vec::new();
        for symbol in file.symbols().chain(dynamic) {
            let raw = symbol.elf_symbol();
            let st_type = raw.st_type();
            // (object's `is_definition` leaves IFUNCs out: test the section.)
            if !(st_type == elf::STT_FUNC || st_type == elf::STT_GNU_IFUNC)
                || raw.st_shndx(endian) == elf::SHN_UNDEF
                || symbol.address() == 0
            {
                continue;
            }
            let Ok(name) = symbol.name() else { continue };
            if name.is_empty() || only.is_some_and(|wanted| !may_name(name, wanted)) {
                continue;
            }
            let demangled = format!("{:#}", rustc_demangle::demangle(name));
            let entry = FunctionSymbol {
                name: name.to_owned(),
                demangled: (demangled != name).then_some(demangled),
                vaddr: symbol.address(),
                size: raw.st_size(endian),
                global: matches!(
                    raw.st_bind(),
                    elf::STB_GLOBAL | elf::STB_WEAK | elf::STB_GNU_UNIQUE
                ),
                ifunc: st_type == elf::STT_GNU_IFUNC,
            };
            functions.push(entry);
        }
        // .symtab repeats what .dynsym exports (same name, address and
        // binding): keep one of each.
        functions.sort_by(|a, b| (a.vaddr, &a.name).cmp(&(b.vaddr, &b.name)));
        functions.dedup_by(|b, a| a.vaddr == b.vaddr && a.name == b.name);
        Ok(Self {
            loads,
            soname,
            position_independent,
            functions,
        })
    }
}

/// Whether the symbol stored as `raw` may be `wanted` or a part split off
/// it: `raw` starts with `wanted`, or `raw` is mangled (Itanium `_Z`, Rust
/// v0 `_R`) and holds the last path component of `wanted`, which every
/// mangling keeps verbatim for ASCII identifiers. A cheap superset: the
/// exact test ([`FunctionSymbol::is_named`], split-part names) follows.
fn may_name(raw: &str, wanted: &str) -> bool {
    if raw.starts_with(wanted) {
        return true;
    }
    let ident = wanted.rsplit("::").next().unwrap_or(wanted);
    (raw.starts_with("_Z") || raw.starts_with("_R")) && raw.contains(ident)
}

/// `DT_SONAME`; `None` when absent or malformed (it is informative only).
fn soname(file: &ElfFile64<'_, Endianness>, data: &[u8]) -> Option<String> {
    let endian = file.endian();
    let sections = file.elf_section_table();
    let (entries, link) = sections.dynamic(endian, data).ok()??;
    let strings = sections.strings(endian, data, link).ok()?;
    let entry = entries
        .iter()
        .find(|e| e.d_tag(endian) == u64::from(elf::DT_SONAME))?;
    let name = strings.get(u32::try_from(entry.d_val(endian)).ok()?).ok()?;
    Some(String::from_utf8_lossy(name).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn libz_path() -> PathBuf {
        [
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
            "/lib/x86_64-linux-gnu/libz.so.1",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("the system libz.so.1 (Debian package zlib1g)")
    }

    #[test]
    fn opening_for_one_name_finds_what_a_full_parse_finds() {
        let exe = std::env::current_exe().unwrap();
        let full = ElfObject::open(&exe).unwrap();
        // A C name, a Rust path (demangled), and names that are absent.
        let rust = full
            .functions
            .iter()
            .filter_map(|f| f.demangled.clone())
            .find(|d| d.contains("::"))
            .expect("a test binary has mangled Rust functions");
        for name in ["main", rust.as_str(), "no_such_function_here", "crc32"] {
            let only = ElfObject::open_for(&exe, Some(name)).unwrap();
            let names = |e: &ElfObject| {
                e.functions_named(name)
                    .iter()
                    .map(|f| (f.name.clone(), f.vaddr))
                    .collect::<Vec<_>>()
            };
            assert_eq!(names(&only), names(&full), "{name}");
            assert!(only.functions.len() < full.functions.len(), "{name}");
        }
        let libz = libz_path();
        let only = ElfObject::open_for(&libz, Some("crc32")).unwrap();
        assert_eq!(only.functions_named("crc32").len(), 1);
        assert_eq!(only.soname.as_deref(), Some("libz.so.1"));
    }

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

    #[test]
    fn libz_exports_crc32_with_a_size_and_a_soname() {
        let libz = ElfObject::open(&libz_path()).unwrap();
        assert_eq!(libz.soname.as_deref(), Some("libz.so.1"));
        assert!(libz.position_independent);
        let found = libz.functions_named("crc32");
        assert_eq!(found.len(), 1, "{found:?}");
        let crc32 = found[0];
        assert!(crc32.global && !crc32.ifunc);
        assert!(crc32.size >= 5, "{crc32:?}");
        let load = libz.load_of(crc32.vaddr).unwrap();
        assert!(load.executable);
        let bytes = libz.bytes(crc32.vaddr, crc32.size).unwrap();
        assert_eq!(bytes.len() as u64, crc32.size);
        assert_eq!(
            libz.offset_of(crc32.vaddr).map(|o| o - load.offset),
            Some(crc32.vaddr - load.vaddr)
        );
    }

    #[test]
    fn glibc_memcpy_is_an_ifunc() {
        let libc = [
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/x86_64-linux-gnu/libc.so.6",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("glibc");
        let libc = ElfObject::open(&libc).unwrap();
        let memcpy = libc.functions_named("memcpy");
        assert!(!memcpy.is_empty());
        assert!(memcpy.iter().all(|f| f.ifunc), "{memcpy:?}");
        assert_eq!(libc.soname.as_deref(), Some("libc.so.6"));
    }

    #[test]
    fn bytes_outside_the_file_are_none() {
        let libz = ElfObject::open(&libz_path()).unwrap();
        assert!(libz.bytes(0xffff_ffff_0000, 4).is_none());
        let last = libz.loads.last().unwrap();
        assert!(
            libz.bytes(last.vaddr + last.filesz - 1, 2).is_none(),
            "crosses the end of the file part"
        );
        assert!(libz.functions_named("no_such_function_anywhere").is_empty());
    }

    #[test]
    fn garbage_is_refused() {
        let dir = std::env::temp_dir().join(format!("adapt-target-elf-{}", std::process::id()));
        std::fs::write(&dir, b"not an ELF file").unwrap();
        let err = ElfObject::open(&dir).unwrap_err();
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(err, ElfError::Parse { .. }), "{err}");
    }
}
