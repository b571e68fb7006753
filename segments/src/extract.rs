// SPDX-License-Identifier: GPL-2.0
//! Extracting code, read-only data, relocations and entry points from a
//! relocatable ELF object with the `object` crate.
//!
//! Code sections are laid out one after the other in section order (aligned,
//! padded with `nop`), read-only data sections likewise (padded with zeros).
//! Code-to-code references are resolved here, since that layout is final;
//! code-to-data references become [`Relocation`]s, resolved when the segment
//! is placed. Anything else is refused with the offending name: references to
//! undefined symbols (calls into `core`, `memcpy`, panic handlers), writable
//! or thread-local data, relocations inside the read-only data (pointer
//! tables), and relocation types other than 32-bit PC-relative.

use adapt_segment::Relocation;
use object::elf;
use object::read::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionIndex};
use object::{RelocationFlags, SectionKind};
use thiserror::Error;

/// Why an object cannot become a segment variant.
#[derive(Debug, Error)]
pub enum ExtractError {
    /// Not a parsable ELF object.
    #[error("not an x86-64 ELF object: {0}")]
    Parse(String),
    /// A section holding writable or thread-local data.
    #[error("section {0} holds writable or thread-local data: segments must be stateless")]
    WritableData(String),
    /// A reference to a symbol defined nowhere in the object.
    #[error("code refers to undefined symbol {symbol} (at {section}+{offset:#x}): segments must be leaf code without calls into core, memcpy or panic handlers")]
    Undefined {
        /// The symbol.
        symbol: String,
        /// Section holding the reference.
        section: String,
        /// Offset of the reference.
        offset: u64,
    },
    /// A relocation type the format cannot express.
    #[error("relocation type {r_type} at {section}+{offset:#x} is not supported (only R_X86_64_PC32/PLT32)")]
    RelocationType {
        /// ELF relocation type.
        r_type: u32,
        /// Section holding it.
        section: String,
        /// Offset.
        offset: u64,
    },
    /// Relocations inside read-only data (pointer or jump tables).
    #[error(
        "read-only data section {0} has relocations (pointer or jump tables are not supported)"
    )]
    DataRelocations(String),
    /// A reference to a section that is neither code nor read-only data.
    #[error("code at {section}+{offset:#x} refers to section {target}, which is neither code nor read-only data")]
    BadTarget {
        /// Section holding the reference.
        section: String,
        /// Offset.
        offset: u64,
        /// The referenced section.
        target: String,
    },
    /// A resolved displacement or offset that does not fit.
    #[error("{0} does not fit 32 bits")]
    Overflow(String),
    /// A requested entry symbol is missing.
    #[error("entry symbol {0} is not defined in a code section")]
    MissingEntry(String),
}

/// A variant's contents taken from an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    /// Code bytes, code-to-code references resolved.
    pub code: Vec<u8>,
    /// Read-only data bytes.
    pub rodata: Vec<u8>,
    /// Largest alignment among the read-only data sections (at least 1).
    pub rodata_align: u32,
    /// Code-to-data references, sorted by offset.
    pub relocations: Vec<Relocation>,
    /// Entry offsets, in the order of the requested symbols.
    pub entry_offsets: Vec<u32>,
}

const NOP: u8 = 0x90;

enum Place {
    Code(u64),
    Rodata(u64),
}

fn align_to(n: u64, a: u64) -> u64 {
    let a = a.max(1);
    n.div_ceil(a) * a
}

fn fits(what: impl FnOnce() -> String, v: u64) -> Result<u32, ExtractError> {
    u32::try_from(v).map_err(|_| ExtractError::Overflow(what()))
}

/// Prefix of the undefined symbols that name a segment's imports:
/// `adapt_import_NAME` is import `NAME` (see [`extract_with_imports`]).
pub const IMPORT_SYMBOL_PREFIX: &str = "adapt_import_";

/// Extracts a variant from the ELF object `bytes`, with `entries` naming the
/// entry symbols in function order.
pub fn extract(bytes: &[u8], entries: &[&str]) -> Result<Extracted, ExtractError> {
    extract_with_imports(bytes, entries, &[])
}

