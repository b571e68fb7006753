//! adapt-elf on real files: this test binary (PIE, with `.symtab`), the
//! system libz (stripped: `.dynsym` only) and glibc.

use std::path::{Path, PathBuf};

use adapt_elf::{ElfError, ElfObject, FunctionsByAddress, ObjectKind, SymbolSource};

fn system_library(name: &str) -> PathBuf {
    ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"]
        .into_iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("the system {name}"))
}

fn libz_path() -> PathBuf {
    system_library("libz.so.1")
}

fn own_executable() -> FunctionsByAddress {
    let exe = std::env::current_exe().unwrap();
    FunctionsByAddress::new(ElfObject::open(&exe).unwrap().into_facts())
}

#[inline(never)]
#[no_mangle]
extern "C" fn adapt_profile_test_marker(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9).rotate_left(7)
}

#[test]
fn finds_a_function_of_this_test_binary_by_address() {
    let symbols = own_executable();
    assert_eq!(symbols.source(), SymbolSource::Symtab);
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
    let exe = ElfObject::open(&std::env::current_exe().unwrap()).unwrap();
    let start = exe.functions_named("adapt_profile_test_marker")[0].vaddr;
    // Find the offset whose vaddr is `start` by inverting the segment map.
    let seg = exe
        .loads
        .iter()
        .find(|s| start >= s.vaddr && start - s.vaddr < s.filesz)
        .unwrap();
    let offset = start - seg.vaddr + seg.offset;
    assert_eq!(exe.vaddr_of_offset(offset), Some(start));
    assert_eq!(exe.offset_of(start), Some(offset));
}

#[test]
fn a_library_without_symtab_falls_back_to_dynsym() {
    let symbols = FunctionsByAddress::new(ElfObject::open(&libz_path()).unwrap().into_facts());
    assert_eq!(
        symbols.source(),
        SymbolSource::Dynsym,
        "Debian strips .symtab"
    );
    let (start, end) = symbols.function_named("crc32").expect("crc32 is exported");
    assert_eq!(symbols.function_at(start).unwrap().0, "crc32");
    assert!(symbols.function_at(end - 1).is_some());
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
    let only = ElfObject::open_for(&libz_path(), Some("crc32")).unwrap();
    assert_eq!(only.functions_named("crc32").len(), 1);
    assert_eq!(only.soname.as_deref(), Some("libz.so.1"));
}

#[test]
fn libz_exports_crc32_with_a_size_and_a_soname() {
    let libz = ElfObject::open(&libz_path()).unwrap();
    assert_eq!(libz.soname.as_deref(), Some("libz.so.1"));
    assert_eq!(libz.kind, ObjectKind::SharedLibrary);
    assert!(libz.kind.position_independent());
    assert!(!libz.text_relocations);
    let found = libz.functions_named("crc32");
    assert_eq!(found.len(), 1, "{found:?}");
    let crc32 = found[0];
    assert!(crc32.global && !crc32.ifunc);
    assert!(crc32.size >= 5, "{crc32:?}");
    let load = libz.load_of(crc32.vaddr).unwrap();
    assert!(load.executable() && !load.writable());
    let bytes = libz.bytes(crc32.vaddr, crc32.size).unwrap();
    assert_eq!(bytes.len() as u64, crc32.size);
    assert_eq!(
        libz.offset_of(crc32.vaddr).map(|o| o - load.offset),
        Some(crc32.vaddr - load.vaddr)
    );
}

#[test]
fn this_test_binary_is_a_pie_without_a_soname() {
    let exe = ElfObject::open(&std::env::current_exe().unwrap()).unwrap();
    assert_eq!(exe.kind, ObjectKind::PieExecutable);
    assert!(exe.soname.is_none());
}

#[test]
fn glibc_memcpy_is_an_ifunc_and_hidden_versions_are_skipped() {
    let libc = ElfObject::open(&system_library("libc.so.6")).unwrap();
    let memcpy = libc.functions_named("memcpy");
    assert!(!memcpy.is_empty());
    assert!(memcpy.iter().all(|f| f.ifunc), "{memcpy:?}");
    // memcpy@GLIBC_2.2.5 (the compatibility memmove) is a hidden version:
    // only the default memcpy@@GLIBC_2.14 is read.
    assert_eq!(memcpy.len(), 1, "{memcpy:?}");
    assert_eq!(libc.soname.as_deref(), Some("libc.so.6"));
    assert!(libc.build_id.as_ref().is_some_and(|id| !id.is_empty()));
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
    let path = std::env::temp_dir().join(format!("adapt-elf-garbage-{}", std::process::id()));
    std::fs::write(&path, b"not an ELF file").unwrap();
    let err = ElfObject::open(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(err, ElfError::Parse { .. }), "{err}");
    let err = ElfObject::open(Path::new("/nonexistent/adapt-elf")).unwrap_err();
    assert!(matches!(err, ElfError::Open { .. }), "{err}");
}
