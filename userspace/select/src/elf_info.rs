// SPDX-License-Identifier: GPL-2.0
//! What the selection needs from the ELF file holding an original function:
//! its kind (shared library, PIE or fixed-address executable), its
//! `PT_LOAD` segments with their permissions, whether it has text
//! relocations, and the function symbol.

use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{Dyn as _, ElfFile64, FileHeader as _, ProgramHeader as _, Sym as _};
use object::{Endianness, Object, ObjectSymbol};

use crate::error::OriginalError;

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

/// A function symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSym {
    /// Name as stored.
    pub name: String,
    /// Virtual address as linked.
    pub vaddr: u64,
    /// `st_size`.
    pub size: u64,
    /// Global or weak (else file-local).
    pub global: bool,
    /// `STT_GNU_IFUNC`.
    pub ifunc: bool,
}

/// The facts of one ELF file.
#[derive(Clone, Debug)]
pub struct ElfInfo {
    /// The file.
    pub path: PathBuf,
    /// Its kind.
    pub kind: ObjectKind,
    /// Its `PT_LOAD` segments.
    pub loads: Vec<Load>,
    /// `DT_TEXTREL` or `DF_TEXTREL`: the loader patches read-only segments.
    pub text_relocations: bool,
    /// Every function symbol (`.symtab` and `.dynsym`).
    pub functions: Vec<FunctionSym>,
    /// The GNU build-id note, if any (a claim of the file, not a proof of
    /// its content).
    pub build_id: Option<Vec<u8>>,
}

/// Most symbols read from one file (`.symtab` plus `.dynsym`): a file
/// claiming more is refused rather than walked (a large libc has ~10 000).
pub const MAX_SYMBOLS: usize = 1 << 20;

/// Largest file the selection reads (1 GiB).
pub const MAX_FILE: u64 = 1 << 30;

impl ElfInfo {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<ElfInfo, OriginalError> {
        let data = std::fs::read(path).map_err(|source| OriginalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ElfInfo::parse(path, &data)
    }

    /// Parses the bytes of the file at `path`.
    pub fn parse(path: &Path, data: &[u8]) -> Result<ElfInfo, OriginalError> {
        let bad = |source: object::Error| OriginalError::Elf {
            path: path.to_path_buf(),
            source,
        };
        let file = ElfFile64::<Endianness>::parse(data).map_err(bad)?;
        let endian = file.endian();
        let header = file.elf_header();
        let loads: Vec<Load> = file
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
        let mut flags = 0u64;
        let mut flags_1 = 0u64;
        let mut textrel = false;
        let sections = file.elf_section_table();
        if let Ok(Some((entries, _))) = sections.dynamic(endian, data) {
            for e in entries {
                let tag = e.d_tag(endian);
                if tag == u64::from(elf::DT_FLAGS) {
                    flags = e.d_val(endian);
                } else if tag == u64::from(elf::DT_FLAGS_1) {
                    flags_1 = e.d_val(endian);
                } else if tag == u64::from(elf::DT_TEXTREL) {
                    textrel = true;
                }
            }
        }
        let kind = match header.e_type(endian) {
            elf::ET_EXEC => ObjectKind::FixedExecutable,
            elf::ET_DYN if flags_1 & u64::from(elf::DF_1_PIE) != 0 => ObjectKind::PieExecutable,
            elf::ET_DYN => ObjectKind::SharedLibrary,
            other => {
                return Err(OriginalError::NotLoadable {
                    path: path.to_path_buf(),
                    why: format!("ELF type {other} is neither an executable nor a shared library"),
                })
            }
        };
        let declared = [file.elf_symbol_table(), file.elf_dynamic_symbol_table()]
            .iter()
            .map(|t| t.len())
            .fold(0usize, usize::saturating_add);
        if declared > MAX_SYMBOLS {
            return Err(OriginalError::NotLoadable {
                path: path.to_path_buf(),
                why: format!("it declares {declared} symbols, more than the {MAX_SYMBOLS} read"),
            });
        }
        let mut functions: Vec<FunctionSym> = Vec::new();
        for symbol in file.symbols().chain(file.dynamic_symbols()) {
            let raw = symbol.elf_symbol();
            let st_type = raw.st_type();
            if !(st_type == elf::STT_FUNC || st_type == elf::STT_GNU_IFUNC)
                || raw.st_shndx(endian) == elf::SHN_UNDEF
                || symbol.address() == 0
            {
                continue;
            }
            let Ok(name) = symbol.name() else { continue };
            let f = FunctionSym {
                name: name.to_owned(),
                vaddr: symbol.address(),
                size: raw.st_size(endian),
                global: matches!(
                    raw.st_bind(),
                    elf::STB_GLOBAL | elf::STB_WEAK | elf::STB_GNU_UNIQUE
                ),
                ifunc: st_type == elf::STT_GNU_IFUNC,
            };
            if !functions
                .iter()
                .any(|g| g.name == f.name && g.vaddr == f.vaddr)
            {
                functions.push(f);
            }
        }
        Ok(ElfInfo {
            path: path.to_path_buf(),
            kind,
            loads,
            text_relocations: textrel || flags & u64::from(elf::DF_TEXTREL) != 0,
            functions,
            build_id: file.build_id().ok().flatten().map(<[u8]>::to_vec),
        })
    }

    /// The function named `name` (versioned `.dynsym` names such as
    /// `crc32@@ZLIB_1.2.0` match too): a global definition first; several
    /// file-local ones at different addresses are ambiguous.
    pub fn function(&self, name: &str) -> Result<&FunctionSym, OriginalError> {
        let matches = |f: &&FunctionSym| {
            f.name == name || f.name.split_once('@').is_some_and(|(base, _)| base == name)
        };
        let mut found: Vec<&FunctionSym> = self.functions.iter().filter(matches).collect();
        found.sort_by_key(|f| (!f.global, f.vaddr));
        found.dedup_by_key(|f| f.vaddr);
        match found.as_slice() {
            [] => Err(OriginalError::NoSymbol {
                path: self.path.clone(),
                symbol: name.to_owned(),
            }),
            [one, ..] if one.global => Ok(one),
            [one] => Ok(one),
            many => Err(OriginalError::NotLoadable {
                path: self.path.clone(),
                why: format!("{} file-local functions are named {name}", many.len()),
            }),
        }
    }

    /// The bytes of `f` in `data` (the file), if they lie inside one
    /// `PT_LOAD`'s file image.
    pub fn function_bytes<'d>(&self, data: &'d [u8], f: &FunctionSym) -> Option<&'d [u8]> {
        let l = self.load_of(f.vaddr)?;
        let rel = f.vaddr - l.vaddr;
        if rel.checked_add(f.size)? > l.filesz {
            return None;
        }
        let start = usize::try_from(l.offset.checked_add(rel)?).ok()?;
        let end = start.checked_add(usize::try_from(f.size).ok()?)?;
        data.get(start..end)
    }

    /// The `PT_LOAD` holding `addr`.
    pub fn load_of(&self, addr: u64) -> Option<&Load> {
        self.loads.iter().find(|l| l.contains(addr))
    }
}
