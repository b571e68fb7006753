//! Process and ELF facts, read once for every part of adapt: which file
//! backs an address of a process (`/proc/PID/maps`, `map_files`), and what
//! an ELF file says (function symbols, `PT_LOAD` segments, soname, kind,
//! build-id, text relocations).
//!
//! Every file here is input a target chose: reads are bounded and nothing
//! panics on malformed bytes (`tests/hostile.rs`).
//!
//! | task | call |
//! |---|---|
//! | a process's mappings | [`ProcessMaps::read`], [`ProcessMaps::find`] |
//! | open the file a mapping maps | [`ProcessMaps::map_file`], [`ProcessMaps::open_path`] |
//! | the `/proc` directory of a process | [`proc_dir`] |
//! | an ELF file's facts (mapped) | [`ElfObject::open`], [`ElfObject::open_for`] (one name) |
//! | facts of bytes already read | [`ElfFacts::parse`] |
//! | a function by name | [`ElfFacts::functions_named`], [`ElfFacts::functions_where`] |
//! | one name, read as the loader finds it (`.dynsym` through `.gnu.hash`) | [`SymbolFilter::Lookup`], [`ElfObject::open_with`] |
//! | a function by address (profiler) | [`FunctionsByAddress`] |

pub mod by_address;
pub mod facts;
pub mod gnu_hash;
pub mod mapped;
pub mod maps;

pub use by_address::FunctionsByAddress;
pub use facts::{
    ElfFacts, FunctionSymbol, Load, ObjectKind, ParseError, SymbolFilter, SymbolSource, MAX_FILE,
    MAX_SYMBOLS,
};
pub use mapped::{ElfError, ElfObject};
pub use maps::{is_library_file, proc_dir, Mapping, ProcessMaps};