/// [`extract`] for a segment importing `imports` (in slot order): a 32-bit
/// PC-relative reference to the undefined symbol `adapt_import_NAME`
/// (`jmp`/`call qword ptr [rip + adapt_import_NAME]`) is resolved to slot
/// `m` of the import table, whose place follows from the code's final
/// length (`adapt_segment::import_table::slot_offset`). Any other
/// undefined symbol is still refused.
pub fn extract_with_imports(
    bytes: &[u8],
    entries: &[&str],
    imports: &[&str],
) -> Result<Extracted, ExtractError> {
    let file = object::File::parse(bytes).map_err(|e| ExtractError::Parse(e.to_string()))?;
    if file.architecture() != object::Architecture::X86_64
        || file.format() != object::BinaryFormat::Elf
    {
        return Err(ExtractError::Parse(format!(
            "{:?} {:?}",
            file.format(),
            file.architecture()
        )));
    }

    let mut code = Vec::new();
    let mut rodata = Vec::new();
    let mut rodata_align = 1u64;
    let mut places: Vec<(SectionIndex, Place)> = Vec::new();
    for s in file.sections() {
        let name = s.name().unwrap_or("?").to_owned();
        if s.size() == 0 {
            continue;
        }
        match s.kind() {
            SectionKind::Text => {
                let start = align_to(code.len() as u64, s.align());
                code.resize(start as usize, NOP);
                code.extend_from_slice(
                    s.data()
                        .map_err(|e| ExtractError::Parse(format!("{name}: {e}")))?,
                );
                places.push((s.index(), Place::Code(start)));
            }
            SectionKind::ReadOnlyData | SectionKind::ReadOnlyString => {
                if name == ".eh_frame" {
                    continue;
                }
                if s.relocations().next().is_some() {
                    return Err(ExtractError::DataRelocations(name));
                }
                let start = align_to(rodata.len() as u64, s.align());
                rodata.resize(start as usize, 0);
                rodata.extend_from_slice(
                    s.data()
                        .map_err(|e| ExtractError::Parse(format!("{name}: {e}")))?,
                );
                rodata_align = rodata_align.max(s.align());
                places.push((s.index(), Place::Rodata(start)));
            }
            SectionKind::Data
            | SectionKind::UninitializedData
            | SectionKind::Tls
            | SectionKind::UninitializedTls
            | SectionKind::TlsVariables
            | SectionKind::ReadOnlyDataWithRel
            | SectionKind::Common => return Err(ExtractError::WritableData(name)),
            _ => {}
        }
    }
    let place_of = |idx: SectionIndex| places.iter().find(|(i, _)| *i == idx).map(|(_, p)| p);

    let mut relocations = Vec::new();
    for s in file.sections() {
        let Some(Place::Code(base)) = place_of(s.index()) else {
            continue;
        };
        let base = *base;
        let sname = s.name().unwrap_or("?").to_owned();
        for (offset, r) in s.relocations() {
            let r_type = match r.flags() {
                RelocationFlags::Elf { r_type } => r_type,
                _ => u32::MAX,
            };
            if r_type != elf::R_X86_64_PC32 && r_type != elf::R_X86_64_PLT32 {
                return Err(ExtractError::RelocationType {
                    r_type,
                    section: sname,
                    offset,
                });
            }
            let (target_sec, value) = match r.target() {
                RelocationTarget::Symbol(si) => {
                    let sym = file
                        .symbol_by_index(si)
                        .map_err(|e| ExtractError::Parse(e.to_string()))?;
                    let slot = sym
                        .name()
                        .ok()
                        .and_then(|n| n.strip_prefix(IMPORT_SYMBOL_PREFIX))
                        .and_then(|n| imports.iter().position(|i| *i == n));
                    if let (Some(m), true) = (slot, sym.is_undefined()) {
                        // The code's length is final: every section is
                        // laid out. Field value: S + A - P.
                        let at = base + offset;
                        let target = adapt_segment::import_table::slot_offset(code.len(), m) as i64;
                        let v = i32::try_from(target + r.addend() - at as i64).map_err(|_| {
                            ExtractError::Overflow(format!("import slot reference at {at:#x}"))
                        })?;
                        code[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
                        continue;
                    }
                    match sym.section_index() {
                        Some(ts) if !sym.is_undefined() => (ts, sym.address()),
                        _ => {
                            return Err(ExtractError::Undefined {
                                symbol: sym.name().unwrap_or("?").to_owned(),
                                section: sname,
                                offset,
                            })
                        }
                    }
                }
                RelocationTarget::Section(ts) => (ts, 0),
                _ => {
                    return Err(ExtractError::RelocationType {
                        r_type,
                        section: sname,
                        offset,
                    })
                }
            };
            let at = base + offset;
            let at32 = fits(|| format!("code offset {at:#x}"), at)?;
            match place_of(target_sec) {
                Some(Place::Code(tbase)) => {
                    // Final layout: resolve S + A - P now.
                    let v = (*tbase + value) as i64 + r.addend() - at as i64;
                    let v = i32::try_from(v)
                        .map_err(|_| ExtractError::Overflow(format!("branch at {at:#x}")))?;
                    code[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
                }
                Some(Place::Rodata(tbase)) => {
                    let ro = fits(
                        || format!("rodata offset of the reference at {at:#x}"),
                        *tbase + value,
                    )?;
                    let addend = i32::try_from(r.addend())
                        .map_err(|_| ExtractError::Overflow(format!("addend at {at:#x}")))?;
                    relocations.push(Relocation {
                        offset: at32,
                        rodata_offset: ro,
                        addend,
                    });
                }
                None => {
                    let target = file
                        .section_by_index(target_sec)
                        .ok()
                        .and_then(|t| t.name().ok().map(str::to_owned));
                    return Err(ExtractError::BadTarget {
                        section: sname,
                        offset,
                        target: target.unwrap_or_else(|| format!("#{}", target_sec.0)),
                    });
                }
            }
        }
    }
    relocations.sort_by_key(|r| r.offset);

    let mut entry_offsets = Vec::new();
    for &e in entries {
        let sym = file
            .symbols()
            .find(|s| s.name() == Ok(e) && s.is_definition())
            .ok_or_else(|| ExtractError::MissingEntry(e.to_owned()))?;
        let Some(Place::Code(base)) = sym.section_index().and_then(place_of) else {
            return Err(ExtractError::MissingEntry(e.to_owned()));
        };
        entry_offsets.push(fits(|| format!("entry {e}"), base + sym.address())?);
    }

    let rodata_align = fits(|| "rodata alignment".into(), rodata_align)?;
    Ok(Extracted {
        code,
        rodata,
        rodata_align,
        relocations,
        entry_offsets,
    })
}
